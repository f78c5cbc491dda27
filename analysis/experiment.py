"""Running the NNI search: the experiment on the local service, watched until it ends.

NNI's web server listens on every interface and has no host option, so by default the manager
runs inside a private network namespace whose only interface is loopback (`unshare -n`); where
the system refuses that, a warning says the web UI is reachable from the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
SEARCH_DIR = REPO_ROOT / "search"
TRIAL_SCRIPT = SEARCH_DIR / "trial.py"
WORKING_TUNERS = ("TPE", "Random", "Evolution", "GridSearch")
NETNS_MARKER = "EDGEVIT_PRIVATE_NETNS"
FINISHED = ("DONE", "STOPPED", "ERROR")


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
    tuner: str = "TPE"
    max_trials: int = 60
    concurrency: int = 2
    seed: int = 0
    scalarization: str = "mnas"
    macs_budget: float = 3e9
    port: int = 8745
    experiments_dir: Path | None = None
    timeout_s: float = 1800.0
    extra_trial_args: tuple[str, ...] = ()
    allow_any_tuner: bool = False  # run a tuner known to fail here (to see how it fails)

    def trial_command(self) -> str:
        """The trial command line. Fixed by us, never built from trial parameters."""
        import shlex

        parts = [sys.executable, str(TRIAL_SCRIPT), "--predictor", str(self.predictor),
                 "--accuracy", self.accuracy, "--macs-budget", str(self.macs_budget),
                 "--scalarization", self.scalarization, "--weights-seed", str(self.seed),
                 *self.extra_trial_args]
        return shlex.join(parts)


def _tuner_config(name: str, seed: int, allow_any: bool = False) -> tuple[str, dict]:
    if name not in WORKING_TUNERS and not allow_any:
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


def dispatcher_log(experiment_dir: Path) -> str:
    path = experiment_dir / "log" / "dispatcher.log"
    return path.read_text(errors="replace") if path.is_file() else ""


def tuner_crashed(log_text: str) -> bool:
    return "Traceback" in log_text or "ERROR" in log_text


def run_search(settings: SearchSettings) -> tuple[str, Path]:
    """Run one experiment to its end; return (experiment id, experiments dir).

    Shows trials done / total; raises ExperimentError when the tuner crashes (the dispatcher log
    holds a traceback while no trial starts) or the manager reports ERROR.
    """
    from nni.experiment import Experiment

    from search_space import SPACE_JSON

    experiments_dir = settings.experiments_dir or Path.home() / "nni-experiments"
    experiment = Experiment("local")
    config = experiment.config
    config.experiment_name = f"edgevit-{settings.tuner.lower()}-{settings.accuracy}"
    config.search_space_file = str(SPACE_JSON)
    config.trial_command = settings.trial_command()
    config.trial_code_directory = str(SEARCH_DIR)
    config.trial_concurrency = settings.concurrency
    config.max_trial_number = settings.max_trials
    config.experiment_working_directory = str(experiments_dir)
    config.tuner.name, config.tuner.class_args = _tuner_config(
        settings.tuner, settings.seed, settings.allow_any_tuner)
    config.training_service.use_active_gpu = False
    experiment.start(settings.port, debug=False)
    experiment_dir = experiments_dir / experiment.id
    started = time.monotonic()
    try:
        with tqdm(total=settings.max_trials, desc=f"{settings.tuner} trials", unit="trial") as bar:
            while True:
                time.sleep(1.0)
                status = experiment.get_status()
                try:
                    jobs = experiment.list_trial_jobs()
                except (TypeError, KeyError, ValueError) as err:  # e.g. Hyperband, nni#5263
                    raise ExperimentError(
                        f"NNI cannot read the trials of the {settings.tuner} tuner ({err}); "
                        "dispatcher log:\n" + dispatcher_log(experiment_dir)[-4000:]) from None
                done = sum(job.status in ("SUCCEEDED", "FAILED", "USER_CANCELED",
                                          "SYS_CANCELED", "EARLY_STOPPED") for job in jobs)
                bar.update(done - bar.n)
                if status == "ERROR":
                    raise ExperimentError(f"NNI reports ERROR:\n{dispatcher_log(experiment_dir)}")
                if not jobs and tuner_crashed(dispatcher_log(experiment_dir)):
                    raise ExperimentError("the tuner crashed before any trial (dispatcher log):\n"
                                          + dispatcher_log(experiment_dir)[-4000:])
                if status in FINISHED or (status == "NO_MORE_TRIAL" and done == len(jobs)):
                    break
                if time.monotonic() - started > settings.timeout_s:
                    raise ExperimentError(f"experiment still {status} after {settings.timeout_s} s")
    finally:
        experiment.stop()
    return experiment.id, experiments_dir
