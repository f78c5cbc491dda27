"""Latency predictors calibrated on this CPU: held-out accuracy against the MACs baseline.

Measures `--train` sampled configs (≤ 200 whole-model measurements) and `--test` held-out ones
(≥ 50), every model timed interleaved with the XXS reference so that machine drift cancels,
plus (with --blocks) every distinct block for the lookup table; fits the three predictors on
the training configs only; reports RMSE, MAPE, shares within ±5 % / ±10 % and Kendall τ on the
held-out ones; and the noise floor: held-out configs measured a second time the same way.
Goal: ≥ 95 % within ±10 %, τ ≥ 0.9, clearly better than MACs-linear.

Writes the measurements to analysis/data/latency_cpu.csv (+ .json with the device and the
report) for notebooks/03_latency_predictors.ipynb.

    python benchmarks/latency_predictors.py [--train 200] [--test 60] [--threads 2] [--blocks]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from analysis.calibration import calibrate
from analysis.latency import Protocol
from analysis.store import MeasurementStore, device_fingerprint

DATA = Path(__file__).resolve().parents[1] / "analysis" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--test", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", action="store_true", help="also fit the block table")
    parser.add_argument("--noise-repeats", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=0.3)
    parser.add_argument("--store", default=None)
    parser.add_argument("--out", default=str(DATA / "latency_cpu"))
    args = parser.parse_args()

    total = args.train + args.test
    predictors, report = calibrate(
        device="this-cpu", budget=total, threads=args.threads, holdout_fraction=args.test / total,
        store=MeasurementStore(args.store) if args.store else None, with_blocks=args.blocks,
        noise_repeats=args.noise_repeats,
        protocol=Protocol(min_runs=args.runs, min_time_s=args.min_time),
    )
    print(report.table())
    print(f"{report.train_count + report.test_count} whole-model measurements, "
          f"{report.noisy_measurements} flagged noisy, {report.seconds / 60:.1f} min in all; "
          f"reference XXS median {report.reference_latency_ms:.2f} ms at {args.threads} threads")
    frames = []
    for split in ("train", "test", "blocks", "repeat"):
        frame = report.extra.get(split)
        if frame is not None:
            frames.append(frame.assign(split=split))
    out = Path(args.out)
    pd.concat(frames).to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".json").write_text(json.dumps({
        "device": device_fingerprint(), "threads": args.threads,
        "scores": report.scores, "noise_floor": report.noise_floor,
        "train_count": report.train_count, "test_count": report.test_count,
        "reference_latency_ms": report.reference_latency_ms, "seconds": report.seconds,
    }, indent=1))
    print(f"wrote {out.with_suffix('.csv')} and .json")


if __name__ == "__main__":
    main()
