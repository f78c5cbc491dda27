"""Symbolic cost features of configs, vectorised: the inputs of the latency predictors.

A CPU runs each op as one or more kernels; its time is roughly a fixed launch cost plus work
divided by a throughput that differs per kind (dense GEMM-like convolutions and linears are
fast per MAC, depthwise convolutions and attention matmuls on few channels are slow, elementwise
ops are bound by memory traffic). The features therefore split the exact cost by kind:

  macs_dense      1×1 and stem convolutions (groups = 1) and linear layers
  macs_depthwise  depthwise k×k convolutions (CPE, LocalAgg) and the depthwise LocalProp
  macs_attention  q·kᵀ and attn·v
  numel_norm      elements written by LayerNorm / BatchNorm
  numel_act       elements written by GELU and softmax
  numel_other     elementwise adds, bias adds, scaling, pooling, interpolation
  traffic         elements read + written by every op (a memory-traffic proxy)
  ops             number of ops (≈ kernel launches)
All per image (batch 1), as float64 arrays of shape (N,).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp

from edgevit.config import EdgeViTConfig

from .batched import ConfigBatch, split_by_shared_fields, summed_quantities
from .ops import Op

FEATURE_NAMES = (
    "macs_dense", "macs_depthwise", "macs_attention", "numel_norm", "numel_act",
    "numel_other", "traffic", "ops",
)


def _is_depthwise(op: Op) -> bool:
    groups = dict(op.detail).get("groups", sp.Integer(1))
    return sp.simplify(groups - 1) != 0


def op_features(op: Op) -> dict[str, sp.Expr]:
    """This op's contribution to each feature."""
    out = {name: sp.Integer(0) for name in FEATURE_NAMES}
    if op.kind in ("conv", "deconv", "linear"):
        out["macs_depthwise" if _is_depthwise(op) else "macs_dense"] = op.macs
    elif op.kind == "matmul":
        out["macs_attention"] = op.macs
    elif op.kind in ("layer_norm", "batch_norm"):
        out["numel_norm"] = op.numel_out
    elif op.kind in ("gelu", "softmax"):
        out["numel_act"] = op.numel_out
    else:
        out["numel_other"] = op.numel_out
    out["traffic"] = op.numel_in + op.numel_out
    out["ops"] = sp.Integer(1)
    return out


def _feature_columns(op: Op) -> tuple[sp.Expr, ...]:
    values = op_features(op)
    return tuple(values[name] for name in FEATURE_NAMES)


def feature_matrix(batch: ConfigBatch, img_size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """Features (N, len(FEATURE_NAMES)) of every config of `batch` at an H×W input."""
    return summed_quantities(_feature_columns, len(FEATURE_NAMES), batch, img_size)


def config_features(configs: Sequence[EdgeViTConfig],
                    img_size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """Features (N, F) of any configs, in their order."""
    out = np.zeros((len(configs), len(FEATURE_NAMES)))
    for rows, batch in split_by_shared_fields(configs):
        out[rows] = feature_matrix(batch, img_size)
    return out
