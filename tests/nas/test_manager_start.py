"""A start that misses NNI's 3-second start-up check of its manager (a loaded machine) is tried
again; any other failed start is raised at once."""

from __future__ import annotations

import pytest

import analysis.nas.experiment as experiment_module
from analysis.nas.experiment import MANAGER_START_ATTEMPTS, manager_start_timed_out, run_experiment

# nnictl's output when the manager did not answer in time (from a CI run, shortened)
NNICTL_TIMED_OUT = """\
[2026-12-02 04:54:14] WARNING: Timeout, retry...
[2026-12-02 04:54:17] ERROR: Create experiment failed: Expecting value: line 1 column 1 (char 0)
  File ".../nni/experiment/launcher.py", line 125, in start_experiment
    _check_rest_server(port, url_prefix=url_prefix)
requests.exceptions.JSONDecodeError: Expecting value: line 1 column 1 (char 0)
"""


def test_only_the_start_up_check_counts_as_timed_out() -> None:
    assert manager_start_timed_out(NNICTL_TIMED_OUT)
    assert not manager_start_timed_out("RuntimeError: Port 8080 is not idle")
    assert not manager_start_timed_out("ValidationError: trial_concurrency must be positive")


def _check_rest_server() -> None:  # named as NNI's start-up check, so the traceback shows it
    raise ValueError("Expecting value: line 1 column 1 (char 0)")


class FakeExperiment:
    """Stands in for `nni.experiment.Experiment`: its starts fail as `failures` says."""

    failures: list[str | type[BaseException] | None] = []
    started: list[FakeExperiment] = []

    def __init__(self, config) -> None:
        self.id = f"exp{len(FakeExperiment.started)}"
        FakeExperiment.started.append(self)

    def start(self, port: int, debug: bool = False) -> None:
        failure = FakeExperiment.failures.pop(0)
        if failure == "timed out":
            _check_rest_server()
        if failure is not None:
            raise failure("bad config")

    def stop(self) -> None:
        pass


@pytest.fixture
def fake_nni(monkeypatch, tmp_path):
    import nni.experiment

    monkeypatch.setattr(nni.experiment, "Experiment", FakeExperiment)
    monkeypatch.setattr(experiment_module, "watch_experiment", lambda *a, **k: None)
    monkeypatch.setattr(experiment_module, "MANAGER_RESTART_PAUSE_S", 0.0)
    FakeExperiment.started = []
    config = type("Config", (), {"experiment_working_directory": str(tmp_path),
                                 "max_trial_number": 1})()
    return config


def test_a_start_that_timed_out_is_tried_again(fake_nni) -> None:
    FakeExperiment.failures = ["timed out", None]
    with pytest.warns(UserWarning, match="did not answer within NNI's start-up check"):
        experiment_id, _ = run_experiment(fake_nni, 8080)
    assert experiment_id == "exp1" and len(FakeExperiment.started) == 2


def test_tries_stop_after_the_last_attempt(fake_nni) -> None:
    FakeExperiment.failures = ["timed out"] * MANAGER_START_ATTEMPTS
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="Expecting value"):
        run_experiment(fake_nni, 8080)
    assert len(FakeExperiment.started) == MANAGER_START_ATTEMPTS


def test_another_failed_start_is_raised_at_once(fake_nni) -> None:
    FakeExperiment.failures = [RuntimeError]
    with pytest.raises(RuntimeError, match="bad config"):
        run_experiment(fake_nni, 8080)
    assert len(FakeExperiment.started) == 1
