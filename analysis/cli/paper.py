"""`edgevit paper-tables`: the supplementary's Tables 1 and 2 recomputed (efficiency column,
Pareto optimality), optionally with the backbones measured on this machine and energies
imported from other devices."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    RUNS,
    THREADS,
    CliError,
    add_command,
    image_size,
    strict_int,
)


def _print_report(out: dict[str, Any]) -> None:
    for task in ("detection", "segmentation"):
        h, w = out["img_sizes"][task]
        print(f"{task} ({h}×{w}): efficiency = metric % / energy mJ; Pareto on metric vs CPU s "
              "and vs J (robust: worst case inside the ± spreads)")
        print(f"  {'model':<12} {'metric':>6} {'cpu_s':>6} {'energy_j':>8} {'printed':>8} "
              f"{'recomputed':>10}  pareto latency/energy (robust)")
        for r in out[task]:
            flag = "" if r["efficiency_matches"] else "  MISMATCH"
            print(f"  {r['model']:<12} {r['metric_pct']:>6.1f} {r['cpu_s']:>6.2f} "
                  f"{r['energy_j']:>8.2f} {r['efficiency_pct_per_mj_printed']:>8.3f} "
                  f"{r['efficiency_pct_per_mj']:>10.5f}  "
                  f"{_yes(r['pareto_latency'])} ({_yes(r['pareto_latency_robust'])}) / "
                  f"{_yes(r['pareto_energy'])} ({_yes(r['pareto_energy_robust'])}){flag}")
        claims = out["all_edgevits_pareto"][task]
        print(f"  all EdgeViTs Pareto-optimal: latency {_yes(claims['latency'])} (robust "
              f"{_yes(claims['latency_robust'])}), energy {_yes(claims['energy'])} (robust "
              f"{_yes(claims['energy_robust'])})")
    mismatches = out["efficiency_mismatches"]
    print(f"efficiency rows not rounding to the printed value: {len(mismatches)}"
          + "".join(f"\n  {m['task']} {m['model']}: printed {m['printed']}, recomputed "
                    f"{m['recomputed']:.5f}" for m in mismatches))
    print(out["energy_reading"]["reason"])


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def cmd_paper_tables(args: argparse.Namespace) -> dict[str, Any]:
    """Recompute Tables 1 and 2; with --measure also time the backbones here."""
    from analysis.latency import Protocol
    from analysis.paper import (
        BACKBONES,
        TASK_SIZES,
        compare_with_paper,
        load_energy_csv,
        measure_backbones,
        rapl_status,
        report,
    )

    if args.img_size and not args.measure:
        raise CliError("--img-size applies to --measure only")
    if args.runs < 1:
        raise CliError(f"--runs {args.runs}: must be ≥ 1")
    if args.threads < 1:
        raise CliError(f"--threads {args.threads}: must be ≥ 1")
    out = report()
    out["energy_reading"] = rapl_status()
    if args.energy_csv:
        out["imported_energy"] = load_energy_csv(args.energy_csv)  # ValueError -> one line
    if args.measure:
        protocol = Protocol(warmup_runs=min(3, args.runs), min_runs=args.runs,
                            max_runs=max(args.runs, Protocol.max_runs), min_time_s=0.0)
        sizes = ([image_size(args.img_size)] if args.img_size
                 else list(dict.fromkeys(TASK_SIZES.values())))
        measured = []
        for size in sizes:
            measured += measure_backbones(tuple(BACKBONES), size, threads=args.threads,
                                          protocol=protocol, progress=not args.json)
        out["measured"] = [m.to_dict() for m in measured]
        out["compared"] = compare_with_paper(measured)
    if not args.json:
        _print_report(out)
        for row in out.get("imported_energy", []):
            eff = row["efficiency_pct_per_mj"]
            print(f"imported: {row['model']} on {row['device']} ({row['backend']}) "
                  f"{row['input_h']}×{row['input_w']}: {row['latency_ms']:.1f} ms, energy "
                  f"{row['energy_mj']} mJ" + (f", efficiency {eff:.4f} %/mJ" if eff else ""))
        for m in out.get("measured", []):
            print(f"measured here {m['img_size'][0]}×{m['img_size'][1]}: {m['model']:<12} "
                  f"{m['latency_ms']:9.2f} ms  ×{m['ratio']:.3f} of {m['reference']}"
                  + ("  NOISY" if m["flagged_noisy"] else ""))
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "paper-tables", cmd_paper_tables,
                    "the supplementary's Tables 1-2 recomputed: efficiency and Pareto optimality",
                    model=False)
    p.add_argument("--measure", action="store_true",
                   help="also time the backbones here, interleaved with ResNet18 (slow at the "
                        "paper's 800² and 512²; benchmarks/paper_backbones.py is the full run)")
    p.add_argument("--img-size", type=strict_int, nargs="+", metavar="H W",
                   help="with --measure: one input size instead of the paper's two")
    p.add_argument("--runs", type=RUNS, default=10,
                   help="with --measure: timed runs (default 10)")
    p.add_argument("--threads", type=THREADS, default=1, help="with --measure: torch threads")
    p.add_argument("--energy-csv", metavar="PATH",
                   help="energies measured on other devices (latency CSV schema with energy_mj; "
                        "config_id = timm name such as resnet18 or edgevit_xs)")
