"""The search space: presets are points, decode is strict, the NNI file is fresh, enumeration."""

from __future__ import annotations

import json

import numpy as np
import pytest

import analysis.cost.search_space
import edgevit
from analysis.cost import DEFAULT_SPACE, SPACE_JSON, macs_params


@pytest.mark.parametrize("name", ["edgevit_xxs", "edgevit_xs", "edgevit_s"])
def test_presets_are_points_of_the_space(name: str) -> None:
    config = edgevit.preset_config(name)
    decoded = DEFAULT_SPACE.decode(DEFAULT_SPACE.encode(config))
    assert decoded.identity_dict() == config.identity_dict()


def test_decode_rejects_unknown_missing_and_foreign_values() -> None:
    params = DEFAULT_SPACE.encode(edgevit.preset_config("edgevit_xxs"))
    with pytest.raises(ValueError, match="unknown .*'depth_9'"):
        DEFAULT_SPACE.decode(dict(params, depth_9=1))
    partial = dict(params)
    del partial["rate_0"]
    with pytest.raises(ValueError, match="missing .*'rate_0'"):
        DEFAULT_SPACE.decode(partial)
    with pytest.raises(ValueError, match="rate_0=3 is not one of"):
        DEFAULT_SPACE.decode(dict(params, rate_0=3))
    with pytest.raises(ValueError, match="must be a dict"):
        DEFAULT_SPACE.decode(["head_dim"])


def test_rates_divide_the_stage_maps() -> None:
    for side, rates in zip(analysis.cost.search_space.stage_sides(), DEFAULT_SPACE.rates):
        assert 1 in rates and all(side % q == 0 for q in rates)


def test_checked_in_nni_file_is_fresh() -> None:
    assert SPACE_JSON.read_text() == analysis.cost.search_space.nni_json(), (
        "search/search_space.json is stale: run `python -m analysis.cost.search_space --write`"
    )


def test_space_size_and_enumeration() -> None:
    assert DEFAULT_SPACE.size >= 100_000
    batch = DEFAULT_SPACE.enumerate()
    assert batch.widths.shape == (len(batch), 4) == (DEFAULT_SPACE.size, 4)
    # rows follow iter_params order: spot-check a few rows against decode
    rng = np.random.default_rng(0)
    for index in rng.integers(0, DEFAULT_SPACE.size, 5):
        params = next(p for i, p in enumerate(DEFAULT_SPACE.iter_params()) if i == index)
        config = DEFAULT_SPACE.decode(params)
        assert batch.config(index).to_json() == config.to_json()
        assert DEFAULT_SPACE.row(params) == index
    macs, _ = macs_params(batch[:1000])
    assert (macs > 0).all()


def test_nni_json_is_valid_choice_space() -> None:
    space = json.loads(SPACE_JSON.read_text())
    assert all(spec["_type"] == "choice" and spec["_value"] for spec in space.values())
