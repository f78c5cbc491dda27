"""What every analysis package shares about running on a user's machine: the cores this
process may use, a scoped torch thread count, and bounded reads of users' files.

It sits beside `analysis.cost`, below `analysis.latency`, `analysis.accuracy` and the rest.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cpu_threads() -> int:
    """Cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def check_threads(threads: object) -> int:
    """`threads` as an int in 1..cpu_threads(); ValueError naming the bound otherwise."""
    if isinstance(threads, bool) or not isinstance(threads, int) \
            or not 1 <= threads <= cpu_threads():
        raise ValueError(f"threads {threads!r}: this process may use 1..{cpu_threads()} cores")
    return threads


def finite_float(value: object) -> float | None:
    """`value` as a float when it is a real number (not a bool) that a float holds finitely;
    None for NaN, ±inf, an int beyond the float range (1e309 written as an integer, say), a
    string or anything else, so that a caller's check never raises OverflowError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def checked_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """`value` as an int ≥ `low` (and ≤ `high` when given): a Python or numpy integer, never a
    bool, a float or the string "2_24"; ValueError naming `name` and the bound otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low \
            or (high is not None and value > high):
        bound = f"in {low}..{high}" if high is not None else f"≥ {low}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r:.80}")
    return int(value)


def checked_real(name: str, value: object, *, above: float | None = None,
                 at_least: float | None = None) -> float:
    """`value` as a finite float (`finite_float`), > `above` and ≥ `at_least` when given;
    ValueError naming `name` otherwise."""
    number = finite_float(value)
    if number is None:
        raise ValueError(f"{name} must be a finite number, got {value!r:.80}")
    if above is not None and not number > above:
        raise ValueError(f"{name} must be > {above:g}, got {value!r}")
    if at_least is not None and number < at_least:
        raise ValueError(f"{name} must be ≥ {at_least:g}, got {value!r}")
    return number


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """torch's intra-op threads set to `threads` (checked by `check_threads`) inside, restored
    after; yields the count."""
    import torch  # here, so that the NNI tuner process, which imports this module, starts fast

    check_threads(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


def regular_file(path: str | os.PathLike[str], what: str) -> os.stat_result:
    """The stat of `path` when it is a regular file (followed through links); ValueError naming
    `what` and the path when it is missing or something else (a FIFO or a device, which a read
    would wait on or never finish; a folder)."""
    try:
        info = os.stat(path)
    except OSError:
        raise ValueError(f"{what} not found: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {path} is not a regular file")
    return info


def read_user_text(path: str | os.PathLike[str], what: str, max_bytes: int) -> str:
    """The UTF-8 text of a user's file, read in bounded memory and time: ValueError naming
    `what` and the path when it is not a `regular_file`, above `max_bytes`, or not UTF-8."""
    info = regular_file(path, what)
    if info.st_size > max_bytes:
        raise ValueError(f"{what} {path} holds {info.st_size:,} bytes, above the limit of "
                         f"{max_bytes:,}")
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise ValueError(f"cannot read {what} {path}: {err}") from None
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path} grew above the limit of {max_bytes:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} {path} is not UTF-8 text: {err}") from None


def parse_json(text: str, what: str) -> Any:
    """json.loads with every failure (malformed, nested too deeply) a ValueError naming `what`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: malformed JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{what}: JSON nested too deeply") from None
    except ValueError as err:  # an integer of more than 4,300 digits
        raise ValueError(f"{what}: {err}") from None
