"""Running the NNI search: an experiment on the local (or any) training service, watched until
it ends.

NNI's web server listens on every interface and has no host option, so by default the manager
runs inside a private network namespace whose only interface is loopback (`unshare -n`); where
the system refuses that, a warning says the web UI is reachable from the network.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from analysis.runtime import finite_float

from .pareto import nni_home

if TYPE_CHECKING:
    import psutil
    from nni.experiment import Experiment, ExperimentConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
SEARCH_DIR = REPO_ROOT / "search"
TRIAL_SCRIPT = SEARCH_DIR / "trial.py"
# ParetoTuner (analysis/nas/tuner.py) with each optuna sampler; the first is the default
PARETO_TUNERS = ("pareto-gp", "pareto-tpe", "pareto-nsga2")
NNI_BUILTIN_TUNERS = ("TPE", "Random", "Evolution", "GridSearch")
WORKING_TUNERS = PARETO_TUNERS + NNI_BUILTIN_TUNERS
NETNS_MARKER = "EDGEVIT_PRIVATE_NETNS"
FINISHED = ("DONE", "STOPPED", "ERROR")
ENDED_TRIAL = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")


class ExperimentError(RuntimeError):
    """The experiment failed (tuner crash, manager error, timeout)."""


def in_private_netns() -> bool:
    return os.environ.get(NETNS_MARKER) == "1"


def private_netns_command(argv: list[str]) -> list[str] | None:
    """`argv` wrapped to run in a new network namespace with loopback up, or None if the system
    cannot make one. The arguments pass through "$@", never through a shell string."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return None
    for flags in (["-n"], ["-r", "-n"]):  # root, or an unprivileged user namespace
        probe = subprocess.run([unshare, *flags, ip, "link", "set", "lo", "up"],
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            script = f'{ip} link set lo up && export {NETNS_MARKER}=1 && exec "$@"'
            return [unshare, *flags, "sh", "-c", script, "sh", *argv]
    return None


def warn_exposed() -> None:
    warnings.warn(
        "could not start NNI in a private network namespace (unshare -n refused): its web UI "
        "listens on every network interface of this machine while the search runs",
        stacklevel=2,
    )


@dataclass(frozen=True)
class SearchSettings:
    """What `run_search` needs to launch one experiment."""

    predictor: Path
    accuracy: str = "proxy:jacob_cov"  # callers pass default_accuracy_method()
    tuner: str = "pareto-gp"  # one of WORKING_TUNERS
    max_trials: int = 60
    concurrency: int = 2
    seed: int = 0
    # what the trial reports as `default` for NNI's built-in tuners (ParetoTuner reads the
    # objectives themselves): tchebycheff (any sign and scale) or mnas (positive accuracy only)
    scalarization: str = "tchebycheff"
    macs_budget: float = 3e9
    params_budget: float | None = None  # ParetoTuner only, decided before dispatch
    latency_budget_ms: float | None = None  # ParetoTuner only, by the predictor
    objectives: tuple[str, ...] = ("accuracy", "latency_ms")  # ParetoTuner's, from the report
    start_with_presets: bool = True  # ParetoTuner: the presets of the space are trials 1..3
    port: int = 8745
    experiments_dir: Path | None = None
    timeout_s: float = 1800.0
    extra_trial_args: tuple[str, ...] = ()
    allow_any_tuner: bool = False  # run a tuner known to fail here (to see how it fails)
    trial_timeout_s: float | None = None  # a trial running longer fails (trial.py --timeout-s)

    def __post_init__(self) -> None:
        """Every setting within its stated bounds (ValueError naming it), before anything
        starts: an experiment that cannot run never launches."""
        for name, low, high in (("max_trials", 1, 100_000), ("concurrency", 1, 64),
                                ("port", 1024, 65_535), ("seed", 0, 2**31 - 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"search setting {name} must be an integer in "
                                 f"{low}..{high}, got {value!r}")
        for name in ("macs_budget", "params_budget", "latency_budget_ms", "timeout_s",
                     "trial_timeout_s"):
            value = getattr(self, name)
            number = finite_float(value)
            if value is not None and not (number is not None and number > 0):
                raise ValueError(f"search setting {name} must be a finite number > 0, "
                                 f"got {value!r}")

    @property
    def pareto(self) -> bool:
        return self.tuner in PARETO_TUNERS

    def trial_command(self, ranges: tuple[tuple[float, float], tuple[float, float]] | None
                      = None) -> str:
        """The trial command line. Fixed by us, never built from trial parameters. `ranges`
        (accuracy, latency_ms) are stated to the Tchebycheff scalarisation."""
        import shlex

        scalarization = "none" if self.pareto else self.scalarization
        parts = [sys.executable, str(TRIAL_SCRIPT), "--predictor", str(self.predictor),
                 "--accuracy", self.accuracy, "--macs-budget", str(self.macs_budget),
                 "--scalarization", scalarization, "--weights-seed", str(self.seed),
                 *self.extra_trial_args]
        if ranges is not None and scalarization == "tchebycheff":
            parts += ["--accuracy-range", *map(repr, ranges[0]),
                      "--latency-range-ms", *map(repr, ranges[1])]
        if self.trial_timeout_s is not None:
            parts += ["--timeout-s", str(self.trial_timeout_s)]
        return shlex.join(parts)


def _tuner_config(name: str, seed: int, allow_any: bool = False) -> tuple[str, dict]:
    """(name, classArgs) of one of NNI's built-in tuners."""
    if name not in NNI_BUILTIN_TUNERS and not allow_any:
        raise ValueError(f"tuner {name!r}: use one of {WORKING_TUNERS} (GP, Metis and PBT fail "
                         "on this space in NNI 3.0, Hyperband crashes, Anneal/SMAC/BOHB need "
                         "extra packages)")
    args: dict = {}
    if name in ("TPE", "Random", "Evolution"):
        args["optimize_mode"] = "maximize"
    if name in ("TPE", "Random"):
        args["seed"] = seed
    if name == "Evolution":
        args["population_size"] = 16
    if name == "Hyperband":
        args.update(optimize_mode="maximize", R=10, eta=3)
    return name, args


def tuner_algorithm_config(settings: SearchSettings):
    """NNI's `tuner:` config for `settings.tuner`: ParetoTuner with its sampler, budgets and
    objectives, or a built-in tuner."""
    from nni.experiment.config import AlgorithmConfig, CustomAlgorithmConfig

    if settings.pareto:
        from .tuner import tuner_config

        block = tuner_config(
            settings.tuner.removeprefix("pareto-"), objectives=settings.objectives,
            seed=settings.seed, macs_budget=settings.macs_budget,
            params_budget=settings.params_budget, latency_budget_ms=settings.latency_budget_ms,
            predictor=settings.predictor if settings.latency_budget_ms is not None else None,
            start_with_presets=settings.start_with_presets)
        return CustomAlgorithmConfig(class_name=block["className"],
                                     code_directory=block["codeDirectory"],
                                     class_args=block["classArgs"])
    name, args = _tuner_config(settings.tuner, settings.seed, settings.allow_any_tuner)
    return AlgorithmConfig(name=name, class_args=args)


def dispatcher_log(experiment_dir: Path) -> str:
    path = experiment_dir / "log" / "dispatcher.log"
    return path.read_text(errors="replace") if path.is_file() else ""


def tuner_crashed(log_text: str) -> bool:
    return "Traceback" in log_text or "ERROR" in log_text


def run_search(settings: SearchSettings) -> tuple[str, Path]:
    """Run one experiment on the local training service to its end; return (experiment id,
    experiments dir). Raises ExperimentError as `run_experiment` does."""
    return run_experiment(experiment_config(settings), settings.port,
                          timeout_s=settings.timeout_s, label=settings.tuner)


def experiment_config(settings: SearchSettings) -> ExperimentConfig:
    """NNI's ExperimentConfig for `settings` on the local training service (what `run_search`
    starts; `run_with_nnictl` runs it through `nnictl create`)."""
    from nni.experiment import ExperimentConfig

    from analysis.cost import SPACE_JSON

    experiments_dir = settings.experiments_dir or nni_home()
    config = ExperimentConfig("local")
    config.experiment_name = f"edgevit-{settings.tuner.lower()}-{settings.accuracy}"
    config.search_space_file = str(SPACE_JSON)
    ranges = None
    if not settings.pareto and settings.scalarization == "tchebycheff":
        from analysis.latency.predictors import LatencyPredictor

        from .objectives import objective_ranges

        predictor = LatencyPredictor.load(settings.predictor)
        ranges = objective_ranges(settings.accuracy, predictor.predict)
    config.trial_command = settings.trial_command(ranges)
    config.trial_code_directory = str(SEARCH_DIR)
    config.trial_concurrency = settings.concurrency
    config.max_trial_number = settings.max_trials
    config.experiment_working_directory = str(experiments_dir)
    if settings.trial_timeout_s is not None:  # NNI's own limit backs up the trial's watchdog
        config.max_trial_duration = f"{math.ceil(settings.trial_timeout_s) + 60}s"
    config.tuner = tuner_algorithm_config(settings)
    config.training_service.use_active_gpu = False
    return config


def experiment_processes(experiment_id: str, experiments_dir: Path) -> list[psutil.Process]:
    """This user's processes that belong to the experiment: its manager (`--experiment-id`),
    its tuner dispatcher (`NNI_LOG_DIRECTORY` inside the experiment's folder) and its trials
    (`NNI_EXP_ID`)."""
    import psutil

    log_dir = str(experiments_dir / experiment_id / "log")
    me = psutil.Process()
    user = me.username()
    found = []
    for process in psutil.process_iter(["cmdline", "username"]):
        try:
            cmdline = process.info["cmdline"] or []
            if process.info["username"] != user or process.pid == me.pid:
                continue
            if "--experiment-id" in cmdline and experiment_id in cmdline:
                found.append(process)
                continue
            environ = process.environ()
            if (environ.get("NNI_EXP_ID") == experiment_id
                    or environ.get("NNI_LOG_DIRECTORY") == log_dir):
                found.append(process)
        except psutil.Error:  # ended meanwhile, or not ours to read
            continue
    return found


def is_manager(process: psutil.Process) -> bool:
    """Whether `process` (from `experiment_processes`) is an NNI manager."""
    return "--experiment-id" in (process.info["cmdline"] or [])


def kill_leftovers(experiment_id: str, experiments_dir: Path) -> list[int]:
    """Before a resume: kill, by process id, what a dead manager left running (its tuner
    dispatcher would reconnect to the resumed manager and break it: NNI reports "Dispatcher
    stream error"; its trials would report into the resumed experiment). Refuses while the
    manager itself is alive. Returns the ids killed."""
    processes = experiment_processes(experiment_id, experiments_dir)
    managers = [p for p in processes if is_manager(p)]
    if managers:
        raise ExperimentError(f"experiment {experiment_id} is still running (NNI manager "
                              f"process {managers[0].pid}); stop it with `nnictl stop "
                              f"{experiment_id}` or wait for it to end before resuming")
    return kill_processes(processes)


def kill_processes(processes: list[psutil.Process]) -> list[int]:
    """SIGKILL each of `processes` (one already gone is skipped), wait up to 30 s for them to
    end; returns their ids."""
    import psutil

    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=30)
    return [p.pid for p in processes]


def load_config_file(path: str | os.PathLike[str]) -> ExperimentConfig:
    """An nnictl YAML file (`search/config.yml`, `search/config_remote.yml`) as NNI's
    ExperimentConfig, its relative paths resolved against the file's folder."""
    from nni.experiment import ExperimentConfig

    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"experiment config not found: {path}")
    try:
        return ExperimentConfig.load(str(path))
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise ExperimentError(f"{path}: not a valid NNI experiment config ({err})") from None


# NNI gives its manager about 3 s to answer `/check-status` (`nni.experiment.launcher.
# _check_rest_server`: three tries a second apart), which a loaded machine can miss: the start
# then fails with a timeout or an empty reply. Such a start is tried again, up to this many times.
MANAGER_START_ATTEMPTS = 3
MANAGER_RESTART_PAUSE_S = 2.0


def manager_start_timed_out(output: str) -> bool:
    """Whether a failed start (nnictl's output, or the traceback of `Experiment.start`) failed
    in NNI's start-up check of its manager, rather than on the config or the port."""
    return "_check_rest_server" in output


def _before_manager_retry(attempt: int, how: str) -> None:
    """Say that start `attempt` missed NNI's start-up check and what happens next (`how`),
    then let the port that NNI's killed manager held come free."""
    warnings.warn(f"NNI's manager did not answer within NNI's start-up check (a loaded "
                  f"machine); {how} (try {attempt + 1} of {MANAGER_START_ATTEMPTS})",
                  stacklevel=3)
    time.sleep(MANAGER_RESTART_PAUSE_S)


def run_experiment(config: ExperimentConfig, port: int, *, timeout_s: float = 1800.0,
                   label: str = "trials") -> tuple[str, Path]:
    """Start `config` (any training service) on `port`, watch it to its end, stop it; return
    (experiment id, experiments dir).

    Shows trials done / total; raises ExperimentError when the tuner crashes (the dispatcher log
    holds a traceback while no trial starts), the manager reports ERROR, or the experiment runs
    past `timeout_s` seconds.
    """
    from nni.experiment import Experiment

    experiments_dir = Path(config.experiment_working_directory or nni_home()).expanduser()
    max_trials = config.max_trial_number
    for attempt in range(1, MANAGER_START_ATTEMPTS + 1):
        experiment = Experiment(config)
        try:
            experiment.start(port, debug=False)
            break
        except Exception as err:  # noqa: BLE001 - NNI raises requests' and json's errors here
            atexit.unregister(experiment.stop)  # NNI killed its manager: nothing to stop
            if attempt == MANAGER_START_ATTEMPTS or not manager_start_timed_out(
                    "".join(traceback.format_exception(err))):
                raise
            _before_manager_retry(attempt, "starting a new experiment")
    try:
        watch_experiment(experiment, experiments_dir / experiment.id, max_trials,
                         timeout_s=timeout_s, label=label)
    finally:
        experiment.stop()
    return experiment.id, experiments_dir


def watch_experiment(experiment: Experiment, experiment_dir: Path, max_trials: int | None, *,
                     timeout_s: float, label: str) -> None:
    """Poll a started experiment once a second until it ends, showing trials done / total.

    Raises ExperimentError when the tuner crashes (the dispatcher log holds a traceback while no
    trial starts), the manager reports ERROR, or the experiment runs past `timeout_s` seconds.
    """
    started = time.monotonic()
    with tqdm(total=max_trials, desc=f"{label} trials", unit="trial") as bar:
        while True:
            time.sleep(1.0)
            status = experiment.get_status()
            try:
                jobs = experiment.list_trial_jobs()
            except (TypeError, KeyError, ValueError) as err:  # e.g. Hyperband, nni#5263
                raise ExperimentError(
                    f"NNI cannot read the trials of the {label} tuner ({err}); "
                    "dispatcher log:\n" + dispatcher_log(experiment_dir)[-4000:]) from None
            done = sum(job.status in ENDED_TRIAL for job in jobs)
            bar.update(done - bar.n)
            if status == "ERROR":
                raise ExperimentError(f"NNI reports ERROR:\n{dispatcher_log(experiment_dir)}")
            if not jobs and tuner_crashed(dispatcher_log(experiment_dir)):
                raise ExperimentError("the tuner crashed before any trial (dispatcher log):\n"
                                      + dispatcher_log(experiment_dir)[-4000:])
            if status in FINISHED or (status == "NO_MORE_TRIAL" and done == len(jobs)):
                return
            if time.monotonic() - started > timeout_s:
                raise ExperimentError(f"experiment still {status} after {timeout_s} s")


def run_with_nnictl(config: ExperimentConfig, port: int, *, timeout_s: float = 1800.0,
                    label: str = "nnictl") -> tuple[str, Path, float]:
    """`nnictl create` on `config` (written as YAML into its working directory), watched to
    its end, then `nnictl stop`; whatever the experiment left running is killed by process id,
    whatever happened. Returns (experiment id, experiments dir, wall seconds from `nnictl
    create` to the last trial's end)."""
    import re

    import yaml
    from nni.experiment import Experiment

    experiments_dir = Path(config.experiment_working_directory or nni_home()).expanduser()
    experiments_dir.mkdir(parents=True, exist_ok=True)
    config = config.canonical_copy()
    config_file = experiments_dir / f"nnictl-config-{port}.yml"
    config_file.write_text(yaml.safe_dump(config.json()))
    nnictl = str(Path(sys.executable).with_name("nnictl"))
    experiment_id = None
    started = time.monotonic()
    try:
        for attempt in range(1, MANAGER_START_ATTEMPTS + 1):
            proc = subprocess.run([nnictl, "create", "--config", str(config_file), "--port",
                                   str(port)], capture_output=True, text=True, timeout=300)
            found = re.search(r"Experiment ID: (\w+)", re.sub(r"\x1b\[[0-9;]*m", "",
                                                              proc.stdout + proc.stderr))
            if (proc.returncode == 0 or attempt == MANAGER_START_ATTEMPTS
                    or not manager_start_timed_out(proc.stdout + proc.stderr)):
                break
            if found is not None:  # the manager that did not answer in time, if it lives
                kill_processes(experiment_processes(found.group(1), experiments_dir))
            _before_manager_retry(attempt, "running nnictl create again")
        if proc.returncode != 0 or found is None:
            raise ExperimentError(f"nnictl create failed:\n{proc.stdout[-2000:]}"
                                  f"{proc.stderr[-2000:]}")
        experiment_id = found.group(1)
        watch_experiment(Experiment.connect(port), experiments_dir / experiment_id,
                         config.max_trial_number, timeout_s=timeout_s, label=label)
        wall_s = time.monotonic() - started
        subprocess.run([nnictl, "stop", experiment_id], capture_output=True, timeout=300)
    finally:
        if experiment_id is not None:
            kill_processes(experiment_processes(experiment_id, experiments_dir))
    return experiment_id, experiments_dir, wall_s


def resume_search(experiment_id: str, experiments_dir: Path, port: int, *,
                  timeout_s: float = 1800.0) -> tuple[str, Path]:
    """Continue a stopped or crashed experiment with `nnictl resume` to its end, then stop it.

    What a killed manager left running is killed first (`kill_leftovers`). NNI keeps every
    finished trial in the experiment's database; trials that were running when the manager
    died are run again. Returns (experiment id, experiments dir).
    """
    from nni.experiment import Experiment

    experiments_dir = Path(experiments_dir).expanduser().resolve()
    if not (experiments_dir / experiment_id / "db" / "nni.sqlite").is_file():
        raise ExperimentError(f"no experiment {experiment_id!r} in {experiments_dir}")
    kill_leftovers(experiment_id, experiments_dir)
    nnictl = Path(sys.executable).with_name("nnictl")
    proc = subprocess.run([str(nnictl), "resume", experiment_id, "--port", str(port),
                           "--experiment_dir", str(experiments_dir)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise ExperimentError(f"nnictl resume {experiment_id} failed:\n"
                              f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    experiment = Experiment.connect(port)
    try:
        max_trials = experiment.get_experiment_profile()["params"].get("maxTrialNumber")
        watch_experiment(experiment, experiments_dir / experiment_id, max_trials,
                         timeout_s=timeout_s, label="resumed")
    finally:
        subprocess.run([str(nnictl), "stop", experiment_id], capture_output=True, timeout=300)
    return experiment_id, experiments_dir
