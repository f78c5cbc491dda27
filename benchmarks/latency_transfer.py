"""Transfer of a latency predictor to new settings from few measurements, scored offline.

Issue 15's transfer goal (from 20 measurements of a new setting: Kendall τ ≥ 0.9, ≥ 80 % within
±10 %, better than from scratch), on the committed calibrations of this CPU
(`analysis/latency/data/latency_cpu_{1thread,2threads}.csv`: the same 260 configs timed at 1
and at 2 threads, interleaved with the XXS reference, 200 training + 60 held-out configs, 20
timed twice). No timing happens here, so the figures do not depend on the machine's load now,
and many draws of the few adaptation configs give a distribution instead of one lucky draw.

For each direction (1 → 2 threads and 2 → 1) the prior is the features-GP fitted on the source
setting's 200 training configs; each draw picks --adapt configs of the target's training rows
at random; the candidates fitted on them:

  * KindScaledTransfer(prior): one scale per op kind, shrunk toward a common one
    (`analysis.latency.transfer`);
  * TransferModel(prior): e^a · base^b;
  * a features-GP and a MACs line from scratch;

are scored on the target's 60 held-out configs (within ±10 %, Kendall τ, MAPE; the interval's
coverage where the predictor has one). Beside them: the noise floor (the target's 20 configs
timed twice) and a features-GP fitted on all 200 of the target's training configs (what a full
calibration of the new setting reaches).

    python benchmarks/latency_transfer.py [--adapt 10 20] [--draws 50]

Writes benchmarks/latency_transfer.json (`--out` for trial runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.latency import (
    COMMITTED_CALIBRATIONS,
    FeatureModel,
    KindScaledTransfer,
    MacsLinear,
    TransferModel,
    score,
)
from analysis.latency.calibration import fit_all, recorded_settings

OUT = Path(__file__).resolve().parent / "latency_transfer.json"
GOAL = dict(within_10=0.8, kendall_tau=0.9)


def noise_floor(frame: pd.DataFrame) -> dict[str, float]:
    """The configs timed twice: the repeat against the first time."""
    repeat = frame[frame["split"] == "repeat"]
    first = frame[frame["split"].isin(["train", "test"])].drop_duplicates("config_json")
    first = first.set_index("config_json").loc[repeat["config_json"], "latency_ms"]
    return score(repeat["latency_ms"].to_numpy(), first.to_numpy()).as_dict()


def candidates(prior: FeatureModel, rows: pd.DataFrame) -> dict:
    return {
        "per-kind transfer": KindScaledTransfer(prior).fit(rows),
        "power-law transfer": TransferModel(prior).fit(rows),
        "features_gp from scratch": FeatureModel().fit(rows),
        "macs_linear from scratch": MacsLinear().fit(rows),
    }


def direction(source: int, target: int, adapt: list[int], draws: int, seed: int) -> dict:
    src = pd.read_csv(COMMITTED_CALIBRATIONS[source])
    tgt = pd.read_csv(COMMITTED_CALIBRATIONS[target])
    prior = fit_all(src[src["split"] == "train"], None,
                    recorded_settings(COMMITTED_CALIBRATIONS[source]))["features_gp"]
    pool = tgt[tgt["split"] == "train"].reset_index(drop=True)
    held = tgt[tgt["split"] == "test"]
    from analysis.latency.predictors import _configs_of

    held_configs = _configs_of(held)
    measured = held["latency_ms"].to_numpy()
    ceiling = FeatureModel().fit(pool)  # all 200 training configs of the target setting
    out = {"source_threads": source, "target_threads": target,
           "noise_floor": noise_floor(tgt), "held_out": len(held),
           "features_gp_on_all_target_configs": score(ceiling.predict(held_configs),
                                                      measured).as_dict(),
           "by_adapt": {}}
    rng = np.random.default_rng(seed)
    for k in adapt:
        per_draw: dict[str, list[dict]] = {}
        for _ in range(draws):
            rows = pool.iloc[rng.choice(len(pool), size=k, replace=False)]
            for name, predictor in candidates(prior, rows).items():
                interval = (predictor.interval(held_configs, check=False)
                            if np.isfinite(predictor.interval_log_halfwidth) else None)
                per_draw.setdefault(name, []).append(score(
                    predictor.predict(held_configs, check=False), measured, interval).as_dict())
        summary = {}
        for name, scores in per_draw.items():
            frame = pd.DataFrame(scores)
            summary[name] = {
                metric: {"median": float(frame[metric].median()),
                         "p10": float(frame[metric].quantile(0.1)),
                         "p90": float(frame[metric].quantile(0.9))}
                for metric in ("within_10", "kendall_tau", "mape", "coverage")
                if metric in frame and frame[metric].notna().all()}
            summary[name]["share_of_draws_meeting_goal"] = float(
                ((frame["within_10"] >= GOAL["within_10"])
                 & (frame["kendall_tau"] >= GOAL["kendall_tau"])).mean())
        out["by_adapt"][str(k)] = summary
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapt", type=int, nargs="+", default=[10, 20],
                        help="measurements of the new setting per draw")
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.monotonic()
    result = {"adapt": args.adapt, "draws": args.draws, "seed": args.seed, "goal": GOAL,
              "directions": [direction(1, 2, args.adapt, args.draws, args.seed),
                             direction(2, 1, args.adapt, args.draws, args.seed + 1)]}
    for case in result["directions"]:
        nf, full = case["noise_floor"], case["features_gp_on_all_target_configs"]
        print(f"\n{case['source_threads']} → {case['target_threads']} thread(s), "
              f"{case['held_out']} held out; noise floor ±10 % {nf['within_10']:.0%}, "
              f"τ {nf['kendall_tau']:.2f}; a GP on all 200 target configs ±10 % "
              f"{full['within_10']:.0%}, τ {full['kendall_tau']:.3f}")
        for k, summary in case["by_adapt"].items():
            print(f"  from {k} measurements (median [10th, 90th percentile] of {args.draws} "
                  "draws):")
            for name, s in summary.items():
                w, t = s["within_10"], s["kendall_tau"]
                cover = (f"  in interval {s['coverage']['median']:.0%}"
                         if "coverage" in s else "")
                print(f"    {name:26s} ±10 % {w['median']:4.0%} [{w['p10']:.0%}, "
                      f"{w['p90']:.0%}]  τ {t['median']:.3f} [{t['p10']:.2f}, {t['p90']:.2f}]"
                      f"{cover}  goal met in {s['share_of_draws_meeting_goal']:.0%}")
    result["seconds"] = time.monotonic() - started
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\n{result['seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
