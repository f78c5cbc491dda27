"""Latency predictors: fitting mechanics, JSON round trip, scoring, calibration end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import edgevit
from analysis.calibration import calibrate, sample_configs
from analysis.features import config_features
from analysis.latency import Protocol
from analysis.predictors import (
    BlockTable,
    FeatureModel,
    LatencyPredictor,
    MacsLinear,
    score,
)
from analysis.symbolic import model_cost
from edgevit.cli import main

FAST = Protocol(warmup_runs=1, min_runs=5, min_time_s=0.05)


def frame_of(configs, latency_ms, size=(224, 224)) -> pd.DataFrame:
    return pd.DataFrame({"config_json": [c.to_json() for c in configs], "config_kind": "model",
                         "input_h": size[0], "input_w": size[1], "latency_ms": latency_ms})


def test_macs_linear_recovers_a_line() -> None:
    configs = sample_configs(12, seed=3)
    gmacs = np.array([model_cost(c).macs / 1e9 for c in configs])
    fitted = MacsLinear().fit(frame_of(configs, 7.5 * gmacs + 2.0))
    assert fitted.slope_ms_per_gmac == pytest.approx(7.5)
    assert fitted.intercept_ms == pytest.approx(2.0)


def test_feature_model_recovers_per_kind_costs() -> None:
    """Latencies made from known non-negative per-feature costs are fitted back exactly."""
    configs = sample_configs(40, seed=4)
    features = config_features(configs)
    truth = np.array([2e-8, 3e-7, 1e-7, 0.0, 5e-7, 1e-7, 0.0, 0.01])  # ms per unit
    latency = features @ truth
    model = FeatureModel(correction=False).fit(frame_of(configs, latency))
    np.testing.assert_allclose(model.predict(configs), latency, rtol=1e-6)


@pytest.mark.parametrize("kind", ["macs_linear", "features_gp"])
def test_predictor_files_round_trip(tmp_path, kind: str) -> None:
    configs = sample_configs(10, seed=5)
    rng = np.random.default_rng(0)
    latency = np.array([model_cost(c).macs / 1e8 for c in configs]) * rng.uniform(0.9, 1.1, 10)
    predictor = LatencyPredictor._registry[kind]().fit(frame_of(configs, latency))
    predictor.device = "phone"
    predictor.save(tmp_path / "p.json")
    loaded = LatencyPredictor.load(tmp_path / "p.json")
    assert type(loaded) is type(predictor) and loaded.device == "phone"
    others = sample_configs(14, seed=6)[10:]
    np.testing.assert_allclose(loaded.predict(others), predictor.predict(others), rtol=1e-9)


def test_block_table_round_trip_and_missing_block(tmp_path) -> None:
    from analysis.latency import model_blocks

    xxs = edgevit.preset_config("edgevit_xxs")
    blocks = model_blocks(xxs, (224, 224))  # 4 stems, 7 LGL blocks, the head
    rows = [{"config_json": b.to_json(), "config_kind": "block", "input_h": b.h,
             "input_w": b.w, "latency_ms": 2.0 if b.kind == "lgl" else 1.0} for b in blocks]
    table = BlockTable().fit(pd.DataFrame(rows))
    assert table.predict([xxs])[0] == pytest.approx(2.0 * 7 + 1.0 * 5)
    table.save(tmp_path / "t.json")
    assert LatencyPredictor.load(tmp_path / "t.json").predict([xxs])[0] == table.predict([xxs])[0]
    with pytest.raises(ValueError, match="lacks"):
        table.predict([edgevit.preset_config("edgevit_s")])


@pytest.mark.parametrize("content", ["{", "[]", json.dumps({"kind": "pickle", "format": 1}),
                                     json.dumps({"format": 1, "kind": "macs_linear",
                                                 "device": "x", "img_size": [224, 224],
                                                 "state": {"slope_ms_per_gmac": "a"}})])
def test_corrupt_predictor_files_are_refused(tmp_path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="not a valid predictor file"):
        LatencyPredictor.load(path)


def test_score_by_hand() -> None:
    result = score(np.array([1.0, 2.18, 2.9, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert result.within_5 == 0.75 and result.within_10 == 1.0
    assert result.mape == pytest.approx((0 + 0.09 + 0.1 / 3 + 0) / 4)
    assert result.kendall_tau == pytest.approx(1.0)


def test_nan_measurements_refused() -> None:
    configs = sample_configs(4)
    with pytest.raises(ValueError, match="non-finite or non-positive"):
        MacsLinear().fit(frame_of(configs, [1.0, float("nan"), 2.0, 3.0]))


def test_calibrate_end_to_end_small(tmp_path) -> None:
    from analysis.store import MeasurementStore

    store = MeasurementStore(tmp_path / "m.sqlite")
    predictors, report = calibrate(device="here", budget=8, img_size=(64, 64), store=store,
                                   protocol=FAST, noise_repeats=2, progress=False)
    assert set(predictors) == {"macs_linear", "features_gp", "block_table"}
    assert report.test_count == 2 and report.train_count == 6
    for values in report.scores.values():
        assert np.isfinite(values["mape"]) and 0 <= values["within_10"] <= 1
    assert store.count() > 8  # models, their blocks, all stored


def test_calibrate_and_predict_cli(tmp_path, capsys) -> None:
    out = tmp_path / "predictor.json"
    code = main(["calibrate", "--device", "here", "--budget", "6", "--img-size", "64", "64",
                 "--runs", "5", "--min-time", "0.05", "--store", str(tmp_path / "s.sqlite"),
                 "--out", str(out), "--json"])
    assert code == 0 and out.is_file()
    capsys.readouterr()
    assert main(["predict", "edgevit_xs", "--predictor", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["latency_ms"] > 0 and result["device"] == "here"
    assert main(["predict", "edgevit_xs", "--predictor", str(out), "--img-size", "224"]) == 2
    assert main(["predict", "edgevit_xs", "--predictor", str(tmp_path / "none.json")]) == 2
