"""The search space a supernet covers: serialised into its checkpoint, and the three fixed
subnets of the sandwich (largest, smallest, full attention)."""

from __future__ import annotations

from typing import Any

from analysis.cost import DEFAULT_SPACE, SearchSpace
from edgevit.config import EdgeViTConfig


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """JSON-ready description of a search space (inverse: `space_from_dict`)."""
    return dict(head_dims=list(space.head_dims),
                width_mults=[list(v) for v in space.width_mults],
                depths=[list(v) for v in space.depths], rates=[list(v) for v in space.rates],
                mlp_ratios=list(space.mlp_ratios), base=space.base.to_dict())


def space_from_dict(data: dict[str, Any]) -> SearchSpace:
    return SearchSpace(head_dims=tuple(data["head_dims"]),
                       width_mults=tuple(tuple(v) for v in data["width_mults"]),
                       depths=tuple(tuple(v) for v in data["depths"]),
                       rates=tuple(tuple(v) for v in data["rates"]),
                       mlp_ratios=tuple(float(v) for v in data["mlp_ratios"]),
                       base=EdgeViTConfig.from_dict(data["base"]))


def _extreme_params(space: SearchSpace, largest: bool) -> dict[str, Any]:
    pick = max if largest else min
    params: dict[str, Any] = {"head_dim": pick(space.head_dims),
                              "mlp_ratio": pick(space.mlp_ratios)}
    for i in range(4):
        params[f"width_mult_{i}"] = pick(space.width_mults[i])
        params[f"depth_{i}"] = pick(space.depths[i])
        above_one = [r for r in space.rates[i] if r > 1]
        params[f"rate_{i}"] = (min(above_one) if above_one else 1) if largest else max(
            space.rates[i])
    return params


def largest_config(space: SearchSpace = DEFAULT_SPACE) -> EdgeViTConfig:
    """The sandwich's teacher: every maximum, and the smallest r > 1 of each stage."""
    return space.decode(_extreme_params(space, True)).replace(name="supernet_largest")


def smallest_config(space: SearchSpace = DEFAULT_SPACE) -> EdgeViTConfig:
    """Every minimum and the largest r of each stage."""
    return space.decode(_extreme_params(space, False)).replace(name="supernet_smallest")


def full_attention_config(space: SearchSpace = DEFAULT_SPACE) -> EdgeViTConfig:
    """Every maximum, and r = 1 (full attention, no LocalAgg) in each stage that allows it;
    a stage without r = 1 keeps the largest config's r."""
    params = _extreme_params(space, True)
    for i in range(4):
        if 1 in space.rates[i]:
            params[f"rate_{i}"] = 1
    return space.decode(params).replace(name="supernet_full_attention")
