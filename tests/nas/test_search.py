"""The NNI search: the trial alone, rejections and NaN, a small real experiment, the configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO_ROOT
from privately import experiment_id, run_search_privately

import edgevit
from analysis.accuracy import AccuracyMethod
from analysis.cost import model_cost
from analysis.latency import MacsLinear
from analysis.nas import (
    default_accuracy_method,
    draw_tchebycheff_weights,
    mnas_reward,
    objective_ranges,
    tchebycheff_reward,
)
from edgevit import EdgeViTConfig

TRIAL = REPO_ROOT / "search" / "trial.py"


@pytest.fixture()
def predictor(tmp_path) -> Path:
    """A latency model with fixed coefficients: the trial's input, not a result under test."""
    path = tmp_path / "predictor.json"
    MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0).save(path)
    return path


def run_trial(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TRIAL), *args], capture_output=True, text=True,
                          timeout=300)


def test_trial_runs_alone_with_defaults(predictor) -> None:
    proc = run_trial("--predictor", str(predictor))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    xxs = edgevit.preset_config("edgevit_xxs")
    assert EdgeViTConfig.from_json(result["config"]) == xxs
    assert result["macs"] == 551_262_816 and result["params"] == 4_067_704
    assert result["latency_ms"] == pytest.approx(40.0 * 0.551262816 + 3.0)
    # the committed studies' pick, by its canonical name (where it runs included)
    assert result["accuracy_method"] == default_accuracy_method()
    assert result["accuracy_method"] == str(AccuracyMethod.parse(result["accuracy_method"]))
    assert result["accuracy_scale"] == AccuracyMethod.parse(result["accuracy_method"]).scale


def test_a_negative_proxy_scores_and_its_reward_is_tchebycheff(predictor) -> None:
    proc = run_trial("--predictor", str(predictor), "--accuracy", "proxy:jacob_cov@digits/32")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["accuracy_method"] == "proxy:jacob_cov"  # the canonical name
    assert result["accuracy"] < 0  # jacob_cov: the default scalarisation must cope
    predictor_model = MacsLinear.load(predictor)
    ranges = objective_ranges(result["accuracy_method"], predictor_model.predict)
    assert result["default"] == pytest.approx(tchebycheff_reward(
        result["accuracy"], result["latency_ms"], weights=draw_tchebycheff_weights(0),
        accuracy_range=ranges[0], latency_range_ms=ranges[1]))


def test_trial_refuses_mnas_with_a_negative_proxy(predictor) -> None:
    proc = run_trial("--predictor", str(predictor), "--scalarization", "mnas",
                     "--accuracy", "proxy:jacob_cov")
    assert proc.returncode != 0 and "positive accuracy" in proc.stderr


def test_trial_rejects_over_budget_at_once(predictor) -> None:
    proc = run_trial("--predictor", str(predictor), "--macs-budget", "1e8")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0 and result["rejected"] and result["latency_ms"] is None


@pytest.mark.parametrize("slope, message", [
    (float("nan"), "slope_ms_per_gmac must be a finite number, got nan"),  # refused at load
    (-1e6, "a latency must be finite and > 0"),  # loads, predicts a negative latency
])
def test_trial_refuses_a_broken_predictor_in_one_line(tmp_path, slope, message) -> None:
    path = tmp_path / "broken.json"
    MacsLinear(slope_ms_per_gmac=slope, intercept_ms=0.0).save(path)
    proc = run_trial("--predictor", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith(
        "trial: error:")


def test_nnictl_configs_load() -> None:
    from nni.experiment.config import ExperimentConfig

    for name, platform in (("config.yml", "local"), ("config_remote.yml", "remote")):
        config = ExperimentConfig.load(str(REPO_ROOT / "search" / name))
        assert config.training_service.platform == platform
        assert "trial.py" in config.trial_command
        assert Path(config.search_space_file).name == "search_space.json"
        assert config.tuner.class_name == "analysis.nas.tuner.ParetoTuner"  # the default
        assert (REPO_ROOT / "search" / config.tuner.code_directory).resolve() == REPO_ROOT
        assert "--scalarization none" in config.trial_command


def test_scalarisations_by_hand() -> None:
    assert mnas_reward(0.8, 20.0, 10.0, -0.07) == pytest.approx(0.8 * 2 ** -0.07)
    weights = draw_tchebycheff_weights(3)
    assert sum(weights) == pytest.approx(1.0) and weights == draw_tchebycheff_weights(3)
    with pytest.raises(ValueError):
        mnas_reward(0.5, 0.0, 10.0)


def test_small_experiment_end_to_end(predictor, tmp_path) -> None:
    """A real NNI experiment (the default ParetoTuner, 6 trials, concurrency 2) in a private
    network namespace, through `edgevit search`; the front measured for real."""
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.cli", "search", "--predictor", str(predictor),
         "--accuracy", "proxy:params", "--trials", "6", "--concurrency", "2",
         "--out", str(out), "--port", "8761", "--measure-front",
         "--experiments-dir", str(tmp_path / "nni"), "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[:3000] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rejected_in_trial"] == 0 and summary["tuner_study"]["result"] >= 1
    # every trial reported its scale (the report refuses a mixture), and the summary says it
    assert summary["accuracy_scale"] == AccuracyMethod.parse("proxy:params").scale
    trials = pd.read_csv(out / "trials.csv")
    assert 1 <= len(trials) <= 6 and summary["trials"] == len(trials)
    for _, row in trials.iterrows():  # every echoed config is the one that was costed
        assert model_cost(EdgeViTConfig.from_json(row["config"])).macs == row["macs"]
    assert (out / "front.html").stat().st_size > 1000
    front = pd.read_csv(out / "front.csv")
    assert len(front) == summary["front_size"] and (front["measured_latency_ms"] > 0).all()
    assert (front["measured_round"] >= 1).all() and summary["measured_front"]["rounds"]
    assert set(summary["measured_front"]) >= {"mape", "within_10", "kendall_tau"}
    assert 0 < summary["hypervolume_ratio"] <= 1.0 + 1e-9
    assert "127.0.0.1" in proc.stderr + proc.stdout or "private" not in proc.stderr


def test_a_broken_tuner_fails_loudly(tmp_path, predictor) -> None:
    """NNI 3.0's Hyperband breaks the trial listing (nni#5263): the run must stop with a clear
    ExperimentError, not hang in RUNNING or die with NNI's own TypeError."""
    proc = run_search_privately(
        tmp_path, predictor,
        "tuner='Hyperband', max_trials=4, port=8793, timeout_s=180, allow_any_tuner=True",
        "try:\n    run_search(settings)\nexcept ExperimentError as err:\n"
        "    print('EXPERIMENT ERROR:', str(err).splitlines()[0])\n    raise SystemExit(3)\n")
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "EXPERIMENT ERROR:" in proc.stdout and "Hyperband" in proc.stdout


def test_failing_trials_are_failed_and_the_experiment_goes_on(tmp_path) -> None:
    """A predictor that cannot price most configs (a block table holding only XXS's blocks)
    makes those trials fail: each must end FAILED with one line naming the missing block in the
    trial's log (no traceback) while the experiment runs on to its budget."""
    import sqlite3

    from analysis.latency import BlockTable, model_blocks

    xxs = edgevit.preset_config("edgevit_xxs")
    rows = [{"config_json": b.to_json(), "config_kind": "block", "input_h": b.h,
             "input_w": b.w, "latency_ms": 1.0} for b in model_blocks(xxs, (224, 224))]
    predictor = tmp_path / "table.json"
    BlockTable().fit(pd.DataFrame(rows)).save(predictor)
    proc = run_search_privately(
        tmp_path, predictor,
        "tuner='Random', max_trials=4, concurrency=2, port=8794, timeout_s=300",
        "print('EXPERIMENT', run_search(settings)[0])\n")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    database = tmp_path / "nni" / experiment_id(proc.stdout) / "db" / "nni.sqlite"
    with sqlite3.connect(database) as db:
        events = db.execute("SELECT trialJobId, event, logPath FROM TrialJobEvent").fetchall()
    ended = {trial: event for trial, event, _ in events if event in ("SUCCEEDED", "FAILED")}
    assert len(ended) == 4  # the budget ran out; a failure did not stop the experiment
    failed = [trial for trial, event in ended.items() if event == "FAILED"]
    assert failed
    logs = {trial: path for trial, _, path in events if path}
    for trial in failed:
        stderr = Path(logs[trial].replace("file://localhost:", "")) / "trial.stderr"
        text = stderr.read_text()
        assert "trial: error: block table lacks the block" in text and "Traceback" not in text
