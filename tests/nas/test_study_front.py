"""The study's (architecture, accuracy, latency) table: the committed one recomputed from the
committed study, predictor and timings, and the fronts and agreement worked by hand."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.accuracy.studies import FASHION_STUDY
from analysis.latency import committed_predictor
from analysis.nas.study_front import COLUMNS, front_text, study_front, with_measured

COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "study_front.json"


@pytest.fixture(scope="module")
def predictor():
    return committed_predictor()


@pytest.fixture(scope="module")
def study():
    return json.loads(FASHION_STUDY.read_text())


def test_the_committed_table_is_recomputed(predictor, study):
    committed = json.loads(COMMITTED.read_text())
    table = study_front(study, predictor)
    assert [r["name"] for r in table] == [r["name"] for r in committed["rows"]]
    assert committed["predictor"]["settings"] == predictor.settings.to_dict()
    for mine, theirs in zip(table, committed["rows"]):
        assert list(mine) == list(COLUMNS)
        for name in ("latency_ms_predicted", "latency_ms_low", "latency_ms_high"):
            assert mine[name] == pytest.approx(theirs[name], rel=1e-6), (mine["name"], name)
        assert mine["latency_ms_low"] < mine["latency_ms_predicted"] < mine["latency_ms_high"]
        rest = {k: v for k, v in mine.items() if not k.startswith("latency_ms")}
        assert rest == {k: theirs[k] for k in COLUMNS if not k.startswith("latency_ms")}
    assert committed["front"] == [r["name"] for r in table if r["on_front"]]
    # the timed columns and their agreement follow from the committed timings
    measured = committed["measured"]
    ratios = np.median(np.array(measured["ratios"]), axis=0)
    rows, agreement = with_measured(table, ratios, measured["ms_per_ratio"])
    assert agreement == pytest.approx(measured["agreement"], rel=1e-6)
    for mine, theirs in zip(rows, committed["rows"]):
        assert mine["latency_ms_measured_via_xxs"] == pytest.approx(
            theirs["latency_ms_measured_via_xxs"], rel=1e-6)
        assert mine["on_front_measured"] == theirs["on_front_measured"]
    # the rows carry the study's own numbers
    by_name = {r["name"]: r for r in study["configs"]}
    for row in table:
        source = by_name[row["name"]]
        assert (row["standalone_top1"], row["macs"], row["params"]) == (
            source["accuracy"], source["macs"], source["params"])


def test_the_front_by_hand(predictor, study):
    """Three presets, faster to slower (XXS < XS < S by the predictor), given top-1 by hand:
    XS is slower than XXS and less accurate, so only it is off the front; a second copy of XXS
    with a lower top-1 (same latency) is dominated too."""
    by_name = {r["name"]: r for r in study["configs"]}
    rows = [copy.deepcopy(by_name[n]) for n in ("edgevit_xxs", "edgevit_xs", "edgevit_s",
                                                 "edgevit_xxs")]
    for row, top1 in zip(rows, (0.90, 0.80, 0.95, 0.85)):
        row["accuracy"] = top1
    hand = dict(study, configs=rows)
    table = study_front(hand, predictor)
    latency = [r["latency_ms_predicted"] for r in table]
    assert latency[0] < latency[1] < latency[2] and latency[3] == latency[0]
    assert [r["on_front"] for r in table] == [True, False, True, False]
    assert {r["latency_settings"] for r in table} == {predictor.settings.describe()}


def test_measured_latencies_by_hand(predictor, study):
    """The three presets again (top-1 0.90, 0.80, 0.95), timed at 1.0, 0.9 and 2.0 × XXS with
    XXS at 10 ms: XS becomes the fastest, so all three are on the measured front."""
    by_name = {r["name"]: r for r in study["configs"]}
    rows = [copy.deepcopy(by_name[n]) for n in ("edgevit_xxs", "edgevit_xs", "edgevit_s")]
    for row, top1 in zip(rows, (0.90, 0.80, 0.95)):
        row["accuracy"] = top1
    table = study_front(dict(study, configs=rows), predictor)
    timed, agreement = with_measured(table, np.array([1.0, 0.9, 2.0]), 10.0)
    assert [r["latency_ms_measured_via_xxs"] for r in timed] == pytest.approx([10, 9, 20])
    assert [r["latency_ratio_to_xxs_measured"] for r in timed] == pytest.approx([1.0, 0.9, 2])
    assert [r["on_front_measured"] for r in timed] == [True, True, True]
    assert [r["on_front"] for r in timed] == [True, False, True]  # the predicted front stays
    predicted = np.array([r["latency_ms_predicted"] for r in table])
    truth = np.array([10.0, 9.0, 20.0])
    assert agreement["mape"] == pytest.approx(np.mean(np.abs(predicted - truth) / truth))
    assert agreement["same_front"] is False
    with pytest.raises(ValueError, match=r"\(2,\) measured ratios for 3 configs"):
        with_measured(table, np.array([1.0, 2.0]), 10.0)
    with pytest.raises(ValueError, match="positive and finite"):
        with_measured(table, np.array([1.0, np.nan, 2.0]), 10.0)
    with pytest.raises(ValueError, match="reference latency"):
        with_measured(table, np.array([1.0, 0.9, 2.0]), 0.0)


def test_a_predictor_without_an_interval_gives_none_not_an_error(study):
    from analysis.latency import MacsLinear

    line = MacsLinear(slope_ms_per_gmac=20.0, intercept_ms=1.0)  # no fit_interval
    table = study_front(study, line)
    assert all(r["latency_ms_low"] is None and r["latency_ms_high"] is None for r in table)
    timed, agreement = with_measured(table, np.ones(len(table)), 10.0)
    assert agreement["in_interval"] is None
    assert agreement["within_10"] == pytest.approx(np.mean([
        abs(r["latency_ms_predicted"] / 10.0 - 1) <= 0.10 for r in table]))
    assert not re.search(r"\[\d+\.\d, \d+\.\d\]", front_text(table))  # no interval printed


def test_an_empty_study_is_refused(predictor, study):
    with pytest.raises(ValueError, match="no configs"):
        study_front(dict(study, configs=[]), predictor)


def test_the_cli_prints_the_table_or_json_and_names_a_bad_predictor(tmp_path, capsys,
                                                                      predictor):
    from analysis.cli import main

    path = tmp_path / "predictor.json"
    predictor.save(path)
    assert main(["study-front", "--predictor", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    committed = json.loads(COMMITTED.read_text())
    assert out["front"] == committed["front"]
    assert out["latency_settings"] == predictor.settings.describe()
    assert main(["study-front", "--predictor", str(path)]) == 0
    text = capsys.readouterr().out
    assert predictor.settings.describe() in text
    assert sum(line.startswith("*") for line in text.splitlines()) == len(committed["front"])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["study-front", "--predictor", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgevit study-front: error: --predictor") and "\n" not in err
