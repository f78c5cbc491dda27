"""Test support: `search/config.yml` (ParetoTuner) through `nnictl create`, to its end.

Usage: python nnictl_pareto_script.py WORK_DIR PREDICTOR_JSON PORT TRIALS CONCURRENCY MACS_BUDGET
Run by tests/nas/test_pareto_tuner_nni.py inside a private network namespace where the system
allows one, with HOME set to WORK_DIR so that NNI's registry of experiments stays in the test's
folder. The experiment's working directory is WORK_DIR/custom-experiments (not NNI's default).
The trial's own MACs budget (the safety net) is the tuner's. Prints `EXPERIMENT <id>` and
`WALL <seconds>`; the experiment is stopped and its processes killed by id whatever happens.
"""

from __future__ import annotations

import sys
from pathlib import Path

from analysis.nas.experiment import REPO_ROOT, load_config_file, run_with_nnictl


def main(work: Path, predictor: Path, port: int, trials: int, concurrency: int,
         macs_budget: float) -> None:
    config = load_config_file(REPO_ROOT / "search" / "config.yml")
    config.trial_command = (config.trial_command.replace("../results/predictor.json",
                                                         str(predictor))
                            + f" --accuracy proxy:params --macs-budget {macs_budget!r}")
    config.max_trial_number = trials
    config.trial_concurrency = concurrency
    config.tuner.class_args["macs_budget"] = macs_budget
    config.experiment_working_directory = str(work / "custom-experiments")
    experiment_id, _, wall_s = run_with_nnictl(config, port, timeout_s=400)
    print("EXPERIMENT", experiment_id)
    print("WALL", wall_s)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
         int(sys.argv[5]), float(sys.argv[6]))
