"""Values of two accuracy scales never share a front: every trial reports what its value is
(`accuracy_scale`; a supernet's names the trained checkpoint), the report refuses a mixture,
the ParetoTuner fails a result of another scale than its study's, and `edgevit resume` refuses
before launching NNI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pandas as pd
import pytest
from optuna.trial import TrialState

from analysis.accuracy import COMMITTED_SUPERNET, TOP1_SCALE, AccuracyMethod, export_supernet
from analysis.cli import main
from analysis.nas import UNRECORDED_SCALE, check_scales
from analysis.nas.tuner import RESULT, read_study
from tests.nas.test_tuner import make_tuner, report, trials_by_state

SYNFLOW = "proxy:synflow@fashion-mnist/64"
TODAY = AccuracyMethod.parse(SYNFLOW).scale
RAW_FLOW = "the synaptic flow Σ|θ·∂R/∂θ|"  # what synflow reported before 2026-12-02


def test_every_method_says_what_its_value_is() -> None:
    assert TODAY.startswith("log10 of the synaptic flow")
    assert AccuracyMethod.parse("proxy:jacob_cov").scale != TODAY
    for method in ("train:digits", "train:fashion-mnist@64"):
        assert AccuracyMethod.parse(method).scale == TOP1_SCALE
    with pytest.raises(ValueError, match="not found"):  # a supernet's names its checkpoint
        AccuracyMethod.parse("supernet:no-such.pt").scale  # noqa: B018 - the property raises


def frame(*scales: str | None, method: str = SYNFLOW) -> pd.DataFrame:
    return pd.DataFrame({"accuracy_method": [method] * len(scales),
                         "accuracy_scale": list(scales)})


def test_a_supernet_retrained_in_place_is_another_scale(tmp_path) -> None:
    ckpt = tmp_path / "supernet.pt"
    shutil.copy(COMMITTED_SUPERNET, ckpt)
    method = f"supernet:{ckpt}"
    first = AccuracyMethod.parse(method).scale
    assert first.startswith(f"{TOP1_SCALE} by supernet ") and first.endswith("(step 1600)")
    # where the file lies is not part of it
    assert first == AccuracyMethod.parse(f"supernet:{COMMITTED_SUPERNET}").scale
    trials = frame(first, first, method=method)
    assert check_scales(trials, method, allow_unrecorded=False) == first
    # replaced in place by another training of it (here: its bfloat16 export)
    export_supernet(COMMITTED_SUPERNET, tmp_path / "bf16.pt", dtype="bfloat16")
    os.replace(tmp_path / "bf16.pt", ckpt)
    second = AccuracyMethod.parse(method).scale
    assert second != first and second.endswith("(step 1600)")
    for allow in (True, False):
        with pytest.raises(ValueError, match="checkpoint retrained or replaced"):
            check_scales(trials, method, allow_unrecorded=allow)
    # a supernet trial's bare top-1 (before the checkpoint was named) scored with an unknown
    # checkpoint: reported as it is, never resumed
    legacy = frame(TOP1_SCALE, TOP1_SCALE, method=method)
    assert check_scales(legacy, method, allow_unrecorded=True) == UNRECORDED_SCALE
    with pytest.raises(ValueError, match="2 trials: 'not recorded"):
        check_scales(legacy, method, allow_unrecorded=False)
    # removed since: a report reads trials that agree and refuses a mixture; a resume cannot run
    ckpt.unlink()
    assert check_scales(trials, method, allow_unrecorded=True) == first
    with pytest.raises(ValueError, match="they must agree"):
        check_scales(frame(first, second, method=method), method, allow_unrecorded=True)
    with pytest.raises(ValueError, match="not found"):
        check_scales(trials, method, allow_unrecorded=False)


def test_the_report_refuses_values_of_two_scales() -> None:
    check_scales(frame(TODAY, TODAY), SYNFLOW, allow_unrecorded=False)
    old = pd.DataFrame({"accuracy_method": [SYNFLOW] * 3})  # trials before the field
    check_scales(old, SYNFLOW, allow_unrecorded=True)  # an old experiment reads as it is
    with pytest.raises(ValueError, match=r"3 trials: 'not recorded"):
        check_scales(old, SYNFLOW, allow_unrecorded=False)  # resuming it would mix
    with pytest.raises(ValueError, match=r"2 trials: 'not recorded.*1 trials: 'log10"):
        check_scales(frame(None, None, TODAY), SYNFLOW, allow_unrecorded=True)
    with pytest.raises(ValueError, match="start a new experiment"):
        check_scales(frame(RAW_FLOW), SYNFLOW, allow_unrecorded=True)
    assert UNRECORDED_SCALE.startswith("not recorded")


def test_the_tuner_fails_a_result_of_another_scale(tmp_path) -> None:
    tuner = make_tuner(sampler="tpe", seed=0)
    dispatched = {pid: tuner.generate_parameters(pid) for pid in range(3)}
    for pid, scale in ((0, TODAY), (1, RAW_FLOW), (2, TODAY)):
        tuner.receive_trial_result(pid, dispatched[pid],
                                   dict(report(dispatched[pid]), accuracy_scale=scale))
    assert len(trials_by_state(tuner, TrialState.COMPLETE)) == 2
    [failed] = trials_by_state(tuner, TrialState.FAIL)
    assert "accuracy_scale" in failed.user_attrs["fail_reason"]
    assert RAW_FLOW in failed.user_attrs["fail_reason"]
    # a study stored before results named their scale: a resumed trial that names one fails
    path = tmp_path / "optuna_study.sqlite"
    old = make_tuner(sampler="tpe", seed=0, study_path=str(path))
    params = old.generate_parameters(0)
    old.receive_trial_result(0, params, report(params))  # no accuracy_scale
    storage = sqlite3.connect(path)  # the record removed: a study from before it existed
    storage.execute("DELETE FROM study_user_attributes WHERE key = 'accuracy_scale'")
    storage.commit()
    storage.close()
    resumed = make_tuner(sampler="tpe", seed=0, study_path=str(path))
    new = resumed.generate_parameters(1)
    resumed.receive_trial_result(1, new, dict(report(new), accuracy_scale=TODAY))
    assert read_study(path)[RESULT] == 1  # the stored result alone
    [failed] = trials_by_state(resumed, TrialState.FAIL)
    assert "is not the None of the study's results" in failed.user_attrs["fail_reason"]


def test_resume_refuses_an_experiment_of_another_scale(tmp_path, capsys, monkeypatch) -> None:
    import analysis.nas.experiment
    from analysis.latency import MacsLinear

    def never(*args, **kwargs):
        raise AssertionError("NNI was launched")

    monkeypatch.setattr(analysis.nas.experiment, "resume_search", never)
    MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0).save(tmp_path / "predictor.json")
    database = tmp_path / "nni" / "abc123" / "db" / "nni.sqlite"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE MetricData (timestamp integer, trialJobId text, "
                   "parameterId text, type text, sequence integer, data text)")
        raw = {"default": 0.3, "accuracy": 1.2e14, "latency_ms": 30.0, "config": "{}",
               "accuracy_method": SYNFLOW}  # reported before trials named their scale
        db.execute("INSERT INTO MetricData VALUES (1, 'a', '0', 'FINAL', 0, ?)",
                   (json.dumps(json.dumps(raw)),))
    before = database.read_bytes()
    code = main(["resume", "abc123", "--predictor", str(tmp_path / "predictor.json"),
                 "--experiments-dir", str(tmp_path / "nni")])
    err = capsys.readouterr().err
    assert code == 2 and "edgevit resume abc123" in err and "start a new experiment" in err
    assert "1 trials: 'not recorded" in err and err.count("\n") == 1
    assert database.read_bytes() == before  # nothing stored is touched
