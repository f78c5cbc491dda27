"""Pareto masks and hypervolume on hand-made fronts; reading NNI's double-encoded metrics."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.nas import hypervolume, hypervolume_curve, non_dominated, read_nni_trials


def brute_force(points: np.ndarray, senses) -> np.ndarray:
    cost = points * np.array([-1 if s == "max" else 1 for s in senses])
    return np.array([not any((q <= p).all() and (q < p).any() for q in cost) for p in cost])


def test_hand_made_front() -> None:
    # (accuracy ↑, latency ↓)
    points = np.array([[0.7, 10], [0.8, 20], [0.75, 25], [0.8, 20], [0.6, 5], [0.6, 6]])
    mask = non_dominated(points, ("max", "min"))
    assert mask.tolist() == [True, True, False, True, True, False]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 3)),
                min_size=1, max_size=30))
def test_matches_brute_force(rows) -> None:
    points = np.array(rows, dtype=float)
    for senses in (("max", "min"), ("min", "min"), ("max", "min", "min")):
        subset = points[:, : len(senses)]
        assert non_dominated(subset, senses).tolist() == brute_force(subset, senses).tolist()


def test_hypervolume_by_hand() -> None:
    # minimisation of both, reference (4, 4)
    points = np.array([[1.0, 3.0], [2.0, 1.0]])
    # area dominated: x in [1,2): y in [3,4) -> 1; x in [2,4): y in [1,4) -> 6; total 7
    assert hypervolume(points, ("min", "min"), (4, 4)) == pytest.approx(7.0)
    acc_lat = np.array([[0.9, 2.0]])  # accuracy ↑ latency ↓, reference (0.5, 4)
    assert hypervolume(acc_lat, ("max", "min"), (0.5, 4.0)) == pytest.approx(0.4 * 2.0)
    trials = np.array([[2.0, 1.0], [1.0, 3.0], [3.0, 3.0]])
    curve = hypervolume_curve(trials, ("min", "min"), (4, 4))
    assert curve.tolist() == pytest.approx([6.0, 7.0, 7.0])


def test_rejects_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        non_dominated(np.array([[np.nan, 1.0]]), ("max", "min"))


def test_read_nni_trials_trusts_the_echo(tmp_path) -> None:
    db_path = tmp_path / "exp1" / "db" / "nni.sqlite"
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE MetricData (timestamp integer, trialJobId text, "
                   "parameterId text, type text, sequence integer, data text)")
        good = {"default": 0.5, "latency_ms": 3.0, "config": json.dumps({"widths": [1]})}
        db.execute("INSERT INTO MetricData VALUES (1, 'a', '0', 'FINAL', 0, ?)",
                   (json.dumps(json.dumps(good)),))
        db.execute("INSERT INTO MetricData VALUES (2, 'b', '1', 'FINAL', 0, ?)",
                   (json.dumps(json.dumps({"default": 0.1})),))  # no echo: dropped
        db.execute("INSERT INTO MetricData VALUES (3, 'c', '2', 'PERIODICAL', 0, '1.0')")
    frame = read_nni_trials("exp1", tmp_path)
    assert frame["trial_id"].tolist() == ["a"]
    assert frame.attrs["dropped"] == 1
    assert json.loads(frame["config"][0]) == {"widths": [1]}
    with pytest.raises(ValueError, match="no NNI experiment"):
        read_nni_trials("missing", tmp_path)


def test_preset_dominance_by_hand() -> None:
    import pandas as pd

    from analysis.nas import preset_dominance

    front = pd.DataFrame({"accuracy": [-1110.0, -900.0, -762.0],
                          "latency_ms": [29.5, 35.0, 41.2]})
    presets = pd.DataFrame({"model": ["fast", "slow", "best"],
                            "accuracy": [-920.0, -2000.0, -700.0],
                            "latency_ms": [22.8, 10.0, 50.0]})
    dominance = preset_dominance(presets, front)
    # "fast" is at least as accurate as the 29.5 ms point and 22.8 ms: (29.5 − 22.8) / 29.5
    assert dominance["fast"] == pytest.approx((29.5 - 22.8) / 29.5)
    assert dominance["slow"] == 0.0  # less accurate than every front point
    assert dominance["best"] == 0.0  # more accurate, but slower than each front point


def test_preset_tolerance_is_the_predictors_stated_interval() -> None:
    import math

    from analysis.latency import MacsLinear
    from analysis.nas.report import preset_tolerances
    from edgevit import PRESETS

    predictor = MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0)
    tolerance, basis = preset_tolerances(predictor, 0.10)
    assert tolerance == {name: 0.10 for name in PRESETS} and "no interval" in basis
    predictor.interval_log_halfwidth = math.log(1.25)  # high = 1.25 × the prediction
    tolerance, basis = preset_tolerances(predictor, 0.10)
    # a preset beats a front point beyond this error when 1.25 · p < front latency
    assert tolerance == {name: pytest.approx(0.2) for name in PRESETS}
    assert "90% interval" in basis


@pytest.mark.parametrize("name", ["a#b.sqlite", "what?.sqlite"])
def test_an_experiment_database_path_is_never_pasted_into_a_uri(tmp_path, name) -> None:
    """A '#' once dropped `?mode=ro` (and created an empty file); a '?' made the file unreadable."""
    import sqlite3

    from analysis.nas import read_nni_trials

    path = tmp_path / name
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE MetricData (timestamp, trialJobId, parameterId, type, data)")
    db.close()
    frame = read_nni_trials(str(path))
    assert len(frame) == 0 and sorted(p.name for p in tmp_path.iterdir()) == [name]
    with pytest.raises(ValueError, match="no NNI experiment"):
        read_nni_trials(str(tmp_path / "missing#.sqlite"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
