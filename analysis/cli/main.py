"""The `edgevit` command line. Every user error ends in one clear line and exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

from . import accuracy, cost, info, latency, paper, predict, search, supernet
from .common import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, CliError, one_line

COMMAND_GROUPS = (info, cost, latency, predict, accuracy, supernet, search, paper)  # register(sub)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other user error (exit 2); the
    subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())} "
                              f"(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="edgevit", description="EdgeViT complexity analysis and architecture search"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command line; returns its exit status (argparse's usage errors and --help
    included: 2 and 0, never SystemExit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to re-run a command elsewhere
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print(f"edgevit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CliError, ValueError) as err:
        print(f"edgevit {args.command}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # unreadable files, full disks, refused ports
        print(f"edgevit {args.command}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:
        if os.environ.get("EDGEVIT_DEBUG"):
            raise
        print(f"edgevit {args.command}: internal error ({type(err).__name__}): {one_line(err)}"
              " — set EDGEVIT_DEBUG=1 for the traceback", file=sys.stderr)
        return EXIT_INTERNAL
    if args.json:
        try:
            text = json.dumps(result, indent=None, sort_keys=True, allow_nan=False)
        except ValueError:  # NaN or ±Infinity: not JSON, and not a number anyone can use
            print(f"edgevit {args.command}: error: the result holds a non-finite number "
                  "(NaN or Infinity), which --json does not print", file=sys.stderr)
            return EXIT_USAGE
        print(text)
    return 0

