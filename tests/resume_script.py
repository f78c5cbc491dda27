"""Test support: `nnictl create`, the NNI manager killed mid-run, `nnictl resume`, to the end.

Usage: python resume_script.py WORK_DIR PREDICTOR_JSON PORT TRIALS KILL_AFTER
Run by tests/test_scale_out.py, inside a private network namespace where the system allows one,
with HOME set to WORK_DIR so that nnictl's registry of experiments stays in the test's folder.
`search/config.yml` is run as users run it (through nnictl); once KILL_AFTER trials have
succeeded, the manager process gets SIGKILL (by its process id). Prints one JSON line: the final
metrics per trial read before the kill and after the resumed experiment ended, and the trial
counts. On a failure the experiment's processes are killed by id before the script exits.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from analysis.nas.experiment import (
    REPO_ROOT,
    experiment_processes,
    is_manager,
    kill_processes,
    load_config_file,
)

NNICTL = str(Path(sys.executable).parent / "nnictl")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def final_metrics(database: Path) -> list[tuple[str, str]]:
    """(trial id, final metric as stored) of every final result (read-only: the manager may be
    writing). A trial re-run after a resume can hold two."""
    if not database.is_file():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("SELECT trialJobId, data FROM MetricData WHERE type = 'FINAL' "
                          "ORDER BY timestamp").fetchall()


def trial_events(database: Path) -> dict[str, str]:
    """trial id -> its latest event."""
    if not database.is_file():
        return {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute("SELECT trialJobId, event FROM TrialJobEvent ORDER BY timestamp")
        return dict(rows.fetchall())


def succeeded(database: Path) -> dict[str, str]:
    """trial id -> final metric, of the trials whose SUCCEEDED event is stored."""
    done = {t for t, event in trial_events(database).items() if event == "SUCCEEDED"}
    return {t: data for t, data in final_metrics(database) if t in done}


def manager(experiment_id: str, experiments_dir: Path) -> psutil.Process:
    for process in experiment_processes(experiment_id, experiments_dir):
        if is_manager(process):
            return process
    raise RuntimeError(f"no NNI manager process for experiment {experiment_id}")


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


def nnictl(*args: str) -> str:
    proc = subprocess.run([NNICTL, *args], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"nnictl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def main(work: Path, predictor: Path, port: int, trials: int, kill_after: int) -> None:
    config = load_config_file(REPO_ROOT / "search" / "config.yml")
    config.trial_command = config.trial_command.replace(
        "../results/predictor.json", str(predictor)) + " --accuracy proxy:params"
    config.max_trial_number = trials
    config.experiment_working_directory = str(work / "nni")
    config = config.canonical_copy()  # absolute paths, the command copied into the service
    config_file = work / "config.yml"
    config_file.write_text(yaml.safe_dump(config.json()))

    experiment_id = None
    try:
        out = nnictl("create", "--config", str(config_file), "--port", str(port))
        experiment_id = re.search(r"Experiment ID: (\w+)", ANSI_ESCAPE.sub("", out)).group(1)
        database = work / "nni" / experiment_id / "db" / "nni.sqlite"
        wait_for(lambda: len(succeeded(database)) >= kill_after, 300,
                 f"{kill_after} succeeded trials")
        victim = manager(experiment_id, work / "nni")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        before = {"succeeded": succeeded(database),
                  "reported": [data for _, data in final_metrics(database)]}

        # the documented recovery: `edgevit resume` kills what the dead manager left
        # running (its dispatcher would break the resumed manager), runs `nnictl resume`,
        # watches the experiment to its budget, stops it and reports
        proc = subprocess.run(
            [sys.executable, "-m", "analysis.cli", "resume", experiment_id, "--predictor",
             str(predictor), "--experiments-dir", str(work / "nni"), "--port", str(port),
             "--out", str(work / "results"), "--timeout", "300", "--json"],
            capture_output=True, text=True, timeout=400)
        if proc.returncode != 0:
            raise RuntimeError(f"edgevit resume failed:\n{proc.stdout[-3000:]}\n"
                               f"{proc.stderr[-3000:]}")
        print(json.dumps({"experiment": experiment_id, "before": before,
                          "after": final_metrics(database), "events": trial_events(database),
                          "summary": json.loads(proc.stdout.strip().splitlines()[-1])}))
    finally:  # on any failure: the experiment's processes, by id (the test kills the rest)
        if experiment_id:
            kill_processes(experiment_processes(experiment_id, work / "nni"))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
         int(sys.argv[5]))
