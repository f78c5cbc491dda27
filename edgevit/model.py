"""The EdgeViT network: four stages of (stem, LGL blocks), a final BatchNorm, pooling and a head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import MIN_IMG_SIZE, EdgeViTConfig
from .layers import LGLBlock, Stem, trunc_normal_init

STAGE_STRIDES = (4, 2, 2, 2)  # stem stride of each stage; cumulative reductions 4, 8, 16, 32


class EdgeViTStage(nn.Module):
    """One resolution: a downsampling stem, then `depth` LGL blocks (maps in, maps out)."""

    def __init__(self, *, in_chans: int, stride: int, blocks: list[LGLBlock], dim: int) -> None:
        super().__init__()
        self.downsample = Stem(in_chans=in_chans, out_chans=dim, stride=stride)
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
            from .registry import preset_config

            config = preset_config("edgevit_xxs")
        if overrides:
            config = config.replace(**overrides)
        self.config = config
        self.num_classes = config.num_classes
        self.num_features = config.widths[-1]
        total_blocks = sum(config.depths)
        drop_paths = torch.linspace(0, config.drop_path_rate, total_blocks).tolist()

        stages: list[EdgeViTStage] = []
        in_chans, block_index, reduction = config.in_chans, 0, 1
        self.feature_info: list[dict[str, Any]] = []
        for i, (dim, depth, rate) in enumerate(
            zip(config.widths, config.depths, config.sample_rates)
        ):
            blocks = [
                LGLBlock(
                    dim=dim,
                    num_heads=config.num_heads[i],
                    mlp_hidden=config.mlp_hidden[i],
                    rate=rate,
                    kernel=config.local_kernel,
                    qkv_bias=config.qkv_bias,
                    drop_path=drop_paths[block_index + j],
                    local_agg=config.local_agg,
                    global_attn=config.global_attn,
                    sampler=config.sampler,
                    local_prop=config.local_prop,
                )
                for j in range(depth)
            ]
            stages.append(
                EdgeViTStage(in_chans=in_chans, stride=STAGE_STRIDES[i], blocks=blocks, dim=dim)
            )
            reduction *= STAGE_STRIDES[i]
            self.feature_info.append(dict(num_chs=dim, reduction=reduction, module=f"stages.{i}"))
            in_chans, block_index = dim, block_index + depth
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(self.num_features)
        self.head: nn.Module = nn.Identity()
        if config.num_classes:
            self.head = nn.Linear(self.num_features, config.num_classes)
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
        x = x.mean(dim=(2, 3))  # (B, C)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def stage_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """(channels, h, w) of each stage's output map for an H×W input, without running it."""
        shapes = []
        for stride, dim in zip(STAGE_STRIDES, self.config.widths):
            height, width = height // stride, width // stride
            shapes.append((dim, height, width))
        return shapes

    def set_fused_attn(self, enable: bool = True) -> EdgeViT:
        """Switch every attention between SDPA (fast) and the release's matmul-softmax-matmul."""
        for module in self.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = enable
        return self

    def fuse(self) -> EdgeViT:
        """Rewrite this model in place into its fast inference form (eval mode only) and return
        it: BatchNorms folded into convolutions, channels-last maps, SDPA, ... (`edgevit.fuse`).

        Outputs stay equal to float32 rounding. The fused model cannot be trained and its
        `state_dict()` differs from the faithful one; to undo, load the original weights into
        a fresh `EdgeViT(model.config)`.
        """
        from .fuse import fuse_model

        return fuse_model(self)

    @property
    def is_fused(self) -> bool:
        """Whether `fuse()` has rewritten this model."""
        from .fuse import is_fused

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

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.config = self.config.replace(num_classes=num_classes)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
