"""`edgevit info`: parameters and per-stage shapes of a model."""

from __future__ import annotations

import argparse

from analysis.cost import model_cost
from edgevit.config import stage_sizes

from .common import add_command, image_size, resolve_config


def cmd_info(args: argparse.Namespace) -> dict:
    """Parameters and per-stage output shapes of a model."""
    config = resolve_config(args.model)
    h, w = image_size(args.img_size)
    stages = [
        dict(stage=i, channels=c, height=sh, width=sw, depth=d, sample_rate=r,
             heads=config.num_heads[i])
        for i, (c, (sh, sw), d, r) in enumerate(
            zip(config.widths, stage_sizes((h, w)), config.depths, config.sample_rates)
        )
    ]
    # counted by the exact cost model (equal to the built network's, tested): nothing is built
    result = dict(model=config.name, img_size=[h, w], params=model_cost(config, (h, w)).params,
                  config=config.to_dict(), stages=stages)
    if not args.json:
        print(f"{config.name}: {result['params']:,} parameters at {h}×{w}")
        print("stage  channels  map (h×w)  depth  r  heads")
        for s in stages:
            print(f"{s['stage']:>5}  {s['channels']:>8}  {s['height']:>4}×{s['width']:<4}  "
                  f"{s['depth']:>5}  {s['sample_rate']}  {s['heads']:>5}")
    return result


def register(sub: argparse._SubParsersAction) -> None:
    add_command(sub, "info", cmd_info, "parameters and per-stage shapes of a model")
