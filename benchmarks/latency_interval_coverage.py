"""Does the features-GP's 90 % interval cover 85–95 % of held-out configs? (issue 15 goal)

One held-out set of 20 configs says little: at a true 90 %, its coverage scatters by ±7 points
(binomial standard deviation) by chance alone. This scores the interval offline, without timing,
on the committed calibrations of this CPU (`analysis/latency/data/latency_cpu_{1thread,
2threads}.csv`, 260 configs each): the committed split (200 training configs; 60 held out,
timed in a sweep of their own before the training configs) and --splits random 200/60 splits of
the same 260 configs. Each split fits the features-GP and its conformal interval
(`FeatureModel.fit_interval_features`, 5-fold cross-validation of the training configs) and
reports the share of held-out measurements inside their interval, for the GP-scaled interval
(prediction × exp(±q·s), s the GP's predictive std) and a constant-width one (s = 1).

    python benchmarks/latency_interval_coverage.py [--splits 20]

Writes benchmarks/latency_interval_coverage.json (`--out` for trial runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.latency import COMMITTED_CALIBRATIONS, FeatureModel
from analysis.latency.predictors import _configs_of, conformal_halfwidth

OUT = Path(__file__).resolve().parent / "latency_interval_coverage.json"
HELD_OUT = 60


def coverages(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
    """Held-out coverage of the GP-scaled and of a constant-width conformal interval."""
    predictor = FeatureModel().fit(train)
    features = predictor.features_of(_configs_of(train))
    latency = train["latency_ms"].to_numpy()
    predictor.fit_interval_features(features, latency)

    def held_out(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fitted = FeatureModel(kernel_theta=predictor.kernel_theta)
        fitted.fit_features(features[~out], latency[~out])
        return fitted._predict_features(features[out]), np.ones(int(out.sum()))

    constant = conformal_halfwidth(latency, held_out)
    configs, measured = _configs_of(test), test["latency_ms"].to_numpy()
    low, high = predictor.interval(configs)
    predicted = predictor.predict(configs)
    return {"gp_scaled": float(((low <= measured) & (measured <= high)).mean()),
            "constant_width": float(((predicted * np.exp(-constant) <= measured)
                                     & (measured <= predicted * np.exp(constant))).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.monotonic()
    result: dict = {"splits": args.splits, "held_out": HELD_OUT, "by_threads": {}}
    for threads, path in COMMITTED_CALIBRATIONS.items():
        frame = pd.read_csv(path)
        rows = frame[frame["split"].isin(["train", "test"])].reset_index(drop=True)
        committed = coverages(rows[rows["split"] == "train"], rows[rows["split"] == "test"])
        draws = []
        for seed in range(args.splits):
            order = np.random.default_rng(seed).permutation(len(rows))
            draws.append(coverages(rows.iloc[order[HELD_OUT:]], rows.iloc[order[:HELD_OUT]]))
        frame = pd.DataFrame(draws)
        summary = {name: {"mean": float(frame[name].mean()), "min": float(frame[name].min()),
                          "max": float(frame[name].max()),
                          "share_of_splits_in_85_95": float(frame[name].between(0.85, 0.95)
                                                            .mean())}
                   for name in frame}
        result["by_threads"][str(threads)] = {"committed_split": committed,
                                              "random_splits": summary,
                                              "per_split": draws}
        print(f"{threads} thread(s): committed split GP {committed['gp_scaled']:.0%}, constant "
              f"{committed['constant_width']:.0%}; {args.splits} random splits:")
        for name, s in summary.items():
            print(f"  {name:15s} mean {s['mean']:.1%} [{s['min']:.0%}, {s['max']:.0%}], "
                  f"in 85–95 % for {s['share_of_splits_in_85_95']:.0%} of splits")
    result["seconds"] = time.monotonic() - started
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
