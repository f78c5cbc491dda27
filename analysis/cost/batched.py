"""The exact cost model over arrays of configs (numpy), for the search and the exhaustive front.

Configs are given column-wise: `widths`, `depths`, `sample_rates` of shape (N, 4), and
`head_dim`, `mlp_ratio`, `local_kernel` of shape (N,) or scalars. The categorical switches
(sampler, local_prop, local_agg, global_attn) and the input size are shared by the batch.
Results equal, config by config, what `symbolic.model_cost` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
import sympy as sp

from edgevit.model import STAGE_STRIDES

from analysis.cost import ops as symbolic
from analysis.cost.ops import BLOCK_ARGS, HEAD_ARGS, STEM_ARGS, Op

OpQuantities = Callable[[Op], Sequence[sp.Expr]]  # op -> one expression per output column


@cache
def _summed(ops: tuple[Op, ...], args: tuple[sp.Symbol, ...], quantities: OpQuantities,
            width: int) -> Callable:
    """numpy function of `args` -> the `width` quantities summed over `ops`."""
    totals = [sp.Integer(0)] * width
    for op in ops:
        totals = [t + q for t, q in zip(totals, quantities(op))]
    return sp.lambdify(args, totals, "numpy")


def _stack(values: Sequence, count: int) -> np.ndarray:
    """(count, columns); lambdify returns bare scalars for constant columns."""
    return np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), (count,))
                     for v in values], axis=1)


def _columns(values: np.ndarray | float, count: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (count,))


def summed_quantities(
    quantities: OpQuantities, width: int,
    widths: np.ndarray, depths: np.ndarray, sample_rates: np.ndarray,
    head_dim: np.ndarray | int, mlp_ratio: np.ndarray | float = 4.0,
    local_kernel: np.ndarray | int = 5, *, img_size: tuple[int, int] = (224, 224),
    num_classes: int = 1000, in_chans: int = 3, sampler: str = "top_left",
    local_prop: str = "deconv", local_agg: str = "conv", global_attn: str = "sparse",
    qkv_bias: bool = True,
) -> np.ndarray:
    """Per-op `quantities` summed over every op of each of N models: float64 (N, width)."""
    widths = np.asarray(widths, dtype=np.float64)
    depths = np.asarray(depths, dtype=np.float64)
    rates = np.asarray(sample_rates, dtype=np.float64)
    if widths.ndim != 2 or widths.shape[1] != 4 or depths.shape != widths.shape \
            or rates.shape != widths.shape:
        raise ValueError(
            f"widths, depths, sample_rates must all be (N, 4); got {widths.shape}, "
            f"{depths.shape}, {rates.shape}"
        )
    count = widths.shape[0]
    head_dim, mlp_ratio = _columns(head_dim, count), _columns(mlp_ratio, count)
    kernel = _columns(local_kernel, count)
    switches = dict(sampler=sampler, local_prop=local_prop, local_agg=local_agg,
                    global_attn=global_attn, qkv_bias=qkv_bias)
    sparse = _summed(symbolic.lgl_block_ops(**switches), BLOCK_ARGS, quantities, width)
    full = _summed(symbolic.lgl_block_ops(rate_is_one=True, **switches), BLOCK_ARGS,
                   quantities, width)
    stem = _summed(symbolic.stem_ops(), STEM_ARGS, quantities, width)

    out = np.zeros((count, width))
    c_in = np.full(count, float(in_chans))
    for i, (sh, sw) in enumerate(symbolic.stage_sizes(img_size)):
        c = widths[:, i]
        heads = c // head_dim
        rate = rates[:, i]
        # the r > 1 formula is evaluated at r ≥ 2 everywhere and masked where r = 1
        block_sparse = _stack(sparse(sh, sw, c, heads, mlp_ratio, kernel,
                                     np.maximum(rate, 2.0)), count)
        block_full = _stack(full(sh, sw, c, heads, mlp_ratio, kernel, rate), count)
        out += _stack(stem(sh, sw, c, c_in, STAGE_STRIDES[i]), count)
        out += depths[:, i, None] * np.where((rate == 1)[:, None], block_full, block_sparse)
        c_in = c
    fh, fw = symbolic.stage_sizes(img_size)[-1]
    head = _summed(symbolic.head_ops(num_classes > 0), HEAD_ARGS, quantities, width)
    out += _stack(head(fh, fw, widths[:, 3], num_classes), count)
    return out


def _macs_and_params(op: Op) -> tuple[sp.Expr, sp.Expr]:
    return op.macs, op.params


def macs_params(*arrays, **options) -> tuple[np.ndarray, np.ndarray]:
    """Exact (macs, params), int64 arrays of shape (N,); arguments as `summed_quantities`."""
    totals = summed_quantities(_macs_and_params, 2, *arrays, **options)
    rounded = np.rint(totals)
    if np.abs(totals - rounded).max(initial=0.0) > 1e-6:
        raise ArithmeticError("non-integer cost: a formula is wrong")
    return rounded[:, 0].astype(np.int64), rounded[:, 1].astype(np.int64)
