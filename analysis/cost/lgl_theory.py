"""Section A of the supplementary, made exact: the LGL big-O, full attention, crossover, best r.

The paper bounds the spatial work of one LGL block by O(k²hwc + h²w²c/r⁴ + r²hwc) against
O(h²w²c) for full multi-head self-attention (MHSA). Here each big-O term is set beside the
exact multiply-add count of the op it stands for (`analysis.cost.ops`), whole blocks are
compared, and the r minimising the cost is found both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from analysis.cost import ops as symbolic

from .ops import c, h, k, m, n, r, w

x = sp.Symbol("x", positive=True)  # side of a square map (h = w = x), continuous


def _macs_of(ops: tuple[symbolic.Op, ...], *fragments: str) -> sp.Expr:
    return symbolic.total(op for op in ops if any(f in op.module for f in fragments)
                          and op.kind in symbolic.MAC_KINDS)


def exact_lgl_terms() -> dict[str, tuple[sp.Expr, sp.Expr]]:
    """term -> (paper's big-O term, exact MACs of the ops it stands for) for the official block.

    local aggregation: the depthwise k×k conv (the paper's k²hwc; the release has k = 5, the
    supplementary says 3); sparse attention: q·kᵀ and attn·v on the ⌈h/r⌉⌈w/r⌉ delegates (twice
    the paper's term); local propagation: the depthwise transposed conv, which costs the padded
    map's h·w·c, not r²hwc: each output pixel receives exactly one multiply-add.
    """
    ops = symbolic.lgl_block_ops()
    return {
        "local aggregation": (k**2 * h * w * c, _macs_of(ops, "mixer.dwconv")),
        "sparse attention": (h**2 * w**2 * c / r**4, _macs_of(ops, "attn@qk", "attn@av")),
        "local propagation": (r**2 * h * w * c, _macs_of(ops, "local_prop")),
    }


def lgl_block_macs(divisible: bool = False) -> sp.Expr:
    """Exact MACs of the official LGL block (r > 1); `divisible` drops the ceilings (r | h, w)."""
    expr = symbolic.total(symbolic.lgl_block_ops())
    return _drop_ceilings(expr) if divisible else expr


def mhsa_block_macs() -> sp.Expr:
    """Exact MACs of a full-attention block at the same width: EdgeViT's r = 1 block
    (CPE, LN, qkv, softmax(q·kᵀ)·v over all h·w tokens, proj, MLP)."""
    return symbolic.total(symbolic.lgl_block_ops(rate_is_one=True))


def _drop_ceilings(expr: sp.Expr) -> sp.Expr:
    return expr.replace(sp.ceiling, lambda arg: arg).replace(sp.floor, lambda arg: arg)


def crossover_side(*, channels: int, heads: int, mlp_ratio: float, kernel: int,
                   rate: int) -> float:
    """Smallest square-map side x above which the LGL block costs fewer MACs than full
    attention at the same width (continuous, r | x assumed). Solves a quadratic in x²."""
    values = {c: channels, n: heads, m: mlp_ratio, k: kernel, r: rate}
    diff = (lgl_block_macs(divisible=True) - mhsa_block_macs().replace(sp.floor, lambda a: a))
    diff = sp.expand(diff.subs(values).subs({h: x, w: x}))
    roots = [float(root) for root in sp.solve(sp.Eq(diff, 0), x) if root.is_real and root > 0]
    if not roots:
        raise ValueError("LGL never becomes cheaper than full attention for these values")
    return max(roots)


def optimal_rate_big_o() -> sp.Expr:
    """argmin over r of h²w²c/r⁴ + r²hwc: r* = (2hw)^(1/6), from d/dr = 0."""
    rate = sp.Symbol("r", positive=True)
    cost = h**2 * w**2 * c / rate**4 + rate**2 * h * w * c
    (solution,) = sp.solve(sp.diff(cost, rate), rate)
    return sp.simplify(solution)


@dataclass(frozen=True)
class RateChoice:
    """Best r for one stage map: the big-O optimum and the exact-MACs optimum."""

    height: int
    width: int
    channels: int
    big_o_rate: float  # (2hw)^(1/6), continuous
    exact_rate: int  # integer r in 1..max(h, w) with the fewest exact block MACs
    exact_macs: int
    near_rate: int  # smallest r within `tolerance` of the fewest MACs
    macs_by_rate: dict[int, int]


def optimal_rate_exact(*, height: int, width: int, channels: int, heads: int,
                       mlp_ratio: float = 4.0, kernel: int = 5,
                       tolerance: float = 0.05) -> RateChoice:
    """Evaluate the exact block cost (padding included) for every r and take the cheapest.

    r = 1 is the release's plain attention block (no LocalAgg); r > 1 the LGL block.
    """
    sparse = sp.lambdify((h, w, c, n, m, k, r), lgl_block_macs(), "math")
    full = sp.lambdify((h, w, c, n, m, k), mhsa_block_macs(), "math")
    by_rate = {1: round(full(height, width, channels, heads, mlp_ratio, kernel))}
    for rate in range(2, max(height, width) + 1):
        by_rate[rate] = round(sparse(height, width, channels, heads, mlp_ratio, kernel, rate))
    best = min(by_rate, key=lambda key: (by_rate[key], key))
    near = min(key for key, macs in by_rate.items() if macs <= (1 + tolerance) * by_rate[best])
    big_o = float(optimal_rate_big_o().subs({h: height, w: width}))
    return RateChoice(height, width, channels, big_o, best, by_rate[best], near, by_rate)
