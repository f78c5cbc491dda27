"""Test support: run `search/config_remote.yml` against two sshd "machines" on 127.0.0.1.

Usage: python remote_search_script.py WORK_DIR PREDICTOR_JSON PORT TRIALS
Run by tests/test_scale_out.py, inside a private network namespace where the system allows one.
Prints `EXPERIMENT <id>` and `MACHINES <home1> <home2>` on success.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from loopback_sshd import LoopbackSshd, make_key
from nni.experiment.config.training_services.remote import RemoteMachineConfig

from analysis.nas.experiment import REPO_ROOT, load_config_file, run_experiment


def main(work: Path, predictor: Path, port: int, trials: int) -> None:
    client_key = make_key(work / "client_key")
    machines = [LoopbackSshd(work / f"machine{i}", client_key.with_suffix(".pub"))
                for i in (1, 2)]
    for machine in machines:  # each worker keeps its own copy of the predictor
        target = machine.home / "edgevit-suite" / "results" / "predictor.json"
        target.parent.mkdir(parents=True)
        shutil.copy(predictor, target)
    config = load_config_file(REPO_ROOT / "search" / "config_remote.yml")
    config.trial_command += " --accuracy proxy:params"  # milliseconds per trial
    config.max_trial_number = trials
    config.nni_manager_ip = "127.0.0.1"
    config.experiment_working_directory = str(work / "nni")
    python_bin = str(Path(sys.executable).parent)
    config.training_service.machine_list = [
        RemoteMachineConfig(host="127.0.0.1", port=m.port, user=m.user,
                            ssh_key_file=str(client_key), python_path=python_bin)
        for m in machines
    ]
    with machines[0], machines[1]:
        experiment_id, _ = run_experiment(config, port, timeout_s=400, label="remote")
    print("EXPERIMENT", experiment_id)
    print("MACHINES", *(m.home for m in machines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
