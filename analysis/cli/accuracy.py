"""`edgevit accuracy`: a config's accuracy score by a zero-cost proxy or by short training."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    COUNT,
    SEED,
    THREADS,
    CliError,
    add_command,
    check_buildable,
    ranged_int,
    resolve_config,
)


def cmd_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Score one model; the JSON holds `accuracy` (top-1 or the raw proxy score) and `method`."""
    from analysis.accuracy import PROXY_BATCH_SIZE, AccuracyEvaluator, AccuracyMethod
    from edgevit.config import MIN_IMG_SIZE

    method = AccuracyMethod.parse(args.method)  # ValueError -> one line, exit 2
    if args.epochs is not None and method.kind != "train":
        raise CliError("--epochs applies to train: methods only")
    if args.epochs is not None and args.epochs < 1:
        raise CliError(f"--epochs {args.epochs}: must be ≥ 1")
    if args.max_per_class is not None and args.max_per_class < 1:
        raise CliError(f"--max-per-class {args.max_per_class}: must be ≥ 1")
    size = None
    if args.img_size:
        if len(args.img_size) == 2 and args.img_size[0] != args.img_size[1]:
            raise CliError("--img-size: the accuracy datasets are square; give one side S")
        if len(args.img_size) > 2:
            raise CliError(f"--img-size takes S (or S S), got {args.img_size}")
        size = args.img_size[0]
        if size < MIN_IMG_SIZE:
            raise CliError(f"--img-size {size}: EdgeViT needs H, W ≥ {MIN_IMG_SIZE}")
    config = resolve_config(args.model)
    check_buildable(config, (size or 224, size or 224), PROXY_BATCH_SIZE)
    evaluator = AccuracyEvaluator(str(method), img_size=size, epochs=args.epochs,
                                  seed=args.seed, max_per_class=args.max_per_class,
                                  data=args.data, threads=args.threads, progress=True)
    result = evaluator.evaluate(config).to_dict()
    if not args.json:
        data = result["dataset"]
        where = (f"{data['name']} at {data['img_size']}×{data['img_size']}, "
                 f"{data['n_train']} train / {data['n_test']} held-out images")
        if method.kind == "train":
            d = result["details"]
            print(f"{config.name}: top-1 {result['accuracy']:.4f} ({d['correct']}/{d['n_test']} "
                  f"held out) after {d['steps']} steps in {result['seconds']:.1f} s; {where}")
        else:
            print(f"{config.name}: {method} = {result['accuracy']:.6g} in "
                  f"{result['seconds']:.2f} s; {where}")
    return result


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "accuracy", cmd_accuracy,
                    "accuracy of a model: a zero-cost proxy or short training")
    p.add_argument("--method", default="train:digits",
                   help="proxy:NAME[@DATA/SIZE] (synflow, jacob_cov, snip, grad_norm, params, "
                        "macs) | train:digits|fashion-mnist|PATH[@SIZE] (PATH: an ImageFolder) | "
                        "supernet:CKPT (default train:digits)")
    p.add_argument("--epochs", type=ranged_int(1, 1_000), default=None,
                   help="training epochs (default: the recipe's 3)")
    p.add_argument("--seed", type=SEED, default=0, help="init, batch-order and batch seed")
    p.add_argument("--max-per-class", type=COUNT, default=None, metavar="K",
                   help="train on at most K images per class (a quick slice)")
    p.add_argument("--threads", type=THREADS, default=1,
                   help="torch threads, 1..cores of this process (default 1)")
    p.add_argument("--data", default=None, metavar="digits|fashion-mnist|PATH",
                   help="where proxies take their mini-batch (default digits)")
    for action in p._actions:  # the shared --img-size help names 224 224; ours differs
        if action.dest == "img_size":
            action.help = "square input side S (default 32 for digits, 224 for a folder)"
            action.metavar = "S"
