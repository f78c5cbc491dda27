"""`edgevit flops`: exact MACs and parameters, and what each FLOP counter prints."""

from __future__ import annotations

import argparse

from .common import add_command, check_buildable, image_size, resolve_config

COUNTERS = ("symbolic", "fvcore", "ptflops-pytorch", "ptflops-aten", "torch", "all")


def cmd_flops(args: argparse.Namespace) -> dict:
    from analysis.cost import model_cost

    config = resolve_config(args.model)
    size = image_size(args.img_size)
    cost = model_cost(config, size)
    result = {
        "model": config.name, "img_size": list(size), "macs": cost.macs, "flops": cost.flops,
        "params": cost.params, "macs_by_kind": cost.by_kind(),
        "macs_by_stage": cost.by_stage(), "elementwise_numel": cost.elementwise,
    }
    if args.counter != "symbolic":
        from analysis.counters import reconcile

        check_buildable(config, size)
        names = None if args.counter == "all" else [args.counter]
        result["counters"] = reconcile(config, size, names)
    if not args.json:
        print(f"{config.name} at {size[0]}×{size[1]}: {cost.macs:,} MACs "
              f"({cost.macs / 1e9:.3f} GMACs, {cost.flops / 1e9:.3f} GFLOPs), "
              f"{cost.params:,} parameters")
        for kind, macs in cost.by_kind().items():
            print(f"  {kind:8s} {macs:>15,} MACs")
        for name, info in result.get("counters", {}).items():
            verdict = "exact" if info["macs"] == info["predicted_macs"] else "DIFFERS"
            print(f"  {name:16s} printed {info['macs']:>15,}  "
                  f"predicted {info['predicted_macs']:>15,}  {verdict}")
            for why in info["explanation"]:
                print(f"      {why}")
    return result


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "flops", cmd_flops,
                         "exact MACs/params (symbolic) and what FLOP counters print")
    parser.add_argument("--counter", choices=COUNTERS, default="symbolic")
