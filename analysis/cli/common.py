"""What every `edgevit` command shares: the user-error class, model and size arguments, and
the subcommand helper."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from analysis.runtime import read_user_text
from edgevit import EdgeViTConfig, list_models, preset_config
from edgevit.config import MAX_IMG_SIZE, MIN_IMG_SIZE

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT
# A model this command builds must fit: float32 parameters and its largest activation tensor
# (batch included) each at most this many bytes, computed from the exact cost model first.
MAX_MODEL_BYTES = 2 * 1024**3
MAX_CONFIG_BYTES = 1024**2  # a config file is a few hundred bytes


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


class CliError(Exception):
    """A user error: printed as one line, no traceback."""


def strict_int(text: str) -> int:
    """argparse type: a plain decimal integer of at most 18 digits (Python's int() also takes
    "2_24" for 224, and numbers of any length)."""
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain integer (at most 18 digits)")
    return int(text)


class Ranged:
    """argparse type: a strict integer (or, with `real`, a finite number) within stated bounds
    (`low` exclusive for reals); `--help` shows them (`RangeHelp`)."""

    def __init__(self, low: float, high: float, *, real: bool = False,
                 closed: bool = False) -> None:
        self.low, self.high, self.real, self.closed = low, high, real, closed or not real
        self.__name__ = "number" if real else "integer"  # argparse's "invalid <name> value"

    def describe(self) -> str:
        if not self.real:
            return f"{self.low:,}..{self.high:,}"
        return f"{'≥' if self.closed else '>'} {self.low:g} and ≤ {self.high:g}"

    def __call__(self, text: str) -> float:
        value = strict_float(text) if self.real else strict_int(text)
        above_low = value >= self.low if self.closed else value > self.low
        if not (above_low and value <= self.high):
            raise argparse.ArgumentTypeError(f"{text} is not {self.describe()}" if self.real
                                             else f"{text} is not in {self.describe()}")
        return value


def ranged_int(low: int, high: int) -> Ranged:
    return Ranged(low, high)


def ranged_float(low: float, high: float, *, closed: bool = False) -> Ranged:
    """A finite number in (low, high], or [low, high] when `closed`."""
    return Ranged(low, high, real=True, closed=closed)


class RangeHelp(argparse.HelpFormatter):
    """Appends each bounded option's range to its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if isinstance(action.type, Ranged):
            text += f" [{action.type.describe()}]"
        return text


SEED = ranged_int(0, 2**31 - 1)
THREADS = ranged_int(1, 1024)  # then checked against this process's cores
RUNS = ranged_int(1, 100_000)
SECONDS = ranged_float(0, 86_400)
MIN_TIME = ranged_float(0, 86_400, closed=True)  # 0: the minimum runs alone decide
COUNT = ranged_int(1, 10_000_000)  # steps, images, images per class


def strict_float(text: str) -> float:
    """argparse type: a finite decimal number (no NaN, Infinity or digit separators)."""
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain finite number")
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def resolve_config(spec: str) -> EdgeViTConfig:
    """A registered model name, or the path of a JSON file holding an `EdgeViTConfig`."""
    if spec in list_models():
        return preset_config(spec)
    path = Path(spec)
    if path.suffix == ".json" or os.path.lexists(path):
        try:
            return EdgeViTConfig.from_json(read_user_text(path, "config file", MAX_CONFIG_BYTES))
        except ValueError as err:
            raise CliError(f"{spec}: {err}" if str(spec) not in str(err) else str(err)) from None
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
    if h > MAX_IMG_SIZE or w > MAX_IMG_SIZE:
        raise CliError(f"--img-size {h} {w}: sizes above {MAX_IMG_SIZE} are not supported")
    return h, w


CommandFunc = Callable[[argparse.Namespace], dict]


def add_command(
    sub: argparse._SubParsersAction, name: str, func: CommandFunc, help_text: str,
    model: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand; with `model`, it takes NAME|config.json and --img-size H W."""
    p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=RangeHelp)
    if model:
        p.add_argument("model", help="registered model name or path of a config .json")
        p.add_argument("--img-size", type=strict_int, nargs="+", metavar="H W",
                       help="input height and width (default 224 224)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=func)
    return p


def check_buildable(config: EdgeViTConfig, img_size: tuple[int, int], batch_size: int = 1
                    ) -> None:
    """CliError, before anything is built, when `config`'s float32 parameters or its largest
    activation at `img_size` × `batch_size` exceed MAX_MODEL_BYTES (exact cost model)."""
    from analysis.cost import model_cost

    cost = model_cost(config, img_size)
    for what, numel in (("parameters", cost.params),
                        ("largest activation", cost.largest_tensor_numel * batch_size)):
        if 4 * numel > MAX_MODEL_BYTES:
            raise CliError(f"{config.name}: its {what} need {4 * numel / 1024**3:.1f} GiB in "
                           f"float32 at {img_size[0]}×{img_size[1]}, batch {batch_size} "
                           f"(limit {MAX_MODEL_BYTES / 1024**3:.0f} GiB): not built")
