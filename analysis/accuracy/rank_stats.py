"""Rank agreement of a proxy with accuracy: Kendall τ-b, Spearman ρ, bootstrap intervals.

Both statistics handle ties (τ-b; ρ as the Pearson correlation of average ranks) and are NaN
when one side is constant. Intervals are percentile bootstraps over configs: `n_resamples`
draws of n (proxy, accuracy) pairs with replacement from a seeded generator; draws whose
statistic is undefined (all values tied) are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Statistic = Callable[[np.ndarray, np.ndarray], float]


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"expected two 1-D arrays of one length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"rank correlation needs ≥ 2 pairs, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("rank correlation of non-finite values")
    return x, y


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks: [10, 20, 20, 5] -> [2, 3.5, 3.5, 1]."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall τ-b: (concordant − discordant) / √((n0 − ties_x)(n0 − ties_y)), n0 = n(n−1)/2."""
    x, y = _pair(x, y)
    upper = np.triu_indices(len(x), k=1)
    sx = np.sign(x[:, None] - x[None, :])[upper]  # one entry per pair i < j
    sy = np.sign(y[:, None] - y[None, :])[upper]
    denominator = np.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy))
    return float(np.sum(sx * sy) / denominator) if denominator > 0 else float("nan")


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman ρ: Pearson correlation of the average ranks."""
    x, y = _pair(x, y)
    rx, ry = average_ranks(x) - (len(x) + 1) / 2, average_ranks(y) - (len(y) + 1) / 2
    denominator = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
    return float(np.sum(rx * ry) / denominator) if denominator > 0 else float("nan")


def bootstrap_interval(x: Sequence[float], y: Sequence[float], statistic: Statistic, *,
                       n_resamples: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (lo, hi) of `statistic(x, y)` at `level`."""
    x, y = _pair(x, y)
    if not 0 < level < 1:
        raise ValueError(f"level {level}: must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), size=(n_resamples, len(x)))
    values = np.array([statistic(x[i], y[i]) for i in draws])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class RankCorrelation:
    """τ and ρ of one score against accuracy, with their bootstrap intervals."""

    n: int
    tau: float
    tau_ci: tuple[float, float]
    rho: float
    rho_ci: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["tau_ci"], out["rho_ci"] = list(self.tau_ci), list(self.rho_ci)
        return out


def rank_correlation(score: Sequence[float], accuracy: Sequence[float], *,
                     n_resamples: int = 2000, level: float = 0.95,
                     seed: int = 0) -> RankCorrelation:
    """Kendall τ-b and Spearman ρ of `score` vs `accuracy`, each with a bootstrap interval."""
    kwargs = dict(n_resamples=n_resamples, level=level, seed=seed)
    return RankCorrelation(
        n=len(score),
        tau=kendall_tau(score, accuracy),
        tau_ci=bootstrap_interval(score, accuracy, kendall_tau, **kwargs),
        rho=spearman_rho(score, accuracy),
        rho_ci=bootstrap_interval(score, accuracy, spearman_rho, **kwargs),
    )


def correlation_table(scores: Mapping[str, Sequence[float]], accuracy: Sequence[float],
                      seconds: Mapping[str, float] | None = None, *, n_resamples: int = 2000,
                      seed: int = 0) -> list[dict[str, object]]:
    """One row per score name: n, τ, τ CI, ρ, ρ CI, and `seconds` (per config) when given;
    sorted by τ, best first."""
    rows = []
    for name, values in scores.items():
        row: dict[str, object] = dict(method=name, **rank_correlation(
            values, accuracy, n_resamples=n_resamples, seed=seed).to_dict())
        if seconds is not None:
            row["seconds"] = float(seconds[name])
        rows.append(row)
    return sorted(rows, key=lambda r: -np.nan_to_num(r["tau"], nan=-2.0))
