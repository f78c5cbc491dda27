"""Single blocks of an EdgeViT, for block-latency tables: each block at its input map size.

A block is one of the model's own per-stage configs (`edgevit.config`): a `StemConfig`, a
`BlockConfig` (an LGL block with its ablation switches) or the `HeadConfig`; `BlockAt` adds the
input map size and is built into the very layers the model uses. Its `description()` is the
store's config JSON (kind 'block'): the fields that change the block, with switches it does not
use left out, so that equal blocks describe equal (an r = 1 LGL block has no LocalAgg, sampler
or LocalProp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from edgevit.config import BlockConfig, EdgeViTConfig, HeadConfig, StemConfig, stage_sizes
from edgevit.layers import Head, LGLBlock, Stem, trunc_normal_init

from .store import canonical_json

BLOCK_KINDS = ("lgl", "stem", "head")


@dataclass(frozen=True)
class BlockAt:
    """One block on an input map of h × w pixels (a stem's input, an LGL block's or the head's
    map)."""

    block: StemConfig | BlockConfig | HeadConfig
    h: int
    w: int

    def __post_init__(self) -> None:
        if not isinstance(self.block, (StemConfig, BlockConfig, HeadConfig)):
            raise ValueError(f"BlockAt.block must be a StemConfig, BlockConfig or HeadConfig, "
                             f"got {type(self.block).__name__}")
        for name in ("h", "w"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BlockAt.{name} must be an integer ≥ 1, got {value!r}")
        if isinstance(self.block, StemConfig) and min(self.h, self.w) < self.block.stride:
            raise ValueError(f"BlockAt: a stride-{self.block.stride} stem needs h, w ≥ "
                             f"{self.block.stride}, got {self.h}×{self.w}")

    @property
    def kind(self) -> str:
        """'stem', 'lgl' or 'head'."""
        if isinstance(self.block, StemConfig):
            return "stem"
        return "lgl" if isinstance(self.block, BlockConfig) else "head"

    @property
    def in_chans(self) -> int:
        return self.block.in_chans if isinstance(self.block, StemConfig) else self.block.dim

    def description(self) -> dict[str, Any]:
        """The fields that change the block (its map size left out: the store keeps it as the
        measurement's input H, W)."""
        block = self.block
        if isinstance(block, StemConfig):
            return {"block": "stem", "in_chans": block.in_chans, "c": block.out_chans,
                    "stride": block.stride}
        if isinstance(block, HeadConfig):
            return {"block": "head", "c": block.dim, "num_classes": block.num_classes}
        out: dict[str, Any] = {
            "block": "lgl", "c": block.dim, "r": block.rate, "heads": block.num_heads,
            "mlp_hidden": block.mlp_hidden, "qkv_bias": block.qkv_bias,
            "global_attn": block.global_attn, "local_agg": "none",
        }
        if block.has_local_agg:
            out.update(local_agg=block.local_agg, kernel=block.kernel)
        if block.rate > 1 and block.global_attn == "sparse":
            out.update(sampler=block.sampler, local_prop=block.local_prop)
        return out

    def to_json(self) -> str:
        """Canonical JSON of `description()` (the store's config JSON, kind 'block')."""
        return canonical_json(self.description())

    def build(self) -> nn.Module:
        """The block, initialised as in EdgeViT, in eval mode."""
        block = self.block
        if isinstance(block, StemConfig):
            module: nn.Module = Stem(block)
        elif isinstance(block, HeadConfig):
            module = Head(block)
        else:
            module = LGLBlock(block)
        module.apply(trunc_normal_init)
        return module.eval()


def stage_blocks(config: EdgeViTConfig, img_size: tuple[int, int], stage: int
                 ) -> tuple[BlockAt, BlockAt]:
    """(stem, LGL block) of `stage` at an H×W input; the block repeats `depths[stage]` times."""
    sizes = [tuple(img_size), *stage_sizes(img_size)]
    return (BlockAt(config.stem_config(stage), *sizes[stage]),
            BlockAt(config.block_config(stage), *sizes[stage + 1]))


def head_block(config: EdgeViTConfig, img_size: tuple[int, int]) -> BlockAt:
    return BlockAt(config.head_config(), *stage_sizes(img_size)[-1])


def model_blocks(config: EdgeViTConfig, img_size: tuple[int, int]) -> list[BlockAt]:
    """The blocks of an EdgeViT at an H×W input, in order: per stage its stem and LGL blocks,
    then the head; a model's latency is roughly the sum of these blocks' latencies."""
    blocks: list[BlockAt] = []
    for i, depth in enumerate(config.depths):
        stem, lgl = stage_blocks(config, img_size, i)
        blocks += [stem] + [lgl] * depth
    return blocks + [head_block(config, img_size)]
