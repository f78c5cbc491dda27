"""How far can a zero-cost proxy stand in for short training? Measured side by side in one run.

Configs: the release's XXS, XS and S (as points of the search space, `DEFAULT_SPACE.encode`)
plus configs sampled uniformly from `DEFAULT_SPACE` with a seeded generator (duplicates
skipped). For each config, on the bundled digits at 32×32 (one channel, 10 classes):

  * every proxy of `analysis.accuracy.proxies` on one 64-image training batch, each with its
    seconds;
  * short training with `TrainRecipe` (epochs from --epochs), held-out top-1 and seconds.

Then Kendall τ-b and Spearman ρ of each proxy against the trained accuracy, with 95 % percentile
bootstrap intervals over configs, and seconds per config. The XXS preset is also trained with
--noise-seeds extra seeds: the spread of its accuracy is the noise floor of the reference.

Writes every row to results/accuracy_proxies.csv as it goes (results/ is not committed) and, at
the end, the committed summary analysis/accuracy/data/accuracy_proxy_study.json that notebook
05 loads:

  created, torch, threads, recipe, dataset (sizes, image side), proxy_batch_size, seed,
  proxies (names), configs: [{name, search_params, config, accuracy, train_seconds, proxies,
  proxy_seconds, init_seconds}], noise: {config, seeds, accuracy}, table (τ/ρ rows as
  `rank_stats.correlation_table` gives them), recommended (the `cheapest_comparable` row).

Run: python benchmarks/accuracy_proxies.py (defaults = the committed run: 13 min
with one thread on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from analysis.accuracy import (
    DEFAULT_THREADS,
    PROXIES,
    PROXY_BATCH_SIZE,
    STUDY_JSON,
    TrainRecipe,
    build_model,
    cheapest_comparable,
    correlation_table,
    load_digits_dataset,
    study_arrays,
    train_and_evaluate,
)
from analysis.cost import DEFAULT_SPACE
from analysis.runtime import torch_threads
from edgevit.config import PRESETS, EdgeViTConfig

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_CSV = REPO_ROOT / "results" / "accuracy_proxies.csv"


def study_configs(n: int, seed: int) -> list[tuple[EdgeViTConfig, dict[str, Any]]]:
    """The three presets, then n − 3 distinct uniform samples of the space: (config, params)."""
    out, seen = [], set()
    for name, preset in PRESETS.items():
        params = DEFAULT_SPACE.encode(preset)
        out.append((DEFAULT_SPACE.decode(params).replace(name=name), params))
        seen.add(out[-1][0].to_json())
    rng = np.random.default_rng(seed)
    while len(out) < n:
        params = DEFAULT_SPACE.sample(rng)
        config = DEFAULT_SPACE.decode(params)
        if config.to_json() not in seen:
            seen.add(config.to_json())
            out.append((config.replace(name=f"sample_{len(out) - 3:02d}"), params))
    return out


def measure(config: EdgeViTConfig, dataset, recipe: TrainRecipe, seed: int,
            threads: int) -> dict[str, Any]:
    """Proxies (each timed alone) and short training of one config."""
    from analysis.accuracy import compute_proxy, first_batch

    with torch_threads(threads):
        images, labels = first_batch(dataset.train, PROXY_BATCH_SIZE, seed)
        start = time.perf_counter()
        model = build_model(config, dataset, seed)
        init_seconds = time.perf_counter() - start
        scores, seconds = {}, {}
        for name in PROXIES:
            start = time.perf_counter()
            scores[name] = compute_proxy(name, model, images, labels)
            seconds[name] = time.perf_counter() - start
    trained = train_and_evaluate(config, dataset, recipe, seed=seed, threads=threads,
                                 progress=True)
    return dict(accuracy=trained.top1, train_seconds=trained.seconds, proxies=scores,
                proxy_seconds=seconds, init_seconds=init_seconds)


def print_table(table: list[dict[str, Any]], train_seconds: float) -> None:
    print(f"\n{'method':10s} {'tau':>6s} {'95% CI':>16s} {'rho':>6s} {'95% CI':>16s} "
          f"{'s/config':>9s}")
    for r in table:
        print(f"{r['method']:10s} {r['tau']:6.3f} [{r['tau_ci'][0]:6.3f}, {r['tau_ci'][1]:6.3f}] "
              f"{r['rho']:6.3f} [{r['rho_ci'][0]:6.3f}, {r['rho_ci'][1]:6.3f}] "
              f"{r['seconds']:9.3f}")
    print(f"{'train':10s} {'(reference)':>47s} {train_seconds:9.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=36, help="configs in all (≥ 4)")
    parser.add_argument("--seed", type=int, default=0, help="sampling, init and batch seed")
    parser.add_argument("--epochs", type=int, default=TrainRecipe.epochs,
                        help="training epochs per config (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--max-per-class", type=int, default=None,
                        help="train on at most this many images per class")
    parser.add_argument("--noise-seeds", type=int, default=3,
                        help="extra seeds the XXS preset is trained with")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--json", type=Path, default=STUDY_JSON, help="summary JSON to write")
    args = parser.parse_args(argv)
    if args.configs < 4:
        parser.error("--configs must be ≥ 4")

    recipe = TrainRecipe(epochs=args.epochs)
    dataset = load_digits_dataset(args.img_size, max_per_class=args.max_per_class)
    print(f"digits: {dataset.describe()}; recipe {recipe.to_dict()}; "
          f"{args.threads} torch thread(s)", flush=True)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    names = list(PROXIES)
    with args.csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "accuracy", "train_seconds", "init_seconds", *names,
                         *[f"{n}_seconds" for n in names], "config"])
        for config, params in tqdm(study_configs(args.configs, args.seed), desc="configs",
                                   unit="config"):
            m = measure(config, dataset, recipe, args.seed, args.threads)
            rows.append(dict(name=config.name, search_params=params,
                             config=config.identity_dict(), **m))
            writer.writerow([config.name, m["accuracy"], m["train_seconds"], m["init_seconds"],
                             *[m["proxies"][n] for n in names],
                             *[m["proxy_seconds"][n] for n in names], config.to_json()])
            handle.flush()
            tqdm.write(f"{config.name}: top-1 {m['accuracy']:.3f} in "
                       f"{m['train_seconds']:.1f} s; proxies "
                       f"{sum(m['proxy_seconds'].values()):.1f} s")

    xxs = PRESETS["edgevit_xxs"]
    noise_seeds = [args.seed + k for k in range(args.noise_seeds + 1)]
    noise = [rows[0]["accuracy"]] + [
        train_and_evaluate(xxs, dataset, recipe, seed=s, threads=args.threads,
                           progress=True).top1
        for s in tqdm(noise_seeds[1:], desc="noise seeds", unit="run")
    ]
    study: dict[str, Any] = dict(
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        torch=torch.__version__, threads=args.threads, recipe=recipe.to_dict(),
        dataset=dataset.describe(), proxy_batch_size=PROXY_BATCH_SIZE, seed=args.seed,
        proxies=names, configs=rows,
        noise=dict(config="edgevit_xxs", seeds=noise_seeds, accuracy=noise),
    )
    accuracy, scores, seconds = study_arrays(study)
    table = correlation_table(scores, accuracy, seconds, n_resamples=args.resamples,
                              seed=args.seed)
    study["table"] = table
    study["recommended"] = cheapest_comparable(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(study, indent=1) + "\n")

    print_table(table, seconds["train"])
    print(f"\naccuracy over configs: {accuracy.min():.3f} .. {accuracy.max():.3f} "
          f"(median {np.median(accuracy):.3f}); XXS over seeds {noise_seeds}: "
          f"{', '.join(f'{a:.3f}' for a in noise)}")
    print(f"recommended default: proxy:{study['recommended']['method']} "
          f"(cheapest with τ within the best method's interval)")
    print(f"wrote {args.csv} and {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
