"""The (architecture, accuracy, latency) table of the Fashion-MNIST study and the front it
measures: `analysis.nas.study_front` on the committed study and the committed features-GP of
the development CPU (no training, no timing). Committed beside this script as CSV (one row per
config) and JSON (the rows and what they were computed from).

    python benchmarks/study_front.py [--out benchmarks/study_front]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from analysis.accuracy.studies import FASHION_STUDY
from analysis.latency import committed_predictor
from analysis.latency.calibration import COMMITTED_MEASUREMENTS
from analysis.nas.study_front import COLUMNS, study_front

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None,
                        help="write OUT.csv and OUT.json (e.g. benchmarks/study_front)")
    args = parser.parse_args()
    predictor = committed_predictor()
    table = study_front(json.loads(FASHION_STUDY.read_text()), predictor)
    print(f"latency: {predictor.kind} predictor, {table[0]['latency_settings']}; "
          f"top-1: standalone, Fashion-MNIST {table[0]['study_img_size']}² held-out")
    print(" front  top-1  supernet  synflow  MMACs  params M  latency ms [interval]   config")
    for row in sorted(table, key=lambda r: r["latency_ms_predicted"]):
        supernet = "" if row["supernet_top1"] is None else f"{row['supernet_top1']:.4f}"
        print(f"  {'*' if row['on_front'] else ' '}   {row['standalone_top1']:.4f}  "
              f"{supernet:>8s}  {row['synflow_log10']:7.2f}  {row['macs'] / 1e6:5.1f}  "
              f"{row['params'] / 1e6:8.2f}  {row['latency_ms_predicted']:6.1f} "
              f"[{row['latency_ms_low']:.1f}, {row['latency_ms_high']:.1f}]  {row['name']}: "
              f"{row['widths']} / {row['depths']} / {row['sample_rates']} / "
              f"{row['head_dim']}, {row['mlp_ratio']:g}")
    if args.out:
        out = Path(args.out)
        frame = pd.DataFrame(table, columns=list(COLUMNS))
        for name in ("widths", "depths", "sample_rates"):
            frame[name] = frame[name].map(lambda v: " ".join(map(str, v)))
        frame.to_csv(out.with_suffix(".csv"), index=False)
        record = dict(benchmark="study_front",
                      study=str(FASHION_STUDY.relative_to(REPO_ROOT)),
                      predictor=dict(kind=predictor.kind,
                                     measurements=str(COMMITTED_MEASUREMENTS.relative_to(
                                         REPO_ROOT)),
                                     settings=predictor.settings.to_dict()),
                      front=[r["name"] for r in table if r["on_front"]], rows=table)
        out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
