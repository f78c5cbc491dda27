"""Seconds to score one subnet of the committed supernet on one core: `evaluate_subnet` as it is
against its previous form, timed interleaved on every config of the accuracy study.

Previous form: the subnet built with random initial weights and then loaded, BatchNorm
recalibrated on the faithful (unfused) model, then fused. Current: built on the meta device
(no initial weights drawn), fused with LocalAgg's BatchNorms left in place, recalibrated on
that fast form, then folded (`edgevit.fuse.fold_batchnorms`). Both score the same 256
calibration and 1,000 held-out images; their top-1 must agree to the image.

This machine's speed drifts by tens of percent over minutes (it is shared), so the goal
(≤ 5 s per subnet on one core, issue 16) is read three ways from this one run: the current
seconds as measured, the ratio current / previous per config (stable to a few per cent), and
that ratio times the previous seconds the study recorded on a quiet machine
(`supernet_seconds` in analysis/accuracy/data/supernet_study.json).

    python benchmarks/subnet_eval_speed.py [--repeats 2] [--out benchmarks/subnet_eval_speed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.accuracy.datasets import ImageDataset, gather
from analysis.accuracy.studies import COMMITTED_SUPERNET
from analysis.accuracy.supernet import (
    CALIB_IMAGES,
    EVAL_IMAGES,
    SuperNet,
    evaluate_subnet,
    load_supernet,
    recalibrate_batchnorm,
    supernet_dataset,
)
from edgevit.config import EdgeViTConfig
from edgevit.model import EdgeViT

STUDY = Path(__file__).resolve().parents[1] / "analysis/accuracy/data/supernet_study.json"
GOAL_S = 5.0


def previous_evaluation(supernet: SuperNet, config: EdgeViTConfig, dataset: ImageDataset,
                        batch_size: int = 256) -> tuple[int, float]:
    """(correct of the first EVAL_IMAGES held-out images, seconds) as evaluate_subnet scored
    before this benchmark's change, with its seed 0 draw of calibration images."""
    start = time.perf_counter()
    config = supernet.subnet_config(config)
    model = EdgeViT(config)
    model.load_state_dict({k: v.detach().clone()
                           for k, v in supernet.subnet_state(config).items()})
    order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(0))
    calib = [gather(dataset.train, order[i:i + batch_size])[0]
             for i in range(0, CALIB_IMAGES, batch_size)]
    recalibrate_batchnorm(model, calib)
    model.fuse()
    correct = 0
    with torch.inference_mode():
        for i in range(0, EVAL_IMAGES, batch_size):
            images, labels = gather(dataset.test,
                                    torch.arange(i, min(i + batch_size, EVAL_IMAGES)))
            correct += int((model(images).argmax(dim=1) == labels).sum())
    return correct, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=str(COMMITTED_SUPERNET))
    parser.add_argument("--repeats", type=int, default=2, help="interleaved pairs per config")
    parser.add_argument("--out", default=None, help="write the results here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    supernet, record = load_supernet(args.supernet)
    dataset = supernet_dataset(record)
    study = json.loads(STUDY.read_text())
    rows = []
    for row in study["configs"]:
        config = EdgeViTConfig.from_dict(row["config"])
        previous, current, agree = [], [], True
        for _ in range(args.repeats):
            correct, seconds = previous_evaluation(supernet, config, dataset)
            previous.append(seconds)
            scored = evaluate_subnet(supernet, config, dataset)
            current.append(scored.seconds)
            agree &= scored.correct == correct and scored.n_test == EVAL_IMAGES
        ratio = float(np.median(np.array(current) / np.array(previous)))
        rows.append(dict(name=row["name"], macs=row["macs"], top1=scored.top1,
                         same_top1=bool(agree), previous_s=float(np.median(previous)),
                         current_s=float(np.median(current)), ratio=ratio,
                         recorded_previous_s=row.get("supernet_seconds"),
                         projected_quiet_s=(row["supernet_seconds"] * ratio
                                            if "supernet_seconds" in row else None)))
        r = rows[-1]
        print(f"{r['name']:12s} {r['macs'] / 1e6:6.1f} MMACs  previous {r['previous_s']:5.2f} s"
              f"  current {r['current_s']:5.2f} s  ratio {ratio:.3f}  top-1 {r['top1']:.3f}"
              f"{'' if agree else '  TOP-1 DIFFERS'}", flush=True)
    ratios = np.array([r["ratio"] for r in rows])
    projected = np.array([r["projected_quiet_s"] for r in rows if r["projected_quiet_s"]])
    current = np.array([r["current_s"] for r in rows])
    summary = dict(
        configs=len(rows), repeats=args.repeats, threads=1, calib_images=CALIB_IMAGES,
        eval_images=EVAL_IMAGES, all_top1_same=all(r["same_top1"] for r in rows),
        ratio_median=float(np.median(ratios)), ratio_range=[float(ratios.min()),
                                                            float(ratios.max())],
        current_s_median=float(np.median(current)), current_s_max=float(current.max()),
        current_over_goal=[r["name"] for r in rows if r["current_s"] > GOAL_S],
        projected_quiet_s_median=float(np.median(projected)),
        projected_quiet_s_max=float(projected.max()),
        projected_over_goal=[r["name"] for r in rows
                             if (r["projected_quiet_s"] or 0) > GOAL_S],
    )
    print(json.dumps(summary, indent=1))
    if args.out:
        out: dict[str, Any] = dict(
            benchmark="subnet_eval_speed", supernet=args.supernet, machine=platform.processor()
            or platform.machine(), torch=torch.__version__,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            summary=summary, rows=rows)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
