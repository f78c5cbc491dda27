"""Does an accuracy method rank EdgeViT configs like standalone training does, on Fashion-MNIST?

The study of issue 16. Configs: the release's XXS, XS and S (points of the search space) plus
configs drawn uniformly from `DEFAULT_SPACE` with a seeded generator (duplicates skipped),
--configs in all (≥ 16 for the study). For each config, on Fashion-MNIST (Debian's
dataset-fashion-mnist) at --img-size (64 for the study: stage maps 16/8/4/2, so the sample rate
r of the first three stages still changes the computation; at 32×32 the last two stages are
2×2 and 1×1 maps and r cannot matter):

  * standalone training (`TrainRecipe`, --epochs) from scratch: held-out top-1 and seconds;
  * every zero-cost proxy (`analysis.accuracy.proxies`) on one training batch, with seconds;
  * with --supernet CKPT: the supernet-inherited top-1 (`evaluate_subnet`: BatchNorm
    recalibrated, the whole held-out split) and seconds;
  * exact MACs and parameters at the study's resolution (`analysis.cost`).

Resumable: every finished config is appended to the --json file at once (atomically), and with
--commit committed (`git commit -- <json>`), so the study can span sessions; a rerun skips the
configs already there, and refuses a file made with other settings. The XXS preset is also
trained with --noise-seeds extra seeds: the spread of its accuracy is the reference's noise
floor (the study's goal: the spread across configs ≥ 3× the XXS seed std).

Then Kendall τ-b and Spearman ρ of every method against standalone top-1 with 95 % bootstrap
intervals (`rank_stats.correlation_table`), the default method by the validated rule
(`analysis.accuracy.trust.validated_default`), the seconds per config and the study's total.

Run (the study): python benchmarks/supernet_study.py --supernet runs/supernet --commit
Smoke run (minutes): python benchmarks/supernet_study.py --smoke --json /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from analysis.accuracy import (  # noqa: E402  # noqa: E402
    DEFAULT_THREADS,
    PROXIES,  # noqa: E402
    TrainRecipe,
    correlation_table,  # noqa: E402
    evaluate_subnet,
    load_dataset,  # noqa: E402
    load_supernet,
    proxy_scores,  # noqa: E402
    train_and_evaluate,
    validated_default,  # noqa: E402
)
from analysis.cost.ops import model_cost  # noqa: E402
from analysis.cost.search_space import DEFAULT_SPACE  # noqa: E402
from edgevit import preset_config  # noqa: E402
from edgevit.config import EdgeViTConfig  # noqa: E402

STUDY_JSON = REPO_ROOT / "analysis" / "accuracy" / "data" / "supernet_study.json"
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
    """What makes two runs' rows comparable (a file with other settings is refused)."""
    return dict(data="fashion-mnist", img_size=args.img_size, epochs=args.epochs,
                max_per_class=args.max_per_class, seed=args.seed, threads=args.threads,
                supernet=str(args.supernet) if args.supernet else None,
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


def save(study: dict[str, Any], path: Path, commit: bool, message: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(study, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    if commit:
        subprocess.run(["git", "add", str(path)], cwd=REPO_ROOT, check=True)
        subprocess.run(["git", "commit", "-q", "-m", message, "--", str(path)], cwd=REPO_ROOT,
                       check=True)


def measure(config: EdgeViTConfig, dataset, args: argparse.Namespace, supernet) -> dict:
    """One config's row: standalone top-1, every proxy, the supernet's, MACs and params."""
    recipe = TrainRecipe(epochs=args.epochs)
    trained = train_and_evaluate(config, dataset, recipe, seed=args.seed, threads=args.threads,
                                 progress=True)
    proxies = proxy_scores(config, dataset, seed=args.seed, threads=args.threads)
    adapted = config.replace(num_classes=dataset.num_classes, in_chans=dataset.in_chans)
    cost = model_cost(adapted, (args.img_size, args.img_size))
    row = dict(name=config.name, search_params=DEFAULT_SPACE.encode(config),
               config=config.to_dict(), accuracy=trained.top1, train_seconds=trained.seconds,
               proxies={k: v[0] for k, v in proxies.items()},
               proxy_seconds={k: v[1] for k, v in proxies.items()},
               macs=int(cost.macs), params=int(cost.params))
    if supernet is not None:
        scored = evaluate_subnet(supernet, config, dataset, eval_images=args.eval_images,
                                 seed=args.seed)
        row.update(supernet=scored.top1, supernet_seconds=scored.seconds)
    return row


def summarize(study: dict[str, Any], resamples: int) -> dict[str, Any]:
    """τ/ρ of every method against standalone top-1, the default method, spreads, seconds."""
    rows = study["configs"]
    if len(rows) < 4:
        return dict(note=f"{len(rows)} configs: too few for rank statistics")
    accuracy = np.array([r["accuracy"] for r in rows])
    scores = {f"proxy:{n}": np.array([r["proxies"][n] for r in rows]) for n in PROXIES}
    seconds = {f"proxy:{n}": float(np.mean([r["proxy_seconds"][n] for r in rows]))
               for n in PROXIES}
    if all("supernet" in r for r in rows):
        scores["supernet"] = np.array([r["supernet"] for r in rows])
        seconds["supernet"] = float(np.mean([r["supernet_seconds"] for r in rows]))
    table = correlation_table(scores, accuracy, seconds, n_resamples=resamples)
    for row in table:
        row["dataset"], row["img_size"] = "fashion-mnist", study["settings"]["img_size"]
    noise = [r["accuracy"] for r in study["noise"]]
    xxs = [r["accuracy"] for r in rows if r["name"] == "edgevit_xxs"] + noise
    return dict(
        n=len(rows), table=table, default=validated_default(table).to_dict(),
        spread=float(accuracy.max() - accuracy.min()),
        xxs_seed_std=float(np.std(xxs, ddof=1)) if len(xxs) >= 2 else None,
        train_seconds_per_config=float(np.mean([r["train_seconds"] for r in rows])),
        total_seconds=float(sum(r["train_seconds"] + sum(r["proxy_seconds"].values())
                                + r.get("supernet_seconds", 0.0) for r in rows)
                            + sum(r["train_seconds"] for r in study["noise"])),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=16, help="configs in all")
    parser.add_argument("--seed", type=int, default=0, help="sampling, init and batch seed")
    parser.add_argument("--epochs", type=int, default=10, help="standalone training epochs")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--max-per-class", type=int, default=None,
                        help="train on at most K images per class (smoke runs)")
    parser.add_argument("--eval-images", type=int, default=None,
                        help="held-out images for the supernet's score (default all)")
    parser.add_argument("--noise-seeds", type=int, default=3,
                        help="seeds of the XXS preset in all (≥ 3 for the study)")
    parser.add_argument("--supernet", type=Path, default=None, help="supernet checkpoint")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--json", type=Path, default=STUDY_JSON, help="the study's JSON")
    parser.add_argument("--commit", action="store_true",
                        help="git-commit the JSON after every config")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny settings (4 configs, 1 epoch, 20 images/class, 32×32)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.configs, args.epochs, args.max_per_class, args.img_size = 4, 1, 20, 32
        args.noise_seeds, args.resamples = 2, 200
        args.eval_images = args.eval_images or 500
    study = load_or_start(args.json, settings_of(args))
    dataset = load_dataset("fashion-mnist", args.img_size, max_per_class=args.max_per_class)
    supernet = None
    if args.supernet:
        supernet, record = load_supernet(args.supernet)
        if (record["data"]["source"], record["data"]["img_size"]) != ("fashion-mnist",
                                                                      args.img_size):
            raise SystemExit(f"{args.supernet} was trained on {record['data']['source']} at "
                             f"{record['data']['img_size']}×; the study needs fashion-mnist at "
                             f"{args.img_size}×")
    done = {r["name"] for r in study["configs"]}
    for config in study_configs(args.configs, args.seed):
        if config.name in done:
            continue
        start = time.perf_counter()
        row = measure(config, dataset, args, supernet)
        study["configs"].append(row)
        save(study, args.json, args.commit,
             f"supernet study: {config.name} (top-1 {row['accuracy']:.4f})")
        print(f"{config.name}: standalone {row['accuracy']:.4f}"
              + (f", supernet {row['supernet']:.4f}" if "supernet" in row else "")
              + f" in {time.perf_counter() - start:.0f} s", flush=True)
    xxs = preset_config("edgevit_xxs")
    for seed in range(args.seed + 1, args.seed + args.noise_seeds):
        if any(r["seed"] == seed for r in study["noise"]):
            continue
        trained = train_and_evaluate(xxs, dataset, TrainRecipe(epochs=args.epochs), seed=seed,
                                     threads=args.threads, progress=True)
        study["noise"].append(dict(seed=seed, accuracy=trained.top1,
                                   train_seconds=trained.seconds))
        save(study, args.json, args.commit, f"supernet study: XXS seed {seed}")
    study["summary"] = summarize(study, args.resamples)
    save(study, args.json, args.commit, "supernet study: summary")
    summary = study["summary"]
    if "table" in summary:
        for row in summary["table"]:
            lo, hi = row["tau_ci"]
            print(f"{row['method']:18s} τ {row['tau']:+.2f} [{lo:+.2f}, {hi:+.2f}]  "
                  f"{row['seconds']:.3g} s/config")
        print(f"default: {summary['default']['label']}")
        print(f"spread of standalone top-1 {summary['spread']:.4f}; XXS seed std "
              f"{summary['xxs_seed_std']}; study {summary['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
