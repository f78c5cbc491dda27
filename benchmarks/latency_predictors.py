"""Latency predictors calibrated on this CPU: held-out accuracy against the MACs baseline.

Measures `--train` sampled configs (≤ 200 whole-model measurements) and `--test` held-out ones
(≥ 50), every model timed interleaved with the XXS reference so that machine drift cancels,
plus (with --blocks) every distinct block for the lookup table; fits the three predictors on
the training configs only; reports RMSE, MAPE, shares within ±5 % / ±10 % and Kendall τ on the
held-out ones; and the noise floor: held-out configs measured a second time the same way.
Goal: ≥ 95 % within ±10 %, τ ≥ 0.9, clearly better than MACs-linear.

One thread by default: on this shared 2-vCPU machine a second thread competes with the other
tenants, and 2-thread times move with their load (in a busy window the same configs timed twice
agreed to 90 % within ±10 % at 2 threads, 100 % at 1 thread). Latencies are normalised to the
reference with the exponent β fitted on the training configs (`analysis.latency.calibration`).
`--rescore CSV` refits and rescores a CSV this script wrote, timing nothing.

Writes the measurements to analysis/latency/data/latency_cpu_{1thread,2threads}.csv (+ .json
with the device, the protocol and the report) for notebooks/03_latency_predictors.ipynb.

    python benchmarks/latency_predictors.py [--train 200] [--test 60] [--threads 1] [--blocks]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from analysis.latency import (
    CalibrationReport,
    MeasurementStore,
    Protocol,
    calibrate,
    device_fingerprint,
    evaluate_calibration,
    recorded_settings,
)

DATA = Path(__file__).resolve().parents[1] / "analysis" / "latency" / "data"


def write(report: CalibrationReport, out: Path, run: dict) -> None:
    """The measured rows (with their split) to out.csv; the run and the report to out.json."""
    frames = [report.extra[split] for split in ("train", "test", "blocks", "repeat")
              if report.extra.get(split) is not None]
    pd.concat(frames).to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".json").write_text(json.dumps({
        **run, "scores": report.scores, "noise_floor": report.noise_floor,
        "state_exponent": report.state_exponent, "train_count": report.train_count,
        "test_count": report.test_count, "reference_latency_ms": report.reference_latency_ms,
    }, indent=1))
    print(f"wrote {out.with_suffix('.csv')} and .json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--test", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", action="store_true", help="also fit the block table")
    parser.add_argument("--noise-repeats", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--min-time", type=float, default=0.3)
    parser.add_argument("--store", default=None)
    parser.add_argument("--out", default=None,
                        help="file stem (default analysis/latency/data/latency_cpu_<N>thread[s])")
    parser.add_argument("--rescore", metavar="CSV", default=None,
                        help="time nothing: refit and rescore the rows of a CSV this script "
                             "wrote (its .json beside it keeps the run's device and protocol)")
    args = parser.parse_args()

    if args.rescore:
        source = Path(args.rescore)
        run = json.loads(source.with_suffix(".json").read_text())
        predictors, report = evaluate_calibration(pd.read_csv(source),
                                                  settings=recorded_settings(source, "this-cpu"))
        print(report.table())
        write(report, Path(args.out) if args.out else source.with_suffix(""),
              {key: run[key] for key in ("device", "threads", "protocol", "seconds") if key in run})
        return

    total = args.train + args.test
    protocol = Protocol(min_runs=args.runs, min_time_s=args.min_time)
    predictors, report = calibrate(
        device="this-cpu", budget=total, threads=args.threads, holdout_fraction=args.test / total,
        store=MeasurementStore(args.store) if args.store else None, with_blocks=args.blocks,
        noise_repeats=args.noise_repeats, protocol=protocol,
    )
    print(report.table())
    print(f"{report.train_count + report.test_count} whole-model measurements, "
          f"{report.noisy_measurements} flagged noisy, {report.seconds / 60:.1f} min in all; "
          f"reference XXS median {report.reference_latency_ms:.2f} ms at {args.threads} threads")
    out = Path(args.out or DATA / f"latency_cpu_{args.threads}thread"
               f"{'s' if args.threads > 1 else ''}")
    write(report, out, {
        "device": device_fingerprint(), "threads": args.threads,
        "protocol": {"warmup_runs": protocol.warmup_runs, "min_runs": protocol.min_runs,
                     "min_time_s": protocol.min_time_s},
        "seconds": report.seconds,
    })


if __name__ == "__main__":
    main()
