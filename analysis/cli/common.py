"""What every `edgevit` command shares: the user-error class, model and size arguments, and
the subcommand helper."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from edgevit import EdgeViTConfig, list_models, preset_config
from edgevit.config import MIN_IMG_SIZE

EXIT_USAGE = 2
EXIT_INTERNAL = 1


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


class CliError(Exception):
    """A user error: printed as one line, no traceback."""


def resolve_config(spec: str) -> EdgeViTConfig:
    """A registered model name, or the path of a JSON file holding an `EdgeViTConfig`."""
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
