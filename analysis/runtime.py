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


def read_user_text(path: str | os.PathLike[str], what: str, max_bytes: int) -> str:
    """The UTF-8 text of a user's file, read in bounded memory and time: ValueError naming
    `what` and the path when it is missing, not a regular file (a FIFO or a device is refused,
    never waited on), above `max_bytes`, or not UTF-8."""
    try:
        info = os.stat(path)
    except OSError:
        raise ValueError(f"{what} not found: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {path} is not a regular file")
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
