"""Pure formulas (shapes in, multiply-adds out), shared by the rules, the tests and the symbolic
model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def conv_macs(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    out_shape: Sequence[int],
    transposed: bool = False,
) -> int:
    """Multiply-adds of a (grouped, depthwise, transposed) convolution, bias excluded.

    B · prod(weight) · positions, where the weight is (C_out, C_in/g, k…) for a convolution and
    (C_in, C_out/g, k…) for a transposed one, and the positions are those of the output (of the
    input for a transposed convolution, whose every input pixel scatters one kernel). A
    depthwise ConvTranspose2d(k=r, stride=r) on h'×w' gives c·r²·h'·w' = c·h·w.
    """
    positions = (x_shape if transposed else out_shape)[2:]
    return x_shape[0] * math.prod(w_shape) * math.prod(positions)


def linear_macs(x_shape: Sequence[int], out_features: int) -> int:
    """Rows × in × out for y = x·Wᵀ on x of shape (…, in); bias excluded."""
    return math.prod(x_shape) * out_features


def matmul_macs(a_shape: Sequence[int], b_shape: Sequence[int]) -> int:
    """Multiply-adds of torch.matmul(a, b) with its broadcasting (1-D operands included)."""
    a = tuple(a_shape) if len(a_shape) > 1 else (1, *a_shape)
    b = tuple(b_shape) if len(b_shape) > 1 else (*b_shape, 1)
    if a[-1] != b[-2]:
        raise ValueError(f"matmul: inner dimensions differ: {tuple(a_shape)} @ {tuple(b_shape)}")
    batch = torch.broadcast_shapes(a[:-2], b[:-2])
    return math.prod(batch) * a[-2] * a[-1] * b[-1]


def sdpa_macs(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """softmax(q·kᵀ)·v: (…, Nq, d) · (…, d, Nk) then (…, Nq, Nk) · (…, Nk, d_v) multiply-adds."""
    *batch, n_q, d = q_shape
    n_k, d_v = k_shape[-2], v_shape[-1]
    return math.prod(batch) * n_q * n_k * (d + d_v)
