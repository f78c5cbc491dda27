"""How far the latency predictors can be trusted beyond their training configs (issue 15 goals).

In one run on this CPU (torch, 1 thread unless stated, every model timed interleaved with the
XXS reference so that machine drift cancels, latencies normalised as calibration does):

1. Active against random calibration at equal budgets: `calibrate(strategy=...)` with the same
   seed holds out the same uniform configs; held-out within ±10 %, Kendall τ and the coverage of
   the 90 % intervals, per predictor.
2. Off the grid: configs the space does not hold (head dims 24/40/56, widths between the
   space's, r up to 8, depths up to 6), predicted by both calibrations' GP, measured twice (the
   second time for the noise floor).
3. Transfer to new settings: the random calibration's GP as the prior, adapted with
   `--adapt` measurements of the new settings (torch at 2 threads; torch at each of `--sizes`
   other than 224 on 1 thread) per op kind (`KindScaledTransfer`) and by a power law
   (`TransferModel`), against a GP and a MACs line fitted from scratch on the same
   measurements, scored on the other configs measured there (the first 10 timed twice: the
   noise floor). `benchmarks/latency_transfer.py` repeats the 2-thread case offline, over many
   draws, on the committed calibrations.

Writes benchmarks/latency_trust.json (every figure printed; `--out` for trial runs).

    python benchmarks/latency_trust.py [--budget 80] [--adapt 20] [--transfer-test 30]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.latency import (
    FeatureModel,
    KindScaledTransfer,
    MacsLinear,
    Protocol,
    TransferModel,
    calibrate,
    measure_many,
    sample_configs,
    score,
)
from analysis.latency.calibration import normalised_frame, state_adjusted
from edgevit import PRESETS, EdgeViTConfig

OFF_GRID_JSON = Path(__file__).resolve().parent / "off_grid_configs.json"
OUT = Path(__file__).resolve().parent / "latency_trust.json"  # the last full run, committed
PROTOCOL = Protocol(min_runs=20, min_time_s=0.3)
NOISE_REPEATS = 10  # held-out configs of each transfer case timed a second time


def off_grid_configs() -> list[EdgeViTConfig]:
    """The 12 configs of `off_grid_configs.json`, all outside the search space's grid (its
    choices are head_dim 32/36/48, widths head_dim × (1|2, 2|3, 4-6, 6-10), r dividing the map
    side up to 8, depths ≤ 2/3/6/3, MLP ratio 3|4): head dims 24/40/56, widths between the
    space's, r up to 8 whether or not it divides the map, depths up to 6, MLP ratio 3.5."""
    return [EdgeViTConfig.from_dict(row) for row in json.loads(OFF_GRID_JSON.read_text())]


def measured_rows(configs, *, threads: int, img_size: tuple[int, int]) -> pd.DataFrame:
    results = measure_many(configs, threads=threads, img_size=img_size,
                           reference=PRESETS["edgevit_xxs"], protocol=PROTOCOL)
    return normalised_frame(results, "model")


def scores_of(predictor, configs, measured: np.ndarray) -> dict[str, float]:
    interval = (predictor.interval(configs, check=False)
                if np.isfinite(predictor.interval_log_halfwidth) else None)
    return score(predictor.predict(configs, check=False), measured, interval).as_dict()


def transfer(prior: FeatureModel, *, threads: int, img_size: tuple[int, int], adapt: int,
             test: int, seed: int) -> dict:
    configs = sample_configs(adapt + test, seed)
    rows = measured_rows(configs, threads=threads, img_size=img_size)
    fit_rows, test_rows = rows.iloc[:adapt], rows.iloc[adapt:]
    held = configs[adapt:]
    measured = test_rows["latency_ms"].to_numpy()
    again = measured_rows(held[:NOISE_REPEATS], threads=threads, img_size=img_size)
    candidates = {
        "per-kind transfer": KindScaledTransfer(prior).fit(fit_rows),
        "transfer (prior + a, b)": TransferModel(prior).fit(fit_rows),
        "features_gp from scratch": FeatureModel().fit(fit_rows),
        "macs_linear from scratch": MacsLinear().fit(fit_rows),
    }
    scores = {name: scores_of(p, held, measured) for name, p in candidates.items()}
    scores["noise floor"] = score(again["latency_ms"].to_numpy(),
                                  measured[:NOISE_REPEATS]).as_dict()
    return {"threads": threads, "img_size": list(img_size), "adapt": adapt, "test": test,
            "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=80, help="configs per calibration")
    parser.add_argument("--adapt", type=int, default=20)
    parser.add_argument("--transfer-test", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512],
                        help="input sides of the 1-thread transfer cases besides 2 threads at 224")
    args = parser.parse_args()
    started = time.monotonic()
    out: dict = {"budget": args.budget, "seed": args.seed}

    calibrations = {}
    for strategy in ("random", "active"):
        predictors, report = calibrate(device="this-cpu", budget=args.budget, seed=args.seed,
                                       strategy=strategy, with_blocks=False, noise_repeats=10,
                                       protocol=PROTOCOL)
        calibrations[strategy] = (predictors, report)
        print(f"\n{strategy} calibration ({report.seconds:.0f} s)\n{report.table()}")
        out[f"calibration_{strategy}"] = {"scores": report.scores,
                                          "noise_floor": report.noise_floor,
                                          "state_exponent": report.state_exponent,
                                          "seconds": report.seconds}
        args.out.write_text(json.dumps(out, indent=1))  # a cut run keeps what it measured

    grid = off_grid_configs()
    first = measured_rows(grid, threads=1, img_size=(224, 224))
    second = measured_rows(grid, threads=1, img_size=(224, 224))
    out["off_grid"] = {}
    for strategy, (predictors, report) in calibrations.items():
        measured, again = (
            state_adjusted(rows, report.state_exponent, report.reference_latency_ms)
            ["latency_ms"].to_numpy() for rows in (first, second))
        out["off_grid"][strategy] = {name: scores_of(p, grid, measured)
                                     for name, p in predictors.items()}
        out["off_grid"][strategy]["noise floor"] = score(again, measured).as_dict()
        print(f"\noff the grid, {strategy} calibration:")
        for name, s in out["off_grid"][strategy].items():
            print(f"  {name:14s} ±10 % {s['within_10']:5.0%}  τ {s['kendall_tau']:.3f}  "
                  f"MAPE {s['mape']:.1%}" + (f"  in interval {s['coverage']:.0%}"
                                              if "coverage" in s else ""))

    args.out.write_text(json.dumps(out, indent=1))
    prior = calibrations["random"][0]["features_gp"]
    out["transfer"] = [transfer(prior, threads=2, img_size=(224, 224), adapt=args.adapt,
                                test=args.transfer_test, seed=args.seed + 100)]
    out["transfer"] += [transfer(prior, threads=1, img_size=(side, side), adapt=args.adapt,
                                 test=args.transfer_test, seed=args.seed + side)
                        for side in args.sizes if side != 224]
    for case in out["transfer"]:
        print(f"\ntransfer to {case['threads']} thread(s), {case['img_size'][0]}² "
              f"({case['adapt']} measurements, {case['test']} held out):")
        for name, s in case["scores"].items():
            print(f"  {name:26s} ±10 % {s['within_10']:5.0%}  τ {s['kendall_tau']:.3f}  "
                  f"MAPE {s['mape']:.1%}")
    out["seconds"] = time.monotonic() - started
    args.out.write_text(json.dumps(out, indent=1))
    print(f"\n{out['seconds'] / 60:.1f} min; wrote {args.out}")


if __name__ == "__main__":
    main()
