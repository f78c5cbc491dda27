"""`edgevit supernet train|eval`: a weight-sharing supernet over the search space.

train   sandwich training into a folder (`supernet.pt` + `supernet.json`); `--resume` continues
        from the last checkpoint, `--stop-after K` ends this run after K steps, `--init-from
        CKPT` starts from a trained supernet's weights (a warm start). Runs under
        `torchrun --nproc-per-node N` as well (data-parallel; gloo on CPUs, NCCL on GPUs).
eval    a subnet's held-out top-1 with inherited weights (BatchNorm recalibrated).
export  the weights alone in float16 (no optimizer state): a file to commit or ship.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from analysis.runtime import parse_json, read_user_text

from .common import (
    COUNT,
    MAX_CONFIG_BYTES,
    SEED,
    THREADS,
    CliError,
    add_command,
    ranged_float,
    ranged_int,
    resolve_config,
)


def _space(path: str | None):
    from analysis.accuracy import space_from_dict
    from analysis.cost.search_space import DEFAULT_SPACE

    if path is None:
        return DEFAULT_SPACE
    try:
        data = parse_json(read_user_text(path, "--space file", MAX_CONFIG_BYTES),
                          f"--space {path}")
    except ValueError as err:
        raise CliError(f"cannot read a JSON search space: {err}") from None
    if isinstance(data, dict) and "space" in data:  # a supernet.json record
        data = data["space"]
    try:
        return space_from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        raise CliError(f"--space {path}: not a search space ({type(err).__name__}: {err})") \
            from None


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from analysis.accuracy import SupernetRecipe, train_supernet

    for name in ("steps", "batch_size", "save_every", "stop_after", "max_per_class"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} {value}: must be ≥ 1")
    if args.img_size < 32:
        raise CliError(f"--img-size {args.img_size}: EdgeViT needs H, W ≥ 32")
    recipe = SupernetRecipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            random_subnets=args.random_subnets, save_every=args.save_every,
                            full_attention_subnet=args.full_attention_subnet)
    record = train_supernet(args.out, data=args.data, img_size=args.img_size, recipe=recipe,
                            seed=args.seed, space=_space(args.space),
                            max_per_class=args.max_per_class, resume=args.resume,
                            stop_after=args.stop_after, init_from=args.init_from,
                            threads=args.threads,
                            progress=not args.json)
    if not args.json:
        last = record["losses"][-1] if record["losses"] else None
        tail = (f"; last loss {last['loss']:.4f}, distillation {last['kd']:.4f}" if last
                else "")
        print(f"supernet: {record['step']}/{recipe.steps} steps in {record['seconds']:.1f} s"
              f"{tail}; checkpoint {Path(args.out) / 'supernet.pt'}")
    return record


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    from analysis.accuracy import AccuracyEvaluator

    if args.calib_images < 1 or (args.eval_images is not None and args.eval_images < 1):
        raise CliError("--calib-images and --eval-images must be ≥ 1")
    config = resolve_config(args.model)
    evaluator = AccuracyEvaluator(f"supernet:{args.checkpoint}", seed=args.seed,
                                  threads=args.threads, calib_images=args.calib_images,
                                  eval_images=args.eval_images)
    result = evaluator.evaluate(config).to_dict()
    if not args.json:
        d, data = result["details"], result["dataset"]
        print(f"{config.name}: top-1 {result['accuracy']:.4f} ({d['correct']}/{d['n_test']} "
              f"held out) with inherited weights (supernet step {d['supernet_step']}), "
              f"{data['name']} at {data['img_size']}×{data['img_size']}, "
              f"in {result['seconds']:.2f} s")
    return result


def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from analysis.accuracy import export_supernet

    record = export_supernet(args.checkpoint, args.out, dtype=args.dtype)
    size_mb = Path(args.out).stat().st_size / 1e6
    if not args.json:
        print(f"exported step {record['step']} of {args.checkpoint} to {args.out}: weights in "
              f"{args.dtype}, {size_mb:.1f} MB, no optimizer state (for inference: "
              f"supernet:{args.out})")
    return dict(record, size_mb=size_mb, out=str(args.out))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supernet", help="train or evaluate a weight-sharing supernet",
                       description=__doc__)
    group = p.add_subparsers(dest="supernet_command", required=True)
    t = add_command(group, "train", cmd_train, "sandwich-train a supernet into --out",
                    model=False)
    t.add_argument("--data", default="fashion-mnist",
                   help="fashion-mnist | digits | PATH of an ImageFolder (default fashion-mnist)")
    t.add_argument("--img-size", type=ranged_int(32, 8_192), default=32, metavar="S",
                   help="square input side (default 32)")
    t.add_argument("--steps", type=COUNT, default=3000, help="total optimiser steps")
    t.add_argument("--batch-size", type=ranged_int(1, 65_536), default=128,
                   help="global batch, split evenly over ranks (default 128)")
    t.add_argument("--lr", type=ranged_float(0, 10), default=1e-3, help="AdamW peak learning rate")
    t.add_argument("--random-subnets", type=ranged_int(0, 64), default=2,
                   help="random subnets per step beside the largest and smallest (default 2)")
    t.add_argument("--full-attention-subnet", action="store_true",
                   help="also distil, each step, the largest widths with r = 1 wherever the "
                        "space allows it (the sandwich's extremes never take r = 1)")
    t.add_argument("--save-every", type=COUNT, default=200, help="steps between checkpoints")
    t.add_argument("--seed", type=SEED, default=0, help="init, data-order and sampling seed")
    t.add_argument("--max-per-class", type=COUNT, default=None, metavar="K",
                   help="train on at most K images per class (a quick slice)")
    t.add_argument("--space", default=None, metavar="JSON",
                   help="search space as JSON (a supernet.json's `space`); default: the suite's")
    t.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder")
    t.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint")
    t.add_argument("--init-from", default=None, metavar="CKPT",
                   help="warm start: begin from this trained supernet's weights (same space, "
                        "data and --img-size; a fresh optimizer and schedule); recorded")
    t.add_argument("--stop-after", type=COUNT, default=None, metavar="K",
                   help="stop this run after K steps (checkpointed; --resume later)")
    t.add_argument("--threads", type=THREADS, default=None,
                   help="torch threads per process (default 1)")
    e = add_command(group, "eval", cmd_eval,
                    "a subnet's held-out top-1 with the supernet's weights", model=False)
    e.add_argument("checkpoint", help="supernet.pt or its folder")
    e.add_argument("model", help="registered model name or config .json (a point of the space)")
    e.add_argument("--calib-images", type=COUNT, default=256,
                   help="training images for BatchNorm recalibration (default 256)")
    e.add_argument("--eval-images", type=COUNT, default=1000,
                   help="held-out images scored (default the first 1000)")
    e.add_argument("--seed", type=SEED, default=0, help="calibration draw seed")
    e.add_argument("--threads", type=THREADS, default=1, help="torch threads (default 1)")
    x = add_command(group, "export", cmd_export,
                    "the weights alone, in float16 (default), for inference and commits",
                    model=False)
    x.add_argument("checkpoint", help="supernet.pt or its folder")
    x.add_argument("--out", required=True, metavar="FILE", help="the exported .pt file")
    x.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16",
                   help="stored precision of the floating tensors (default float16)")
