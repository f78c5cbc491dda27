"""Search quality: hypervolume of each tuner's front / the exhaustive front, against trials.

Objectives: accuracy by a vectorised method (default proxy:params) ↑ and predicted latency_ms ↓
(the predictor fitted on the committed CPU measurements, or --predictor). Measures, in this run:
enumerating and scoring the whole space (goal < 60 s), and for NNI's Random / TPE / Evolution
(in process, Tchebycheff restarts) and optuna's TPE / NSGA-II / GP, the hypervolume ratio after
50 / 100 / 200 / 300 trials, median over seeds (goal: the best ≥ 98 % within ≤ 300 trials),
then each seed's ratio after the last trial, their mean and minimum, and seconds per run
(optuna-GP takes ~3 min a run on one core; the others seconds).

    python benchmarks/search_hypervolume.py [--trials 300] [--seeds 3] [--predictor FILE]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analysis.latency import LatencyPredictor, committed_predictor
from analysis.nas import NNI_TUNERS, OPTUNA_SAMPLERS, compare, exhaustive_front


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--accuracy", default="proxy:params")
    parser.add_argument("--macs-budget", type=float, default=3e9)
    parser.add_argument("--predictor", default=None)
    args = parser.parse_args()
    predictor = (LatencyPredictor.load(args.predictor) if args.predictor
                 else committed_predictor())

    start = time.perf_counter()
    exhaustive = exhaustive_front(predictor, args.accuracy, args.macs_budget)
    enumerate_s = time.perf_counter() - start
    print(f"enumerated and scored {len(exhaustive.macs):,} configs in {enumerate_s:.1f} s "
          f"(goal < 60 s); exhaustive front: {len(exhaustive.front_index)} configs")

    methods = NNI_TUNERS + OPTUNA_SAMPLERS
    curves: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    for seed in range(args.seeds):
        for method in methods:
            start = time.perf_counter()
            curves[method] += compare(exhaustive, args.trials, seed=seed, restarts=args.restarts,
                                      macs_budget=args.macs_budget, methods=(method,)).values()
            seconds[method] += time.perf_counter() - start
    marks = [t for t in (50, 100, 200, 300) if t <= args.trials]
    print(f"hypervolume / exhaustive hypervolume (median of {args.seeds} seeds, "
          f"accuracy = {args.accuracy})")
    print(f"{'method':15s}" + "".join(f"{t:>8d}" for t in marks))
    best = 0.0
    for method in methods:
        median = np.median(np.stack(curves[method]), axis=0)
        best = max(best, float(median[args.trials - 1]))
        print(f"{method:15s}" + "".join(f"{median[t - 1]:8.1%}" for t in marks))
    print(f"best after {args.trials} trials: {best:.1%} (goal ≥ 98 %)")
    print(f"after {args.trials} trials, per seed (0..{args.seeds - 1}), mean, minimum, s/run")
    for method in methods:
        final = np.array([curve[args.trials - 1] for curve in curves[method]])
        print(f"{method:15s} " + " ".join(f"{v:6.1%}" for v in final)
              + f"   mean {final.mean():6.1%}  min {final.min():6.1%}"
              f"  {seconds[method] / args.seeds:6.1f} s")


if __name__ == "__main__":
    main()
