"""The one configuration of an EdgeViT: a frozen, validated dataclass and the release's presets."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

SAMPLERS = ("top_left", "center", "avg", "max")
LOCAL_PROPS = ("deconv", "bilinear")
LOCAL_AGGS = ("conv", "lsa", "none")
GLOBAL_ATTNS = ("sparse", "sra")
NUM_STAGES = 4
STAGE_STRIDES = (4, 2, 2, 2)  # stem stride of each stage; cumulative reductions 4, 8, 16, 32
MIN_IMG_SIZE = 32  # the four stems reduce by 32; below this the last stage has no pixel
MAX_IMG_SIZE = 8_192  # an image side; far above any edge input
# Sane upper bounds of every numeric field: far above any edge model, low enough that no count
# derived from a config overflows a float64 or an int64.
MAX_WIDTH = 16_384  # channels of a stage (and head_dim)
MAX_DEPTH = 64  # blocks of a stage
MAX_SAMPLE_RATE = 64
MAX_MLP_RATIO = 64.0
MAX_LOCAL_KERNEL = 63
MAX_CLASSES = 1_000_000
MAX_IN_CHANS = 1_024


def stage_sizes(img_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Map (h, w) of each stage for an H×W input: each stem floors by its stride, as the strided
    convolution does (a 97-pixel side gives 24, 12, 6, 3)."""
    height, width = img_size
    sizes = []
    for stride in STAGE_STRIDES:
        height, width = height // stride, width // stride
        sizes.append((height, width))
    return sizes


def _check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ValueError(f"EdgeViTConfig.{name}: {message}")


def _as_int_tuple(value: Any, name: str) -> tuple[int, ...]:
    _check(
        isinstance(value, (list, tuple)) and len(value) == NUM_STAGES,
        name,
        f"expected {NUM_STAGES} integers (one per stage), got {value!r}",
    )
    out = []
    for v in value:
        _check(
            isinstance(v, int) and not isinstance(v, bool),
            name,
            f"expected integers, got {v!r} in {value!r}",
        )
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class StemConfig:
    """A stage's downsampling stem: a stride×stride convolution with that stride, then LayerNorm."""

    in_chans: int
    out_chans: int
    stride: int


@dataclass(frozen=True)
class BlockConfig:
    """Every LGL block of one stage: what the model's blocks, the cost ops, the block-latency
    table and the predictor features all read. Derived from an `EdgeViTConfig`
    (`EdgeViTConfig.block_config(stage)`); not validated again here."""

    dim: int  # channels
    num_heads: int
    mlp_hidden: int  # FFN hidden channels
    rate: int  # sample rate r; 1 = plain global attention, no LocalAgg
    kernel: int  # LocalAgg depthwise kernel (the LSA window for local_agg == "lsa")
    qkv_bias: bool = True
    local_agg: str = "conv"
    global_attn: str = "sparse"
    sampler: str = "top_left"
    local_prop: str = "deconv"

    @property
    def has_local_agg(self) -> bool:
        """A block with r = 1 has no LocalAgg (the release), nor has the "w/o LA" ablation."""
        return self.rate > 1 and self.local_agg != "none"

    @property
    def switches(self) -> dict[str, Any]:
        """The categorical fields (the ablation switches), as keyword arguments."""
        return dict(local_agg=self.local_agg, global_attn=self.global_attn,
                    sampler=self.sampler, local_prop=self.local_prop, qkv_bias=self.qkv_bias)


@dataclass(frozen=True)
class HeadConfig:
    """The final BatchNorm, global average pooling and classifier (none when num_classes = 0)."""

    dim: int
    num_classes: int


@dataclass(frozen=True)
class EdgeViTConfig:
    """Architecture of one EdgeViT; every ablation of the supplementary (section B) is one field.

    A stage i runs at 1/(4·2^i) of the input resolution with `widths[i]` channels and
    `depths[i]` LGL blocks sampling one token per `sample_rates[i]` × `sample_rates[i]` window.
    """

    widths: tuple[int, ...]  # channels per stage
    depths: tuple[int, ...]  # LGL blocks per stage, each ≥ 1
    sample_rates: tuple[int, ...]  # r per stage; r = 1 makes a plain global-attention block
    head_dim: int = 64  # channels per attention head; every width must be a multiple
    mlp_ratio: float = 4.0  # hidden width of every FFN / width
    local_kernel: int = 5  # LocalAgg depthwise kernel (5 official, 3 in the pseudo-code);
    #                        also the LSA window when local_agg == "lsa"
    num_classes: int = 1000  # 0 drops the classifier (forward returns pooled features)
    in_chans: int = 3
    drop_path_rate: float = 0.0  # stochastic depth, linearly increasing over all blocks
    qkv_bias: bool = True
    sampler: str = "top_left"  # top_left (official AvgPool2d(1, r)) | center | avg | max
    local_prop: str = "deconv"  # deconv (official dw ConvTranspose2d(r, r)) | bilinear
    local_agg: str = "conv"  # conv (official) | lsa (Twins locally-grouped attn) | none
    global_attn: str = "sparse"  # sparse (LGL) | sra (PVT-v2 spatial-reduction attention)
    name: str = field(default="custom", compare=False)  # label only; not part of identity

    def __post_init__(self) -> None:
        for name in ("widths", "depths", "sample_rates"):
            object.__setattr__(self, name, _as_int_tuple(getattr(self, name), name))
        for i, (w, d, r) in enumerate(zip(self.widths, self.depths, self.sample_rates)):
            _check(1 <= w <= MAX_WIDTH, "widths", f"stage {i} width {w} is not in 1..{MAX_WIDTH}")
            _check(1 <= d <= MAX_DEPTH, "depths", f"stage {i} depth {d} is not in 1..{MAX_DEPTH}")
            _check(1 <= r <= MAX_SAMPLE_RATE, "sample_rates",
                   f"stage {i} sample rate {r} is not in 1..{MAX_SAMPLE_RATE}")
        _check(
            isinstance(self.head_dim, int) and not isinstance(self.head_dim, bool)
            and 1 <= self.head_dim <= MAX_WIDTH,
            "head_dim",
            f"expected an integer in 1..{MAX_WIDTH}, got {self.head_dim!r}",
        )
        for i, w in enumerate(self.widths):
            _check(
                w % self.head_dim == 0,
                "head_dim",
                f"stage {i} width {w} is not a multiple of head_dim {self.head_dim}",
            )
        _check(
            isinstance(self.mlp_ratio, (int, float)) and not isinstance(self.mlp_ratio, bool)
            # the bound is compared before isfinite, which overflows on a huge int
            and 0 < self.mlp_ratio <= MAX_MLP_RATIO and math.isfinite(self.mlp_ratio),
            "mlp_ratio",
            f"expected a number in (0, {MAX_MLP_RATIO:g}], got {self.mlp_ratio!r}",
        )
        object.__setattr__(self, "mlp_ratio", float(self.mlp_ratio))
        for i, w in enumerate(self.widths):
            _check(
                int(w * self.mlp_ratio) >= 1,
                "mlp_ratio",
                f"stage {i}: hidden width int({w} × {self.mlp_ratio}) is 0",
            )
        _check(
            isinstance(self.local_kernel, int) and not isinstance(self.local_kernel, bool)
            and 1 <= self.local_kernel <= MAX_LOCAL_KERNEL and self.local_kernel % 2 == 1,
            "local_kernel",
            f"expected an odd integer in 1..{MAX_LOCAL_KERNEL}, got {self.local_kernel!r}",
        )
        for name, top in (("num_classes", MAX_CLASSES), ("in_chans", MAX_IN_CHANS)):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top,
                name,
                f"expected an integer in 0..{top}, got {value!r}",
            )
        _check(self.in_chans >= 1, "in_chans", "must be ≥ 1")
        _check(
            isinstance(self.drop_path_rate, (int, float))
            and not isinstance(self.drop_path_rate, bool)
            and 0.0 <= self.drop_path_rate < 1.0,
            "drop_path_rate",
            f"expected a number in [0, 1), got {self.drop_path_rate!r}",
        )
        object.__setattr__(self, "drop_path_rate", float(self.drop_path_rate))
        _check(isinstance(self.qkv_bias, bool), "qkv_bias",
               f"expected a bool, got {self.qkv_bias!r}")
        for name, allowed in (
            ("sampler", SAMPLERS),
            ("local_prop", LOCAL_PROPS),
            ("local_agg", LOCAL_AGGS),
            ("global_attn", GLOBAL_ATTNS),
        ):
            value = getattr(self, name)
            _check(value in allowed, name, f"expected one of {allowed}, got {value!r}")
        _check(isinstance(self.name, str), "name", f"expected a string, got {self.name!r}")

    @property
    def num_heads(self) -> tuple[int, ...]:
        """Attention heads per stage: width // head_dim."""
        return tuple(w // self.head_dim for w in self.widths)

    @property
    def mlp_hidden(self) -> tuple[int, ...]:
        """FFN hidden channels per stage, int(width × mlp_ratio) as in the release."""
        return tuple(int(w * self.mlp_ratio) for w in self.widths)

    def stem_config(self, stage: int) -> StemConfig:
        """The stem that opens `stage`."""
        in_chans = self.in_chans if stage == 0 else self.widths[stage - 1]
        return StemConfig(in_chans=in_chans, out_chans=self.widths[stage],
                          stride=STAGE_STRIDES[stage])

    def block_config(self, stage: int) -> BlockConfig:
        """The LGL block repeated `depths[stage]` times in `stage`."""
        return BlockConfig(
            dim=self.widths[stage], num_heads=self.num_heads[stage],
            mlp_hidden=self.mlp_hidden[stage], rate=self.sample_rates[stage],
            kernel=self.local_kernel, qkv_bias=self.qkv_bias, local_agg=self.local_agg,
            global_attn=self.global_attn, sampler=self.sampler, local_prop=self.local_prop,
        )

    def head_config(self) -> HeadConfig:
        return HeadConfig(dim=self.widths[-1], num_classes=self.num_classes)

    def replace(self, **changes: Any) -> EdgeViTConfig:
        """A copy with fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        for key in ("widths", "depths", "sample_rates"):
            out[key] = list(out[key])
        return out

    def identity_dict(self) -> dict[str, Any]:
        """The fields that define the architecture (the label `name` left out)."""
        out = self.to_dict()
        del out["name"]
        return out

    def to_json(self) -> str:
        """Canonical JSON of the architecture: sorted keys, no label; equal configs hash equal."""
        return json.dumps(self.identity_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdgeViTConfig:
        """Inverse of `to_dict`; unknown or missing required keys raise ValueError naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"EdgeViTConfig: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"EdgeViTConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"EdgeViTConfig: missing required field(s) {missing}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> EdgeViTConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"EdgeViTConfig: malformed JSON ({err})") from None
        except RecursionError:
            raise ValueError("EdgeViTConfig: JSON nested too deeply") from None
        return cls.from_dict(data)


# The release (saic-fi/edgevit src/edgevit.py) and the paper's Table 1a agree on these numbers.
# Where the code and the paper differ (LocalAgg kernel 5 vs 3, top-left vs "center" sampling),
# the presets follow the code.
PRESETS: dict[str, EdgeViTConfig] = {
    "edgevit_xxs": EdgeViTConfig(
        name="edgevit_xxs",
        widths=(36, 72, 144, 288),
        depths=(1, 1, 3, 2),
        sample_rates=(4, 2, 2, 1),
        head_dim=36,
    ),
    "edgevit_xs": EdgeViTConfig(
        name="edgevit_xs",
        widths=(48, 96, 240, 384),
        depths=(1, 1, 3, 1),
        sample_rates=(4, 2, 2, 1),
        head_dim=48,
    ),
    "edgevit_s": EdgeViTConfig(
        name="edgevit_s",
        widths=(48, 96, 240, 384),
        depths=(1, 2, 5, 3),
        sample_rates=(4, 2, 2, 1),
        head_dim=48,
    ),
}

# Parameters of the release's models (official_state_dicts.json); a test recounts them.
PRESET_PARAMS = {"edgevit_xxs": 4_067_704, "edgevit_xs": 6_770_056, "edgevit_s": 13_108_168}
