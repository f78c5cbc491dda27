"""The closed-form cost model against torch's FlopCounterMode and the parameter count."""

from __future__ import annotations

import pytest
import torch
from config_strategies import configs_and_sizes
from hypothesis import given, settings
from torch.utils.flop_counter import FlopCounterMode

import edgevit
from analysis.cost import model_cost
from analysis.cost import ops as symbolic
from edgevit import EdgeViT


def measured_macs(model: torch.nn.Module, img_size: tuple[int, int]) -> int:
    """FlopCounterMode ÷ 2 (it counts 2 per multiply-add) on the explicit-matmul path."""
    model.eval().set_fused_attn(False)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, model.config.in_chans, *img_size))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@pytest.mark.parametrize("name", edgevit.list_models())
def test_named_models_exact(name: str) -> None:
    model = edgevit.create_model(name)
    cost = model_cost(model.config, (224, 224))
    assert cost.macs == measured_macs(model, (224, 224))
    assert cost.params == model.num_params()


def test_preset_macs_known_values() -> None:
    macs = {name: model_cost(edgevit.preset_config(name)).macs
            for name in ("edgevit_xxs", "edgevit_xs", "edgevit_s")}
    assert macs == {"edgevit_xxs": 551_262_816, "edgevit_xs": 1_127_815_200,
                    "edgevit_s": 1_911_021_792}


@pytest.mark.parametrize("size", [(97, 160), (225, 301), (32, 32), (320, 200)])
@pytest.mark.parametrize("name", ["edgevit_xxs", "ablation_la_lsa", "ablation_wo_lp",
                                  "ablation_sampler_avg", "ablation_lp_bilinear"])
def test_padded_and_non_square_sizes_exact(name: str, size: tuple[int, int]) -> None:
    model = edgevit.create_model(name)
    assert model_cost(model.config, size).macs == measured_macs(model, size)


def random_configs():
    """Configs up to 4 × head_dim wide, every classifier size, sizes up to 150 pixels."""
    return configs_and_sizes(max_width_mult=4, mlp_ratios=[1.5, 2.0, 3.0, 4.0, 2.7],
                             class_counts=[0, 10, 1000], max_side=150)


@settings(max_examples=60, deadline=None)
@given(case=random_configs())
def test_random_configs_exact(case) -> None:
    config, size = case
    model = EdgeViT(config)
    cost = model_cost(config, size)
    assert cost.macs == measured_macs(model, size)
    assert cost.params == model.num_params()


def test_depthwise_deconv_costs_hwc_not_r2hwc() -> None:
    """A depthwise ConvTranspose2d(k=r, stride=r) from (h/r)×(w/r) to h×w costs h·w·c MACs."""
    for rate, side, channels in ((2, 28, 16), (4, 56, 8)):
        deconv = torch.nn.ConvTranspose2d(channels, channels, rate, stride=rate, groups=channels)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            deconv(torch.randn(1, channels, side // rate, side // rate))
        ops = symbolic.depthwise_deconv_ops("p", channels=symbolic.c,
                                            in_pixels=(symbolic.h / symbolic.r) ** 2,
                                            stride=symbolic.r)
        formula = ops[0].macs.subs({symbolic.c: channels, symbolic.h: side, symbolic.r: rate})
        assert counter.get_total_flops() // 2 == formula == side * side * channels


def test_block_formulas_by_hand() -> None:
    """The official LGL block at h = w = 8, c = 4, r = 2, k = 5, one head, m = 2."""
    ops = symbolic.lgl_block_ops()
    values = {symbolic.h: 8, symbolic.w: 8, symbolic.c: 4, symbolic.n: 1, symbolic.m: 2,
              symbolic.k: 5, symbolic.r: 2}
    hw, c, e, delegates = 64, 4, 8, 16
    local = 9 * hw * c + 2 * hw * c * c + 25 * hw * c + 2 * hw * c * e
    global_ = (9 * hw * c + delegates * c * 3 * c + 2 * delegates * delegates * c
               + hw * c + hw * c * c + 2 * hw * c * e)
    assert symbolic.total(ops).subs(values) == local + global_


@pytest.mark.parametrize("ablation", ["edgevit_xxs", "ablation_la_lsa", "ablation_wo_lp"])
def test_qkv_without_bias_counted_in_every_path(ablation: str) -> None:
    """qkv_bias=False drops the q/k/v biases (LSA, sparse attention and SRA's q and kv) from
    the parameters, in model_cost and in the vectorised counts alike."""
    from analysis.cost import ConfigBatch, macs_params

    config = edgevit.preset_config(ablation).replace(qkv_bias=False)
    model = EdgeViT(config)
    assert model_cost(config).params == model.num_params()
    _, params = macs_params(ConfigBatch.of([config]))
    assert params[0] == model.num_params() < EdgeViT(config.replace(qkv_bias=True)).num_params()
