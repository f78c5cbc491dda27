"""Section D's backbones and section B's ablations, measured side by side on this machine.

1. Backbones (feature pyramid only, batch 1, random weights): EdgeViT-XXS/XS/S, ResNet18,
   PVTv2-B0, PVTv2-B1 at 800×800 (detection) and 512×512 (segmentation), each timed interleaved
   with ResNet18 (`analysis.paper.measure_backbones`), with MACs (torch FlopCounterMode) and
   parameters; RAPL energy when /sys/class/powercap is readable. Printed beside the paper's
   ratios to ResNet18 (measured on a Snapdragon 888 phone CPU: compare loosely).
2. Ablations (Tables 4a-4c, classifiers at ~0.5 GMACs, 224×224): exact MACs and params
   (`analysis.cost.ops`) and latency interleaved with the base `ablation_lgl`.

Writes analysis/paper/data/backbones_measured.json (notebook 06 loads it; --out elsewhere for trial
runs): provenance (created, torch, threads, protocol, device fingerprint, RAPL status, command),
`backbones` (rows of `BackboneMeasurement.to_dict()`), `compared` (`compare_with_paper`),
`ablations` (`paper_tables.ablation_table` rows).

Full run (defaults; about 10-15 min with one thread on a 2-core machine):
    python benchmarks/paper_backbones.py
Smoke run (seconds):
    python benchmarks/paper_backbones.py --img-size 64 --runs 2 --warmup 0 --min-time 0 \
        --ablation-img-size 64 --out /tmp/paper_backbones_smoke.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from analysis.latency import Protocol, measure_many
from analysis.paper import (
    BACKBONES,
    MEASURED_JSON,
    TASK_SIZES,
    ablation_costs,
    ablation_table,
    compare_with_paper,
    measure_backbones,
    rapl_status,
    results_header,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--img-size", type=int, default=None, metavar="S",
                   help="one square side for every backbone instead of 800 and 512 (smoke runs)")
    p.add_argument("--models", nargs="+", default=list(BACKBONES), choices=list(BACKBONES),
                   help="backbones (ResNet18 is always the reference)")
    p.add_argument("--runs", type=int, default=20, help="minimum timed runs per pair")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs")
    p.add_argument("--min-time", type=float, default=2.0, metavar="SECONDS",
                   help="minimum timed seconds per pair")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--energy-runs", type=int, default=10,
                   help="forwards per model for RAPL energy (when readable)")
    p.add_argument("--no-macs", action="store_true", help="skip counting backbone MACs")
    p.add_argument("--ablation-img-size", type=int, default=224, metavar="S")
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument("--out", type=Path, default=MEASURED_JSON, help="results JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    protocol = Protocol(warmup_runs=args.warmup, min_runs=args.runs,
                        max_runs=max(args.runs, Protocol.max_runs), min_time_s=args.min_time)
    sizes = ([(args.img_size, args.img_size)] if args.img_size
             else list(TASK_SIZES.values()))
    rapl = rapl_status()
    print(rapl["reason"])
    models = list(dict.fromkeys(["ResNet18", *args.models]))
    measured = []
    for size in sizes:
        rows = measure_backbones(models, size, threads=args.threads, protocol=protocol,
                                 count_macs=not args.no_macs, energy_runs=args.energy_runs)
        measured += rows
        print(f"\n{size[0]}×{size[1]}, {args.threads} thread(s), interleaved with ResNet18")
        print(f"{'model':<12} {'latency_ms':>11} {'ratio':>7} {'ratio_cv':>8} {'GMACs':>7} "
              f"{'params_M':>8} {'energy_mj':>9}")
        for r in rows:
            gmacs = f"{r.macs / 1e9:7.2f}" if r.macs is not None else "      -"
            energy = f"{r.energy_mj:9.1f}" if r.energy_mj is not None else "        -"
            print(f"{r.model:<12} {r.latency_ms:11.2f} {r.ratio:7.3f} {r.ratio_cv:8.3f} "
                  f"{gmacs} {r.params / 1e6:8.2f} {energy}" + ("  NOISY" if r.flagged_noisy
                                                                else ""))
    # a smoke run at one reduced size is set beside both tables, marked by its img_size
    compared = compare_with_paper(measured, img_sizes={task: sizes[0] for task in TASK_SIZES}
                                  if args.img_size else None)
    print("\nratio to ResNet18: here vs the paper (Snapdragon 888 CPU; compare loosely)")
    for row in compared:
        here = f"{row['ratio']:.3f}" if row["ratio"] is not None else row["note"]
        print(f"  {row['task']:<12} {row['model']:<12} here {here:<26} paper "
              f"{row['paper_ratio']:.3f} (energy {row['paper_energy_ratio']:.3f})")

    ablations = []
    if not args.no_ablations:
        import edgevit

        size = (args.ablation_img_size, args.ablation_img_size)
        costs = ablation_costs(size)
        configs = [edgevit.preset_config(row["name"]) for row in costs]
        results = measure_many(configs, reference=edgevit.preset_config("ablation_lgl"),
                               threads=args.threads, img_size=size, protocol=protocol)
        ablations = ablation_table(costs, results)
        print(f"\nablations at {size[0]}×{size[1]} (ratio to ablation_lgl, interleaved)")
        print(f"{'name':<24} {'table':>5} {'GMACs':>6} {'params_M':>8} {'latency_ms':>10} "
              f"{'ratio':>6}")
        for row in ablations:
            print(f"{row['name']:<24} {row['table']:>5} {row['macs'] / 1e9:6.3f} "
                  f"{row['params'] / 1e6:8.3f} {row['latency_ms']:10.2f} {row['ratio']:6.3f}")

    out = dict(results_header(args.threads, protocol),
               command="python benchmarks/paper_backbones.py " + shlex.join(
                   sys.argv[1:] if argv is None else argv),
               img_sizes=[list(s) for s in sizes], rapl=rapl,
               backbones=[m.to_dict() for m in measured], compared=compared,
               ablations=ablations)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
