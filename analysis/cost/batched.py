"""The exact cost model over a batch of configs (numpy), for the search and the exhaustive front.

A `ConfigBatch` holds N configs column-wise: `widths`, `depths`, `sample_rates` of shape (N, 4),
`head_dim`, `mlp_ratio`, `local_kernel` of shape (N,); every other field (the ablation
switches, classes, input channels) is shared by the batch and read from its `base` config.
`SearchSpace.enumerate()` returns one; `ConfigBatch.of(configs)` builds one from configs that
share those fields, and `split_by_shared_fields(configs)` groups any configs into batches.
Results equal, config by config, what `ops.model_cost` gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from edgevit.config import EdgeViTConfig, stage_sizes

from . import ops
from .ops import BLOCK_ARGS, HEAD_ARGS, STEM_ARGS, Op

OpQuantities = Callable[[Op], Sequence[sp.Expr]]  # op -> one expression per output column

COLUMN_FIELDS = ("widths", "depths", "sample_rates", "head_dim", "mlp_ratio", "local_kernel")
# fields a batch shares (the label `name` is not part of a config's identity)
SHARED_FIELDS = tuple(f.name for f in dataclasses.fields(EdgeViTConfig)
                      if f.name not in COLUMN_FIELDS and f.name != "name")


@dataclass(frozen=True, eq=False)
class ConfigBatch:
    """N configs column-wise (see the module docstring); rows are not validated again."""

    widths: np.ndarray  # (N, 4) int64
    depths: np.ndarray  # (N, 4) int64
    sample_rates: np.ndarray  # (N, 4) int64
    head_dim: np.ndarray  # (N,) int64
    mlp_ratio: np.ndarray  # (N,) float64
    local_kernel: np.ndarray  # (N,) int64
    base: EdgeViTConfig  # the shared fields

    def __post_init__(self) -> None:
        for name in ("widths", "depths", "sample_rates"):
            value = np.asarray(getattr(self, name), dtype=np.int64)
            if value.ndim != 2 or value.shape[1] != 4:
                raise ValueError(f"ConfigBatch.{name} must be (N, 4), got shape {value.shape}")
            object.__setattr__(self, name, value)
        count = self.widths.shape[0]
        if self.depths.shape[0] != count or self.sample_rates.shape[0] != count:
            raise ValueError(f"ConfigBatch: widths, depths, sample_rates differ in rows "
                             f"({count}, {self.depths.shape[0]}, {self.sample_rates.shape[0]})")
        for name, dtype in (("head_dim", np.int64), ("mlp_ratio", np.float64),
                            ("local_kernel", np.int64)):
            value = np.broadcast_to(np.asarray(getattr(self, name), dtype=dtype), (count,))
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, configs: Sequence[EdgeViTConfig]) -> ConfigBatch:
        """The batch of `configs`; ValueError when they differ in a shared field."""
        if not configs:
            raise ValueError("ConfigBatch.of: no configs")
        base = configs[0]
        for config in configs:
            differing = [f for f in SHARED_FIELDS if getattr(config, f) != getattr(base, f)]
            if differing:
                raise ValueError(f"ConfigBatch.of: configs differ in shared field(s) {differing}; "
                                 "use split_by_shared_fields")
        return cls(widths=[c.widths for c in configs], depths=[c.depths for c in configs],
                   sample_rates=[c.sample_rates for c in configs],
                   head_dim=[c.head_dim for c in configs],
                   mlp_ratio=[c.mlp_ratio for c in configs],
                   local_kernel=[c.local_kernel for c in configs], base=base)

    def __len__(self) -> int:
        return self.widths.shape[0]

    def __getitem__(self, rows: slice | np.ndarray) -> ConfigBatch:
        """The rows selected by a slice, an index array or a boolean mask."""
        return ConfigBatch(**{name: getattr(self, name)[rows] for name in COLUMN_FIELDS},
                           base=self.base)

    def config(self, row: int) -> EdgeViTConfig:
        """Row `row` as a config (validated)."""
        return self.base.replace(
            widths=tuple(int(v) for v in self.widths[row]),
            depths=tuple(int(v) for v in self.depths[row]),
            sample_rates=tuple(int(v) for v in self.sample_rates[row]),
            head_dim=int(self.head_dim[row]), mlp_ratio=float(self.mlp_ratio[row]),
            local_kernel=int(self.local_kernel[row]), name="custom",
        )


def split_by_shared_fields(configs: Sequence[EdgeViTConfig]
                           ) -> list[tuple[np.ndarray, ConfigBatch]]:
    """(row indices into `configs`, their batch) per distinct combination of shared fields."""
    groups: dict[tuple, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(tuple(getattr(config, f) for f in SHARED_FIELDS), []).append(index)
    return [(np.asarray(rows), ConfigBatch.of([configs[i] for i in rows]))
            for rows in groups.values()]


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


def summed_quantities(quantities: OpQuantities, width: int, batch: ConfigBatch,
                      img_size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """Per-op `quantities` summed over every op of each config of `batch` at an H×W input:
    float64 (N, width)."""
    count = len(batch)
    base = batch.base
    block_switches = base.block_config(0).switches
    sparse = _summed(ops.lgl_block_ops(**block_switches), BLOCK_ARGS, quantities, width)
    full = _summed(ops.lgl_block_ops(rate_is_one=True, **block_switches), BLOCK_ARGS,
                   quantities, width)
    stem = _summed(ops.stem_ops(), STEM_ARGS, quantities, width)
    widths = batch.widths.astype(np.float64)
    head_dim, mlp_ratio = batch.head_dim.astype(np.float64), batch.mlp_ratio
    kernel = batch.local_kernel.astype(np.float64)

    out = np.zeros((count, width))
    c_in = np.full(count, float(base.in_chans))
    for i, (sh, sw) in enumerate(stage_sizes(img_size)):
        c = widths[:, i]
        heads = c // head_dim
        rate = batch.sample_rates[:, i].astype(np.float64)
        # the r > 1 formula is evaluated at r ≥ 2 everywhere and masked where r = 1
        block_sparse = _stack(sparse(sh, sw, c, heads, mlp_ratio, kernel,
                                     np.maximum(rate, 2.0)), count)
        block_full = _stack(full(sh, sw, c, heads, mlp_ratio, kernel, rate), count)
        out += _stack(stem(sh, sw, c, c_in, base.stem_config(i).stride), count)
        out += batch.depths[:, i, None] * np.where((rate == 1)[:, None], block_full, block_sparse)
        c_in = c
    fh, fw = stage_sizes(img_size)[-1]
    head = _summed(ops.head_ops(base.num_classes > 0), HEAD_ARGS, quantities, width)
    out += _stack(head(fh, fw, widths[:, 3], base.num_classes), count)
    return out


def _macs_and_params(op: Op) -> tuple[sp.Expr, sp.Expr]:
    return op.macs, op.params


def macs_params(batch: ConfigBatch, img_size: tuple[int, int] = (224, 224)
                ) -> tuple[np.ndarray, np.ndarray]:
    """Exact (macs, params) of every config of `batch`: int64 arrays of shape (N,)."""
    totals = summed_quantities(_macs_and_params, 2, batch, img_size)
    rounded = np.rint(totals)
    if np.abs(totals - rounded).max(initial=0.0) > 1e-6:
        raise ArithmeticError("non-integer cost: a formula is wrong")
    return rounded[:, 0].astype(np.int64), rounded[:, 1].astype(np.int64)
