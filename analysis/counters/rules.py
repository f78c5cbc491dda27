"""Each counter's rules, in one table: `RULES[counter]` states what the counter reports

  .calls[api]  per torch-level call (`OpCall.api`); `rule_macs` / `predicted_macs` compute it from
               an inventory of a real forward (`record_ops`);
  .cost_op     the same rules on the cost model's ops (`analysis.cost.OpCost`): what the counter
               adds to or drops from the core MACs, with the reason (`reconcile.predict`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from torch import nn

from analysis.cost import OpCost

from .formulas import conv_macs, linear_macs, matmul_macs, numel, sdpa_macs
from .records import OpCall, _class_name, is_data_movement


class Rule(NamedTuple):
    formula: str
    macs: Callable[[OpCall], int]


# a cost-model op -> (MACs the counter adds to the core MACs, the reason), or None: no change
Contribution = Callable[[OpCost], tuple[int, str] | None]


class CounterRules(NamedTuple):
    calls: dict[str, Rule]  # per torch-level call
    cost_op: Contribution  # per cost-model op


def _zero(call: OpCall) -> int:
    return 0


def _in(call: OpCall) -> int:
    return numel(call.shapes[0])


def _out(call: OpCall) -> int:
    return numel(call.out_shape)


def _conv(call: OpCall) -> int:
    return conv_macs(call.shapes[0], call.shapes[1], call.out_shape,
                     transposed=call.api == "F.conv_transpose2d")


def _conv_with_bias(call: OpCall) -> int:
    return _conv(call) + (_out(call) if call.attrs["bias"] else 0)


def _linear(call: OpCall) -> int:
    return linear_macs(call.shapes[0], call.shapes[1][0])


def _matmul(call: OpCall) -> int:
    return matmul_macs(call.shapes[0], call.shapes[1])


def _matmul_prod_a(call: OpCall) -> int:
    return numel(call.shapes[0]) * call.shapes[1][-1]


def _sdpa(call: OpCall) -> int:
    return sdpa_macs(call.shapes[0], call.shapes[1], call.shapes[2])


def _in_module(*classes: type) -> Callable[[OpCall], bool]:
    names = {_class_name(cls) for cls in classes}
    return lambda call: call.module_class in names


def _fvcore_interpolate(call: OpCall) -> int:
    scale = {"bilinear": 4, "nearest": 1}.get(call.attrs["mode"], 0)
    return scale * _out(call)


def _fvcore_batch_norm(call: OpCall) -> int:
    affine = call.attrs["affine"]
    per_element = (5 if affine else 4) if call.attrs["training"] else (2 if affine else 1)
    return per_element * _in(call)


def _aten_linear(call: OpCall) -> int:
    x_shape = call.shapes[0]
    fused_bias = call.attrs["bias"] and (len(x_shape) == 2 or call.attrs["contiguous"])
    return _linear(call) + (_out(call) if fused_bias else 0)


def _aten_matmul(call: OpCall) -> int:
    if min(len(call.shapes[0]), len(call.shapes[1])) < 2:
        raise ValueError("ptflops-aten: 1-D matmul operands (dot / mv) are not characterised")
    return _matmul(call)


def _aten_sdpa(call: OpCall) -> int:
    return _sdpa(call) if call.attrs["kernel"] == "math" else 0


_is_conv = _in_module(nn.Conv2d)
_is_deconv = _in_module(nn.ConvTranspose2d)
_is_linear = _in_module(nn.Linear)
_is_gelu = _in_module(nn.GELU)
_is_layer_norm = _in_module(nn.LayerNorm)
_is_batch_norm = _in_module(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _twice_in(*classes: type, per: Callable[[OpCall], int]) -> Callable[[OpCall], int]:
    """ptflops-pytorch: the patched functional counts `per`; inside a hooked module, again."""
    inside = _in_module(*classes)
    return lambda call: per(call) * (2 if inside(call) else 1)


_DATA_MOVEMENT_RULE = Rule("0 (data movement)", _zero)
_UNSUPPORTED = "0 (unsupported op, listed in uncounted_ops)"

# Elementwise and pooling calls that the aten-level counters (ptflops-aten, torch) give 0.
_ELEMENTWISE_APIS = (
    "Tensor.softmax", "F.softmax", "F.gelu", "F.layer_norm", "F.batch_norm",
    "F.avg_pool2d", "F.max_pool2d", "F.adaptive_avg_pool2d", "Tensor.mean",
    "F.interpolate", "Tensor.__add__", "Tensor.add", "torch.add", "Tensor.__mul__",
    "Tensor.mul", "torch.mul",
)

_CALL_RULES: dict[str, dict[str, Rule]] = {
    "fvcore": {
        "F.conv2d": Rule("B·prod(w)·H_out·W_out; bias ignored", _conv),
        "F.conv_transpose2d": Rule("B·prod(w)·H_in·W_in (dw k=r=s: c·h·w); bias ignored", _conv),
        "F.linear": Rule("prod(x.shape)·out_features (aten::linear); bias ignored", _linear),
        "Tensor.__matmul__": Rule("prod(a.shape)·b.shape[-1] (aten::matmul; misses batch "
                                  "dims only b has)", _matmul_prod_a),
        "Tensor.matmul": Rule("as Tensor.__matmul__", _matmul_prod_a),
        "torch.matmul": Rule("as Tensor.__matmul__", _matmul_prod_a),
        "F.scaled_dot_product_attention": Rule(_UNSUPPORTED, _zero),
        "Tensor.softmax": Rule(_UNSUPPORTED, _zero),
        "F.softmax": Rule(_UNSUPPORTED, _zero),
        "F.gelu": Rule(_UNSUPPORTED, _zero),
        "F.layer_norm": Rule("5·numel(x) with weight, else 4·numel(x)",
                             lambda c: (5 if c.attrs["affine"] else 4) * _in(c)),
        "F.batch_norm": Rule("eval: 2·numel(x) affine, else 1·numel(x); training: 5 or 4·numel(x)",
                             _fvcore_batch_norm),
        "F.avg_pool2d": Rule(_UNSUPPORTED, _zero),
        "F.max_pool2d": Rule(_UNSUPPORTED, _zero),
        "F.adaptive_avg_pool2d": Rule("1·numel(x) (input)", _in),
        "Tensor.mean": Rule(_UNSUPPORTED, _zero),
        "F.interpolate": Rule("bilinear: 4·numel(out); nearest: 1·numel(out); other modes 0",
                              _fvcore_interpolate),
        "Tensor.__add__": Rule(_UNSUPPORTED, _zero),
        "Tensor.add": Rule(_UNSUPPORTED, _zero),
        "torch.add": Rule(_UNSUPPORTED, _zero),
        "Tensor.__mul__": Rule(_UNSUPPORTED, _zero),
        "Tensor.mul": Rule(_UNSUPPORTED, _zero),
        "torch.mul": Rule(_UNSUPPORTED, _zero),
    },
    "ptflops-pytorch": {
        "F.conv2d": Rule("inside an exact nn.Conv2d: B·prod(w)·H_out·W_out + (numel(out) if "
                         "bias); elsewhere 0",
                         lambda c: _conv_with_bias(c) if _is_conv(c) else 0),
        "F.conv_transpose2d": Rule("inside an exact nn.ConvTranspose2d: B·prod(w)·H_in·W_in + "
                                   "(numel(out) if bias); a subclass or F call: 0",
                                   lambda c: _conv_with_bias(c) if _is_deconv(c) else 0),
        "F.linear": Rule("inside an exact nn.Linear: prod(x.shape)·out + numel(out) if bias; "
                         "F.linear elsewhere: 0 (not patched)",
                         lambda c: _linear(c) + (_out(c) if c.attrs["bias"] else 0)
                         if _is_linear(c) else 0),
        "Tensor.__matmul__": Rule("0: the @ operator is not intercepted", _zero),
        "Tensor.matmul": Rule("prod(a.shape)·b.shape[-1] (patched method)", _matmul_prod_a),
        "torch.matmul": Rule("prod(a.shape)·b.shape[-1] (patched)", _matmul_prod_a),
        "F.scaled_dot_product_attention": Rule("0 (not patched)", _zero),
        "Tensor.softmax": Rule("0 (not patched)", _zero),
        "F.softmax": Rule("numel(x) (patched)", _in),
        "F.gelu": Rule("numel(x) (patched F.gelu) + numel(out) more inside an exact nn.GELU",
                       lambda c: _in(c) + (_out(c) if _is_gelu(c) else 0)),
        "F.layer_norm": Rule("inside an exact nn.LayerNorm: numel(x) (the hook looks for "
                             "`affine`, LayerNorm has `elementwise_affine`); elsewhere 0",
                             lambda c: _in(c) if _is_layer_norm(c) else 0),
        "F.batch_norm": Rule("inside an exact nn.BatchNorm*d: 2·numel(x) if affine else "
                             "numel(x), train or eval; elsewhere 0",
                             lambda c: _in(c) * (2 if c.attrs["affine"] else 1)
                             if _is_batch_norm(c) else 0),
        "F.avg_pool2d": Rule("numel(x) (patched); twice inside an exact nn.AvgPool2d",
                             _twice_in(nn.AvgPool2d, per=_in)),
        "F.max_pool2d": Rule("numel(x) (patched); twice inside an exact nn.MaxPool2d",
                             _twice_in(nn.MaxPool2d, per=_in)),
        "F.adaptive_avg_pool2d": Rule("numel(x) (patched); twice inside an exact "
                                      "nn.AdaptiveAvgPool2d",
                                      _twice_in(nn.AdaptiveAvgPool2d, per=_in)),
        "Tensor.mean": Rule("0 (not patched)", _zero),
        "F.interpolate": Rule("numel(out) for a size or an integer scale (patched); twice "
                              "inside an exact nn.Upsample", _twice_in(nn.Upsample, per=_out)),
        "Tensor.__add__": Rule("0: the + operator is not intercepted", _zero),
        "Tensor.add": Rule("numel(broadcast out) (patched)", _out),
        "torch.add": Rule("numel(broadcast out) (patched)", _out),
        "Tensor.__mul__": Rule("0: the * operator is not intercepted", _zero),
        "Tensor.mul": Rule("numel(broadcast out) (patched)", _out),
        "torch.mul": Rule("numel(broadcast out) (patched)", _out),
    },
    "ptflops-aten": {
        "F.conv2d": Rule("B·prod(w)·H_out·W_out + (numel(out) if bias)", _conv_with_bias),
        "F.conv_transpose2d": Rule("B·prod(w)·H_in·W_in + (numel(out) if bias)",
                                   _conv_with_bias),
        "F.linear": Rule("prod(x.shape)·out + numel(out) if bias and x is 2-D or contiguous "
                         "(aten.addmm); a non-contiguous N-D x runs mm + add: bias 0",
                         _aten_linear),
        "Tensor.__matmul__": Rule("exact matmul MACs (lowers to aten.mm / aten.bmm); "
                                  "1-D operands not characterised", _aten_matmul),
        "Tensor.matmul": Rule("as Tensor.__matmul__", _aten_matmul),
        "torch.matmul": Rule("as Tensor.__matmul__", _aten_matmul),
        "F.scaled_dot_product_attention": Rule("0 when the CPU flash kernel runs (not mapped); "
                                               "the math fallback (e.g. d_v ≠ d) runs bmm's: "
                                               "B·h·Nq·Nk·(d + d_v)", _aten_sdpa),
        **{api: Rule("0 (no mapping)", _zero) for api in _ELEMENTWISE_APIS},
    },
    "torch": {
        "F.conv2d": Rule("(2·)B·prod(w)·H_out·W_out; bias ignored", _conv),
        "F.conv_transpose2d": Rule("(2·)B·prod(w)·H_in·W_in; bias ignored", _conv),
        "F.linear": Rule("(2·)prod(x.shape)·out (aten.addmm or aten.mm); bias ignored",
                         _linear),
        "Tensor.__matmul__": Rule("(2·)exact matmul MACs (aten.mm / aten.bmm after "
                                  "decomposition, broadcasting included)", _matmul),
        "Tensor.matmul": Rule("as Tensor.__matmul__", _matmul),
        "torch.matmul": Rule("as Tensor.__matmul__", _matmul),
        "F.scaled_dot_product_attention": Rule("(2·)B·h·Nq·Nk·(d + d_v): the registered formula "
                                               "for the CPU flash kernel (0 without it), bmm's "
                                               "of the math fallback", _sdpa),
        **{api: Rule("0 (no formula)", _zero) for api in _ELEMENTWISE_APIS},
    },
}


def _torch_op(op: OpCost) -> tuple[int, str] | None:
    return None


def _fvcore_op(op: OpCost) -> tuple[int, str] | None:
    if op.kind == "layer_norm":
        return 5 * op.numel_out, "LayerNorm counted as 5·numel"
    if op.kind == "batch_norm":
        return 2 * op.numel_out, "eval BatchNorm counted as 2·numel"
    if op.kind == "interpolate":
        return 4 * op.numel_out, "bilinear upsampling counted as 4·numel(out)"
    return None


def _ptflops_aten_op(op: OpCost) -> tuple[int, str] | None:
    if op.kind != "bias":
        return None
    return op.numel_out, "bias adds of convolutions and addmm counted 1 each"


_PTFLOPS_UNHOOKED_SUFFIXES = ("downsample.norm",)  # LayerNorm2d: a subclass, not hooked


def _ptflops_pytorch_op(op: OpCost) -> tuple[int, str] | None:
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


RULES: dict[str, CounterRules] = {
    name: CounterRules(_CALL_RULES[name], cost_op)
    for name, cost_op in (("torch", _torch_op), ("fvcore", _fvcore_op),
                          ("ptflops-aten", _ptflops_aten_op),
                          ("ptflops-pytorch", _ptflops_pytorch_op))
}


def rule_macs(counter: str, call: OpCall) -> int:
    """What `counter` reports (in MACs) for one call; KeyError for a call without a rule."""
    rules = RULES[counter].calls
    if call.api in rules:
        return rules[call.api].macs(call)
    if is_data_movement(call.api):
        return _DATA_MOVEMENT_RULE.macs(call)
    raise KeyError(f"{counter}: no rule for {call.api} (in {call.module or 'the root'})")


def predicted_macs(counter: str, calls: Sequence[OpCall]) -> int:
    """Sum of `rule_macs` over an inventory from `record_ops`."""
    return sum(rule_macs(counter, call) for call in calls)
