"""Test support: run NNI experiments in a child process inside a private network namespace
(loopback only) where the system allows one, so that no test exposes a port to the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from analysis.nas import kill_processes, private_netns_command

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = REPO_ROOT / "tests"


def kill_processes_of(root: Path) -> list[int]:
    """Kill, by process id, every process whose command line names a path under `root` or
    that runs there (NNI managers, dispatchers, trials, sshd), except this one and its
    ancestors; returns the ids killed."""
    me = psutil.Process()
    spared = {me.pid} | {p.pid for p in me.parents()}
    victims = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        if process.pid in spared:
            continue
        cmdline = process.info["cmdline"] or []
        cwd = process.info["cwd"] or ""
        if cwd.startswith(str(root)) or any(str(root) in part for part in cmdline):
            victims.append(process)
    return kill_processes(victims)


def run_privately(argv: list[str], *, root: Path, timeout_s: float, **env: str
                  ) -> subprocess.CompletedProcess:
    """`argv` in a private network namespace, with the repo and tests/ importable, this
    Python's bin folder first on PATH (nnictl's `python trial.py`) and `env` added. Whatever
    it leaves running under `root` (its test folder) is killed afterwards, timeout or not."""
    command = private_netns_command(argv) or argv
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env=dict(os.environ, PATH=path, **env,
                                       PYTHONPATH=f"{REPO_ROOT}{os.pathsep}{TESTS_DIR}"))
    finally:
        kill_processes_of(root)


def run_search_privately(tmp_path: Path, predictor: Path, settings: str, body: str,
                         timeout_s: float = 400) -> subprocess.CompletedProcess:
    """`run_search` in a child process: `settings` are extra SearchSettings arguments (Python
    source), `body` the code that runs it."""
    script = tmp_path / "search_script.py"
    script.write_text(
        "from pathlib import Path\n"
        "from analysis.nas.experiment import ExperimentError, SearchSettings, run_search\n"
        f"settings = SearchSettings(predictor=Path({str(predictor)!r}), accuracy='proxy:params',"
        f" experiments_dir=Path({str(tmp_path / 'nni')!r}), {settings})\n" + body
    )
    return run_privately([sys.executable, str(script)], root=tmp_path, timeout_s=timeout_s)


def experiment_id(stdout: str) -> str:
    """The id a script printed as `EXPERIMENT <id>`."""
    return stdout.split("EXPERIMENT")[-1].split()[0]
