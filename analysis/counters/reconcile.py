"""Why every FLOP counter prints a different number: each counter's rules applied to the exact
symbolic inventory (`symbolic.model_cost`), against what the counter printed.

The rules (established on tiny modules in `tests/test_counters.py`, fvcore 0.1.5.post20221221,
ptflops 0.7.5, torch 2.14.1, eval mode, attention on the explicit-matmul path for fvcore and
ptflops):

  torch (÷2)       core MACs only: convolutions (transposed too), linears, matmuls; no bias.
  fvcore           core MACs, + 5·numel per LayerNorm, + 2·numel per eval BatchNorm,
                   + 4·numel(out) per bilinear interpolation; skips softmax, GELU, pooling,
                   mean, adds and bias.
  ptflops-aten     core MACs, + numel(out) bias adds of every convolution (transposed too) and
                   of every linear whose input is contiguous (addmm; a linear fed a strided
                   view runs as mm + add and its bias is not counted: EdgeViT makes every
                   attention input contiguous, so all its biases count). Nothing elementwise.
  ptflops-pytorch  module hooks on the exact classes nn.Conv2d, nn.ConvTranspose2d, nn.Linear,
                   nn.LayerNorm, nn.BatchNorm2d, nn.GELU (subclasses are not hooked: EdgeViT's
                   LayerNorm2d stems and DeconvProp LocalProp count 0); convs and linears with
                   their bias adds, LayerNorm 1·numel, BatchNorm 2·numel, GELU 2·numel (hook +
                   patched F.gelu); pooling via F.* numel(in), F.interpolate numel(out); the `@`
                   operator, Tensor.softmax, mean and adds count 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgevit.config import EdgeViTConfig

from analysis.cost.ops import OpCost, model_cost

Contribution = Callable[[OpCost], tuple[int, str] | None]  # op -> (MACs counted, reason)


def _core(op: OpCost) -> int:
    return op.macs if op.kind in ("conv", "deconv", "linear", "matmul") else 0


def _torch(op: OpCost) -> tuple[int, str] | None:
    return None


def _fvcore(op: OpCost) -> tuple[int, str] | None:
    if op.kind == "layer_norm":
        return 5 * op.numel_out, "LayerNorm counted as 5·numel"
    if op.kind == "batch_norm":
        return 2 * op.numel_out, "eval BatchNorm counted as 2·numel"
    if op.kind == "interpolate":
        return 4 * op.numel_out, "bilinear upsampling counted as 4·numel(out)"
    return None


def _ptflops_aten(op: OpCost) -> tuple[int, str] | None:
    if op.kind != "bias":
        return None
    return op.numel_out, "bias adds of convolutions and addmm counted 1 each"


_PTFLOPS_UNHOOKED_SUFFIXES = ("downsample.norm",)  # LayerNorm2d: a subclass, not hooked


def _ptflops_pytorch(op: OpCost) -> tuple[int, str] | None:
    if op.kind == "deconv":
        return -op.macs, "DeconvProp subclasses nn.ConvTranspose2d: not hooked, 0"
    if op.kind == "matmul":
        return -op.macs, "the @ operator is not patched: 0"
    if op.kind == "bias":
        if op.module.endswith("local_prop"):
            return None
        return op.numel_out, "bias adds of hooked convs and linears counted 1 each"
    if op.kind == "layer_norm":
        if op.module.endswith(_PTFLOPS_UNHOOKED_SUFFIXES):
            return None
        return op.numel_out, "nn.LayerNorm counted as 1·numel"
    if op.kind == "batch_norm":
        return 2 * op.numel_out, "BatchNorm counted as 2·numel"
    if op.kind == "gelu":
        return 2 * op.numel_out, "GELU counted twice (module hook and patched F.gelu)"
    if op.kind in ("avg_pool", "max_pool"):
        return op.numel_in, "F.avg_pool2d / F.max_pool2d counted as numel(in)"
    if op.kind == "interpolate":
        return op.numel_out, "F.interpolate counted as numel(out)"
    return None


RULES: dict[str, Contribution] = {
    "torch": _torch,
    "fvcore": _fvcore,
    "ptflops-aten": _ptflops_aten,
    "ptflops-pytorch": _ptflops_pytorch,
}


def predict(counter: str, ops: Sequence[OpCost]) -> tuple[int, dict[str, int]]:
    """(MACs the counter should print, difference to the core MACs per reason)."""
    if counter not in RULES:
        raise ValueError(f"unknown counter {counter!r}; known: {sorted(RULES)}")
    total = sum(_core(op) for op in ops)
    reasons: dict[str, int] = {}
    for op in ops:
        contribution = RULES[counter](op)
        if contribution is None:
            continue
        macs, reason = contribution
        total += macs
        reasons[reason] = reasons.get(reason, 0) + macs
    return total, reasons


def reconcile(config: EdgeViTConfig, img_size: tuple[int, int] = (224, 224),
              counters: Sequence[str] | None = None) -> dict[str, dict]:
    """Per counter: printed MACs, predicted MACs, the core, and why they differ."""
    from edgevit.model import EdgeViT

    from analysis.counters import COUNTERS, count_model, image_input

    names = list(counters) if counters else list(COUNTERS)
    cost = model_cost(config, img_size)
    model = EdgeViT(config).eval()
    printed = count_model(model, image_input(model, img_size), counters=tuple(names))
    out = {}
    for name in names:
        predicted, reasons = predict(name, cost.ops)
        out[name] = {
            "macs": printed[name].macs,
            "predicted_macs": predicted,
            "core_macs": cost.macs,
            "attention_path": printed[name].attention,
            "difference_by_reason": reasons,
            "uncounted_ops": printed[name].uncounted_ops,
            "explanation": [f"{'+' if v >= 0 else ''}{v:,} MACs: {reason}"
                            for reason, v in reasons.items()],
        }
    return out
