"""The noise ceiling (`analysis.accuracy.noise_ceiling`): recomputed from the committed study it
equals the committed benchmark result and says what the README says of it; on a hand-made study
it reaches the values that can be worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.accuracy.noise_ceiling import has_noise_columns, noise_ceiling, noise_table
from analysis.accuracy.studies import FASHION_STUDY

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_committed_ceiling_is_recomputed_from_the_study() -> None:
    today = noise_ceiling(json.loads(FASHION_STUDY.read_text()))
    committed = json.loads((BENCHMARKS / "supernet_noise_ceiling.json").read_text())
    for name in ("ceiling", "bias"):
        assert committed[name]["tau"] == pytest.approx(today[name]["tau"], abs=1e-12)
        assert committed[name]["tau_ci"] == pytest.approx(today[name]["tau_ci"], abs=1e-12)
    assert committed["repeatability"].keys() == today["repeatability"].keys()
    for images, row in today["repeatability"].items():
        assert committed["repeatability"][images]["tau"] == pytest.approx(row["tau"], abs=1e-12)
    # what the README reads from it: the reference's own models on 2,000 images reach 0.36,
    # the supernet repeats itself at 0.51 on 1,000 images, and is biased on all 10,000
    assert round(today["ceiling"]["tau"], 2) == 0.36
    assert round(today["repeatability"]["1000"]["tau"], 2) == 0.51
    assert today["bias"]["tau_ci"][1] < 0


def _study(standalone: list[float], curve_last: list[float], full: list[float],
           prefix: dict[str, list[float]]) -> dict:
    rows = [dict(accuracy=a, curve=[0.1, c], supernet_full=f,
                 supernet_prefix={m: v[i] for m, v in prefix.items()})
            for i, (a, c, f) in enumerate(zip(standalone, curve_last, full))]
    return dict(configs=rows, settings=dict(curve_images=2000))


def test_hand_made_study_gives_the_hand_worked_values() -> None:
    standalone = [0.80, 0.82, 0.84, 0.86, 0.88]
    # the curve agrees with standalone in order; the supernet is reversed; its 250-image prefix
    # swaps one adjacent pair of its full ranking (1 discordant pair of 10: τ = 0.8)
    study = _study(standalone, curve_last=[0.7, 0.71, 0.72, 0.73, 0.74],
                   full=[0.9, 0.8, 0.7, 0.6, 0.5],
                   prefix={"1000": [0.9, 0.8, 0.7, 0.6, 0.5], "250": [0.9, 0.8, 0.6, 0.7, 0.5]})
    result = noise_ceiling(study, n_resamples=200)
    assert result["ceiling"]["tau"] == pytest.approx(1.0)
    assert result["bias"]["tau"] == pytest.approx(-1.0)
    assert result["repeatability"]["250"]["tau"] == pytest.approx(0.8)
    assert result["repeatability"]["1000"]["tau"] == pytest.approx(1.0)
    assert result["spread"]["standalone"] == pytest.approx(0.08)
    assert result["spread"]["supernet_full"] == pytest.approx(0.4)
    # the table orders ceiling, M increasing (numerically, not as strings), bias
    assert [r["comparison"] for r in noise_table(result)] == [
        "ceiling", "repeatability M=250", "repeatability M=1000", "bias"]


def test_a_study_without_the_supernet_columns_is_refused() -> None:
    study = _study([0.8, 0.9], [0.8, 0.9], [0.8, 0.9], {"100": [0.8, 0.9]})
    del study["configs"][1]["supernet_prefix"]
    assert not has_noise_columns(study)
    with pytest.raises(ValueError, match="supernet_prefix"):
        noise_ceiling(study)
