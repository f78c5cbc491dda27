"""Search quality and overhead through real `nnictl create` experiments on this machine.

ParetoTuner (the suite's multi-objective tuner, analysis/nas/tuner.py) against NNI's built-in
TPE / Random / Evolution, every one run by `nnictl create` on the local training service with
the real trial (search/trial.py): accuracy = proxy:params (↑), latency_ms predicted by the
committed CPU predictor at 224² (↓), MACs budget 3 GMACs. NNI's tuners are single-objective:
their budget is split into `--restarts` experiments, each maximising an augmented Tchebycheff
scalarisation with its own weights (as in benchmarks/search_hypervolume.py). ParetoTuner starts
from nothing here (`start_with_presets` off, unlike `edgevit search`): the presets would be free
points of a good front. Measured:

- hypervolume of the trials' front / the exhaustive front's (the whole space scored) after each
  mark (default 100 and 300 trials, in the order trials finished), per seed, mean and minimum;
- trials over budget: dispatched configs over 3 GMACs (the trial rejects them), and for
  ParetoTuner the candidates it drew and never dispatched;
- per-trial overhead at concurrency 1 and 4 (`--overhead-trials` trials of ParetoTuner each):
  wall seconds × concurrency / trials − mean trial run time (NNI's RUNNING → SUCCEEDED), i.e.
  what NNI and the tuner add per trial; and the tuner's own seconds per generated config.

Runs inside a loopback-only network namespace where the system allows one (NNI's web UI
listens on every interface). Every experiment is stopped and its processes killed by id.

    python benchmarks/search_nnictl.py [--trials 300] [--marks 100 300] [--seeds 3]
        [--methods pareto-gp TPE Random Evolution] [--concurrency 2] [--overhead-trials 12]
        [--out results/search_nnictl.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.latency.calibration import committed_predictor
from analysis.latency.predictors import LatencyPredictor
from analysis.nas import (
    SENSES,
    SearchSettings,
    exhaustive_front,
    experiment_config,
    hypervolume,
    in_private_netns,
    non_dominated,
    private_netns_command,
    read_nni_trials,
    reference_point,
    run_with_nnictl,
    warn_exposed,
)
from analysis.nas.tuner import STUDY_FILE, generate_seconds, read_study

ACCURACY = "proxy:params"


def trial_durations_s(database: Path) -> list[float]:
    """RUNNING -> SUCCEEDED seconds of every trial that succeeded."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT trialJobId, event, timestamp FROM TrialJobEvent").fetchall()
    started, ended = {}, {}
    for trial, event, stamp in rows:
        if event == "RUNNING":
            started[trial] = stamp
        elif event == "SUCCEEDED":
            ended[trial] = stamp
    return [(ended[t] - started[t]) / 1000 for t in ended if t in started]


def tuner_seconds(folder: Path) -> list[float]:
    """ParetoTuner's seconds per dispatched config (generate_parameters), from its study."""
    return generate_seconds(folder / STUDY_FILE) if (folder / STUDY_FILE).is_file() else []


def run_one(settings: SearchSettings, port: int) -> dict:
    """One `nnictl create` experiment to its end: points in finish order and the counts."""
    config = experiment_config(settings)
    experiment_id, experiments_dir, wall_s = run_with_nnictl(
        config, port, timeout_s=settings.timeout_s, label=settings.tuner)
    return analyse(experiments_dir / experiment_id, settings.macs_budget, wall_s)


def analyse(folder: Path, macs_budget: float, wall_s: float | None = None) -> dict:
    """Points in finish order, counts and timings of a finished experiment's folder; wall
    seconds default to the first trial's WAITING to the last trial's end event."""
    frame = read_nni_trials(str(folder))
    rejected = frame["rejected"].fillna(False).astype(bool).to_numpy()
    points = np.array(frame[["accuracy", "latency_ms"]].to_numpy(dtype=float))  # writable
    points[rejected] = np.nan
    if wall_s is None:
        with sqlite3.connect(f"file:{folder / 'db' / 'nni.sqlite'}?mode=ro", uri=True) as db:
            first, last = db.execute("SELECT MIN(timestamp), MAX(timestamp) FROM TrialJobEvent "
                                     "WHERE trialJobId != ''").fetchone()
        wall_s = (last - first) / 1000
    out = {"experiment": folder.name, "wall_s": wall_s, "points": points,
           "over_budget_dispatched": int((frame["macs"] > macs_budget).sum()),
           "rejected_in_trial": int(rejected.sum()),
           "trial_s": trial_durations_s(folder / "db" / "nni.sqlite"),
           "tuner_s": tuner_seconds(folder)}
    if (folder / STUDY_FILE).is_file():
        out["study"] = read_study(folder / STUDY_FILE)
    return out


def hv_ratio(points: np.ndarray, reference: tuple[float, float], full: float) -> float:
    finite = points[np.isfinite(points).all(axis=1)]
    if not len(finite):
        return 0.0
    return hypervolume(finite[non_dominated(finite, SENSES)], SENSES, reference) / full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--marks", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+",
                        default=["pareto-gp", "TPE", "Random", "Evolution"])
    parser.add_argument("--restarts", type=int, default=4,
                        help="Tchebycheff weights (experiments) per run of an NNI tuner")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--overhead-trials", type=int, default=12,
                        help="trials per overhead run at concurrency 1 and 4 (0: skip)")
    parser.add_argument("--macs-budget", type=float, default=3e9)
    parser.add_argument("--predictor", default=None)
    parser.add_argument("--port", type=int, default=8840)
    parser.add_argument("--out", default="results/search_nnictl.json")
    parser.add_argument("--expose", action="store_true",
                        help="do not re-run inside a private network namespace")
    args = parser.parse_args()
    if not (args.expose or in_private_netns()):
        command = private_netns_command([sys.executable, *sys.argv])
        if command is not None:
            raise SystemExit(subprocess.run(command, env=os.environ.copy()).returncode)
        warn_exposed()

    work = Path(tempfile.mkdtemp(prefix="search_nnictl_"))
    predictor_path = work / "predictor.json"
    predictor = (LatencyPredictor.load(args.predictor) if args.predictor
                 else committed_predictor())
    predictor.save(predictor_path)
    exhaustive = exhaustive_front(predictor, ACCURACY, args.macs_budget)
    reference = reference_point(exhaustive.front_points())
    full = hypervolume(exhaustive.front_points(), SENSES, reference)
    marks = [m for m in args.marks if m <= args.trials]
    print(f"exhaustive front of {len(exhaustive.macs):,} configs: "
          f"{len(exhaustive.front_index)} points; experiments under {work}", flush=True)

    def settings(method: str, seed: int, trials: int, concurrency: int) -> SearchSettings:
        return SearchSettings(predictor=predictor_path, accuracy=ACCURACY, tuner=method,
                              max_trials=trials, concurrency=concurrency, seed=seed,
                              macs_budget=args.macs_budget, experiments_dir=work / "nni",
                              timeout_s=6 * 3600, start_with_presets=False)

    port = args.port
    results: dict = {"trials": args.trials, "marks": marks, "concurrency": args.concurrency,
                     "accuracy": ACCURACY, "macs_budget": args.macs_budget, "runs": {}}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for method in args.methods:
            started = time.monotonic()
            if method.startswith("pareto-"):
                runs = [run_one(settings(method, seed, args.trials, args.concurrency), port)]
            else:
                per_run = [args.trials // args.restarts + (i < args.trials % args.restarts)
                           for i in range(args.restarts)]
                runs = [run_one(settings(method, seed * args.restarts + r, count,
                                         args.concurrency), port)
                        for r, count in enumerate(per_run)]
            points = np.concatenate([run["points"] for run in runs])
            row = {"hv_ratio": {m: hv_ratio(points[:m], reference, full) for m in marks},
                   "over_budget_dispatched": sum(r["over_budget_dispatched"] for r in runs),
                   "rejected_in_trial": sum(r["rejected_in_trial"] for r in runs),
                   "never_dispatched": sum(r.get("study", {}).get("infeasible", 0)
                                           for r in runs),
                   "experiments": [r["experiment"] for r in runs],
                   "minutes": (time.monotonic() - started) / 60}
            results["runs"].setdefault(method, {})[seed] = row
            print(f"seed {seed} {method:10s} " + " ".join(
                f"HV@{m} {row['hv_ratio'][m]:6.1%}" for m in marks)
                + f"  over budget dispatched {row['over_budget_dispatched']}, never "
                  f"dispatched {row['never_dispatched']}, {row['minutes']:.1f} min", flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))

    print(f"\nhypervolume / exhaustive (accuracy {ACCURACY}, predicted latency at 224², "
          f"{args.trials} trials, concurrency {args.concurrency}): per seed, mean, minimum")
    for method, by_seed in results["runs"].items():
        for mark in marks:
            values = np.array([row["hv_ratio"][mark] for row in by_seed.values()])
            print(f"{method:10s} @{mark:4d}: " + " ".join(f"{v:6.1%}" for v in values)
                  + f"   mean {values.mean():6.1%}  min {values.min():6.1%}")

    if args.overhead_trials:
        results["overhead"] = {}
        for concurrency in (1, 4):
            run = run_one(settings("pareto-gp", 0, args.overhead_trials, concurrency), port)
            mean_trial = float(np.mean(run["trial_s"]))
            overhead = run["wall_s"] * concurrency / args.overhead_trials - mean_trial
            results["overhead"][concurrency] = {
                "wall_s": run["wall_s"], "mean_trial_s": mean_trial,
                "overhead_s_per_trial": overhead,
                "tuner_s_per_config": float(np.mean(run["tuner_s"])) if run["tuner_s"] else None}
            print(f"concurrency {concurrency}: {args.overhead_trials} trials in "
                  f"{run['wall_s']:.0f} s, a trial runs {mean_trial:.1f} s, NNI + tuner add "
                  f"{overhead:.1f} s per trial (ParetoTuner itself "
                  f"{results['overhead'][concurrency]['tuner_s_per_config']:.2f} s a config)",
                  flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
