"""The search's objectives: accuracy (a named method), latency (a predictor), and scalarisation.

Accuracy methods are strings: `proxy:NAME` (a zero-cost proxy or a cost baseline) or
`train:PATH` / `train:digits` (short training). `proxy:params` and `proxy:macs` (log10 of the
exact count, the trivial baselines) are vectorised over the enumerated space; the others need
one forward/backward pass or a training run per config (`analysis.accuracy.methods`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgevit.config import EdgeViTConfig

from analysis.cost.ops import model_cost

VECTORISED_PROXIES = ("params", "macs")


def default_accuracy_method() -> str:
    """The search's default: the method best per second of compute in the committed proxy
    study (`analysis/accuracy/data/accuracy_proxy_study.json`), by `accuracy.cheapest_comparable`."""
    from analysis.accuracy.methods import cheapest_comparable, load_study

    return "proxy:" + cheapest_comparable(load_study()["table"])["method"]


@dataclass(frozen=True)
class AccuracyObjective:
    """An accuracy method: a name for every output, and how to score configs."""

    method: str
    evaluate: Callable[[EdgeViTConfig], float]
    # (macs, params) arrays -> scores, for methods that need no model run
    vectorised: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _log_params(config: EdgeViTConfig) -> float:
    return math.log10(model_cost(config).params)


def _log_macs(config: EdgeViTConfig) -> float:
    return math.log10(model_cost(config).macs)


def accuracy_objective(method: str, *, img_size: int | None = None, epochs: int | None = None,
                       seed: int = 0) -> AccuracyObjective:
    """Parse `proxy:NAME | train:PATH` into an objective; ValueError for unknown methods."""
    kind, _, name = method.partition(":")
    if kind not in ("proxy", "train") or not name:
        raise ValueError(f"accuracy method {method!r}: expected proxy:NAME or train:PATH")
    if method == "proxy:params":
        return AccuracyObjective(method, _log_params, lambda macs, params: np.log10(params))
    if method == "proxy:macs":
        return AccuracyObjective(method, _log_macs, lambda macs, params: np.log10(macs))
    from analysis import accuracy  # heavier: torch training and proxies

    evaluator = accuracy.make_evaluator(method, img_size=img_size, epochs=epochs, seed=seed)
    return AccuracyObjective(method, evaluator)


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, w: float = -0.07) -> float:
    """MnasNet's soft reward acc · (latency / target)^w (w = −0.07: soft constraint)."""
    if not (latency_ms > 0 and target_ms > 0):
        raise ValueError(f"latency {latency_ms} ms and target {target_ms} ms must be > 0")
    return accuracy * (latency_ms / target_ms) ** w


def tchebycheff_reward(accuracy: float, latency_ms: float, *, weights: tuple[float, float],
                       accuracy_range: tuple[float, float],
                       latency_range_ms: tuple[float, float]) -> float:
    """−max(λ_a·(1 − â), λ_l·l̂) with â, l̂ the objectives scaled to [0, 1] over their ranges:
    maximising it walks to the front point that the weights λ pick."""
    a_lo, a_hi = accuracy_range
    l_lo, l_hi = latency_range_ms
    if not (a_hi > a_lo and l_hi > l_lo):
        raise ValueError("objective ranges must have hi > lo")
    scaled_accuracy = (accuracy - a_lo) / (a_hi - a_lo)
    scaled_latency = (latency_ms - l_lo) / (l_hi - l_lo)
    return -max(weights[0] * (1 - scaled_accuracy), weights[1] * scaled_latency)


def draw_tchebycheff_weights(seed: int) -> tuple[float, float]:
    """Weights (λ_accuracy, λ_latency) on the simplex, drawn once per experiment from its seed."""
    share = float(np.random.default_rng(seed).uniform(0.05, 0.95))
    return share, 1.0 - share
