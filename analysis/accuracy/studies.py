"""The committed accuracy studies, as correlation tables the trust rule reads.

Two studies are committed, each ranking configs by standalone training (the reference) and by
every other method on one dataset at one resolution:

- the digits study (`DIGITS_STUDY`, `benchmarks/accuracy_proxies.py`): 32×32 digits; it
  saturates, so it validates nothing (kept as the honest null result);
- the Fashion-MNIST study (`FASHION_STUDY`, `benchmarks/supernet_study.py`): 64×64, every
  proxy and, once scored, a supernet checkpoint's inherited accuracy.

A table row is `rank_stats.correlation_table`'s (`method`, `n`, `tau`, `tau_ci`, `rho`,
`rho_ci`, `seconds` per config) with `dataset` and `img_size`; `method` is the canonical method
string a search runs (`AccuracyMethod`; a supernet's checkpoint by its absolute path, though
the study records it relative to the repository): proxy:snip@fashion-mnist/64 is snip on the
batch the study used, so a τ is never carried to another dataset or resolution. A supernet
row also holds the scored checkpoint's `supernet` fingerprint (`supernet_fingerprint`), which
a checkpoint must match to inherit the row's τ; its column is scored as a search's
`supernet:CKPT` scores (the evaluator's default BatchNorm calibration and held-out sizes).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import DIGITS, FASHION_MNIST
from .methods import STUDY_JSON, AccuracyMethod, study_arrays
from .proxies import PROXIES
from .rank_stats import correlation_table

DIGITS_STUDY = STUDY_JSON
FASHION_STUDY = STUDY_JSON.parent / "supernet_study.json"
MIN_CONFIGS = 4  # fewer configs: no rank statistics
REPO_ROOT = Path(__file__).resolve().parents[2]  # a study's relative checkpoint paths start here
# the study's supernet, committed (float16 weights): `supernet:` + this path scores with it
COMMITTED_SUPERNET = REPO_ROOT / "checkpoints" / "supernet_fashion-mnist_64_fp16.pt"


def proxy_method(name: str, dataset: str, img_size: int) -> str:
    """The canonical method string of proxy `name` on `dataset` at `img_size`."""
    return str(AccuracyMethod("proxy", name, dataset, img_size))


def digits_table(study: dict[str, Any], *, n_resamples: int = 2000,
                 seed: int = 0) -> list[dict[str, Any]]:
    """Correlation rows of the digits study (`benchmarks/accuracy_proxies.py`'s JSON)."""
    accuracy, scores, seconds = study_arrays(study)
    data = study.get("dataset", {})
    dataset, img_size = data.get("name", DIGITS), data.get("img_size")
    table = correlation_table(scores, accuracy, {k: seconds[k] for k in scores},
                              n_resamples=n_resamples, seed=seed)
    for row in table:
        row["method"] = proxy_method(row["method"], dataset, img_size)
        row["dataset"], row["img_size"] = dataset, img_size
    return table


def fashion_table(study: dict[str, Any], *, n_resamples: int = 2000, seed: int = 0,
                  extra: dict[str, tuple[np.ndarray, float]] | None = None
                  ) -> list[dict[str, Any]]:
    """Correlation rows of the Fashion-MNIST study (`benchmarks/supernet_study.py`'s JSON):
    every proxy, and the supernet when every row has its column. `extra` adds named score
    columns (name -> (scores per config, seconds per config)) that are not search methods,
    such as the standalone ranking after fewer epochs. Empty below `MIN_CONFIGS` configs."""
    rows = study["configs"]
    if len(rows) < MIN_CONFIGS:
        return []
    img_size = study["settings"]["img_size"]
    accuracy = np.array([r["accuracy"] for r in rows], dtype=np.float64)
    scores = {proxy_method(n, FASHION_MNIST, img_size): np.array([r["proxies"][n] for r in rows])
              for n in PROXIES}
    seconds = {proxy_method(n, FASHION_MNIST, img_size): float(
        np.mean([r["proxy_seconds"][n] for r in rows])) for n in PROXIES}
    supernet = study.get("supernet")
    if supernet is not None and all("supernet" in r for r in rows):
        name = f"supernet:{checkpoint_path(supernet['path'])}"  # runnable from any folder
        scores[name] = np.array([r["supernet"] for r in rows])
        seconds[name] = float(np.mean([r["supernet_seconds"] for r in rows]))
    for name, (values, per_config) in (extra or {}).items():
        scores[name], seconds[name] = np.asarray(values, dtype=np.float64), per_config
    table = correlation_table(scores, accuracy, seconds, n_resamples=n_resamples, seed=seed)
    for row in table:
        row["dataset"], row["img_size"] = FASHION_MNIST, img_size
        if row["method"].startswith("supernet:"):
            row["supernet"] = supernet["fingerprint"]
    return table


@functools.cache
def committed_table(n_resamples: int = 2000, seed: int = 0) -> tuple[dict[str, Any], ...]:
    """Every committed study's rows, the digits study's first (a study file that is missing
    contributes nothing)."""
    table: list[dict[str, Any]] = []
    if DIGITS_STUDY.is_file():
        table += digits_table(json.loads(DIGITS_STUDY.read_text()), n_resamples=n_resamples,
                              seed=seed)
    if FASHION_STUDY.is_file():
        table += fashion_table(json.loads(FASHION_STUDY.read_text()), n_resamples=n_resamples,
                               seed=seed)
    return tuple(table)


def checkpoint_path(recorded: str) -> Path:
    """The checkpoint a study records as `recorded` (a relative path is the repository's)."""
    path = Path(recorded)
    return path if path.is_absolute() else REPO_ROOT / path
