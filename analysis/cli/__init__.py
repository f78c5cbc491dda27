"""The `edgevit` command (`analysis.cli:main`), one module per command group.

May import every package below it: edgevit, analysis.cost, .counters, .latency, .accuracy,
.nas and .paper.
"""

from .common import CliError
from .main import build_parser, main

__all__ = ["CliError", "build_parser", "main"]
