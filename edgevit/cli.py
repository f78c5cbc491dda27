"""The `edgevit` command line. Every user error ends in one clear line and exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .config import EdgeViTConfig

EXIT_USAGE = 2
EXIT_INTERNAL = 1


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


class CliError(Exception):
    """A user error: printed as one line, no traceback."""


def resolve_config(spec: str) -> EdgeViTConfig:
    """A registered model name, or the path of a JSON file holding an `EdgeViTConfig`."""
    from .registry import list_models, preset_config

    if spec in list_models():
        return preset_config(spec)
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise CliError(f"config file not found: {spec}")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise CliError(f"cannot read config file {spec}: {err}") from None
        try:
            return EdgeViTConfig.from_json(text)
        except ValueError as err:
            raise CliError(f"{spec}: {err}") from None
    raise CliError(f"unknown model {spec!r}: not a registered name ({', '.join(list_models())}) "
                   "nor a .json config file")


def image_size(values: list[int] | None) -> tuple[int, int]:
    """--img-size H W (or one value for a square); defaults to 224×224; checked against ≥ 32."""
    from .config import MIN_IMG_SIZE

    if not values:
        return 224, 224
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise CliError(f"--img-size takes H W (or one value), got {values}")
    h, w = values
    if h < MIN_IMG_SIZE or w < MIN_IMG_SIZE:
        raise CliError(f"--img-size {h} {w}: EdgeViT needs H, W ≥ {MIN_IMG_SIZE}")
    if h > 8192 or w > 8192:
        raise CliError(f"--img-size {h} {w}: sizes above 8192 are not supported")
    return h, w


def cmd_info(args: argparse.Namespace) -> dict:
    """Parameters and per-stage output shapes of a model."""
    from .model import EdgeViT

    config = resolve_config(args.model)
    h, w = image_size(args.img_size)
    model = EdgeViT(config)
    stages = [
        dict(stage=i, channels=c, height=sh, width=sw, depth=d, sample_rate=r,
             heads=config.num_heads[i])
        for i, ((c, sh, sw), d, r) in enumerate(
            zip(model.stage_shapes(h, w), config.depths, config.sample_rates)
        )
    ]
    result = dict(model=config.name, img_size=[h, w], params=model.num_params(),
                  config=config.to_dict(), stages=stages)
    if not args.json:
        print(f"{config.name}: {result['params']:,} parameters at {h}×{w}")
        print("stage  channels  map (h×w)  depth  r  heads")
        for s in stages:
            print(f"{s['stage']:>5}  {s['channels']:>8}  {s['height']:>4}×{s['width']:<4}  "
                  f"{s['depth']:>5}  {s['sample_rate']}  {s['heads']:>5}")
    return result


CommandFunc = Callable[[argparse.Namespace], dict]


def add_command(
    sub: argparse._SubParsersAction, name: str, func: CommandFunc, help_text: str,
    model: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand; with `model`, it takes NAME|config.json and --img-size H W."""
    p = sub.add_parser(name, help=help_text, description=help_text)
    if model:
        p.add_argument("model", help="registered model name or path of a config .json")
        p.add_argument("--img-size", type=int, nargs="+", metavar="H W",
                       help="input height and width (default 224 224)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=func)
    return p


def register(sub: argparse._SubParsersAction) -> None:
    add_command(sub, "info", cmd_info, "parameters and per-stage shapes of a model")


# Modules that contribute subcommands, each with `register(sub)`.
COMMAND_MODULES: tuple[str, ...] = (
    "edgevit.cli", "analysis.cli_cost", "analysis.cli_latency", "analysis.cli_predict",
    "analysis.cli_accuracy", "analysis.cli_search", "analysis.cli_paper",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="edgevit", description="EdgeViT complexity analysis and architecture search"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to re-run a command elsewhere
    try:
        result = args.func(args)
    except (CliError, ValueError) as err:
        print(f"edgevit {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # unreadable files, full disks, refused ports
        print(f"edgevit {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:
        if os.environ.get("EDGEVIT_DEBUG"):
            raise
        print(f"edgevit {args.command}: internal error ({type(err).__name__}): {_one_line(err)}"
              " — set EDGEVIT_DEBUG=1 for the traceback", file=sys.stderr)
        return EXIT_INTERNAL
    if args.json:
        print(json.dumps(result, indent=None, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
