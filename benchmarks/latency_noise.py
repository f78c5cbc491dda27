"""How steady relative latency is on this machine, by thread count, from raw per-run times.

Samples `--configs` configs of the search space and times each interleaved with the XXS
reference (`analysis.latency.time_interleaved`, `--runs` back-to-back pairs after a warm-up) in
`--passes` passes over all of them; the passes of the thread counts alternate (1 thread, 2
threads, 1 thread, ...) so that each count sees the same states of the machine. Reports, per
thread count:

  agreement   share of configs whose ratio to the reference agrees between two passes within
              ±5 % / ±10 % (all pairs of passes), for two estimators of the ratio:
              median(model) / median(reference) (what the store keeps) and the median of the
              per-pair ratios;
  sensitivity how a config's time and the reference's change together between passes: the
              slope of log(model time change) against log(reference time change). A slope of 1
              means the ratio cancels the machine's state; below 1, the reference reacts more
              strongly than the models do, and ratios move with the state.

    python benchmarks/latency_noise.py [--configs 30] [--passes 3] [--runs 20] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from analysis.latency import REFERENCE_MODEL, Protocol, prepare, sample_configs, time_interleaved
from analysis.runtime import torch_threads


def agreement(ratios: np.ndarray, tolerance: float) -> float:
    """Share of (pass pair, config) with |ratio_p / ratio_q - 1| ≤ tolerance; ratios (P, N)."""
    shares = [np.mean(np.abs(ratios[p] / ratios[q] - 1) <= tolerance)
              for p, q in itertools.combinations(range(len(ratios)), 2)]
    return float(np.mean(shares))


def sensitivity(model_ms: np.ndarray, reference_ms: np.ndarray) -> float:
    """Least-squares slope of log model-time change on log reference-time change between every
    pair of passes; model_ms and reference_ms are per-measurement medians, shape (P, N)."""
    dx, dy = [], []
    for p, q in itertools.combinations(range(len(model_ms)), 2):
        dx.append(np.log(reference_ms[p] / reference_ms[q]))
        dy.append(np.log(model_ms[p] / model_ms[q]))
    x, y = np.concatenate(dx), np.concatenate(dy)
    return float(np.sum(x * y) / np.sum(x * x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=30)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.passes < 2:
        parser.error("--passes must be ≥ 2 to compare passes")

    targets = [prepare(config) for config in sample_configs(args.configs, args.seed)]
    reference = prepare(REFERENCE_MODEL)
    protocol = Protocol(warmup_runs=3, min_runs=args.runs, max_runs=args.runs, min_time_s=0.0)
    shape = (args.passes, len(targets), args.runs)
    model_times = {t: np.zeros(shape) for t in args.threads}
    reference_times = {t: np.zeros(shape) for t in args.threads}
    started = time.monotonic()
    reference_input = reference.example(0)
    with torch.inference_mode():
        for p in range(args.passes):
            for threads in args.threads:
                with torch_threads(threads):
                    for i, target in enumerate(targets):
                        x = target.example(0)
                        model_times[threads][p, i], reference_times[threads][p, i] = (
                            time_interleaved([lambda t=target, x=x: t.module(x),
                                              lambda: reference.module(reference_input)],
                                             protocol))
                print(f"pass {p}, {threads} thread(s): reference median "
                      f"{np.median(reference_times[threads][p]):.2f} ms "
                      f"({time.monotonic() - started:.0f} s)", flush=True)

    print(f"\n{len(targets)} configs × {args.passes} passes × {args.runs} interleaved pairs")
    print(f"{'threads':>7s} {'estimator':>22s} {'±5 %':>6s} {'±10 %':>6s} {'sensitivity':>11s}")
    for threads in args.threads:
        a, b = model_times[threads], reference_times[threads]
        a_med, b_med = np.median(a, axis=-1), np.median(b, axis=-1)
        slope = sensitivity(a_med, b_med)
        for name, ratios in (("median / median", a_med / b_med),
                             ("median of pair ratios", np.median(a / b, axis=-1))):
            print(f"{threads:7d} {name:>22s} {agreement(ratios, 0.05):6.0%} "
                  f"{agreement(ratios, 0.10):6.0%} {slope:11.2f}")


if __name__ == "__main__":
    main()
