"""Scale-out and faults with real NNI experiments: the remote (SSH) service on two loopback
machines, a hung trial, a NaN objective, the manager killed then resumed, and the measurement
store written by four trials at once. Each experiment runs in a child process (in a private
network namespace where allowed), bounded in time, and leaves no process behind."""

from __future__ import annotations

import json
import shlex
import socket
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
from loopback_sshd import sshd_unavailable
from privately import TESTS_DIR, experiment_id, run_privately, run_search_privately

from analysis.cost import model_cost
from analysis.latency import MacsLinear, MeasurementStore, sha256_hex
from analysis.nas import SearchSettings, private_netns_command
from edgevit import EdgeViTConfig

ENDED = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")


@pytest.fixture()
def predictor(tmp_path) -> Path:
    """A latency model with fixed coefficients: the trials' input, not a result under test."""
    path = tmp_path / "predictor.json"
    MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0).save(path)
    return path


def last_events(database: Path) -> dict[str, str]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT trialJobId, event FROM TrialJobEvent ORDER BY timestamp")
        return dict(rows.fetchall())


def final_results(database: Path) -> dict[str, dict]:
    """trial id -> its final result dict (the metric column is JSON encoded twice)."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT trialJobId, data FROM MetricData WHERE type = 'FINAL'")
        return {trial: json.loads(json.loads(data)) for trial, data in rows}


def trial_stderr(experiment_dir: Path, trial: str) -> str:
    return next(experiment_dir.glob(f"environments/*/trials/{trial}/trial.stderr")).read_text()


def assert_echo_matches_cost(result: dict) -> None:
    assert model_cost(EdgeViTConfig.from_json(result["config"])).macs == result["macs"]


def test_remote_service_runs_every_trial_on_two_loopback_machines(tmp_path, predictor) -> None:
    """search/config_remote.yml, pointed at two sshd "machines" on 127.0.0.1 (own host keys,
    own homes): every trial's result arrives, and both machines ran trials in their own
    working directories."""
    reason = sshd_unavailable()
    if reason:
        pytest.skip(reason)
    proc = run_privately([sys.executable, str(TESTS_DIR / "remote_search_script.py"),
                          str(tmp_path), str(predictor), "8795", "4"], root=tmp_path,
                         timeout_s=500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    experiment = experiment_id(proc.stdout)
    database = tmp_path / "nni" / experiment / "db" / "nni.sqlite"
    events, results = last_events(database), final_results(database)
    assert len(events) == 4 and set(events.values()) == {"SUCCEEDED"}
    assert set(results) == set(events)
    for result in results.values():
        assert_echo_matches_cost(result)
    ran_on = {}
    for machine in ("machine1", "machine2"):
        trials = (tmp_path / machine / "home" / "nni-experiments" / experiment).glob(
            "environments/*/trials/*")
        ran_on[machine] = {path.name for path in trials}
    assert ran_on["machine1"] and ran_on["machine2"], ran_on
    assert not ran_on["machine1"] & ran_on["machine2"]
    assert ran_on["machine1"] | ran_on["machine2"] == set(events)


def test_a_hung_trial_fails_at_its_timeout_and_the_experiment_goes_on(tmp_path) -> None:
    """Trials that measure into a store another process holds locked hang in SQLite's busy
    wait; each must end FAILED at its timeout, with the stack it hung in, and the experiment
    must still reach its budget; nothing is written to the store."""
    predictor = tmp_path / "predictor.json"
    MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0).save(predictor)
    store_path = tmp_path / "store.sqlite"
    MeasurementStore(store_path).close()
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        proc = run_search_privately(
            tmp_path, predictor,
            "tuner='Random', max_trials=3, concurrency=3, port=8796, timeout_s=300, "
            "trial_timeout_s=25, macs_budget=1e12, extra_trial_args=('--measure-store', "
            f"{str(store_path)!r}, '--measure-runs', '1')",
            "print('EXPERIMENT', run_search(settings)[0])\n")
    finally:
        holder.rollback()
        holder.close()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    experiment_dir = tmp_path / "nni" / experiment_id(proc.stdout)
    events = last_events(experiment_dir / "db" / "nni.sqlite")
    assert len(events) == 3 and set(events.values()) == {"FAILED"}
    for trial in events:
        stderr = trial_stderr(experiment_dir, trial)
        assert "Timeout (0:00:25)!" in stderr and "store.py" in stderr, stderr[-2000:]
    with MeasurementStore(store_path) as store:
        assert store.count() == 0


class PortProbe(threading.Thread):
    """Tries to connect to 127.0.0.1:`port` from this (the host's) network every 0.2 s."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.tries, self.connected = port, 0, 0
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.wait(0.2):
            self.tries += 1
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                self.connected += 1
            except OSError:
                pass


def test_a_broken_predictor_fails_each_trial_and_the_experiment_goes_on(tmp_path) -> None:
    """A NaN coefficient: each trial fails with one line naming it (nothing NaN is reported)
    and the experiment runs to its end. Also: NNI's web UI, inside the private namespace, is
    never reachable from the host."""
    predictor = tmp_path / "nan.json"
    MacsLinear(slope_ms_per_gmac=float("nan"), intercept_ms=0.0).save(predictor)
    probe = PortProbe(8797)
    probe.start()
    try:
        proc = run_search_privately(
            tmp_path, predictor,
            "tuner='pareto-gp', max_trials=3, concurrency=2, port=8797, timeout_s=300, "
            "macs_budget=1e12", "print('EXPERIMENT', run_search(settings)[0])\n")
    finally:
        probe.finished.set()
        probe.join()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    if private_netns_command(["true"]) is not None:
        assert probe.tries > 20 and probe.connected == 0
    experiment_dir = tmp_path / "nni" / experiment_id(proc.stdout)
    events = last_events(experiment_dir / "db" / "nni.sqlite")
    assert len(events) == 3 and set(events.values()) == {"FAILED"}
    assert not final_results(experiment_dir / "db" / "nni.sqlite")  # nothing NaN reported
    for trial in events:
        stderr = trial_stderr(experiment_dir, trial)
        assert "slope_ms_per_gmac must be a finite number, got nan" in stderr
        assert "Traceback" not in stderr


def test_manager_killed_mid_run_then_resumed_loses_no_result(tmp_path, predictor) -> None:
    """search/config.yml through `nnictl create`; SIGKILL to the NNI manager once 3 trials
    succeeded; `edgevit resume` (which runs `nnictl resume`) to the budget of 8 trials."""
    proc = run_privately([sys.executable, str(TESTS_DIR / "resume_script.py"), str(tmp_path),
                          str(predictor), "8798", "8", "3"], root=tmp_path, timeout_s=600,
                         HOME=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    before, after = outcome["before"], outcome["after"]
    assert len(before["succeeded"]) >= 3
    after_by_trial: dict[str, list[str]] = {}
    for trial, data in after:
        after_by_trial.setdefault(trial, []).append(data)
    for trial, data in before["succeeded"].items():  # finished before the kill: kept as is
        assert after_by_trial[trial] == [data]
    # results reported by trials still running at the kill survive too (NNI re-runs those
    # trials, and may hand their parameters to each other: the echoed configs stay paired)
    assert set(before["reported"]) <= {data for _, data in after}
    assert len(outcome["events"]) == 8 and set(outcome["events"].values()) == {"SUCCEEDED"}
    for _, data in after:
        assert_echo_matches_cost(json.loads(json.loads(data)))
    summary = outcome["summary"]
    assert summary["experiment"] == outcome["experiment"] and summary["hypervolume"] > 0
    configs = {json.loads(json.loads(data))["config"] for _, data in after}
    assert summary["trials"] + summary["repeated_configs"] <= len(after)
    assert summary["trials"] <= len(configs)
    # config.yml runs ParetoTuner: the resumed tuner continued the same study, in which every
    # result told before the kill is still there, and every result of the resumed run too
    import optuna

    from analysis.cost.search_space import DEFAULT_SPACE
    from analysis.nas.tuner import RESULT, STUDY_FILE, STUDY_NAME, param_key

    study_file = tmp_path / "nni" / outcome["experiment"] / STUDY_FILE
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{study_file}")
    told = {param_key(t.user_attrs["nni_params"]) for t in study.get_trials()
            if t.user_attrs.get("kind") == RESULT}
    reported = {param_key(DEFAULT_SPACE.encode(EdgeViTConfig.from_json(
        json.loads(json.loads(data))["config"]))) for _, data in after}
    assert told == reported
    assert summary["tuner_study"]["result"] == len(told)


def test_store_under_four_concurrent_trials_loses_no_row(tmp_path, predictor) -> None:
    """trialConcurrency 4, every trial measuring its config and appending to one store."""
    store_path = tmp_path / "store.sqlite"
    proc = run_search_privately(
        tmp_path, predictor,
        "tuner='Random', max_trials=8, concurrency=4, port=8799, timeout_s=500, "
        f"macs_budget=1e12, extra_trial_args=('--measure-store', {str(store_path)!r}, "
        "'--measure-runs', '2')",
        "print('EXPERIMENT', run_search(settings)[0])\n", timeout_s=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    database = tmp_path / "nni" / experiment_id(proc.stdout) / "db" / "nni.sqlite"
    events, results = last_events(database), final_results(database)
    assert len(events) == 8 and set(events.values()) == {"SUCCEEDED"}
    ids = [result["measurement_id"] for result in results.values()]
    assert len(set(ids)) == len(results) == 8
    with MeasurementStore(store_path) as store:
        frame = store.to_dataframe()
    assert len(frame) == 8
    stored = frame.set_index("id")
    for result in results.values():
        row = stored.loc[result["measurement_id"]]
        assert row["config_hash"] == sha256_hex(result["config"])
        assert row["latency_ms"] == pytest.approx(result["measured_latency_ms"])


def test_trial_command_passes_hostile_paths_as_single_arguments(tmp_path) -> None:
    """The trial command is ours (trial parameters reach the trial through NNI's channel, never
    the command line); paths in it are quoted, so a path with shell syntax stays one argument."""
    hostile = tmp_path / "a b; touch pwned $(id)" / "p.json"
    settings = SearchSettings(predictor=hostile, extra_trial_args=("--measure-store", "`x`|y"))
    argv = shlex.split(settings.trial_command())
    assert argv[argv.index("--predictor") + 1] == str(hostile)
    assert argv[argv.index("--measure-store") + 1] == "`x`|y"
    assert argv[0] == sys.executable and argv[1].endswith("trial.py")
