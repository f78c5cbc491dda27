"""The EdgeViT search space: per-stage width, depth and sample rate r, plus head_dim and MLP ratio.

Written once here; `search/search_space.json` for NNI is generated from it
(`python -m analysis.cost.search_space --write`, in the checkout), and a test fails when the
checked-in file is stale.

Parameters (all NNI `choice`):
  head_dim            channels per head; every width is a multiple of it
  width_mult_{i}      stage i width = head_dim × width_mult_{i}
  depth_{i}           LGL blocks in stage i
  rate_{i}            sample rate of stage i: a divisor (≤ 8) of the stage's map side at the
                      design resolution (56, 28, 14, 7 at 224²); 1 = plain attention block
  mlp_ratio           FFN hidden / width
The release's XXS, XS and S are points of the space (`encode` gives their parameters).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevit.config import EdgeViTConfig, stage_sizes

from .batched import ConfigBatch

SPACE_JSON = Path(__file__).resolve().parents[2] / "search" / "search_space.json"
DESIGN_RESOLUTION = 224
MAX_RATE = 8


def stage_sides(resolution: int = DESIGN_RESOLUTION) -> tuple[int, ...]:
    """Map side of each stage at a square input (56, 28, 14, 7 at 224)."""
    return tuple(h for h, _ in stage_sizes((resolution, resolution)))


def divisor_rates(side: int, max_rate: int = MAX_RATE) -> tuple[int, ...]:
    """Sample rates that divide a map side, 1 included, up to `max_rate`."""
    return tuple(q for q in range(1, min(side, max_rate) + 1) if side % q == 0)


@dataclass(frozen=True)
class SearchSpace:
    """Choices per parameter; the product of all choices is the space."""

    head_dims: tuple[int, ...] = (32, 36, 48)
    width_mults: tuple[tuple[int, ...], ...] = ((1, 2), (2, 3), (4, 5, 6), (6, 8, 10))
    depths: tuple[tuple[int, ...], ...] = ((1, 2), (1, 2, 3), (2, 3, 4, 5, 6), (1, 2, 3))
    rates: tuple[tuple[int, ...], ...] = field(
        default_factory=lambda: tuple(divisor_rates(side) for side in stage_sides())
    )
    mlp_ratios: tuple[float, ...] = (3.0, 4.0)
    base: EdgeViTConfig = field(
        default_factory=lambda: EdgeViTConfig(
            widths=(36, 72, 144, 288), depths=(1, 1, 3, 2), sample_rates=(4, 2, 2, 1),
            head_dim=36, name="searched",
        )
    )  # fields the space does not touch (kernel, switches, classes) come from here

    def choices(self) -> dict[str, tuple]:
        """Parameter name -> its choices, in a fixed order."""
        out: dict[str, tuple] = {"head_dim": self.head_dims}
        for i in range(4):
            out[f"width_mult_{i}"] = self.width_mults[i]
            out[f"depth_{i}"] = self.depths[i]
            out[f"rate_{i}"] = self.rates[i]
        out["mlp_ratio"] = self.mlp_ratios
        return out

    @property
    def size(self) -> int:
        """Number of configs (every combination is valid)."""
        return int(np.prod([len(v) for v in self.choices().values()], dtype=np.int64))

    def to_nni(self) -> dict[str, Any]:
        """The NNI search-space dict (every parameter a `choice`)."""
        return {name: {"_type": "choice", "_value": list(values)}
                for name, values in self.choices().items()}

    def decode(self, params: dict[str, Any]) -> EdgeViTConfig:
        """NNI parameters -> config. Unknown, missing or out-of-space values raise ValueError."""
        if not isinstance(params, dict):
            raise ValueError(f"search parameters must be a dict, got {type(params).__name__}")
        choices = self.choices()
        unknown = sorted(set(params) - set(choices))
        missing = sorted(set(choices) - set(params))
        if unknown or missing:
            raise ValueError(f"search parameters: unknown {unknown}, missing {missing}")
        for name, value in params.items():
            if value not in choices[name] or isinstance(value, bool):
                raise ValueError(f"search parameter {name}={value!r} is not one of "
                                 f"{list(choices[name])}")
        head_dim = int(params["head_dim"])
        return self.base.replace(
            widths=tuple(head_dim * int(params[f"width_mult_{i}"]) for i in range(4)),
            depths=tuple(int(params[f"depth_{i}"]) for i in range(4)),
            sample_rates=tuple(int(params[f"rate_{i}"]) for i in range(4)),
            head_dim=head_dim,
            mlp_ratio=float(params["mlp_ratio"]),
        )

    def encode(self, config: EdgeViTConfig) -> dict[str, Any]:
        """Config -> parameters; ValueError when the config is not a point of the space."""
        params: dict[str, Any] = {"head_dim": config.head_dim, "mlp_ratio": config.mlp_ratio}
        for i in range(4):
            params[f"width_mult_{i}"] = config.widths[i] // config.head_dim
            params[f"depth_{i}"] = config.depths[i]
            params[f"rate_{i}"] = config.sample_rates[i]
        decoded = self.decode(params)
        if decoded.identity_dict() != config.replace(name=decoded.name).identity_dict():
            raise ValueError(f"config {config.name!r} differs from the space's fixed fields")
        return params

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Uniformly random parameters."""
        return {name: values[int(rng.integers(len(values)))]
                for name, values in self.choices().items()}

    def enumerate(self) -> ConfigBatch:
        """The whole space as one batch (the fields the space does not touch from `base`).

        Row order is the product of `choices()` in order (the last parameter varies fastest),
        as `iter_params` yields them.
        """
        choices = self.choices()
        grids = np.meshgrid(*[np.asarray(v) for v in choices.values()], indexing="ij")
        columns = {name: grid.reshape(-1) for name, grid in zip(choices, grids)}
        head_dim = columns["head_dim"].astype(np.int64)
        return ConfigBatch(
            widths=np.stack([head_dim * columns[f"width_mult_{i}"] for i in range(4)], 1),
            depths=np.stack([columns[f"depth_{i}"] for i in range(4)], 1),
            sample_rates=np.stack([columns[f"rate_{i}"] for i in range(4)], 1),
            head_dim=head_dim, mlp_ratio=columns["mlp_ratio"],
            local_kernel=self.base.local_kernel, base=self.base,
        )

    def row(self, params: dict[str, Any]) -> int:
        """The row of `enumerate()` that holds `params` (mixed radix, last parameter fastest)."""
        self.decode(params)  # ValueError for anything outside the space
        row = 0
        for name, values in self.choices().items():
            row = row * len(values) + values.index(params[name])
        return row

    def iter_params(self) -> Iterator[dict[str, Any]]:
        """Every point as NNI parameters, in `enumerate()` order."""
        choices = self.choices()
        for values in itertools.product(*choices.values()):
            yield dict(zip(choices, values))


DEFAULT_SPACE = SearchSpace()


def nni_json(space: SearchSpace = DEFAULT_SPACE) -> str:
    return json.dumps(space.to_nni(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {SPACE_JSON}")
    args = parser.parse_args(argv)
    print(f"search space: {DEFAULT_SPACE.size:,} configs")
    for name, values in DEFAULT_SPACE.choices().items():
        print(f"  {name:13s} {list(values)}")
    if args.write:
        SPACE_JSON.parent.mkdir(exist_ok=True)
        SPACE_JSON.write_text(nni_json())
        print(f"wrote {SPACE_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
