"""The search measures its own front until the predictor agrees with the machine.

After a search, the front's configs are timed for real (interleaved with the XXS reference, as
calibration times them). Each measurement is a ratio to the reference, brought to the
predictor's milliseconds by the predictor's own prediction for the reference, so drift of the
machine cancels. Where a prediction misses by more than `tolerance` or the measurement falls
outside the predicted interval, the measurement joins the predictor's training set, the
predictor is refitted (a features-GP predictor: `FeatureModel.with_measurements`), every
trial is predicted again, the front recomputed, and its configs not measured yet are measured:
at most `max_rounds` rounds, stopping at the first round without a miss. Every round's numbers
are kept; measurements are only ever added (to the store too, when one is given).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analysis.latency import (
    REFERENCE_MODEL,
    FeatureModel,
    LatencyPredictor,
    MeasurementStore,
    Protocol,
    measure_many,
    score,
)
from edgevit import EdgeViTConfig, preset_config

from .pareto import non_dominated

SENSES = ("max", "min")  # accuracy ↑, latency_ms ↓
# configs -> each one's latency / the reference's, timed interleaved
MeasureRatios = Callable[[Sequence[EdgeViTConfig]], np.ndarray]


@dataclass(frozen=True)
class LoopRound:
    """One round: the front under the predictor of that round, and how it compared."""

    round: int
    front_size: int
    newly_measured: int
    within_10: float  # share of the front's points whose prediction is within ±tolerance
    in_interval: float  # share whose measurement lies inside the predicted interval
    misses: int
    refitted: bool  # whether the predictor was refitted after this round


def machine_ratios(predictor: LatencyPredictor, *, threads: int | None = None,
                   store: MeasurementStore | None = None, progress: bool = True
                   ) -> MeasureRatios:
    """Time configs on this machine at the predictor's settings, each interleaved with the
    reference model; appended to `store` when given. ValueError for a predictor of settings
    this machine cannot time (another back-end, or an imported device's rows, which record no
    thread count): its front is measured on its own device."""
    settings = predictor.settings
    if settings.backend != "torch" or settings.threads is None:
        raise ValueError(f"the predictor was calibrated for {settings.describe()}, which this "
                         "machine cannot time (it measures torch models on its own CPU): "
                         "measure the front on that device and import the CSV instead of "
                         "--measure-front")

    def measure(configs: Sequence[EdgeViTConfig]) -> np.ndarray:
        results = measure_many(list(configs), threads=threads or settings.threads,
                               batch_size=settings.batch_size, img_size=settings.img_size,
                               reference=preset_config(REFERENCE_MODEL), store=store,
                               protocol=Protocol(min_runs=10, min_time_s=0.3),
                               progress=progress)
        return np.array([r.ratio for r in results])

    return measure


def close_the_loop(trials: pd.DataFrame, predictor: LatencyPredictor, measure: MeasureRatios,
                   *, max_rounds: int = 3, tolerance: float = 0.10
                   ) -> tuple[pd.DataFrame, list[LoopRound], LatencyPredictor]:
    """(the final front, every round, the final predictor) for `trials` with columns `config`
    (canonical JSON) and `accuracy`. The front's columns add `predicted_latency_ms` (the final
    predictor), `interval_low_ms` / `interval_high_ms`, `measured_latency_ms` and
    `measured_round`."""
    if not 1 <= max_rounds <= 10:
        raise ValueError(f"max_rounds must be in 1..10, got {max_rounds}")
    configs = [EdgeViTConfig.from_json(text) for text in trials["config"]]
    accuracy = trials["accuracy"].to_numpy(dtype=np.float64)
    ms_per_ratio = float(predictor.predict([preset_config(REFERENCE_MODEL)])[0])
    measured_ms: dict[int, float] = {}  # trial row -> measured latency, predictor's frame
    measured_round: dict[int, int] = {}
    added: set[int] = set()  # rows already in the predictor's training set
    rounds: list[LoopRound] = []
    current = predictor
    for number in range(1, max_rounds + 1):
        predicted = current.predict(configs)
        front = np.flatnonzero(non_dominated(np.stack([accuracy, predicted], 1), SENSES))
        new = [row for row in front if row not in measured_ms]
        if new:
            ratios = measure([configs[row] for row in new])
            for row, ratio in zip(new, ratios):
                measured_ms[row] = float(ratio) * ms_per_ratio
                measured_round[row] = number
        low, high = predicted_interval(current, [configs[row] for row in front])
        truth = np.array([measured_ms[row] for row in front])
        close = np.abs(predicted[front] / truth - 1) <= tolerance
        # a predictor without an interval is judged on ±tolerance alone
        inside = ((low <= truth) & (truth <= high)) | np.isnan(low)
        missed = [row for row, ok in zip(front, close & inside) if not ok]
        refit = bool(missed) and number < max_rounds and isinstance(current, FeatureModel)
        rounds.append(LoopRound(number, len(front), len(new), float(close.mean()),
                                float(inside.mean()), len(missed), refit))
        if not refit:
            break
        fresh = [row for row in missed if row not in added]
        current = current.with_measurements([configs[row] for row in fresh],
                                            np.array([measured_ms[row] for row in fresh]))
        added.update(fresh)
    low, high = predicted_interval(current, [configs[row] for row in front])
    out = trials.iloc[front].assign(
        predicted_latency_ms=predicted[front], interval_low_ms=low, interval_high_ms=high,
        measured_latency_ms=[measured_ms[row] for row in front],
        measured_round=[measured_round[row] for row in front])
    return out.sort_values("predicted_latency_ms"), rounds, current


def predicted_interval(predictor: LatencyPredictor, configs: Sequence[EdgeViTConfig]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The predictor's intervals, NaN where it has none (a file without a fitted interval)."""
    if np.isfinite(predictor.interval_log_halfwidth):
        return predictor.interval(configs)
    return np.full(len(configs), np.nan), np.full(len(configs), np.nan)


def loop_summary(rounds: Sequence[LoopRound], front: pd.DataFrame) -> dict:
    """What summary.json keeps: the final front's agreement (`score`: MAPE, within ±5/±10 %,
    Kendall τ), the share inside the intervals, and every round. When the predictor was
    refitted on the front's measurements, that agreement is in-sample (`in_sample`); the first
    round's figures, before any refit (`first_round`), are the predictor's out-of-sample
    error on the front."""
    measured = front["measured_latency_ms"].to_numpy(dtype=np.float64)
    agreement = score(front["predicted_latency_ms"].to_numpy(dtype=np.float64), measured,
                      None if front["interval_low_ms"].isna().any()
                      else (front["interval_low_ms"], front["interval_high_ms"]))
    out = agreement.as_dict()
    out["in_interval"] = out.pop("coverage", None)
    if not np.isfinite(out["kendall_tau"]):  # one point has no ranking; JSON has no NaN
        out["kendall_tau"] = None
    first = {"within_10": rounds[0].within_10, "in_interval": rounds[0].in_interval} \
        if rounds else None
    return {**out, "points": int(len(front)), "in_sample": any(r.refitted for r in rounds),
            "first_round": first, "rounds": [asdict(r) for r in rounds]}
