"""Does a larger BatchNorm recalibration set make the supernet rank like standalone training?

Every config of the accuracy study is scored with the committed supernet twice, BatchNorm
recalibrated on 256 (the default, `CALIB_IMAGES`) and on 2,048 training images, both on the
first 2,000 held-out images; Kendall τ of each against the study's standalone top-1, with a
bootstrap interval (`analysis.accuracy.rank_stats`). Once-for-All recalibrates on 2,000 images;
if 256 were too few, the ranking would improve with more.

    python benchmarks/supernet_calibration.py [--out benchmarks/supernet_calibration.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from analysis.accuracy.rank_stats import rank_correlation
from analysis.accuracy.studies import COMMITTED_SUPERNET
from analysis.accuracy.supernet import (
    CALIB_IMAGES,
    evaluate_subnet,
    load_supernet,
    supernet_dataset,
)
from edgevit.config import EdgeViTConfig

STUDY = Path(__file__).resolve().parents[1] / "analysis/accuracy/data/supernet_study.json"
CALIBRATIONS = (CALIB_IMAGES, 2048)
EVAL_IMAGES = 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=str(COMMITTED_SUPERNET))
    parser.add_argument("--out", default=None, help="write the results here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    supernet, record = load_supernet(args.supernet)
    dataset = supernet_dataset(record)
    rows = []
    for row in json.loads(STUDY.read_text())["configs"]:
        config = EdgeViTConfig.from_dict(row["config"])
        scored = {n: evaluate_subnet(supernet, config, dataset, calib_images=n,
                                     eval_images=EVAL_IMAGES) for n in CALIBRATIONS}
        rows.append(dict(name=row["name"], standalone=row["accuracy"],
                         **{f"calib_{n}": s.top1 for n, s in scored.items()}))
        print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else v
                        for k, v in rows[-1].items()), flush=True)
    standalone = [r["standalone"] for r in rows]
    summary = {}
    for n in CALIBRATIONS:
        agreement = rank_correlation([r[f"calib_{n}"] for r in rows], standalone)
        summary[f"calib_{n}"] = agreement.to_dict()
        low, high = agreement.tau_ci
        print(f"calibrated on {n:5d} images: Kendall τ {agreement.tau:+.2f} "
              f"[{low:+.2f}, {high:+.2f}], Spearman ρ {agreement.rho:+.2f}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(dict(
            benchmark="supernet_calibration", supernet=args.supernet, eval_images=EVAL_IMAGES,
            calibrations=list(CALIBRATIONS), summary=summary, rows=rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
