"""The (architecture, accuracy, latency) table of the Fashion-MNIST study and the front it
measures: `analysis.nas.study_front` on the committed study and the committed features-GP of the
development CPU (no training). With `--measure`, each config is also timed on this machine at
the predictor's settings, interleaved with the XXS reference as the closed loop times a search's
front (about 2 minutes per repeat; run it with the machine otherwise idle), and the predictions
are scored against the measurements. Committed beside this script as CSV (one row per config)
and JSON (the rows and what they were computed from).

    python benchmarks/study_front.py [--measure] [--out benchmarks/study_front]
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.accuracy.studies import FASHION_STUDY
from analysis.latency import committed_predictor, device_fingerprint, fingerprint_hash
from analysis.latency.calibration import COMMITTED_MEASUREMENTS
from analysis.nas.closed_loop import machine_ratios
from analysis.nas.study_front import COLUMNS, front_text, study_front, with_measured
from edgevit import EdgeViTConfig, preset_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None,
                        help="write OUT.csv and OUT.json (e.g. benchmarks/study_front)")
    parser.add_argument("--measure", action="store_true",
                        help="also time every config on this machine (the closed loop's way)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timings of every config with --measure (their median is kept)")
    args = parser.parse_args()
    predictor = committed_predictor()
    study = json.loads(FASHION_STUDY.read_text())
    table = study_front(study, predictor)
    columns, measured = list(COLUMNS), None
    if args.measure:
        configs = [EdgeViTConfig.from_dict(r["config"]) for r in study["configs"]]
        ms_per_ratio = float(predictor.predict([preset_config("edgevit_xxs")])[0])
        measure = machine_ratios(predictor)
        runs = np.stack([measure(configs) for _ in range(args.repeats)])  # (repeats, N)
        table, agreement = with_measured(table, np.median(runs, axis=0), ms_per_ratio)
        repeatability = float(np.median(np.abs(runs.max(0) / runs.min(0) - 1)))
        columns += ["latency_ratio_to_xxs_measured", "latency_ms_measured_via_xxs",
                    "on_front_measured"]
        device = device_fingerprint()
        measured = dict(when=datetime.now(UTC).isoformat(timespec="seconds"),
                        machine=platform.machine(), threads=predictor.settings.threads,
                        calibrated_here=fingerprint_hash(device) == predictor.settings.fingerprint,
                        cpu_model=device["cpu_model"],
                        reference="edgevit_xxs", ms_per_ratio=ms_per_ratio,
                        repeats=args.repeats, ratios=runs.tolist(),
                        repeat_spread_median=repeatability, agreement=agreement)
        print(f"measured here: MAPE {agreement['mape']:.1%}, "
              f"{agreement['within_10']:.0%} within ±10 %, "
              f"{agreement['in_interval']:.0%} inside the interval, "
              f"Kendall τ {agreement['kendall_tau']:.2f}; same front: "
              f"{agreement['same_front']}; {args.repeats} repeats, median spread "
              f"{repeatability:.1%} (max/min − 1)")
    print(f"{predictor.kind} predictor")
    print(front_text(table))
    if args.out:
        out = Path(args.out)
        frame = pd.DataFrame(table, columns=columns)
        for name in ("widths", "depths", "sample_rates"):
            frame[name] = frame[name].map(lambda v: " ".join(map(str, v)))
        frame.to_csv(out.with_suffix(".csv"), index=False)
        record = dict(benchmark="study_front",
                      study=str(FASHION_STUDY.relative_to(REPO_ROOT)),
                      predictor=dict(kind=predictor.kind,
                                     measurements=str(COMMITTED_MEASUREMENTS.relative_to(
                                         REPO_ROOT)),
                                     settings=predictor.settings.to_dict()),
                      front=[r["name"] for r in table if r["on_front"]], measured=measured,
                      rows=table)
        out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
