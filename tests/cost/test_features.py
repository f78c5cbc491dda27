"""Predictor features: they partition the exact MACs and count every op."""

from __future__ import annotations

import numpy as np

import edgevit
from analysis.cost import FEATURE_NAMES, config_features, model_cost


def test_features_partition_macs_and_count_ops() -> None:
    configs = [edgevit.preset_config(name) for name in edgevit.list_models()]
    features = config_features(configs, (160, 224))
    index = {name: i for i, name in enumerate(FEATURE_NAMES)}
    for config, row in zip(configs, features):
        cost = model_cost(config, (160, 224))
        kinds = ("macs_dense", "macs_depthwise", "macs_attention")
        assert sum(row[index[kind]] for kind in kinds) == cost.macs
        assert row[index["ops"]] == len(cost.ops)
        assert row[index["traffic"]] == sum(op.numel_in + op.numel_out for op in cost.ops)
        norms = cost.elementwise.get("layer_norm", 0) + cost.elementwise.get("batch_norm", 0)
        assert row[index["numel_norm"]] == norms


def test_attention_share_grows_as_r_shrinks() -> None:
    xxs = edgevit.preset_config("edgevit_xxs")
    dense_attention = xxs.replace(sample_rates=(1, 1, 1, 1))
    features = config_features([xxs, dense_attention])
    column = FEATURE_NAMES.index("macs_attention")
    assert features[1, column] > 10 * features[0, column]
    assert np.all(features >= 0)
