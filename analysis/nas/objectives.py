"""The search's objectives: accuracy (a named method), latency (a predictor), and scalarisation.

Accuracy methods are strings: `proxy:NAME` (a zero-cost proxy or a cost baseline) or
`train:PATH` / `train:digits` (short training). `proxy:params` and `proxy:macs` (log10 of the
exact count, the trivial baselines) are vectorised over the enumerated space; the others need
one forward/backward pass or a training run per config (`analysis.accuracy.methods`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analysis.accuracy import (
    COST_BASELINES,
    AccuracyMethod,
    cost_baseline,
    make_evaluator,
    study_default,
)
from edgevit.config import EdgeViTConfig


def default_accuracy_method() -> str:
    """The search's default accuracy method: the committed studies' validated default
    (`analysis.accuracy.study_default`: the best validated method per second of compute, by
    its canonical name, so a proxy validated on Fashion-MNIST at 64×64 runs there). When no
    method is validated, the method with the best τ is used all the same, and every output
    says "accuracy unvalidated" (`trust_of`). A supernet's checkpoint is named by its absolute
    path (`analysis.accuracy.studies.fashion_table`), so a search in any folder finds it."""
    choice = study_default()
    return choice.method or choice.best_unvalidated["method"]


@dataclass(frozen=True)
class AccuracyObjective:
    """An accuracy method: a name for every output, and how to score configs."""

    method: str
    evaluate: Callable[[EdgeViTConfig], float]
    # (macs, params) arrays -> scores, for methods that need no model run
    vectorised: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def accuracy_objective(method: str, *, img_size: int | None = None, epochs: int | None = None,
                       seed: int = 0) -> AccuracyObjective:
    """An objective for any accuracy method (`analysis.accuracy.AccuracyMethod` parses it:
    proxy:NAME, train:digits|fashion-mnist|PATH, supernet:CKPT); ValueError naming what is
    wrong. The cost baselines (proxy:params, proxy:macs) are vectorised over the space."""
    parsed = AccuracyMethod.parse(method)
    if parsed.kind == "proxy" and parsed.name in COST_BASELINES:
        return AccuracyObjective(method, functools.partial(cost_baseline, parsed.name),
                                 COST_BASELINES[parsed.name])
    evaluator = make_evaluator(method, img_size=img_size, epochs=epochs, seed=seed)
    return AccuracyObjective(method, evaluator)


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, w: float = -0.07) -> float:
    """MnasNet's soft reward acc · (latency / target)^w (w = −0.07: soft constraint).

    Defined for a positive accuracy only: with a negative one (most zero-cost proxies, e.g.
    jacob_cov ≈ −700 … −1500) the product grows as latency grows and the search would reward
    slower models, so a non-positive accuracy raises ValueError; use `tchebycheff_reward`.
    """
    if not (latency_ms > 0 and target_ms > 0):
        raise ValueError(f"latency {latency_ms} ms and target {target_ms} ms must be > 0")
    if not accuracy > 0:
        raise ValueError(f"MnasNet's reward needs a positive accuracy, got {accuracy}: with a "
                         "negative one it rewards slower models; use the tchebycheff "
                         "scalarisation (sign- and scale-safe)")
    return accuracy * (latency_ms / target_ms) ** w


TCHEBYCHEFF_RHO = 0.05  # weight of the augmentation term that makes the reward strictly monotone


def tchebycheff_reward(accuracy: float, latency_ms: float, *, weights: tuple[float, float],
                       accuracy_range: tuple[float, float],
                       latency_range_ms: tuple[float, float],
                       rho: float = TCHEBYCHEFF_RHO) -> float:
    """Augmented Tchebycheff: −max(d_a, d_l) − ρ·(d_a + d_l), with d_a = λ_a·(1 − â) and
    d_l = λ_l·l̂, where â, l̂ are the objectives scaled to [0, 1] over the stated ranges.

    Maximising it walks to the front point that the weights λ pick. The scaling makes it
    independent of the accuracy's sign, offset and unit; the ρ term makes it strictly
    monotone (a faster config of equal accuracy, or a more accurate one of equal latency,
    always scores higher, also outside the ranges), which the plain max is not.
    """
    a_lo, a_hi = accuracy_range
    l_lo, l_hi = latency_range_ms
    if not (a_hi > a_lo and l_hi > l_lo):
        raise ValueError("objective ranges must have hi > lo")
    if not (weights[0] > 0 and weights[1] > 0 and rho > 0):
        raise ValueError(f"weights {weights} and rho {rho} must be positive")
    scaled_accuracy = (accuracy - a_lo) / (a_hi - a_lo)
    scaled_latency = (latency_ms - l_lo) / (l_hi - l_lo)
    distances = (weights[0] * (1 - scaled_accuracy), weights[1] * scaled_latency)
    return -max(distances) - rho * sum(distances)


def objective_ranges(method: str, predict_ms: Callable[[list[EdgeViTConfig]], np.ndarray],
                     margin: float = 0.1) -> tuple[tuple[float, float], tuple[float, float]]:
    """(accuracy range, latency range in ms) stated for `tchebycheff_reward`: the extremes of
    the space's cheapest and dearest configs and the presets, widened by `margin` of the span
    (by `margin` of the value where only one config could be scored: a predictor that prices
    few configs). Values outside still score correctly (the reward is monotone everywhere)."""
    from analysis.cost.search_space import DEFAULT_SPACE
    from edgevit import PRESETS

    choices = DEFAULT_SPACE.choices()
    corners = [DEFAULT_SPACE.decode({name: pick(values) for name, values in choices.items()})
               for pick in (min, max)]
    objective = accuracy_objective(method)
    scored = []
    for config in corners + list(PRESETS.values()):
        try:
            point = (float(objective.evaluate(config)), float(predict_ms([config])[0]))
        except ValueError:  # e.g. a block table that lacks this config's blocks
            continue
        if all(math.isfinite(v) for v in point):
            scored.append(point)
    if not scored:
        raise ValueError(f"objective ranges: neither {method} nor the predictor could score "
                         "any of the space's corner configs or the presets")
    values = np.array(scored)

    def widened(column: np.ndarray) -> tuple[float, float]:
        span = float(column.max() - column.min()) or max(abs(float(column[0])), 1.0)
        return float(column.min() - margin * span), float(column.max() + margin * span)

    return widened(values[:, 0]), widened(values[:, 1])


def draw_tchebycheff_weights(seed: int) -> tuple[float, float]:
    """Weights (λ_accuracy, λ_latency) on the simplex, drawn once per experiment from its seed."""
    share = float(np.random.default_rng(seed).uniform(0.05, 0.95))
    return share, 1.0 - share
