"""Does an accuracy method rank EdgeViT configs like standalone training does, on Fashion-MNIST?

The study of issue 16. Configs: the release's XXS, XS and S (points of the search space) plus
configs drawn uniformly from `DEFAULT_SPACE` with a seeded generator (duplicates skipped),
--configs in all (≥ 16 for the study). For each config, on Fashion-MNIST (Debian's
dataset-fashion-mnist) at --img-size (64 for the study: stage maps 16/8/4/2, so the sample rate
r of the first three stages still changes the computation; at 32×32 the last two stages are
2×2 and 1×1 maps and r cannot matter):

  * standalone training (`TrainRecipe`, --epochs) from scratch: held-out top-1 after every
    epoch (the curve says whether the ranking has settled) and seconds;
  * every zero-cost proxy (`analysis.accuracy.proxies`) on one training batch, with seconds;
  * exact MACs and parameters at the study's resolution (`analysis.cost`);
  * with --supernet CKPT, in a pass over the rows that lack it (or all, --rescore-supernet):
    the supernet-inherited top-1 (`evaluate_subnet`: BatchNorm recalibrated on the supernet's
    own training data) and seconds. The supernet is not part of the standalone settings, so it
    can be trained after (or beside) the standalone rows and scored at the end.

Resumable and parallel: the work items (every config, then the XXS preset's extra
--noise-seeds, whose spread is the reference's noise floor: the goal is a spread across configs
≥ 3× the XXS seed std) are trained one at a time, and each finished item is merged into the
--json file under a file lock, atomically (with --commit also committed); `--shard K/N` takes
items i with i % N == K, so N processes on N cores fill one file. A rerun skips what is there
and refuses a file made with other settings; `--limit M` stops after M items, and `--only
NAME,...` trains just those configs in that order (the shortest first, to finish the most
before a session ends).

When every item is there: Kendall τ-b and Spearman ρ of every method (and of the standalone
ranking after fewer epochs) against the final standalone top-1, with 95 % bootstrap intervals
(`rank_stats.correlation_table`), the default method by the validated rule
(`analysis.accuracy.trust.validated_default`), the seconds per config and the study's total.

Run (one process per core, then the supernet column):
    python benchmarks/supernet_study.py --shard 0/2 --commit &
    python benchmarks/supernet_study.py --shard 1/2 --commit
    python benchmarks/supernet_study.py --supernet runs/supernet --commit  (trains nothing)
Smoke run (a minute): python benchmarks/supernet_study.py --smoke --json /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from analysis.accuracy import (  # noqa: E402
    DEFAULT_THREADS,
    TrainRecipe,
    evaluate_subnet,
    fashion_table,
    load_fashion_mnist,
    load_supernet,
    proxy_scores,
    supernet_fingerprint,
    train_and_evaluate,
    validated_default,
)
from analysis.accuracy.supernet import CALIB_IMAGES, EVAL_IMAGES, supernet_dataset  # noqa: E402
from analysis.cost.ops import model_cost  # noqa: E402
from analysis.cost.search_space import DEFAULT_SPACE  # noqa: E402
from edgevit import preset_config  # noqa: E402
from edgevit.config import EdgeViTConfig  # noqa: E402

STUDY_JSON = REPO_ROOT / "analysis" / "accuracy" / "data" / "supernet_study.json"
EVAL_PREFIXES = (250, 500, 1000, 2000, 5000)  # held-out images: the supernet_prefix columns
PRESETS = ("edgevit_xxs", "edgevit_xs", "edgevit_s")


def study_configs(n: int, seed: int) -> list[EdgeViTConfig]:
    """The presets, then uniformly drawn points of the space (no duplicates), n in all."""
    configs = [preset_config(name) for name in PRESETS][:n]
    seen = {c.replace(name="x").to_json() for c in configs}
    rng = np.random.default_rng(seed)
    while len(configs) < n:
        params = DEFAULT_SPACE.sample(rng)
        config = DEFAULT_SPACE.decode(params)
        key = config.replace(name="x").to_json()
        if key not in seen:
            seen.add(key)
            configs.append(config.replace(name=f"sample_{len(configs) - len(PRESETS):02d}"))
    return configs


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs' standalone rows comparable (a file with other settings is refused).
    The supernet is not among them: its column is filled in (or rescored) by a later pass."""
    return dict(data="fashion-mnist", img_size=args.img_size, epochs=args.epochs,
                max_per_class=args.max_per_class, max_test=args.max_test,
                curve_images=args.curve_images, seed=args.seed, threads=args.threads,
                recipe=TrainRecipe(epochs=args.epochs).to_dict())


def load_or_start(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    if path.exists():
        study = json.loads(path.read_text())
        if study["settings"] != settings:
            differ = sorted(k for k in settings if study["settings"].get(k) != settings[k])
            raise SystemExit(f"{path} holds a study with other settings ({', '.join(differ)}); "
                             "use the same ones to resume, or another --json")
        return study
    return dict(created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                torch=torch.__version__, settings=settings, configs=[], noise=[])


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive lock of `path`'s study across processes (shards write one file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update(path: Path, settings: dict[str, Any], change: Callable[[dict[str, Any]], None],
           commit: bool, message: str) -> dict[str, Any]:
    """Reload the study under the lock, apply `change`, write it atomically (and commit)."""
    with locked(path):
        study = load_or_start(path, settings)
        change(study)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(study, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
        if commit:
            git_commit(path, message)
    return study


def git_commit(path: Path, message: str, tries: int = 5) -> None:
    """Commit `path` alone; retried while another git command holds the index lock."""
    for attempt in range(tries):
        added = subprocess.run(["git", "add", str(path)], cwd=REPO_ROOT, capture_output=True)
        done = added.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", message, "--", str(path)], cwd=REPO_ROOT,
            capture_output=True).returncode == 0
        if done:
            return
        time.sleep(2.0 * (attempt + 1))
    print(f"warning: could not commit {path} ({message}); it is saved", file=sys.stderr)


def supernet_identity(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """What the supernet column was scored with: the checkpoint's path (relative to the
    repository when inside it) and its fingerprint (`supernet_fingerprint`)."""
    path = path.resolve()
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    return dict(path=str(shown), fingerprint=supernet_fingerprint(record))


def standalone_row(config: EdgeViTConfig, dataset, args: argparse.Namespace) -> dict:
    """One config's row: standalone top-1 (and its curve over epochs), every proxy, MACs and
    params at the study's resolution."""
    recipe = TrainRecipe(epochs=args.epochs)
    trained = train_and_evaluate(config, dataset, recipe, seed=args.seed, threads=args.threads,
                                 progress=True,
                                 curve_images=args.curve_images)
    proxies = proxy_scores(config, dataset, seed=args.seed, threads=args.threads)
    adapted = config.replace(num_classes=dataset.num_classes, in_chans=dataset.in_chans)
    cost = model_cost(adapted, (args.img_size, args.img_size))
    return dict(name=config.name, search_params=DEFAULT_SPACE.encode(config),
                config=config.to_dict(), accuracy=trained.top1, curve=list(trained.curve),
                train_seconds=trained.seconds, final_loss=trained.final_loss,
                proxies={k: v[0] for k, v in proxies.items()},
                proxy_seconds={k: v[1] for k, v in proxies.items()},
                macs=int(cost.macs), params=int(cost.params))


def summarize(study: dict[str, Any], resamples: int) -> dict[str, Any]:
    """τ/ρ of every method against standalone top-1, the default method, spreads, seconds."""
    rows = study["configs"]
    if len(rows) < 4:
        return dict(note=f"{len(rows)} configs: too few for rank statistics")
    epochs = study["settings"]["epochs"]
    extra = {}  # the ranking after fewer epochs of the same schedule (not a search method)
    if all(len(r.get("curve", ())) == epochs for r in rows):
        train_seconds = float(np.mean([r["train_seconds"] for r in rows]))
        extra = {f"standalone after epoch {e}": (np.array([r["curve"][e - 1] for r in rows]),
                                                 train_seconds * e / epochs)
                 for e in range(1, epochs)}
    if all("supernet_prefix" in r for r in rows):  # the supernet on fewer held-out images
        for m in rows[0]["supernet_prefix"]:  # seconds not timed per prefix: NaN
            if all(m in r["supernet_prefix"] for r in rows):
                extra[f"supernet on the first {m} held-out images"] = (
                    np.array([r["supernet_prefix"][m] for r in rows]), float("nan"))
    table = fashion_table(study, n_resamples=resamples, extra=extra)
    accuracy = np.array([r["accuracy"] for r in rows])
    methods = [row for row in table if row["method"].startswith(("proxy:", "supernet:"))]
    noise = [r["accuracy"] for r in study["noise"]]
    xxs = [r["accuracy"] for r in rows if r["name"] == "edgevit_xxs"] + noise
    seed_std = float(np.std(xxs, ddof=1)) if len(xxs) >= 2 else None
    spread = float(accuracy.max() - accuracy.min())
    return dict(
        n=len(rows), table=table, default=validated_default(methods).to_dict(),
        spread=spread, xxs_seeds=len(xxs), xxs_seed_std=seed_std,
        spread_over_seed_std=spread / seed_std if seed_std else None,
        train_seconds_per_config=float(np.mean([r["train_seconds"] for r in rows])),
        total_seconds=float(sum(r["train_seconds"] + sum(r["proxy_seconds"].values())
                                + r.get("supernet_seconds", 0.0) for r in rows)
                            + sum(r["train_seconds"] for r in study["noise"])),
    )


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected K/N, e.g. 0/2") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: needs 0 ≤ K < N")
    return k, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=16, help="configs in all")
    parser.add_argument("--seed", type=int, default=0, help="sampling, init and batch seed")
    parser.add_argument("--epochs", type=int, default=10, help="standalone training epochs")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--max-per-class", type=int, default=1000,
                        help="train on K images per class (default 1000: 10,000 images)")
    parser.add_argument("--max-test", type=int, default=None,
                        help="score standalone training on the first N held-out images "
                             "(default all 10,000)")
    parser.add_argument("--curve-images", type=int, default=2000,
                        help="held-out images scored after every epoch (the learning curve)")
    parser.add_argument("--eval-images", type=int, default=EVAL_IMAGES,
                        help="held-out images of the supernet column, as a search scores "
                             f"(default {EVAL_IMAGES}; the supernet_full column uses all)")
    parser.add_argument("--noise-seeds", type=int, default=3,
                        help="seeds of the XXS preset in all (≥ 3 for the study)")
    parser.add_argument("--supernet", type=Path, default=None,
                        help="supernet checkpoint: fills the supernet columns of every row "
                             "there (and trains no standalone config unless --limit says so)")
    parser.add_argument("--rescore-supernet", action="store_true",
                        help="replace a supernet column scored with another checkpoint")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--json", type=Path, default=STUDY_JSON, help="the study's JSON")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="K/N",
                        help="train only work items i with i %% N == K (run N processes, one "
                             "per core, on one --json)")
    parser.add_argument("--noise-first", action="store_true",
                        help="train the XXS seeds before the configs (the work order only)")
    parser.add_argument("--only", type=lambda text: text.split(","), default=None,
                        metavar="NAME[,NAME...]",
                        help="train only these configs, in this order (e.g. the shortest "
                             "first, to finish the most before a session ends); the names "
                             "are the study's (edgevit_xxs, sample_07, ...); with "
                             "--supernet, score these rows again (say, rows first timed on "
                             "a busy machine)")
    parser.add_argument("--limit", type=int, default=None,
                        help="train at most this many work items in this run, then stop")
    parser.add_argument("--commit", action="store_true",
                        help="git-commit the JSON after every config")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny settings (4 configs, 2 epochs, 20 images/class, 300 held "
                             "out, 32×32)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.configs, args.epochs, args.max_per_class, args.img_size = 4, 2, 20, 32
        args.noise_seeds, args.resamples, args.max_test, args.curve_images = 2, 200, 300, 100
        args.eval_images = min(args.eval_images, 300)
    if args.supernet is not None and args.limit is None:
        args.limit = 0  # a supernet pass scores the rows there; it trains nothing
    settings = settings_of(args)
    update(args.json, settings, lambda study: None, commit=False, message="")  # refuse early
    dataset = load_fashion_mnist(args.img_size, max_per_class=args.max_per_class,
                                 max_test=args.max_test)

    xxs = preset_config("edgevit_xxs")
    work: list[tuple[str, EdgeViTConfig, int]] = (
        [("config", c, args.seed) for c in study_configs(args.configs, args.seed)]
        + [("noise", xxs, s) for s in range(args.seed + 1, args.seed + args.noise_seeds)])
    if args.noise_first:
        work.sort(key=lambda item: item[0] != "noise")
    every_item = work
    if args.only is not None:
        by_name = {item[1].name: item for item in work if item[0] == "config"}
        unknown = [name for name in args.only if name not in by_name]
        if unknown:
            raise SystemExit(f"--only: no config named {', '.join(unknown)} in this study "
                             f"(it has {', '.join(by_name)})")
        work = [by_name[name] for name in args.only]
    shard, shards = args.shard
    trained = 0
    for i, (kind, config, seed) in enumerate(work):
        if i % shards != shard or (args.limit is not None and trained >= args.limit):
            continue
        with locked(args.json):
            study = load_or_start(args.json, settings)
        if (kind == "config" and any(r["name"] == config.name for r in study["configs"])) or (
                kind == "noise" and any(r["seed"] == seed for r in study["noise"])):
            continue
        start = time.perf_counter()
        if kind == "config":
            row = standalone_row(config, dataset, args)
            update(args.json, settings, lambda st, row=row: st["configs"].append(row),
                   args.commit, f"supernet study: {config.name} (top-1 {row['accuracy']:.4f})")
            print(f"{config.name}: standalone {row['accuracy']:.4f} "
                  f"(curve {' '.join(f'{a:.3f}' for a in row['curve'])}) "
                  f"in {time.perf_counter() - start:.0f} s", flush=True)
        else:
            result = train_and_evaluate(config, dataset, TrainRecipe(epochs=args.epochs),
                                        seed=seed, threads=args.threads,
                                        curve_images=args.curve_images)
            row = dict(seed=seed, accuracy=result.top1, curve=list(result.curve),
                       train_seconds=result.seconds)
            update(args.json, settings, lambda st, row=row: st["noise"].append(row),
                   args.commit, f"supernet study: XXS seed {seed} (top-1 {result.top1:.4f})")
            print(f"XXS seed {seed}: {result.top1:.4f} in {result.seconds:.0f} s", flush=True)
        trained += 1

    if args.supernet:
        score_supernet(args, settings)
    study = update(args.json, settings, lambda st: None, commit=False, message="")
    missing = [c.name for kind, c, _ in every_item if kind == "config"
               and not any(r["name"] == c.name for r in study["configs"])]
    missing += [f"XXS seed {s}" for kind, _, s in every_item if kind == "noise"
                and not any(r["seed"] == s for r in study["noise"])]
    if missing:
        print(f"{len(missing)} work item(s) still to train: {', '.join(missing)}; rerun to go on")
        return 0

    def add_summary(st: dict[str, Any]) -> None:
        st["summary"] = summarize(st, args.resamples)

    study = update(args.json, settings, add_summary, args.commit, "supernet study: summary")
    summary = study["summary"]
    if "table" in summary:
        for row in summary["table"]:
            lo, hi = row["tau_ci"]
            print(f"{row['method']:28s} τ {row['tau']:+.2f} [{lo:+.2f}, {hi:+.2f}]  "
                  f"{row['seconds']:.3g} s/config")
        print(f"default: {summary['default']['label']}")
        print(f"spread of standalone top-1 {summary['spread']:.4f}; XXS seed std "
              f"{summary['xxs_seed_std']}; study {summary['total_seconds']:.0f} s")
    return 0


def score_supernet(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Fill the supernet columns of every row that lacks them: `supernet`, the subnet's top-1
    as a search's `supernet:CKPT` scores it (BatchNorm recalibrated on CALIB_IMAGES training
    images, top-1 on the first --eval-images held-out ones, default EVAL_IMAGES), with its
    seconds; and `supernet_full`, top-1 on the study's whole held-out set (--max-test), with
    `supernet_prefix`, top-1 on its first M images for each M of EVAL_PREFIXES, from the same
    pass (how the ranking degrades as a search evaluates fewer images, and faster). Rows
    named by --only are scored again even when they have the column."""
    supernet, record = load_supernet(args.supernet)
    if (record["data"]["source"], record["data"]["img_size"]) != ("fashion-mnist",
                                                                  args.img_size):
        raise SystemExit(f"{args.supernet} was trained on {record['data']['source']} at "
                         f"{record['data']['img_size']}×; the study needs fashion-mnist at "
                         f"{args.img_size}×")
    identity = dict(supernet_identity(record, args.supernet), calib_images=CALIB_IMAGES,
                    eval_images=args.eval_images)
    with locked(args.json):
        study = load_or_start(args.json, settings)
    old = study.get("supernet")
    if old is not None and old != identity and not args.rescore_supernet:
        raise SystemExit(f"{args.json}: its supernet column was scored with {old['path']} at "
                         f"step {old['fingerprint']['step']}; pass --rescore-supernet to "
                         "replace it")
    rescore = old != identity
    dataset = supernet_dataset(record)
    scored = {}
    again = set(args.only or ())
    for row in study["configs"]:
        if rescore or "supernet" not in row or row["name"] in again:
            config = EdgeViTConfig.from_dict(row["config"])
            quick = evaluate_subnet(supernet, config, dataset, eval_images=args.eval_images,
                                    seed=args.seed)
            full = evaluate_subnet(supernet, config, dataset, eval_images=args.max_test,
                                   seed=args.seed, prefixes=EVAL_PREFIXES)
            scored[row["name"]] = (quick.top1, quick.seconds, full.top1,
                                   {str(m): c / m for m, c in full.prefix_correct.items()})
            print(f"{row['name']}: supernet {quick.top1:.4f} on {quick.n_test} images "
                  f"({quick.seconds:.1f} s), {full.top1:.4f} on all {full.n_test}; "
                  f"standalone {row['accuracy']:.4f}", flush=True)

    def fill(st: dict[str, Any]) -> None:
        st["supernet"] = identity
        for row in st["configs"]:
            if row["name"] in scored:
                (row["supernet"], row["supernet_seconds"], row["supernet_full"],
                 row["supernet_prefix"]) = scored[row["name"]]

    update(args.json, settings, fill, args.commit,
           f"supernet study: supernet column from step {identity['fingerprint']['step']}")


if __name__ == "__main__":
    raise SystemExit(main())
