"""Every counter's number predicted exactly from the symbolic inventory under its rules."""

from __future__ import annotations

import json

import pytest

import edgevit
from analysis.cli import main
from analysis.cost import model_cost
from analysis.counters import predict, reconcile


@pytest.mark.parametrize("size", [(224, 224), (100, 76)])
@pytest.mark.parametrize("name", ["edgevit_xxs", "edgevit_xs", "edgevit_s", "ablation_la_lsa",
                                  "ablation_lp_bilinear", "ablation_sampler_max", "ablation_wo_la"])
def test_counters_predicted_exactly(name: str, size) -> None:
    result = reconcile(edgevit.preset_config(name), size)
    for counter, info in result.items():
        assert info["macs"] == info["predicted_macs"], (counter, info["explanation"])


def test_known_preset_numbers() -> None:
    """fvcore at 224²: the paper's 0.6 / 1.1 / 1.9 "GFLOPs" are fvcore MACs."""
    fvcore = {name: predict("fvcore", model_cost(edgevit.preset_config(name)).ops)[0]
              for name in ("edgevit_xxs", "edgevit_xs", "edgevit_s")}
    assert fvcore == {"edgevit_xxs": 557_457_984, "edgevit_xs": 1_136_470_560,
                      "edgevit_s": 1_923_271_008}
    assert [round(v / 1e9, 1) for v in fvcore.values()] == [0.6, 1.1, 1.9]


def test_reasons_add_up() -> None:
    ops = model_cost(edgevit.preset_config("edgevit_xxs")).ops
    core = model_cost(edgevit.preset_config("edgevit_xxs")).macs
    for counter in ("fvcore", "ptflops-aten", "ptflops-pytorch", "torch"):
        total, reasons = predict(counter, ops)
        assert total == core + sum(reasons.values())
    with pytest.raises(ValueError, match="unknown counter"):
        predict("thop", ops)


def test_flops_cli_json(capsys) -> None:
    assert main(["flops", "edgevit_xs", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["macs"], result["params"]) == (1_127_815_200, 6_770_056)
    assert main(["flops", "edgevit_xxs", "--counter", "all", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["counters"]["fvcore"]["macs"] == 557_457_984
    assert all(c["macs"] == c["predicted_macs"] for c in result["counters"].values())


def test_random_configs_predicted_exactly() -> None:
    """Including r equal to the whole map (one delegate) and padded LSA windows."""
    import numpy as np

    from analysis.cost import DEFAULT_SPACE

    rng = np.random.default_rng(1)
    configs = [DEFAULT_SPACE.decode(DEFAULT_SPACE.sample(rng)).replace(depths=(1, 1, 1, 1))
               for _ in range(4)]
    configs.append(configs[0].replace(sample_rates=(8, 7, 7, 7), local_agg="lsa"))
    for config in configs:
        for counter, info in reconcile(config, (96, 128)).items():
            assert info["macs"] == info["predicted_macs"], (config, counter)
