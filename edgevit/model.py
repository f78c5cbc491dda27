"""The EdgeViT network: four stages of (stem, LGL blocks), a final BatchNorm, pooling and a head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import MIN_IMG_SIZE, PRESETS, EdgeViTConfig, StemConfig, stage_sizes
from .fuse import fuse_model, is_fused
from .layers import LGLBlock, Stem, classifier, global_pool, trunc_normal_init


class EdgeViTStage(nn.Module):
    """One resolution: a downsampling stem, then `depth` LGL blocks (maps in, maps out)."""

    def __init__(self, stem: StemConfig, blocks: list[LGLBlock]) -> None:
        super().__init__()
        self.downsample = Stem(stem)
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class EdgeViT(nn.Module):
    """EdgeViT (Pan et al., ECCV 2022) for any `EdgeViTConfig`.

    Input: B×in_chans×H×W with H, W ≥ 32. Stage i outputs a map of `widths[i]` channels at
    ⌊…⌊H/4⌋/2…⌋ (stride 4·2^i, each stem flooring as a strided convolution does). Keyword
    `overrides` replace config fields (e.g. `num_classes=10`).
    """

    def __init__(self, config: EdgeViTConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        if config is None:
            config = PRESETS["edgevit_xxs"]
        if overrides:
            config = config.replace(**overrides)
        self.config = config
        self.num_classes = config.num_classes
        self.num_features = config.widths[-1]
        total_blocks = sum(config.depths)
        drop_paths = torch.linspace(0, config.drop_path_rate, total_blocks, device="cpu").tolist()

        stages: list[EdgeViTStage] = []
        block_index = 0
        self.feature_info: list[dict[str, Any]] = []
        for i, depth in enumerate(config.depths):
            stem, block = config.stem_config(i), config.block_config(i)
            blocks = [LGLBlock(block, drop_path=drop_paths[block_index + j]) for j in range(depth)]
            stages.append(EdgeViTStage(stem, blocks))
            reduction = (self.feature_info[-1]["reduction"] if i else 1) * stem.stride
            self.feature_info.append(dict(num_chs=block.dim, reduction=reduction,
                                          module=f"stages.{i}"))
            block_index += depth
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(self.num_features)
        self.head = classifier(config.head_config())
        self.channels_last = False  # run on channels-last maps (set by `fuse`)
        self.apply(trunc_normal_init)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError naming the problem when `x` is not a B×in_chans×H×W batch, H, W ≥ 32."""
        if x.dim() != 4:
            raise ValueError(f"EdgeViT expects a 4-D B×C×H×W tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.config.in_chans:
            raise ValueError(
                f"EdgeViT expects {self.config.in_chans} input channels, got {x.shape[1]} "
                f"(shape {tuple(x.shape)})"
            )
        if x.shape[2] < MIN_IMG_SIZE or x.shape[3] < MIN_IMG_SIZE:
            raise ValueError(
                f"EdgeViT needs H, W ≥ {MIN_IMG_SIZE} (4 stems reduce by 32), "
                f"got {x.shape[2]}×{x.shape[3]}"
            )
        if not x.is_floating_point():
            raise ValueError(f"EdgeViT expects a floating-point image, got {x.dtype}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """B×C×H×W image -> B×widths[-1]×⌊H/32⌋×⌊W/32⌋ map after the final BatchNorm."""
        self.check_input(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.norm(self.stages(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, then the classifier (skipped with `pre_logits`)."""
        x = global_pool(x)  # (B, C)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def stage_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """(channels, h, w) of each stage's output map for an H×W input, without running it."""
        return [(dim, h, w) for dim, (h, w) in zip(self.config.widths,
                                                    stage_sizes((height, width)))]

    def set_fused_attn(self, enable: bool = True) -> EdgeViT:
        """Switch every attention between SDPA (fast) and the release's matmul-softmax-matmul."""
        for module in self.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = enable
        return self

    def fuse(self, *, fold_batchnorm: bool = True) -> EdgeViT:
        """Rewrite this model in place into its fast inference form (eval mode only) and return
        it: BatchNorms folded into convolutions, channels-last maps, SDPA, ... (`edgevit.fuse`).

        Outputs stay equal to float32 rounding. The fused model cannot be trained and its
        `state_dict()` differs from the faithful one; to undo, load the original weights into
        a fresh `EdgeViT(model.config)`. `fold_batchnorm=False` leaves LocalAgg's BatchNorms
        unfolded for recalibration (`edgevit.fuse.fold_batchnorms` folds them afterwards).
        """
        return fuse_model(self, fold_batchnorm=fold_batchnorm)

    @property
    def is_fused(self) -> bool:
        """Whether `fuse()` has rewritten this model."""
        return is_fused(self)

    def train(self, mode: bool = True) -> EdgeViT:
        if mode and self.is_fused:
            raise RuntimeError("a fused EdgeViT is for inference only; build a fresh model and "
                               "load the unfused weights to train")
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        if self.is_fused:
            raise RuntimeError("cannot load weights into a fused EdgeViT: load them into a fresh "
                               "EdgeViT(config), then call fuse()")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for `num_classes` (0: none; forward returns pooled features).

        `global_pool` is timm's contract: only average pooling exists here, so None or "avg"."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"EdgeViT pools by average only; global_pool {global_pool!r} "
                             "is not supported")
        self.config = self.config.replace(num_classes=num_classes)
        self.num_classes = num_classes
        self.head = classifier(self.config.head_config())

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
