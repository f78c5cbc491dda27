"""Why every FLOP counter prints a different number: each counter's rules (`rules.RULES`, their
`cost_op` half) applied to the exact inventory of the cost model (`analysis.cost.model_cost`),
against what the counter printed.

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

from collections.abc import Sequence

from analysis.cost import MAC_KINDS, OpCost, model_cost
from edgevit import EdgeViT, EdgeViTConfig

from .combined import COUNTERS, count_model, image_input
from .rules import RULES


def predict(counter: str, ops: Sequence[OpCost]) -> tuple[int, dict[str, int]]:
    """(MACs the counter should print, difference to the core MACs per reason)."""
    if counter not in RULES:
        raise ValueError(f"unknown counter {counter!r}; known: {sorted(RULES)}")
    total = sum(op.macs for op in ops if op.kind in MAC_KINDS)
    reasons: dict[str, int] = {}
    for op in ops:
        contribution = RULES[counter].cost_op(op)
        if contribution is None:
            continue
        macs, reason = contribution
        total += macs
        reasons[reason] = reasons.get(reason, 0) + macs
    return total, reasons


def reconcile(config: EdgeViTConfig, img_size: tuple[int, int] = (224, 224),
              counters: Sequence[str] | None = None) -> dict[str, dict]:
    """Per counter: printed MACs, predicted MACs, the core, and why they differ."""
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
