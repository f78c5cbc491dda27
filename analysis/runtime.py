"""How the analysis runs torch: the cores this process may use and a scoped thread count.

Shared by `analysis.latency` and `analysis.accuracy` (it sits beside `analysis.cost`, below both).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


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


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """torch's intra-op threads set to `threads` (checked by `check_threads`) inside, restored
    after; yields the count."""
    check_threads(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)
