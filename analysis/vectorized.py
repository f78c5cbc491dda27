"""The exact cost model over arrays of configs (numpy), for the search and the exhaustive front.

Configs are given column-wise: `widths`, `depths`, `sample_rates` of shape (N, 4), and
`head_dim`, `mlp_ratio`, `local_kernel` of shape (N,) or scalars. The categorical switches
(sampler, local_prop, local_agg, global_attn) and the input size are shared by the batch.
Results are int64 arrays equal, config by config, to `symbolic.model_cost`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import sympy as sp

from edgevit.model import STAGE_STRIDES

from . import symbolic
from .symbolic import BLOCK_ARGS, HEAD_ARGS, STEM_ARGS


@lru_cache(maxsize=None)
def _totals(ops: tuple[symbolic.Op, ...], args: tuple[sp.Symbol, ...]) -> Callable:
    """numpy function of `args` -> (macs, params) summed over `ops`."""
    return sp.lambdify(args, [symbolic.total(ops), symbolic.total(ops, "params")], "numpy")


def _block_totals(rate_is_one: bool, switches: tuple[tuple[str, str], ...]) -> Callable:
    return _totals(symbolic.lgl_block_ops(rate_is_one=rate_is_one, **dict(switches)), BLOCK_ARGS)


def _as_columns(values: np.ndarray | float, count: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (count,))


def macs_params(
    widths: np.ndarray, depths: np.ndarray, sample_rates: np.ndarray,
    head_dim: np.ndarray | int, mlp_ratio: np.ndarray | float = 4.0,
    local_kernel: np.ndarray | int = 5, *, img_size: tuple[int, int] = (224, 224),
    num_classes: int = 1000, in_chans: int = 3, sampler: str = "top_left",
    local_prop: str = "deconv", local_agg: str = "conv", global_attn: str = "sparse",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (macs, params), each int64 of shape (N,), for N configs at one input size."""
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
    head_dim = _as_columns(head_dim, count)
    mlp_ratio = _as_columns(mlp_ratio, count)
    kernel = _as_columns(local_kernel, count)
    switches = (("sampler", sampler), ("local_prop", local_prop), ("local_agg", local_agg),
                ("global_attn", global_attn))
    sparse, full = _block_totals(False, switches), _block_totals(True, switches)
    stem = _totals(symbolic.stem_ops(), STEM_ARGS)

    macs = np.zeros(count)
    params = np.zeros(count)
    c_in = np.full(count, float(in_chans))
    for i, (sh, sw) in enumerate(symbolic.stage_sizes(img_size)):
        c = widths[:, i]
        stem_macs, stem_params = stem(sh, sw, c, c_in, STAGE_STRIDES[i])
        heads = c // head_dim
        rate = np.maximum(rates[:, i], 2.0)  # the r > 1 formula, masked below where r = 1
        sparse_macs, sparse_params = sparse(sh, sw, c, heads, mlp_ratio, kernel, rate)
        full_macs, full_params = full(sh, sw, c, heads, mlp_ratio, kernel, rates[:, i])
        is_one = rates[:, i] == 1
        macs += stem_macs + depths[:, i] * np.where(is_one, full_macs, sparse_macs)
        params += stem_params + depths[:, i] * np.where(is_one, full_params, sparse_params)
        c_in = c
    fh, fw = symbolic.stage_sizes(img_size)[-1]
    head = _totals(symbolic.head_ops(num_classes > 0), HEAD_ARGS)
    head_macs, head_params = head(fh, fw, widths[:, 3], num_classes)
    macs += head_macs
    params += head_params
    return np.rint(macs).astype(np.int64), np.rint(params).astype(np.int64)
