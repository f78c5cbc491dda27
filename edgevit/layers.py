"""Building blocks of EdgeViT: stems, LocalAgg, GlobalSparseAttn and the ablation blocks.

Layouts: `x` is N×C×H×W between blocks ("map form") and B×N×C inside the global block
("token form", N = H·W in row-major order, as `flatten(2).transpose(1, 2)` gives).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import BlockConfig, HeadConfig, StemConfig

LN_EPS_BLOCK = 1e-6  # LayerNorms inside the blocks (the release's norm_layer)
LN_EPS_DEFAULT = 1e-5  # stems, LocalProp and SRA norms use nn.LayerNorm's default in the release


def padded_size(size: int, multiple: int) -> int:
    """Smallest multiple of `multiple` that is ≥ `size`."""
    # (a + b - 1) // b rather than -(-a // b): traced into ONNX, integer division truncates
    return (size + multiple - 1) // multiple * multiple


def pad_map(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad a N×C×H×W map on the bottom and right so H and W are multiples of `multiple`."""
    h, w = x.shape[-2:]
    pad_h, pad_w = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


def tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, N, C) -> (B, C, h, w)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H·W, C)."""
    return x.flatten(2).transpose(1, 2)


def multi_head_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, fused: bool
) -> torch.Tensor:
    """softmax(q·kᵀ·scale)·v on (B, heads, N, d) tensors; `fused` picks the SDPA kernel.

    The unfused path is the release's operation order; both agree to float32 rounding.
    """
    if fused:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    attn = (q @ k.transpose(-2, -1)) * scale  # (B, heads, Nq, Nk)
    return attn.softmax(dim=-1) @ v  # (B, heads, Nq, d)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016) on a residual branch: in training, each sample's
    branch output is zeroed with probability `drop_prob` and the kept ones scaled by
    1 / (1 - drop_prob), so the expectation is unchanged; the identity in eval.

    Written here rather than imported from timm: importing `timm.layers` pulls torchvision and
    costs seconds in every process that only builds or costs a model.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob!r}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        # one Bernoulli draw per sample, broadcast over every other dim: (N, 1, ..., 1)
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
        return x * keep.div_(keep_prob)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a N×C×H×W map.

    The output keeps the input's memory format: a channels-last map (physically B×H×W×C, as a
    fused model runs it) is normalised through its (B, H, W, C) view without any copy.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C): a view, contiguous when x is channels-last
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        x = x.permute(0, 3, 1, 2)  # (B, C, H, W)
        return x.contiguous(memory_format=torch.channels_last if channels_last
                            else torch.contiguous_format)


class Stem(nn.Module):
    """Downsampling stem: a `stride`×`stride` convolution with stride `stride`, then LayerNorm."""

    def __init__(self, stem: StemConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(stem.in_chans, stem.out_chans, kernel_size=stem.stride,
                              stride=stem.stride)
        self.norm = LayerNorm2d(stem.out_chans, eps=LN_EPS_DEFAULT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class ConvMlp(nn.Module):
    """FFN of 1×1 convolutions on a map: fc1 -> GELU -> fc2."""

    def __init__(
        self, *, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Mlp(nn.Module):
    """FFN of linear layers on tokens: fc1 -> GELU -> fc2."""

    def __init__(
        self, *, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConvMixer(nn.Module):
    """LocalAgg's token mixer: pointwise -> depthwise k×k -> pointwise (maps in and out)."""

    def __init__(self, *, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.dwconv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.dwconv(self.conv1(x)))


class LocallyGroupedAttn(nn.Module):
    """Twins' locally-grouped self-attention (LSA): attention inside `kernel`×`kernel` windows.

    Maps whose sides are not multiples of the window are zero-padded bottom/right and cropped.
    """

    def __init__(self, *, dim: int, kernel: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.window = kernel
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.fused_attn = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.window
        x = pad_map(x, s)
        gh, gw = x.shape[-2] // s, x.shape[-1] // s
        x = x.reshape(b, c, gh, s, gw, s).permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, s, s, C)
        x = x.reshape(b * gh * gw, s * s, c).contiguous()  # (B·windows, s², C), one layout
        qkv = self.qkv(x).reshape(x.shape[0], s * s, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B·windows, heads, s², d)
        x = multi_head_attention(q, k, v, self.scale, self.fused_attn)
        x = self.proj(x.transpose(1, 2).reshape(x.shape[0], s * s, c))  # (B·windows, s², C)
        x = x.reshape(b, gh, gw, s, s, c).permute(0, 5, 1, 3, 2, 4)  # (B, C, gh, s, gw, s)
        return x.reshape(b, c, gh * s, gw * s)[:, :, :h, :w]


class LocalAgg(nn.Module):
    """The first "L" of LGL, on maps: CPE, then a local token mixer, then a conv FFN.

    x + dw3×3(x);  x + mixer(BN(x));  x + ConvMlp(BN(x)).
    `make_mixer()` builds the mixer, a `ConvMixer` (the release: pw -> dw k×k -> pw) or a
    `LocallyGroupedAttn`, after the position encoding and the first norm: layers draw their
    initial weights in the release's order, so a seed gives the same network.
    `pos_embed_folded` (set by `edgevit.fuse`): the identity of `x + dw3×3(x)` lives in the
    depthwise kernel's centre tap, so the position encoding is one convolution.
    """

    def __init__(
        self, *, dim: int, mlp_hidden: int, make_mixer: Callable[[], nn.Module],
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.mixer = make_mixer()
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim=dim, hidden=mlp_hidden)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.pos_embed_folded = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_embed(x) if self.pos_embed_folded else x + self.pos_embed(x)
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Sampler(nn.Module):
    """Picks one delegate token per r×r window of a (padded) N×C×H×W map.

    top_left: the release's AvgPool2d(kernel_size=1, stride=r), i.e. pixel (0, 0) of each window
    (the paper calls it "Center"); center: pixel (r//2, r//2); avg / max: AvgPool2d / MaxPool2d(r).
    """

    def __init__(self, *, kind: str, rate: int) -> None:
        super().__init__()
        self.kind = kind
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.rate
        if self.kind == "top_left":
            return x[:, :, ::r, ::r]
        if self.kind == "center":
            return x[:, :, r // 2 :: r, r // 2 :: r]
        if self.kind == "avg":
            return F.avg_pool2d(x, r, r)
        return F.max_pool2d(x, r, r)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, rate={self.rate}"


class BilinearProp(nn.Module):
    """LocalProp ablation "LP(Bilinear)": bilinear upsampling by r (no parameters)."""

    def __init__(self, *, dim: int, rate: int) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.rate, mode="bilinear", align_corners=False)


class DeconvProp(nn.ConvTranspose2d):
    """The release's LocalProp: depthwise ConvTranspose2d(kernel=r, stride=r).

    Kernel = stride, so the r×r output windows do not overlap: output pixel (i·r + a, j·r + b)
    of channel c is x[c, i, j] · weight[c, 0, a, b] + bias[c]. `edgevit.fuse` stores the
    weight as `broadcast_weight` (r, 1, r, C), a buffer outside the state_dict, and the
    forward then computes that broadcast multiply-add, written channels-last, instead of
    running the transposed-convolution kernel.
    """

    broadcast_weight: torch.Tensor | None

    def __init__(self, *, dim: int, rate: int) -> None:
        super().__init__(dim, dim, rate, stride=rate, groups=dim)
        self.register_buffer("broadcast_weight", None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.broadcast_weight is None:
            return super().forward(x)
        b, c, hs, ws = x.shape
        r = self.stride[0]
        x = x.permute(0, 2, 3, 1)[:, :, None, :, None, :]  # (B, h', 1, w', 1, C)
        x = torch.addcmul(self.bias, x, self.broadcast_weight)  # (B, h', r, w', r, C)
        return x.reshape(b, hs * r, ws * r, c).permute(0, 3, 1, 2)  # (B, C, h'·r, w'·r)


LOCAL_PROP_LAYERS: dict[str, type[nn.Module]] = {"deconv": DeconvProp, "bilinear": BilinearProp}


class GlobalSparseAttn(nn.Module):
    """Sparse global self-attention between delegate tokens, then local propagation (the "GL").

    With r > 1: pad to a multiple of r, sample one token per r×r window, q/k/v and attention on
    the h'·w' = ⌈h/r⌉·⌈w/r⌉ delegates, LocalProp back to the padded map, crop, LayerNorm, proj.
    With r = 1: plain multi-head self-attention over all tokens.

    `delegate_norm` (set by `edgevit.fuse` for the top-left sampler): the block's pre-attention
    LayerNorm, moved here to run on the h'·w' delegates instead of all h·w tokens (a per-token
    norm commutes with picking tokens); the map is then not padded either, since the top-left
    pixel of every window lies inside the unpadded map.
    """

    delegate_norm: nn.Module | None

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        rate: int,
        qkv_bias: bool = True,
        sampler: str = "top_left",
        local_prop: str = "deconv",
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.rate = rate
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.fused_attn = True
        if rate > 1:
            self.sampler = Sampler(kind=sampler, rate=rate)
            self.local_prop = LOCAL_PROP_LAYERS[local_prop](dim=dim, rate=rate)
            self.norm = nn.LayerNorm(dim, eps=LN_EPS_DEFAULT)
        self.delegate_norm = None

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        if self.rate > 1:
            x = tokens_to_map(x, h, w)
            if self.delegate_norm is None:
                x = pad_map(x, self.rate)
            x = self.sampler(x)  # (B, C, h', w')
            hs, ws = x.shape[-2:]
            # (B, h'·w', C), made contiguous so that qkv runs the same kernel for every h', w'
            x = map_to_tokens(x).contiguous()
        if self.delegate_norm is not None:
            x = self.delegate_norm(x)
        qkv = self.qkv(x).reshape(b, -1, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N', d)
        x = multi_head_attention(q, k, v, self.scale, self.fused_attn)
        x = x.transpose(1, 2).reshape(b, -1, c)  # (B, N', C)
        if self.rate > 1:
            x = self.local_prop(tokens_to_map(x, hs, ws))[:, :, :h, :w]  # (B, C, h, w)
            x = self.norm(map_to_tokens(x))
        return self.proj(x)


class SpatialReductionAttn(nn.Module):
    """PVT-v2 spatial-reduction attention (ablations "w/o LA" and "w/o LP").

    Queries from every token; keys and values from an r×r-stride convolution of the map
    (zero-padded to a multiple of r) followed by LayerNorm. r = 1: plain self-attention.
    """

    def __init__(self, *, dim: int, num_heads: int, rate: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.rate = rate
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.fused_attn = True
        if rate > 1:
            self.sr = nn.Conv2d(dim, dim, rate, stride=rate)
            self.norm = nn.LayerNorm(dim, eps=LN_EPS_DEFAULT)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        d = c // self.num_heads
        q = self.q(x).reshape(b, n, self.num_heads, d).transpose(1, 2)  # (B, heads, N, d)
        if self.rate > 1:
            x = self.norm(map_to_tokens(self.sr(pad_map(tokens_to_map(x, h, w), self.rate))))
        kv = self.kv(x).reshape(b, -1, 2, self.num_heads, d)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N', d)
        x = multi_head_attention(q, k, v, self.scale, self.fused_attn)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


def local_mixer(block: BlockConfig) -> nn.Module:
    """LocalAgg's token mixer for `block.local_agg` ("conv" or "lsa")."""
    if block.local_agg == "lsa":
        return LocallyGroupedAttn(dim=block.dim, kernel=block.kernel, num_heads=block.num_heads,
                                  qkv_bias=block.qkv_bias)
    return ConvMixer(dim=block.dim, kernel=block.kernel)


def global_attention(block: BlockConfig) -> nn.Module:
    """The global half's attention for `block.global_attn` ("sparse" or "sra")."""
    if block.global_attn == "sra":
        return SpatialReductionAttn(dim=block.dim, num_heads=block.num_heads, rate=block.rate,
                                    qkv_bias=block.qkv_bias)
    return GlobalSparseAttn(dim=block.dim, num_heads=block.num_heads, rate=block.rate,
                            qkv_bias=block.qkv_bias, sampler=block.sampler,
                            local_prop=block.local_prop)


class GlobalBlock(nn.Module):
    """The transformer half of an LGL block, on maps in and out (token form inside).

    x + dw3×3(x);  x + attn(LN(x));  x + Mlp(LN(x)).
    `pos_embed_folded` as in `LocalAgg`. A channels-last map's token form is a view.
    """

    def __init__(
        self, *, dim: int, mlp_hidden: int, make_attn: Callable[[], nn.Module],
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS_BLOCK)
        self.attn = make_attn()  # built here: the release's order of initial draws
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS_BLOCK)
        self.mlp = Mlp(dim=dim, hidden=mlp_hidden)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.pos_embed_folded = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_embed(x) if self.pos_embed_folded else x + self.pos_embed(x)
        b, c, h, w = x.shape
        x = map_to_tokens(x)  # (B, N, C)
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return tokens_to_map(x, h, w)


class LGLBlock(nn.Module):
    """Local-Global-Local bottleneck: LocalAgg (skipped when r = 1) then the global block."""

    def __init__(self, block: BlockConfig, *, drop_path: float = 0.0) -> None:
        super().__init__()
        self.local_agg: nn.Module = nn.Identity()
        if block.has_local_agg:
            self.local_agg = LocalAgg(dim=block.dim, mlp_hidden=block.mlp_hidden,
                                      make_mixer=functools.partial(local_mixer, block),
                                      drop_path=drop_path)
        self.global_block = GlobalBlock(dim=block.dim, mlp_hidden=block.mlp_hidden,
                                        make_attn=functools.partial(global_attention, block),
                                        drop_path=drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_block(self.local_agg(x))


def classifier(head: HeadConfig) -> nn.Module:
    """The linear classifier, or the identity when there are no classes."""
    return nn.Linear(head.dim, head.num_classes) if head.num_classes else nn.Identity()


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C): the mean over the map."""
    return x.mean(dim=(2, 3))


class Head(nn.Module):
    """EdgeViT's head as one block (final BatchNorm, global pooling, classifier), for timing it
    alone; `EdgeViT` holds the same layers as its `norm` and `head` (the release's keys)."""

    def __init__(self, head: HeadConfig) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(head.dim)
        self.head = classifier(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(global_pool(self.norm(x)))  # (B, C, h, w) -> (B, classes)


def trunc_normal_init(module: nn.Module) -> None:
    """The release's init: truncated-normal(0.02) linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


__all__ = [
    "GlobalBlock",
    "Head",
    "GlobalSparseAttn",
    "LGLBlock",
    "LayerNorm2d",
    "LocalAgg",
    "LocallyGroupedAttn",
    "SpatialReductionAttn",
    "Stem",
]
