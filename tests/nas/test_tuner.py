"""ParetoTuner in process, through NNI's tuner interface: pending trials, pairing by the echoed
config, resume from the stored study, failed and NaN results, budgets decided before dispatch."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from optuna.trial import TrialState

from analysis.cost import DEFAULT_SPACE, SPACE_JSON, model_cost
from analysis.nas.tuner import (
    FAILED,
    INFEASIBLE,
    RESULT,
    MetricError,
    ParetoTuner,
    param_key,
    read_metric,
    read_study,
)

SPACE = json.loads(SPACE_JSON.read_text())


def report(params: dict) -> dict:
    """What search/trial.py reports for `params` with proxy:params and a MACs-linear latency."""
    config = DEFAULT_SPACE.decode(params)
    cost = model_cost(config)
    return {"default": 0.0, "accuracy": math.log10(cost.params),
            "latency_ms": 40.0 * cost.macs / 1e9 + 3.0, "macs": cost.macs,
            "params": cost.params, "config": config.to_json(), "rejected": False}


def make_tuner(**kwargs) -> ParetoTuner:
    kwargs.setdefault("study_path", ":memory:")
    tuner = ParetoTuner(**kwargs)
    tuner.update_search_space(SPACE)
    return tuner


def trials_by_state(tuner: ParetoTuner, state: TrialState) -> list:
    return tuner.study.get_trials(deepcopy=False, states=(state,))


def test_pending_trials_are_known_and_results_pair_by_the_echo() -> None:
    tuner = make_tuner(sampler="tpe", seed=1)
    dispatched = {pid: tuner.generate_parameters(pid) for pid in range(4)}
    assert len({param_key(p) for p in dispatched.values()}) == 4  # no config twice at once
    running = trials_by_state(tuner, TrialState.RUNNING)
    assert len(running) == 4  # the sampler sees all four as pending
    assert {param_key(t.user_attrs["nni_params"]) for t in running} == {
        param_key(p) for p in dispatched.values()}
    # NNI mis-pairs: parameter id 0 arrives with the result (and echo) of config 2
    tuner.receive_trial_result(0, dispatched[0], report(dispatched[2]))
    told = trials_by_state(tuner, TrialState.COMPLETE)
    assert len(told) == 1 and param_key(told[0].user_attrs["nni_params"]) == param_key(
        dispatched[2])
    assert told[0].values == [report(dispatched[2])["accuracy"],
                              report(dispatched[2])["latency_ms"]]
    for pid in (1, 3, 2):  # id 2 arrives with config 0's echo; config 0 is still running
        echo = dispatched[0] if pid == 2 else dispatched[pid]
        tuner.receive_trial_result(pid, dispatched[pid], report(echo))
    complete = trials_by_state(tuner, TrialState.COMPLETE)
    assert len(complete) == 4 and not trials_by_state(tuner, TrialState.RUNNING)
    for trial in complete:  # every told value belongs to the trial's own config
        assert trial.values[0] == report(trial.user_attrs["nni_params"])["accuracy"]
    # the GP sampler (the default) also proposes while others run, never a running config
    gp = make_tuner(seed=0)
    first = [gp.generate_parameters(pid) for pid in range(12)]
    for pid, params in enumerate(first[:10]):
        gp.receive_trial_result(pid, params, report(params))
    more = [gp.generate_parameters(pid) for pid in range(12, 14)]  # 2 + 2 pending
    keys = [param_key(p) for p in first + more]
    assert len(set(keys)) == len(keys)


def test_resumed_study_keeps_every_told_trial(tmp_path) -> None:
    path = tmp_path / "exp" / "optuna_study.sqlite"
    tuner = make_tuner(sampler="tpe", seed=0, study_path=str(path))
    dispatched = {pid: tuner.generate_parameters(pid) for pid in range(7)}
    for pid in range(5):
        tuner.receive_trial_result(pid, dispatched[pid], report(dispatched[pid]))
    told_before = {param_key(dispatched[pid]) for pid in range(5)}
    del tuner  # the manager dies with two trials running

    resumed = make_tuner(sampler="tpe", seed=0, study_path=str(path))
    complete = trials_by_state(resumed, TrialState.COMPLETE)
    assert {param_key(t.user_attrs["nni_params"]) for t in complete} == told_before
    assert len(trials_by_state(resumed, TrialState.FAIL)) == 2  # interrupted, not lost
    assert not trials_by_state(resumed, TrialState.RUNNING)
    # NNI re-imports the finished results on resume: nothing is told twice
    resumed.import_data([{"parameter": dispatched[pid], "value": report(dispatched[pid])}
                         for pid in range(5)])
    assert len(trials_by_state(resumed, TrialState.COMPLETE)) == 5
    # a re-run interrupted trial reports into the resumed experiment: added by its echo
    resumed.import_data([{"parameter": dispatched[5], "value": report(dispatched[5])}])
    assert len(trials_by_state(resumed, TrialState.COMPLETE)) == 6
    new = resumed.generate_parameters(100)
    assert param_key(new) not in told_before | {param_key(dispatched[5])}
    resumed.receive_trial_result(100, new, report(new))
    counts = read_study(path)
    assert counts[RESULT] == 7 and counts["objectives"] == ["accuracy", "latency_ms"]


@pytest.mark.parametrize("value, message", [
    ({"accuracy": 1.0, "latency_ms": float("nan")}, "latency_ms=nan is not a finite number"),
    ({"accuracy": 1.0}, "objective 'latency_ms' missing"),
    (0.5, "not the dict"),
    ({"accuracy": "high", "latency_ms": 3.0}, "is not a finite number"),
    ({"accuracy": None, "latency_ms": None, "rejected": True}, "rejected inside the trial"),
])
def test_malformed_or_nan_result_is_a_failed_trial(value, message, caplog) -> None:
    with pytest.raises(MetricError, match=message):
        read_metric(value, ("accuracy", "latency_ms"))
    tuner = make_tuner(sampler="tpe")
    params = tuner.generate_parameters(0)
    tuner.receive_trial_result(0, params, value)  # no exception: the experiment goes on
    failed = trials_by_state(tuner, TrialState.FAIL)
    assert len(failed) == 1 and failed[0].user_attrs["kind"] == FAILED
    assert message in failed[0].user_attrs["fail_reason"]
    assert message in caplog.text
    tuner.trial_end(0, True)  # NNI's end event after the result changes nothing
    assert len(trials_by_state(tuner, TrialState.FAIL)) == 1
    following = tuner.generate_parameters(1)
    tuner.receive_trial_result(1, following, report(following))
    assert len(trials_by_state(tuner, TrialState.COMPLETE)) == 1


def test_a_result_after_the_end_event_is_kept() -> None:
    """NNI can deliver a trial's SUCCEEDED event before its final result."""
    tuner = make_tuner(sampler="tpe")
    params = tuner.generate_parameters(0)
    tuner.trial_end(0, True)
    tuner.generate_parameters(1)  # within the grace period: still pending
    tuner.receive_trial_result(0, params, report(params))
    counts = tuner.counts()
    assert counts[RESULT] == 1 and counts[FAILED] == 0 and counts["running"] == 1
    (told,) = trials_by_state(tuner, TrialState.COMPLETE)
    assert told.values[0] == report(params)["accuracy"]
    tuner.end_grace_s = 0.0  # a result that never comes: failed at the next dispatch
    tuner.trial_end(1, True)
    tuner.generate_parameters(2)
    (failed,) = trials_by_state(tuner, TrialState.FAIL)
    assert failed.user_attrs["fail_reason"] == "trial ended without a final result"


def test_a_crashed_trial_is_failed_on_its_end_event() -> None:
    tuner = make_tuner(sampler="nsga2")
    tuner.generate_parameters(0)
    tuner.trial_end(0, False)
    (failed,) = trials_by_state(tuner, TrialState.FAIL)
    assert "FAILED" in failed.user_attrs["fail_reason"]


@pytest.mark.parametrize("sampler", ["gp", "tpe"])
def test_infeasible_candidates_are_never_dispatched(sampler) -> None:
    budget = 0.9e9  # about a third of the space is under it (XXS: 0.55 GMACs)
    tuner = make_tuner(sampler=sampler, seed=3, macs_budget=budget, params_budget=8e6)
    trials = 14 if sampler == "gp" else 40
    for pid in range(trials):
        params = tuner.generate_parameters(pid)
        cost = model_cost(DEFAULT_SPACE.decode(params))
        assert cost.macs <= budget and cost.params <= 8e6
        tuner.receive_trial_result(pid, params, report(params))
    counts = tuner.counts()
    assert counts[RESULT] == trials and counts[INFEASIBLE] > 0  # drawn, told, not dispatched
    infeasible = [t for t in tuner.study.get_trials() if t.user_attrs.get("kind") == INFEASIBLE]
    assert all(("macs" in t.user_attrs["fail_reason"] or "params" in t.user_attrs["fail_reason"])
               for t in infeasible)


@pytest.mark.parametrize("sampler", ["gp", "nsga2"])
def test_a_new_study_starts_with_the_presets_of_the_space_within_budget(sampler,
                                                                        tmp_path) -> None:
    from edgevit import PRESETS

    budget = 1.5e9  # XXS (0.56 GMACs) and XS (1.1) are under it, S (1.9) is over
    macs = {name: model_cost(config).macs for name, config in PRESETS.items()}
    assert macs["edgevit_xxs"] < macs["edgevit_xs"] <= budget < macs["edgevit_s"]
    path = tmp_path / "optuna_study.sqlite"
    tuner = make_tuner(sampler=sampler, seed=0, macs_budget=budget, start_with_presets=True,
                       study_path=str(path))
    first = [tuner.generate_parameters(pid) for pid in range(3)]
    wanted = {param_key(DEFAULT_SPACE.encode(PRESETS[n])) for n in ("edgevit_xxs", "edgevit_xs")}
    assert {param_key(p) for p in first[:2]} == wanted
    assert param_key(first[2]) not in wanted  # then the sampler's own draws
    for pid, params in enumerate(first):
        tuner.receive_trial_result(pid, params, report(params))
    # a resumed study does not queue them again
    resumed = make_tuner(sampler=sampler, seed=0, macs_budget=budget, start_with_presets=True,
                         study_path=str(path))
    more = [param_key(resumed.generate_parameters(pid)) for pid in range(3, 6)]
    assert not set(more) & wanted
    # off by default: the first draw is the sampler's
    plain = make_tuner(sampler=sampler, seed=0, macs_budget=budget)
    assert not plain.study.get_trials(states=(TrialState.WAITING,))
    with pytest.raises(ValueError, match="start_with_presets must be true or false"):
        ParetoTuner(start_with_presets="yes", study_path=":memory:")


def test_latency_budget_uses_the_predictor(tmp_path) -> None:
    from analysis.latency import MacsLinear

    path = tmp_path / "predictor.json"
    MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0).save(path)
    tuner = make_tuner(sampler="tpe", latency_budget_ms=30.0, predictor=str(path),
                       objectives=["accuracy", "latency_ms", "macs"])
    for pid in range(15):
        params = tuner.generate_parameters(pid)
        assert report(params)["latency_ms"] <= 30.0
        tuner.receive_trial_result(pid, params, report(params))
    assert len(tuner.study.directions) == 3
    with pytest.raises(ValueError, match="needs a predictor"):
        ParetoTuner(latency_budget_ms=30.0, study_path=":memory:")
    with pytest.raises(ValueError, match="distinct names"):
        ParetoTuner(objectives=["accuracy", "speed"], study_path=":memory:")


def test_default_study_lives_in_the_experiment_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NNI_LOG_DIRECTORY", str(tmp_path / "EXP" / "log"))
    tuner = ParetoTuner(sampler="tpe")
    assert tuner.study_path == tmp_path / "EXP" / "optuna_study.sqlite"
    assert not tuner.study_path.exists()  # opened on NNI's first command, not in __init__
    tuner.update_search_space(SPACE)
    assert tuner.study_path.is_file()


def test_the_constructor_is_quick() -> None:
    """NNI's manager gives the dispatcher 10 s to connect, counted from its start: importing
    the tuner and constructing it must not pull in torch, sympy or optuna."""
    code = ("import sys, time; t = time.perf_counter(); import nni.tuner; "
            "from analysis.nas.tuner import ParetoTuner; ParetoTuner(study_path=':memory:'); "
            "print(sorted({'torch', 'sympy', 'optuna'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_space_encoding_round_trip() -> None:
    rng = np.random.default_rng(0)
    for encoding_tuner in (make_tuner(sampler="gp"), make_tuner(sampler="tpe")):
        codec = encoding_tuner.codec
        for _ in range(20):
            params = DEFAULT_SPACE.sample(rng)
            assert codec.to_nni(codec.to_optuna(params)) == params


def test_gp_tuner_sets_torch_threads() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        make_tuner(sampler="gp", torch_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
