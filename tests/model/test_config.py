"""EdgeViTConfig: validation (property-based), JSON round trip, presets."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgevit import PRESETS, EdgeViTConfig
from edgevit.config import GLOBAL_ATTNS, LOCAL_AGGS, LOCAL_PROPS, SAMPLERS

VALID = PRESETS["edgevit_xxs"].to_dict()

anything = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.integers()
    | st.integers(10**300, 10**400) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=5),
                                                                       children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(field=st.sampled_from(sorted(VALID)), value=anything)
@example(field="mlp_ratio", value=10**400)  # once an OverflowError (CI, 2026-11-30)
def test_any_bad_field_value_raises_value_error_only(field: str, value) -> None:
    data = dict(VALID, **{field: value})
    try:
        config = EdgeViTConfig.from_dict(data)
    except ValueError as err:
        assert "EdgeViTConfig" in str(err)
    else:  # accepted: it must be a sound config that survives the round trip
        assert EdgeViTConfig.from_json(config.to_json()) == config


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(max_size=12), anything, max_size=8))
def test_arbitrary_dicts_raise_value_error_only(data) -> None:
    with pytest.raises(ValueError):
        EdgeViTConfig.from_dict(data)


@st.composite
def valid_configs(draw) -> EdgeViTConfig:
    head_dim = draw(st.sampled_from([8, 16, 24, 32]))
    widths = tuple(head_dim * draw(st.integers(1, 8)) for _ in range(4))
    return EdgeViTConfig(
        widths=widths,
        depths=tuple(draw(st.integers(1, 6)) for _ in range(4)),
        sample_rates=tuple(draw(st.sampled_from([1, 2, 4])) for _ in range(4)),
        head_dim=head_dim,
        mlp_ratio=draw(st.sampled_from([2.0, 3.0, 4.0])),
        local_kernel=draw(st.sampled_from([3, 5, 7])),
        sampler=draw(st.sampled_from(SAMPLERS)),
        local_prop=draw(st.sampled_from(LOCAL_PROPS)),
        local_agg=draw(st.sampled_from(LOCAL_AGGS)),
        global_attn=draw(st.sampled_from(GLOBAL_ATTNS)),
    )


@settings(max_examples=200, deadline=None)
@given(config=valid_configs())
def test_json_round_trip(config: EdgeViTConfig) -> None:
    assert EdgeViTConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert EdgeViTConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(widths=(36, 72, 144)), "widths"),
        (dict(widths=(36, 72, 144, 10**400)), "widths"),  # once an OverflowError
        (dict(widths=(36, 72, 144, 288 * 10**6)), "widths"),
        (dict(depths=(1, 1, 3, 1000)), "depths"),
        (dict(mlp_ratio=1e308), "mlp_ratio"),  # once an OverflowError
        (dict(head_dim=36 * 10**9), "head_dim"),
        (dict(num_classes=10**7), "num_classes"),
        (dict(in_chans=10**5), "in_chans"),
        (dict(local_kernel=10**6 + 1), "local_kernel"),
        (dict(depths=(1, 0, 3, 2)), "depths"),
        (dict(sample_rates=(4, 2, 0, 1)), "sample_rates"),
        (dict(head_dim=40), "head_dim"),
        (dict(mlp_ratio=float("nan")), "mlp_ratio"),
        (dict(local_kernel=4), "local_kernel"),
        (dict(sampler="centre"), "sampler"),
        (dict(local_prop="nearest"), "local_prop"),
        (dict(local_agg="mbconv"), "local_agg"),
        (dict(global_attn="full"), "global_attn"),
        (dict(drop_path_rate=1.5), "drop_path_rate"),
        (dict(in_chans=0), "in_chans"),
    ],
)
def test_invalid_fields_are_named(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"EdgeViTConfig\.{field}"):
        PRESETS["edgevit_xxs"].replace(**change)


def test_unknown_and_missing_keys_are_named() -> None:
    with pytest.raises(ValueError, match="unknown field.*'depth'"):
        EdgeViTConfig.from_dict(dict(VALID, depth=[1, 1, 1, 1]))
    data = dict(VALID)
    del data["widths"]
    with pytest.raises(ValueError, match="missing required field.*'widths'"):
        EdgeViTConfig.from_dict(data)
    with pytest.raises(ValueError, match="malformed JSON"):
        EdgeViTConfig.from_json("{widths: ")


def test_label_is_not_identity() -> None:
    xxs = PRESETS["edgevit_xxs"]
    assert xxs.replace(name="other") == xxs
    assert xxs.replace(name="other").to_json() == xxs.to_json()
