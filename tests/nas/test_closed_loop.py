"""The search's closed loop on a fake machine: it stops when the front agrees, stops after its
last round when it never does, measures each config once, and names predicted and measured
latency per front point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.cost import config_features, model_cost
from analysis.latency import FeatureModel, MacsLinear, sample_configs
from analysis.nas import close_the_loop, loop_summary
from analysis.nas.closed_loop import machine_ratios
from edgevit import PRESETS

TRUTH = np.array([2e-8, 3e-7, 1e-7, 0.0, 5e-7, 1e-7, 0.0, 0.01])  # ms per feature unit
XXS = PRESETS["edgevit_xxs"]


def truth_ms(configs) -> np.ndarray:
    return config_features(list(configs)) @ TRUTH


def frame_of(configs, latency) -> pd.DataFrame:
    return pd.DataFrame({"config_json": [c.to_json() for c in configs], "config_kind": "model",
                         "input_h": 224, "input_w": 224, "latency_ms": latency})


@pytest.fixture(scope="module")
def trials() -> pd.DataFrame:
    configs = sample_configs(60, seed=21)
    return pd.DataFrame({"config": [c.to_json() for c in configs],
                         "accuracy": [np.log10(model_cost(c).params) for c in configs]})


class FakeMachine:
    """Latency ratios to XXS from a known cost model, times `bias`; remembers every call."""

    def __init__(self, bias: float = 1.0) -> None:
        self.bias, self.measured = bias, []

    def __call__(self, configs) -> np.ndarray:
        self.measured += [c.to_json() for c in configs]
        return truth_ms(configs) * self.bias / truth_ms([XXS])[0]


def fitted(latency_of) -> FeatureModel:
    configs = sample_configs(40, seed=22)
    frame = frame_of(configs, latency_of(configs))
    predictor = FeatureModel().fit(frame)
    return predictor.fit_interval(frame, lambda rows: FeatureModel().fit(rows))


def test_an_agreeing_front_stops_after_one_round(trials) -> None:
    machine = FakeMachine()
    front, rounds, final = close_the_loop(trials, fitted(truth_ms), machine)
    assert len(rounds) == 1 and rounds[0].misses == 0 and not rounds[0].refitted
    assert sorted(machine.measured) == sorted(front["config"])  # the front, each once
    assert {"predicted_latency_ms", "measured_latency_ms", "interval_low_ms",
            "interval_high_ms", "measured_round"} <= set(front.columns)
    summary = loop_summary(rounds, front)
    assert summary["within_10"] == 1.0 and summary["rounds"][0]["round"] == 1
    assert not summary["in_sample"] and summary["first_round"]["within_10"] == 1.0


def test_a_front_that_never_agrees_stops_after_its_last_round(trials) -> None:
    machine = FakeMachine(bias=2.0)  # the machine is twice as slow as anything predicted
    predictor = fitted(truth_ms)
    front, rounds, final = close_the_loop(trials, predictor, machine, max_rounds=3)
    assert [r.round for r in rounds] == [1, 2, 3]
    assert [r.refitted for r in rounds] == [True, True, False]
    assert len(machine.measured) == len(set(machine.measured))  # nothing measured twice
    assert set(front["config"]) <= set(machine.measured)
    # the refits learnt from the misses: the final predictor is closer to the machine
    measured = front["measured_latency_ms"].to_numpy()
    first = predictor.predict([c for c in map(_config, front["config"])])
    assert np.mean(np.abs(front["predicted_latency_ms"] / measured - 1)) < \
        np.mean(np.abs(first / measured - 1))
    assert (front["measured_round"] >= 1).all() and (front["measured_round"] <= 3).all()
    # the summary says the final agreement is in sample, and keeps round 1's out-of-sample one
    summary = loop_summary(rounds, front)
    assert summary["in_sample"] and summary["first_round"]["within_10"] == rounds[0].within_10
    assert summary["first_round"]["within_10"] == 0.0  # twice as slow: no point within ±10 %


def test_a_predictor_that_cannot_be_refitted_is_measured_once(trials) -> None:
    configs = sample_configs(20, seed=23)
    line = MacsLinear().fit(frame_of(configs, truth_ms(configs)))
    line.fit_interval(frame_of(configs, truth_ms(configs)), lambda r: MacsLinear().fit(r))
    front, rounds, _ = close_the_loop(trials, line, FakeMachine(bias=1.5))
    assert len(rounds) == 1 and rounds[0].misses > 0 and not rounds[0].refitted
    with pytest.raises(ValueError, match="max_rounds"):
        close_the_loop(trials, line, FakeMachine(), max_rounds=0)


def _config(text: str):
    from edgevit import EdgeViTConfig

    return EdgeViTConfig.from_json(text)


def test_outputs_name_the_method_and_its_trust(trials) -> None:
    """The digits study validates no proxy: the front's column is a score, and the table says
    "accuracy unvalidated" with the method's τ [interval]; short training is an accuracy."""
    from analysis.accuracy import trust_of
    from analysis.nas import front_table, value_name

    method = "proxy:jacob_cov"
    trust = trust_of(method)
    assert not trust["validated"] and value_name(trust) == "score"
    assert "accuracy unvalidated" in trust["label"] and "Kendall τ" in trust["label"]
    front = trials.head(3).assign(latency_ms=[1.0, 2.0, 3.0], macs=[1e9] * 3,
                                  accuracy=[-750.25, 2.0, 1.5e14])
    table = front_table(front, method)
    assert table.splitlines()[0] == trust["label"] and " score " in table.splitlines()[2]
    assert table.splitlines()[1].startswith("score = the Jacobian-covariance score")
    assert " -750.2 " in table and " 1.5e+14 " in table  # a raw score keeps 4 digits at any scale
    assert value_name(trust_of("train:fashion-mnist")) == "accuracy"
    # a proxy a study validates still ranks by a score (synflow's log10 flow): not an accuracy
    validated_proxy = dict(trust_of("proxy:synflow@fashion-mnist/64"), validated=True)
    assert value_name(validated_proxy) == "score"
    assert "score = log10 of the synaptic flow" in front_table(front, "proxy:synflow")
    assert "score =" not in front_table(front, "train:fashion-mnist")
    assert "in no committed study" in trust_of("supernet:runs/x")["label"]


def test_a_predictor_without_an_interval_is_judged_on_its_error_alone(trials) -> None:
    line = MacsLinear(slope_ms_per_gmac=20.0, intercept_ms=1.0)  # no fit_interval
    front, rounds, _ = close_the_loop(trials, line, FakeMachine())
    assert front["interval_low_ms"].isna().all() and len(rounds) == 1
    assert loop_summary(rounds, front)["in_interval"] is None


@pytest.mark.parametrize("settings", [dict(backend="tflite", device="phone"),
                                      dict(threads=None, device="phone")])
def test_a_predictor_of_another_device_is_not_timed_here(settings) -> None:
    """An imported phone's predictor (another back-end, or torch rows without a thread count):
    the loop refuses to time its front on this CPU, naming the predictor's settings."""
    import dataclasses

    predictor = fitted(truth_ms)
    predictor.settings = dataclasses.replace(
        predictor.settings, **{"fingerprint": "ab12", **settings})
    with pytest.raises(ValueError, match="on phone, which this machine cannot time"):
        machine_ratios(predictor)
    predictor.settings = dataclasses.replace(predictor.settings, backend="torch", threads=1,
                                             fingerprint="")
    assert callable(machine_ratios(predictor))  # torch at a thread count: measurable here
