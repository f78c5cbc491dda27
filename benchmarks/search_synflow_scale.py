"""Search quality on the demo's accuracy axis (synflow), scored as log10 of the flow or raw.

synflow's flow grows like a product over layers: across the space at 64×64 it spans ~12
decades. The proxy reports log10 of it (`analysis.accuracy.proxies`); this benchmark measures
what that buys a search. Each tuner runs twice on identical configs and seeds, once seeing the
log10 score and once the raw flow (10**score), with the latency axis unchanged:

* NNI's TPE and Random (in process, Tchebycheff restarts, as `analysis.nas.tuner_comparison`
  runs them), the accuracy scaled over the range a real search states (`objective_ranges`:
  the space's corners and the presets, widened); Random ignores the reward, so its two runs
  must agree exactly: the control;
* optuna's GP sampler on ordinal indices (the sampler of the demo's ParetoTuner), which sees
  both objectives as given.

No exhaustive front exists (2.3 M configs at ~1 s each here), so every run is judged against the
best front known: the non-dominated set of every config any run scored (log10 axis, within the
MACs budget). Printed: hypervolume / best-known hypervolume after 25 / 50 / 100 trials, median
over seeds, for each tuner and scale; the scaled accuracy â a Tchebycheff reward sees over all
scored configs (min, quartiles, max) on each scale; configs scored and seconds.

    python benchmarks/search_synflow_scale.py [--trials 100] [--seeds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from analysis.cost import DEFAULT_SPACE, model_cost
from analysis.latency import committed_predictor
from analysis.nas.objectives import accuracy_objective, objective_ranges
from analysis.nas.pareto import hypervolume, non_dominated
from analysis.nas.report import SENSES, reference_point
from analysis.nas.tuner_comparison import hypervolume_by_trial, run_nni, run_optuna

METHOD = "proxy:synflow@fashion-mnist/64"
TUNERS = ("TPE", "Random", "optuna-GP")
SCALES = ("log10", "raw")
RANGE_MARGIN = 0.1  # `objective_ranges` widens by this share of the span, on either scale


class ScoredSpace:
    """(log10 synflow, predicted latency_ms, within budget) of configs, scored on first use."""

    def __init__(self, macs_budget: float) -> None:
        self.objective = accuracy_objective(METHOD)
        self.predictor = committed_predictor()
        self.macs_budget = macs_budget
        self.scored: dict[int, tuple[float, float, bool]] = {}
        self.seconds = 0.0

    def __call__(self, params: dict[str, Any]) -> tuple[float, float, bool]:
        row = DEFAULT_SPACE.row(params)
        if row not in self.scored:
            start = time.perf_counter()
            config = DEFAULT_SPACE.decode(params)
            ok = model_cost(config).macs <= self.macs_budget
            self.scored[row] = (float(self.objective.evaluate(config)),
                                float(self.predictor.predict([config])[0]), ok)
            self.seconds += time.perf_counter() - start
        return self.scored[row]


class OnScale:
    """The objectives a tuner sees: the accuracy on `scale`, ranges as a real search states
    them (`objective_ranges`, on the same scale)."""

    def __init__(self, space: ScoredSpace, scale: str,
                 ranges: tuple[tuple[float, float], tuple[float, float]]) -> None:
        self.space, self.scale = space, scale
        accuracy, latency = ranges
        self.ranges = (raw_range(accuracy) if scale == "raw" else accuracy), latency

    def __call__(self, params: dict[str, Any]) -> tuple[float, float, bool]:
        score, latency, ok = self.space(params)
        return (10 ** score if self.scale == "raw" else score), latency, ok


def raw_range(log_range: tuple[float, float], margin: float = RANGE_MARGIN
              ) -> tuple[float, float]:
    """The range a search on the raw flow states (`objective_ranges` on raw values): the same
    corner and preset extremes, recovered from the log10 range it widened by `margin` of the
    span, raised to powers of ten and widened by `margin` of the raw span."""
    lo, hi = log_range
    span = (hi - lo) / (1 + 2 * margin)
    low, high = 10 ** (lo + margin * span), 10 ** (hi - margin * span)
    return low - margin * (high - low), high + margin * (high - low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--macs-budget", type=float, default=3e9)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    space = ScoredSpace(args.macs_budget)
    ranges = objective_ranges(METHOD, space.predictor.predict, margin=RANGE_MARGIN)
    runs: dict[tuple[str, str], list[np.ndarray]] = {}
    seconds: dict[tuple[str, str], float] = {}
    for seed in range(args.seeds):
        for tuner in TUNERS:
            for scale in SCALES:
                seen = OnScale(space, scale, ranges)
                start = time.perf_counter()
                points = (run_nni(tuner, seen, args.trials, restarts=args.restarts, seed=seed)
                          if tuner in ("TPE", "Random")
                          else run_optuna(tuner, seen, args.trials, seed=seed))
                seconds[tuner, scale] = seconds.get((tuner, scale), 0.0) + (
                    time.perf_counter() - start)
                if scale == "raw":  # judged on the log10 axis, as every run is
                    points = np.column_stack([np.log10(points[:, 0]), points[:, 1]])
                runs.setdefault((tuner, scale), []).append(points)
                print(f"seed {seed} {tuner:10s} {scale:6s} done; {len(space.scored)} configs "
                      f"scored ({space.seconds:.0f} s scoring)", flush=True)

    scored = np.array([(a, lat) for a, lat, ok in space.scored.values() if ok])
    best = scored[non_dominated(scored, SENSES)]
    reference = reference_point(best)
    full = hypervolume(best, SENSES, reference)
    marks = [t for t in (25, 50, 100, 200, 300) if t <= args.trials]
    print(f"\n{len(space.scored)} configs scored ({space.seconds:.0f} s); best-known front "
          f"{len(best)} configs; hypervolume / best-known (median of {args.seeds} seeds)")
    print(f"{'tuner':10s} {'scale':6s}" + "".join(f"{t:>8d}" for t in marks) + "   per seed")
    table = {}
    for (tuner, scale), point_sets in runs.items():
        curves = np.stack([hypervolume_by_trial(p, reference) / full for p in point_sets])
        median = np.median(curves, axis=0)
        finals = curves[:, -1]
        table[f"{tuner} {scale}"] = dict(median={t: float(median[t - 1]) for t in marks},
                                         final_per_seed=finals.tolist(),
                                         seconds_per_run=seconds[tuner, scale] / args.seeds)
        print(f"{tuner:10s} {scale:6s}" + "".join(f"{median[t - 1]:8.1%}" for t in marks)
              + "   " + " ".join(f"{v:.1%}" for v in finals))

    (lo, hi), _ = ranges
    log_scores = np.array([a for a, _, _ in space.scored.values()])
    raw_lo, raw_hi = raw_range((lo, hi))
    scaled = {"log10": (log_scores - lo) / (hi - lo),
              "raw": (10 ** log_scores - raw_lo) / (raw_hi - raw_lo)}
    print(f"\nâ over the {len(log_scores)} scored configs (Tchebycheff scaling over the stated "
          f"range; log10 range [{lo:.2f}, {hi:.2f}])")
    for scale, values in scaled.items():
        q = np.percentile(values, [0, 25, 50, 75, 100])
        print(f"  {scale:6s} min {q[0]:.6f}  q1 {q[1]:.6f}  median {q[2]:.6f}  q3 {q[3]:.6f}  "
              f"max {q[4]:.6f}")
    if args.json:
        args.json.write_text(json.dumps(dict(
            trials=args.trials, seeds=args.seeds, restarts=args.restarts,
            macs_budget=args.macs_budget, method=METHOD, configs_scored=len(space.scored),
            scoring_seconds=space.seconds, best_known_front=len(best), table=table,
            ahat={s: np.percentile(v, [0, 25, 50, 75, 100]).tolist()
                  for s, v in scaled.items()}), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
