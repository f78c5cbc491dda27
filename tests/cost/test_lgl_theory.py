"""The supplementary's section A against the exact count; the vectorised cost model."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import edgevit
from analysis.cost import ConfigBatch, lgl_theory, macs_params
from analysis.cost.ops import c, h, k, model_cost, r, w


def test_big_o_terms_against_exact() -> None:
    terms = lgl_theory.exact_lgl_terms()
    values = {h: 56, w: 56, c: 36, k: 5, r: 4}
    paper, exact = terms["local aggregation"]
    assert exact.subs(values) == paper.subs(values) == 25 * 56 * 56 * 36
    paper, exact = terms["sparse attention"]
    assert exact.subs(values) == 2 * paper.subs(values)  # q·kᵀ and attn·v
    paper, exact = terms["local propagation"]
    assert exact.subs(values) == 56 * 56 * 36 == paper.subs(values) / 16  # hwc, not r²hwc


def test_big_o_optimal_rate_is_sixth_root() -> None:
    expr = lgl_theory.optimal_rate_big_o()
    assert sp.simplify(expr**6 - 2 * h * w) == 0


def test_exact_optimal_rates_of_xxs_stages() -> None:
    """At the XXS widths, exact MACs keep falling with r at stages 1-2 (LocalProp costs hwc for
    any r), while at 14×14 and 7×7 the plain attention block (r = 1) is cheapest."""
    config = edgevit.preset_config("edgevit_xxs")
    choices = [
        lgl_theory.optimal_rate_exact(height=side, width=side, channels=width, heads=heads)
        for side, width, heads in zip((56, 28, 14, 7), config.widths, config.num_heads)
    ]
    assert [choice.exact_rate for choice in choices] == [56, 28, 1, 1]
    for choice in choices:  # the minimum is a minimum of the table it came from
        assert choice.exact_macs == min(choice.macs_by_rate.values())
        assert choice.near_rate <= choice.exact_rate
    # r = 2 at 28×28 beats full attention there: the LGL block pays off on large maps
    assert choices[1].macs_by_rate[2] < choices[1].macs_by_rate[1]


def test_crossover_where_lgl_becomes_cheaper() -> None:
    side = lgl_theory.crossover_side(channels=36, heads=1, mlp_ratio=4.0, kernel=5, rate=4)
    sparse = sp.lambdify((h, w), lgl_theory.lgl_block_macs(divisible=True).subs(
        {c: 36, lgl_theory.n: 1, lgl_theory.m: 4.0, k: 5, r: 4}))
    full = sp.lambdify((h, w), lgl_theory.mhsa_block_macs().subs(
        {c: 36, lgl_theory.n: 1, lgl_theory.m: 4.0, k: 5}))
    assert 4 < side < 56
    assert sparse(side * 1.2, side * 1.2) < full(side * 1.2, side * 1.2)
    assert sparse(side * 0.8, side * 0.8) > full(side * 0.8, side * 0.8)


@pytest.mark.parametrize("img_size", [(224, 224), (97, 160), (512, 384)])
def test_vectorized_equals_per_config(img_size) -> None:
    rng = np.random.default_rng(0)
    count = 40
    head_dim = rng.choice([8, 16, 24], count)
    widths = head_dim[:, None] * rng.integers(1, 10, (count, 4))
    depths = rng.integers(1, 6, (count, 4))
    rates = rng.integers(1, 6, (count, 4))
    mlp_ratio = rng.choice([2.0, 3.5, 4.0], count)
    batch = ConfigBatch(widths=widths, depths=depths, sample_rates=rates, head_dim=head_dim,
                        mlp_ratio=mlp_ratio, local_kernel=5, base=edgevit.PRESETS["edgevit_xxs"])
    macs, params = macs_params(batch, img_size)
    for i in range(count):
        config = edgevit.EdgeViTConfig(
            widths=tuple(map(int, widths[i])), depths=tuple(map(int, depths[i])),
            sample_rates=tuple(map(int, rates[i])), head_dim=int(head_dim[i]),
            mlp_ratio=float(mlp_ratio[i]),
        )
        assert batch.config(i).to_json() == config.to_json()
        cost = model_cost(config, img_size)
        assert (cost.macs, cost.params) == (macs[i], params[i])


@pytest.mark.parametrize("name", edgevit.list_models())
def test_vectorized_named_models(name: str) -> None:
    config = edgevit.preset_config(name)
    macs, params = macs_params(ConfigBatch.of([config]))
    cost = model_cost(config)
    assert (macs[0], params[0]) == (cost.macs, cost.params)


def test_vectorized_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        ConfigBatch(widths=[[16, 16, 16]], depths=[[1, 1, 1]], sample_rates=[[1, 1, 1]],
                    head_dim=16, mlp_ratio=4.0, local_kernel=5,
                    base=edgevit.PRESETS["edgevit_xxs"])
    xxs = edgevit.PRESETS["edgevit_xxs"]
    with pytest.raises(ValueError, match="shared field"):
        ConfigBatch.of([xxs, xxs.replace(sampler="max")])
