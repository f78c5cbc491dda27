"""`edgevit search`, `edgevit pareto`, `edgevit study-front` and `edgevit demo` (the suite's
main job)."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from analysis.nas import (
    WORKING_TUNERS,
    in_private_netns,
    private_netns_command,
    warn_exposed,
)

from .common import (
    SECONDS,
    SEED,
    CliError,
    add_command,
    ranged_float,
    ranged_int,
)

RESULTS = Path("results")


def _rerun_in_private_netns(args: argparse.Namespace) -> None:
    """Re-run this command inside a loopback-only network namespace, unless asked not to or
    already there; when it ran there, exit with its status. Returns to go on in this process."""
    if args.expose or in_private_netns():
        return
    command = private_netns_command([sys.executable, "-m", "analysis.cli", *args.argv])
    if command is None:
        warn_exposed()
        return
    raise SystemExit(subprocess.run(command, env=os.environ.copy()).returncode)


@contextlib.contextmanager
def _experiment_errors() -> Iterator[None]:
    """An NNI experiment that fails (tuner crash, manager error, timeout) ends the command with
    its first line as a user error (exit 2), like any other."""
    from analysis.nas import ExperimentError

    try:
        yield
    except ExperimentError as err:
        raise CliError(str(err).splitlines()[0]) from None


def _checked_predictor(path: str | Path) -> Path:
    """`path` of a predictor file that loads and predicts a finite latency > 0 for the search
    space's smallest and largest configs (ValueError naming the problem otherwise)."""
    from analysis.accuracy import largest_config, smallest_config
    from analysis.latency import LatencyPredictor

    LatencyPredictor.load(path).predict([smallest_config(), largest_config()])
    return Path(path).absolute()


def _output_folders(*folders: tuple[str, str | Path | None]) -> None:
    """Create each (option, folder) that is set, or CliError naming the option: a folder that
    is a file, under a file, or a name the file system refuses fails here, before NNI starts
    (and before the re-run in the namespace)."""
    for option, folder in folders:
        if folder is None:
            continue
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CliError(f"{option} {folder}: {err.strerror or err}") from None


def _search_settings(args: argparse.Namespace, predictor: Path):
    """Every search option checked (SearchSettings' bounds, the accuracy method), before
    anything starts: this runs before the re-run in the private network namespace, so a user
    error is one line from this process."""
    from analysis.accuracy import AccuracyMethod
    from analysis.nas import SearchSettings, default_accuracy_method

    if args.accuracy is None:
        args.accuracy = default_accuracy_method()
    parsed = AccuracyMethod.parse(args.accuracy)
    parsed.check_source()  # a bad method fails before NNI starts
    args.accuracy = str(parsed)  # canonical: one name per method in every trial and output
    return SearchSettings(
        predictor=predictor, accuracy=args.accuracy, tuner=args.tuner,
        max_trials=args.trials, concurrency=args.concurrency, seed=args.seed,
        scalarization=args.scalarization, macs_budget=args.macs_budget,
        params_budget=args.params_budget, latency_budget_ms=args.latency_budget_ms,
        objectives=tuple(args.objectives), port=args.port,
        experiments_dir=Path(args.experiments_dir).resolve() if args.experiments_dir else None,
    )


def _report(experiment_id: str, experiments_dir: Path, args: argparse.Namespace,
            predictor: Path) -> dict:
    from analysis.nas import REFERENCE_MARGIN, front_table, value_name, write_report

    summary = write_report(experiment_id, predictor_path=predictor, out_dir=args.out,
                           experiments_dir=experiments_dir, macs_budget=args.macs_budget,
                           measure=args.measure_front)
    front = summary.pop("front")
    if not args.json:
        print(front_table(front, summary["accuracy_method"]))
        if "measured_front" in summary:
            m = summary["measured_front"]
            for r in m["rounds"]:
                interval = ("" if m["in_interval"] is None
                            else f", {r['in_interval']:.0%} inside the 90 % interval")
                print(f"round {r['round']}: front of {r['front_size']} under that round's "
                      f"predictor, {r['newly_measured']} newly measured; {r['within_10']:.0%} "
                      f"within ±10 %{interval}"
                      + ("; misses added, predictor refitted" if r["refitted"] else ""))
            first = m["first_round"]
            if m["in_sample"] and first is not None:
                print(f"front measured for real (timed against edgevit_xxs): before any refit "
                      f"{first['within_10']:.0%} of round 1's front was within ±10 % of the "
                      f"prediction (out of sample); the final predictor, refitted on these "
                      f"measurements, fits its {m['points']} points to a MAPE of "
                      f"{m['mape']:.1%} (in sample); front.csv has predicted and measured "
                      "latency per point")
            else:
                print(f"front measured for real (timed against edgevit_xxs): {m['within_10']:.0%}"
                      f" of its {m['points']} points within ±10 % of the prediction (MAPE "
                      f"{m['mape']:.1%}, out of sample); front.csv has predicted and measured "
                      "latency per point")
        study = summary.get("tuner_study")
        if study:
            print(f"tuner: {study['result']} results, {study['infeasible']} candidates over "
                  f"budget never dispatched, {study['repeated']} repeats not re-run, "
                  f"{study['failed']} failed")
        print(f"rejected inside trials (over the MACs budget): {summary['rejected_in_trial']}")
        for name in summary.get("presets_beating_front", []):
            print(f"warning: the preset {name}, a point of the space, is faster than the front "
                  f"at equal or better accuracy by {summary['preset_dominance'][name]:.0%} "
                  f"(more than the {summary['preset_tolerance'][name]:.0%} it cannot resolve: "
                  f"{summary['preset_tolerance_basis']}): the search missed it; run more "
                  "trials")
        if "hypervolume_ratio" in summary:
            print(f"hypervolume: NNI front {summary['hypervolume']:.4g} / exhaustive front "
                  f"{summary['exhaustive_hypervolume']:.4g} = {summary['hypervolume_ratio']:.1%}"
                  f" ({summary['trials']} trials, {summary['space_size']:,} configs enumerated)")
        else:  # the front's own nadir as reference: a number only comparable to itself
            value, ref = value_name(summary["accuracy_trust"]), summary["reference_point"]
            print(f"hypervolume {summary['hypervolume']:.4g} in ({value} ↑, latency_ms ↓) "
                  f"from the reference point ({ref[0]:.4g}, {ref[1]:.4g} ms), the front's own "
                  f"nadir pushed out by {REFERENCE_MARGIN:.0%} of its range, so not comparable "
                  f"with another run's; exhaustive front {summary.get('exhaustive')}")
        print(f"wrote {args.out}/trials.csv, front.csv, front.html (+ plotly.min.js), "
              "summary.json")
    summary["experiment_dir"] = str(experiments_dir / experiment_id)
    return summary


def _print_objective(args: argparse.Namespace) -> None:
    from analysis.accuracy import trust_of

    if not args.json:
        print(f"accuracy objective {trust_of(args.accuracy)['label']}")


def cmd_search(args: argparse.Namespace) -> dict:
    from analysis.nas import run_search

    settings = _search_settings(args, Path(args.predictor).absolute())  # every option checked
    predictor = _checked_predictor(args.predictor)  # before anything runs
    _output_folders(("--out", args.out), ("--experiments-dir", args.experiments_dir))
    _rerun_in_private_netns(args)
    _print_objective(args)
    with _experiment_errors():
        experiment_id, experiments_dir = run_search(settings)
    return _report(experiment_id, experiments_dir, args, predictor)


def _check_stored_scales(experiment: str, experiments_dir: Path) -> None:
    """ValueError when the results stored are not on the scale of the trials a resume would
    add (`analysis.nas.check_scales`): refused before they mix."""
    from analysis.nas import check_scales, nni_database, read_nni_trials

    database = nni_database(experiment, experiments_dir)
    if not database.is_file() or database.stat().st_size == 0:
        return  # no result stored yet (a manager that died at its start leaves an empty file)
    trials = read_nni_trials(experiment, experiments_dir)
    for method in sorted(set(trials.get("accuracy_method", ()))):
        check_scales(trials[trials["accuracy_method"] == method], method,
                     allow_unrecorded=False)


def cmd_resume(args: argparse.Namespace) -> dict:
    """Continue a stopped or crashed experiment to its budget, then report it like `search`."""
    from analysis.nas import experiment_folder, resume_search

    predictor = _checked_predictor(args.predictor)
    try:  # where NNI's registry recorded it, unless told
        experiments_dir = experiment_folder(args.experiment, args.experiments_dir).parent
        _check_stored_scales(args.experiment, experiments_dir)
    except ValueError as err:
        raise CliError(f"edgevit resume {args.experiment}: {err}") from None
    _rerun_in_private_netns(args)
    with _experiment_errors():
        experiment_id, experiments_dir = resume_search(args.experiment, experiments_dir,
                                                       args.port, timeout_s=args.timeout)
    return _report(experiment_id, experiments_dir, args, predictor)


def cmd_pareto(args: argparse.Namespace) -> dict:
    """The front of an experiment found by id (NNI's registry, or --experiments-dir); the
    exhaustive front and hypervolume_ratio with --predictor."""
    from analysis.nas import front_table, write_report

    if args.predictor is not None:
        _checked_predictor(args.predictor)
    if args.measure_front and args.predictor is None:
        raise CliError("--measure-front needs --predictor")
    try:
        summary = write_report(args.experiment, predictor_path=args.predictor,
                               out_dir=args.out, experiments_dir=args.experiments_dir,
                               method=args.accuracy, macs_budget=args.macs_budget,
                               measure=args.measure_front)
    except ValueError as err:
        raise CliError(str(err).splitlines()[0]) from None
    front = summary.pop("front")
    if not args.json:
        print(front_table(front, summary["accuracy_method"]))
        ratio = summary.get("hypervolume_ratio")
        print(f"{summary['front_size']} Pareto-optimal of {summary['trials']} trials "
              f"({summary['rejected_in_trial']} rejected inside trials)"
              + (f"; hypervolume {ratio:.1%} of the exhaustive front" if ratio else "")
              + f"; wrote {args.out}")
    return summary


def cmd_study_front(args: argparse.Namespace) -> dict:
    """The Fashion-MNIST study's trained configs under a latency predictor (default: the
    committed one of the development CPU), and their accuracy–latency front."""
    import json

    from analysis.accuracy import FASHION_STUDY
    from analysis.latency import LatencyPredictor, committed_predictor
    from analysis.nas.study_front import front_text, study_front

    if args.predictor is None:
        predictor = committed_predictor()
    else:
        try:
            predictor = LatencyPredictor.load(args.predictor)
        except ValueError as err:
            raise CliError(f"--predictor {args.predictor}: {str(err).splitlines()[0]}") from None
    try:
        table = study_front(json.loads(FASHION_STUDY.read_text()), predictor)
    except ValueError as err:
        raise CliError(f"--predictor {args.predictor or 'committed'}: "
                       f"{str(err).splitlines()[0]}") from None
    if not args.json:
        print(front_text(table))
    return {"predictor": predictor.kind, "latency_settings": predictor.settings.describe(),
            "front": [row["name"] for row in table if row["on_front"]], "rows": table}


def cmd_demo(args: argparse.Namespace) -> dict:
    """Calibrate (or reuse) a predictor, search with NNI, write results/, print the front."""
    from analysis.latency import (
        LatencyPredictor,
        MeasurementStore,
        Protocol,
        calibrate,
        device_fingerprint,
        fingerprint_hash,
    )
    from analysis.nas import run_search

    out = Path(args.out)
    predictor_path = (out / "predictor.json").absolute()
    settings = _search_settings(args, predictor_path)  # checked before a minute of calibrating
    MeasurementStore(args.store).close()  # a store that is not ours is refused here too
    _output_folders(("--out", args.out), ("--experiments-dir", args.experiments_dir))
    _rerun_in_private_netns(args)
    _print_objective(args)
    out.mkdir(parents=True, exist_ok=True)
    device = "this-machine-" + fingerprint_hash(device_fingerprint())[:8]
    reuse = False
    if predictor_path.is_file():
        try:
            reuse = LatencyPredictor.load(predictor_path).device == device
        except ValueError:
            reuse = False
    if reuse:
        print(f"reusing the latency predictor {predictor_path} calibrated on {device}")
    else:
        print(f"calibrating a latency predictor on {device} ({args.budget} configs, active: "
              "after a uniform third, each round measures where the predictor is least "
              "certain, the space's extremes included) ...")
        # active, because the front lies at the space's extremes (r = 7, the narrowest and
        # widest stages), where uniform draws are thinnest: the demo's front missed its
        # predictions out of sample after a uniform calibration (README, issue 15)
        predictors, report = calibrate(device=device, budget=args.budget, threads=1,
                                       store=MeasurementStore(args.store), with_blocks=False,
                                       protocol=Protocol(min_runs=10, min_time_s=0.4),
                                       noise_repeats=5, strategy="active")
        print(report.table())
        predictors["features_gp"].save(predictor_path)
    with _experiment_errors():
        experiment_id, experiments_dir = run_search(settings)
    args.measure_front = True  # the demo closes the loop: the front is timed for real
    return _report(experiment_id, experiments_dir, args, predictor_path)


def _search_options(p: argparse.ArgumentParser, trials: int) -> None:
    p.add_argument("--accuracy", default=None,
                   help="accuracy objective: proxy:NAME[@DATA/SIZE] | "
                        "train:digits|fashion-mnist|PATH[@SIZE] | supernet:CKPT (default: the "
                        "committed studies' pick, the best validated per second of compute; "
                        "when none is validated, the best τ, and every output says "
                        "'accuracy unvalidated')")
    p.add_argument("--tuner", choices=WORKING_TUNERS, default=WORKING_TUNERS[0],
                   help="pareto-* is the suite's multi-objective ParetoTuner with that optuna "
                        "sampler (default pareto-gp); the others are NNI's built-in tuners, "
                        "which maximise the trial's scalarised `default`")
    p.add_argument("--trials", type=ranged_int(1, 100_000), default=trials)
    p.add_argument("--concurrency", type=ranged_int(1, 64), default=2)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--scalarization", choices=("tchebycheff", "mnas"), default="tchebycheff",
                   help="what NNI's built-in tuners maximise (ParetoTuner reads the "
                        "objectives): augmented Tchebycheff over stated ranges (any sign and "
                        "scale) or MnasNet's reward (positive accuracy only)")
    p.add_argument("--objectives", nargs="+", default=["accuracy", "latency_ms"],
                   choices=("accuracy", "latency_ms", "macs", "params"),
                   help="what ParetoTuner optimises, read from each trial's report")
    p.add_argument("--macs-budget", type=ranged_float(0, 1e18), default=3e9)
    p.add_argument("--params-budget", type=ranged_float(0, 1e15), default=None,
                   help="ParetoTuner: never dispatch a config with more parameters")
    p.add_argument("--latency-budget-ms", type=ranged_float(0, 3.6e6), default=None,
                   help="ParetoTuner: never dispatch a config predicted slower")
    p.add_argument("--port", type=ranged_int(1024, 65_535), default=8745)
    p.add_argument("--experiments-dir", default=None, help="NNI's experiment directory")
    p.add_argument("--out", default=str(RESULTS), help="where the CSV and HTML go")
    p.add_argument("--expose", action="store_true",
                   help="do not hide NNI's web UI in a private network namespace")
    p.add_argument("--measure-front", action="store_true",
                   help="time the front's configs for real: predicted vs measured")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "search", cmd_search, "run the NNI search and write the Pareto front",
                    model=False)
    p.add_argument("--predictor", required=True, help="latency predictor JSON")
    _search_options(p, trials=100)
    p = add_command(sub, "pareto", cmd_pareto, "Pareto front of a finished NNI experiment",
                    model=False)
    p.add_argument("experiment", help="experiment id (or its folder / nni.sqlite)")
    p.add_argument("--predictor", default=None,
                   help="latency predictor JSON: adds the presets, the exhaustive front and "
                        "hypervolume_ratio (without it: the trials' front as reported)")
    p.add_argument("--accuracy", default=None, help="accuracy method to keep (default: the one)")
    p.add_argument("--experiments-dir", default=None,
                   help="where the experiment's folder is (default: where NNI's registry "
                        "recorded it, else ~/nni-experiments)")
    p.add_argument("--macs-budget", type=ranged_float(0, 1e18), default=None)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--measure-front", action="store_true",
                   help="time the front's configs for real: predicted vs measured")
    p = add_command(sub, "study-front", cmd_study_front,
                    "the trained Fashion-MNIST study's configs under a latency predictor, and "
                    "their accuracy-latency front", model=False)
    p.add_argument("--predictor", default=None,
                   help="latency predictor JSON, e.g. your device's from `edgevit calibrate` "
                        "(default: the committed one of the development CPU)")
    p = add_command(sub, "resume", cmd_resume,
                    "continue a stopped or crashed NNI experiment (nnictl resume) to its end",
                    model=False)
    p.add_argument("experiment", help="experiment id")
    p.add_argument("--predictor", required=True, help="latency predictor JSON")
    p.add_argument("--experiments-dir", default=None, help="NNI's experiment directory")
    p.add_argument("--port", type=ranged_int(1024, 65_535), default=8745)
    p.add_argument("--timeout", type=SECONDS, default=1800.0,
                   help="seconds to wait for the end")
    p.add_argument("--macs-budget", type=ranged_float(0, 1e18), default=3e9)
    p.add_argument("--out", default=str(RESULTS), help="where the CSV and HTML go")
    p.add_argument("--expose", action="store_true",
                   help="do not hide NNI's web UI in a private network namespace")
    p.add_argument("--measure-front", action="store_true",
                   help="time the front's configs for real: predicted vs measured")
    p = add_command(sub, "demo", cmd_demo,
                    "calibrate (or reuse) a predictor, run the NNI search, write results/",
                    model=False)
    _search_options(p, trials=40)  # the demo stays within 10 min on a 2-core machine, slow days too
    p.add_argument("--budget", type=ranged_int(1, 10_000), default=40,
                   help="calibration measurements")
    p.add_argument("--store", default=None, help="measurement store")
