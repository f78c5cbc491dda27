"""Inference fusion: the same EdgeViT modules rewritten in place into a faster, equal network.

`fuse_model(model)` (also `EdgeViT.fuse()`) applies rewrites that are exact in real arithmetic,
so outputs change only by float32 rounding (≤ 1e-4 relative; tests/test_inference.py):

  * BatchNorm folded into the 1×1 convolution after it: LocalAgg's norm1 into the ConvMixer's
    first pointwise conv, norm2 into the ConvMlp's fc1; those BatchNorms become `nn.Identity`.
    (With the LSA mixer norm1 stays: its windows zero-pad *after* the norm.) The final
    BatchNorm stays, since `forward_features` returns its output (it costs ~0.1 %).
    `fuse_model(model, fold_batchnorm=False)` leaves LocalAgg's BatchNorms unfolded, so their
    statistics can be recalibrated on the fast form; `fold_batchnorms` folds them afterwards.
  * The identity of every `x + dw3×3(x)` position encoding added to the kernel's centre tap.
  * GlobalSparseAttn with the release's top-left sampler: the block's norm1 LayerNorm moved
    onto the h'·w' delegates (`delegate_norm`: r² times fewer tokens), no padding before
    sampling (top-left picks never land in it).
  * LocalProp's depthwise ConvTranspose2d(k = r, stride = r) as a broadcast multiply-add
    (`DeconvProp.broadcast_weight`), 3-10× faster than the transposed-convolution kernel.
  * Every 1×1 convolution and linear layer of the blocks as `PointwiseLinear`: one oneDNN
    linear kernel with the FFN's GELU applied in the same pass.
  * Channels-last maps: the input is converted once, the convolutions keep the layout, and
    the map <-> token conversions of the global blocks, stems and pointwise layers are views.
  * SDPA attention (`set_fused_attn(True)`); parameters frozen (`requires_grad_(False)`).

The result is for inference only: `train()` raises. Its `state_dict()` differs from the
faithful model's (fused BatchNorm keys gone, folded weights, 1×1 convolution weights stored as
(C_out, C_in), the moved LayerNorm under `attn.delegate_norm`, and a `fused_for_inference`
marker key, so that loading it into an unfused EdgeViT fails loudly), and a fused model
refuses `load_state_dict`. To undo a fusion, load the original state_dict into a fresh
`EdgeViT(config)`.

Export: a fused model exports to ONNX like any other (any ONNX exporter; while
tracing or exporting, `PointwiseLinear` emits plain Conv / Gemm and GELU nodes), and
`compile_fused` runs it through torch.compile (inductor with freezing).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    ConvMixer,
    ConvMlp,
    DeconvProp,
    GlobalBlock,
    GlobalSparseAttn,
    LocalAgg,
    LocallyGroupedAttn,
    Mlp,
    Sampler,
    SpatialReductionAttn,
)

FUSED_MARKER = "fused_for_inference"  # name of the marker buffer (and state_dict key)


@functools.cache
def onednn_linear_available() -> bool:
    """Whether oneDNN's fused linear kernel (`torch.ops.mkldnn._linear_pointwise`, the one
    inductor uses on CPUs) exists in this PyTorch and agrees with F.linear + F.gelu; checked
    once on a tiny input, so a PyTorch where the private op changed falls back cleanly."""
    if not (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(*shape, generator=generator)
                       for shape in ((2, 5, 8), (3, 8), (3,)))
    try:
        with torch.no_grad():
            y = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
    except (RuntimeError, TypeError):
        return False
    expected = F.gelu(F.linear(x, weight, bias))
    return y.shape == expected.shape and torch.allclose(y, expected, rtol=1e-5, atol=1e-6)


def _capturing() -> bool:
    """Whether the forward is being traced, scripted, exported or compiled (not run eagerly)."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()
            or torch.compiler.is_exporting())


class PointwiseLinear(nn.Module):
    """A linear layer on tokens (B, ..., C) or a 1×1 convolution on a (B, C, H, W) map, with
    an optional exact GELU after it, as one call of oneDNN's linear kernel.

    PyTorch's F.linear runs the BLAS sgemm, which on some CPUs (MKL on AMD) is half as fast
    as oneDNN's; oneDNN also applies the GELU in the same pass. A channels-last map is a
    (B, H, W, C) token tensor in memory, so the 1×1 convolution is that linear layer on a view.
    When oneDNN is unavailable (`onednn` False), for other dtypes or devices, and while the
    model is traced, exported or compiled, the same arithmetic runs as F.linear / F.conv2d and
    F.gelu, which ONNX exporters and inductor understand. `weight` is (C_out, C_in), `bias`
    (C_out,).
    """

    def __init__(self, layer: nn.Linear | nn.Conv2d, *, gelu: bool = False) -> None:
        super().__init__()
        if isinstance(layer, nn.Conv2d):
            if layer.kernel_size != (1, 1) or layer.stride != (1, 1) or layer.groups != 1:
                raise ValueError(f"expected a 1×1 convolution, got {layer}")
            self.on_map = True
        elif isinstance(layer, nn.Linear):
            self.on_map = False
        else:
            raise ValueError(f"expected nn.Linear or a 1×1 nn.Conv2d, got {type(layer).__name__}")
        weight = layer.weight.detach().flatten(1)  # (C_out, C_in)
        bias = layer.bias.detach() if layer.bias is not None else weight.new_zeros(len(weight))
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        self.bias = nn.Parameter(bias.contiguous(), requires_grad=False)
        self.gelu = gelu
        self.onednn = onednn_linear_available()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.onednn and x.device.type == "cpu" and x.dtype == torch.float32
                and self.weight.dtype == torch.float32 and not _capturing()):
            tokens = x.permute(0, 2, 3, 1) if self.on_map else x  # (B, H, W, C) or (B, ..., C)
            y = torch.ops.mkldnn._linear_pointwise(
                tokens.contiguous(), self.weight, self.bias,
                "gelu" if self.gelu else "none", [], "none" if self.gelu else "",
            )
            return y.permute(0, 3, 1, 2) if self.on_map else y  # maps stay channels-last
        if self.on_map:
            y = F.conv2d(x, self.weight[:, :, None, None], self.bias)
        else:
            y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if self.gelu else y

    def extra_repr(self) -> str:
        out_chans, in_chans = self.weight.shape
        kind = "1×1 conv" if self.on_map else "linear"
        return f"{in_chans} -> {out_chans}, {kind}, gelu={self.gelu}, onednn={self.onednn}"


@torch.no_grad()
def fold_batchnorm_into_pointwise(norm: nn.BatchNorm2d, layer: nn.Conv2d | PointwiseLinear
                                  ) -> None:
    """Rewrite the pointwise `layer` (a 1×1 convolution, or a `PointwiseLinear` on maps) in
    place so that layer'(x) = layer(norm(x)) in eval mode.

    norm(x) = a·x + s per channel (a = γ/√(var + ε), s = β − mean·a), so
    W' = W·diag(a) and b' = b + W·s. Computed in float64, stored in the layer's dtype.
    """
    if isinstance(layer, PointwiseLinear):
        pointwise = layer.on_map and layer.weight.shape[1] == norm.num_features
    else:
        pointwise = (layer.kernel_size == (1, 1) and layer.groups == 1
                     and layer.in_channels == norm.num_features)
    if not pointwise:
        raise ValueError(f"expected a 1×1 convolution over {norm.num_features} channels, "
                         f"got {layer}")
    if norm.running_mean is None or norm.running_var is None or not norm.affine:
        raise ValueError(f"{norm} has no running statistics or affine parameters to fold")
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    shift = norm.bias.double() - norm.running_mean.double() * scale
    weight = layer.weight.double()  # (C_out, C_in, 1, 1) or (C_out, C_in)
    flat = weight.flatten(1)  # (C_out, C_in)
    bias = layer.bias.double() if layer.bias is not None else weight.new_zeros(len(flat))
    bias = bias + flat @ shift
    layer.weight.copy_((flat * scale[None, :]).reshape(weight.shape))
    if layer.bias is None:
        layer.bias = nn.Parameter(bias.to(layer.weight.dtype))
    else:
        layer.bias.copy_(bias)


@torch.no_grad()
def fold_identity_into_depthwise(conv: nn.Conv2d) -> None:
    """Rewrite the stride-1 'same' depthwise `conv` in place so that conv'(x) = x + conv(x)."""
    kh, kw = conv.kernel_size
    if (conv.groups != conv.in_channels or conv.out_channels != conv.in_channels
            or kh % 2 == 0 or kw % 2 == 0 or conv.padding != (kh // 2, kw // 2)
            or conv.stride != (1, 1) or conv.dilation != (1, 1)):
        raise ValueError(f"expected a stride-1 'same' depthwise convolution, got {conv}")
    conv.weight[:, 0, kh // 2, kw // 2] += 1


def use_broadcast_local_prop(prop: DeconvProp) -> None:
    """Give the depthwise k = stride transposed convolution its broadcast form (see DeconvProp)."""
    c, r = prop.out_channels, prop.stride[0]
    if prop.bias is None:  # addcmul needs a bias; zeros change nothing
        prop.bias = nn.Parameter(prop.weight.new_zeros(c), requires_grad=False)
    weight = prop.weight.detach().reshape(c, r, r).permute(1, 2, 0)[:, None]  # (r, 1, r, C)
    prop.broadcast_weight = weight.contiguous()  # a non-persistent buffer: not in the state_dict


def _fuse_local_agg(block: LocalAgg, fold_batchnorm: bool) -> None:
    fold_identity_into_depthwise(block.pos_embed)
    block.pos_embed_folded = True
    if fold_batchnorm:
        _fold_local_agg_norms(block)


def _fold_local_agg_norms(block: LocalAgg) -> None:
    """Fold the block's BatchNorms into the pointwise layers after them (where still there)."""
    # LSA keeps its norm1 (see the module doc)
    if isinstance(block.mixer, ConvMixer) and isinstance(block.norm1, nn.BatchNorm2d):
        fold_batchnorm_into_pointwise(block.norm1, block.mixer.conv1)
        block.norm1 = nn.Identity()
    if isinstance(block.norm2, nn.BatchNorm2d):
        fold_batchnorm_into_pointwise(block.norm2, block.mlp.fc1)
        block.norm2 = nn.Identity()


def _fuse_global_block(block: GlobalBlock) -> None:
    fold_identity_into_depthwise(block.pos_embed)
    block.pos_embed_folded = True
    attn = block.attn
    if isinstance(attn, GlobalSparseAttn) and attn.rate > 1:
        sampler = attn.sampler
        if isinstance(sampler, Sampler) and sampler.kind == "top_left":
            attn.delegate_norm = block.norm1
            block.norm1 = nn.Identity()
        if isinstance(attn.local_prop, DeconvProp):
            use_broadcast_local_prop(attn.local_prop)


_POINTWISE_LAYERS = {
    ConvMixer: ("conv1", "conv2"),
    LocallyGroupedAttn: ("qkv", "proj"),
    GlobalSparseAttn: ("qkv", "proj"),
    SpatialReductionAttn: ("q", "kv", "proj"),
}


def _use_pointwise_linear(module: nn.Module) -> None:
    """Swap the 1×1 convolutions and linear layers of `module` for `PointwiseLinear`; an FFN's
    exact GELU moves into its fc1."""
    if isinstance(module, (Mlp, ConvMlp)):
        act = module.act
        gelu = type(act) is nn.GELU and act.approximate == "none"
        module.fc1 = PointwiseLinear(module.fc1, gelu=gelu)
        module.fc2 = PointwiseLinear(module.fc2)
        if gelu:
            module.act = nn.Identity()
        return
    for name in _POINTWISE_LAYERS.get(type(module), ()):
        setattr(module, name, PointwiseLinear(getattr(module, name)))


def fuse_model(model: nn.Module, *, fold_batchnorm: bool = True) -> nn.Module:
    """Fuse `model` (an `EdgeViT`) in place for inference (see the module docstring) and return it.

    `fold_batchnorm=False` leaves LocalAgg's BatchNorms in place (the rest is fused), so that
    their statistics can still be recalibrated on the fast form (BatchNorm modules set to train
    mode alone); `fold_batchnorms` then folds them. Raises RuntimeError in training mode.
    Fusing a fused model does nothing.
    """
    if model.training:
        raise RuntimeError("fuse() is for inference: call model.eval() first "
                           "(a fused model cannot be trained)")
    if is_fused(model):
        return model
    for module in list(model.modules()):
        if isinstance(module, LocalAgg):
            _fuse_local_agg(module, fold_batchnorm)
        elif isinstance(module, GlobalBlock):
            _fuse_global_block(module)
    for module in list(model.modules()):
        _use_pointwise_linear(module)
    model.set_fused_attn(True)
    model.requires_grad_(False)
    model.to(memory_format=torch.channels_last)
    model.channels_last = True
    model.register_buffer(FUSED_MARKER, torch.ones((), dtype=torch.bool))
    return model


def fold_batchnorms(model: nn.Module) -> nn.Module:
    """Fold the LocalAgg BatchNorms that `fuse_model(model, fold_batchnorm=False)` left, with
    their current running statistics, into the pointwise layers after them; returns `model`.
    Raises RuntimeError for a model that is not fused or a BatchNorm in training mode."""
    if not is_fused(model):
        raise RuntimeError("fold_batchnorms() folds into a fused model: call "
                           "fuse_model(model, fold_batchnorm=False) first")
    for module in list(model.modules()):
        if isinstance(module, LocalAgg):
            if module.norm1.training or module.norm2.training:
                raise RuntimeError("fold_batchnorms() folds running statistics: put the "
                                   "BatchNorms in eval mode first")
            _fold_local_agg_norms(module)
    return model


def compile_fused(model: nn.Module, **compile_kwargs: Any) -> Callable[..., torch.Tensor]:
    """`torch.compile` (inductor) of `model` fused in place, for CPU inference.

    With inductor's freezing the weights become constants, so inductor prepacks them for
    oneDNN and fuses the GELUs into the linear kernels itself (`PointwiseLinear` hands it
    plain F.linear / F.conv2d while compiling). Call the result under `torch.inference_mode()`
    or `torch.no_grad()`. Each new input size compiles again (tens of seconds).
    """
    fuse_model(model)
    return torch.compile(model, options={"freezing": True}, **compile_kwargs)


def is_fused(model: nn.Module) -> bool:
    """Whether `fuse_model` has rewritten `model`."""
    return FUSED_MARKER in model._buffers


__all__ = [
    "FUSED_MARKER",

    "PointwiseLinear",
    "compile_fused",
    "fold_batchnorm_into_pointwise",
    "fold_batchnorms",
    "fold_identity_into_depthwise",
    "fuse_model",
    "is_fused",
    "onednn_linear_available",
    "use_broadcast_local_prop",
]
