"""Adapters for four MAC counters, all reporting multiply-adds, and each counter's rules as data.

Counters (names are the keys of `count_all`):

  fvcore           fvcore.nn.FlopCountAnalysis (jit trace; its "flop" is one multiply-add)
  ptflops-pytorch  ptflops.get_model_complexity_info(backend="pytorch") (module hooks plus
                   monkey-patched torch.nn.functional / tensor methods)
  ptflops-aten     ptflops.get_model_complexity_info(backend="aten") (a TorchDispatchMode over
                   aten.mm / addmm / bmm / convolution)
  torch            torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add; halved
                   here), plus a formula this module registers for the CPU SDPA kernel

Every adapter returns a `CounterResult` in MACs (one multiply-add = 1; `flops` = 2 × `macs`) of
the whole input batch, with the counter's own per-module and per-op breakdowns and the ops the
counter saw but gave no count to (`uncounted_ops`; data movement such as views, permutes,
slicing and padding, `DATA_MOVEMENT_OPS`, is left out of that list).

`RULES` states, per counter and per torch-level call (`OpCall.api`), what the counter reports;
`rule_macs(counter, call)` computes it. `record_ops(model, x)` lists the calls a forward makes
(a counter-neutral inventory), so `predicted_macs(counter, record_ops(model, x))` reproduces
each adapter's total; the rules were read from the libraries' source (fvcore 0.1.5.post20221221,
ptflops 0.7.5, torch 2.14.1) and checked on tiny modules in tests/test_counters.py.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import threading
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import flop_counter as torch_flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

Inputs = torch.Tensor | tuple[torch.Tensor]  # one tensor, bare or in a 1-tuple

COUNTERS = ("fvcore", "ptflops-pytorch", "ptflops-aten", "torch")

# Which attention path each counter counts in `count_all`. fvcore (jit trace) and both ptflops
# backends give SDPA no count, so they see the release's explicit q·kᵀ -> softmax -> ·v, which
# is also what the paper's fvcore "GFLOPs" measured; FlopCounterMode counts the fused kernel
# through the formula registered below (equal to the matmul path, see the tests).
DEFAULT_ATTENTION = {
    "fvcore": "matmul",
    "ptflops-pytorch": "matmul",
    "ptflops-aten": "matmul",
    "torch": "sdpa",
}
ATTENTION_PATHS = ("matmul", "sdpa")

# Ops without arithmetic (views, layout copies, slicing, padding, allocation, metadata), matched
# on the base name with namespace and overload stripped ("aten::view", "aten.view",
# "Tensor.view" -> "view"). They are never listed as uncounted.
DATA_MOVEMENT_OPS = frozenset({
    "Int", "ScalarImplicit", "__get__", "__getitem__", "_reshape_alias", "_to_copy",
    "_unsafe_view", "alias", "as_strided", "cat", "chunk", "clone", "constant_pad_nd",
    "contiguous", "copy_", "detach", "dim", "empty", "empty_like", "empty_strided", "expand",
    "expand_as", "flatten", "full", "full_like", "is_contiguous", "is_floating_point",
    "lift_fresh", "narrow", "new_empty", "new_empty_strided", "new_zeros", "numel", "ones",
    "ones_like", "pad", "permute", "repeat", "reshape", "scalar_tensor", "select", "size", "slice",
    "split", "split_with_sizes", "squeeze", "stack", "stride", "t", "to", "transpose", "type_as",
    "unbind", "unflatten", "unsqueeze", "view", "zeros", "zeros_like",
})
# Tensor methods that also have an operator form (`a @ b`, `a + b`, `a * b`). A counter that
# monkey-patches `torch.Tensor.matmul` (ptflops) sees the method call but not the operator, so
# the inventory tells them apart: "Tensor.matmul" (method) vs "Tensor.__matmul__" (operator).
_OPERATOR_FORMS = {"matmul": "__matmul__", "add": "__add__", "mul": "__mul__"}


def base_op_name(name: str) -> str:
    """"aten::layer_norm", "aten.native_layer_norm.default", "Tensor.__getitem__" -> bare name."""
    name = name.split("::")[-1]
    for prefix in ("aten.", "Tensor.", "F.", "torch."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.split(".")[0]


def is_data_movement(name: str) -> bool:
    return base_op_name(name) in DATA_MOVEMENT_OPS


# ---------------------------------------------------------------------------------------------
# Pure formulas (shapes in, multiply-adds out), shared by the rules, the tests and the symbolic
# model.


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def conv_macs(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    out_shape: Sequence[int],
    transposed: bool = False,
) -> int:
    """Multiply-adds of a (grouped, depthwise, transposed) convolution, bias excluded.

    B · prod(weight) · positions, where the weight is (C_out, C_in/g, k…) for a convolution and
    (C_in, C_out/g, k…) for a transposed one, and the positions are those of the output (of the
    input for a transposed convolution, whose every input pixel scatters one kernel). A
    depthwise ConvTranspose2d(k=r, stride=r) on h'×w' gives c·r²·h'·w' = c·h·w.
    """
    positions = (x_shape if transposed else out_shape)[2:]
    return x_shape[0] * math.prod(w_shape) * math.prod(positions)


def linear_macs(x_shape: Sequence[int], out_features: int) -> int:
    """Rows × in × out for y = x·Wᵀ on x of shape (…, in); bias excluded."""
    return math.prod(x_shape) * out_features


def matmul_macs(a_shape: Sequence[int], b_shape: Sequence[int]) -> int:
    """Multiply-adds of torch.matmul(a, b) with its broadcasting (1-D operands included)."""
    a = tuple(a_shape) if len(a_shape) > 1 else (1, *a_shape)
    b = tuple(b_shape) if len(b_shape) > 1 else (*b_shape, 1)
    if a[-1] != b[-2]:
        raise ValueError(f"matmul: inner dimensions differ: {tuple(a_shape)} @ {tuple(b_shape)}")
    batch = torch.broadcast_shapes(a[:-2], b[:-2])
    return math.prod(batch) * a[-2] * a[-1] * b[-1]


def sdpa_macs(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """softmax(q·kᵀ)·v: (…, Nq, d) · (…, d, Nk) then (…, Nq, Nk) · (…, Nk, d_v) multiply-adds."""
    *batch, n_q, d = q_shape
    n_k, d_v = k_shape[-2], v_shape[-1]
    return math.prod(batch) * n_q * n_k * (d + d_v)


# ---------------------------------------------------------------------------------------------
# FlopCounterMode: a formula for the CPU SDPA kernel.


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # q·kᵀ and attn·v as two bmm's, exactly what the explicit matmul path is counted as.
    return torch_flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flop(
    grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs
) -> int:
    return torch_flop_counter.sdpa_backward_flop_count(
        grad_out_shape, query_shape, key_shape, value_shape
    )


# F.scaled_dot_product_attention on CPU dispatches to these (verified with a dispatch recorder in
# the tests); FlopCounterMode 2.14.1 has formulas only for the CUDA flash / efficient / cudnn
# kernels, so the CPU kernel counts 0 without them. The math fallback decomposes into bmm's and
# needs nothing.
SDPA_CPU_FORMULAS: dict[str, Callable[..., int]] = {
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa_cpu_flop,
    "_scaled_dot_product_flash_attention_for_cpu_backward": _sdpa_cpu_backward_flop,
}


def register_sdpa_flop_formulas() -> tuple[str, ...]:
    """Register `SDPA_CPU_FORMULAS` with FlopCounterMode; idempotent. Returns the ops it added.

    An op that already has a formula (registered earlier, or by a later torch) is left alone, so
    importing this module twice or calling this again never raises torch's "duplicate
    registrations". Formulas must be registered before a FlopCounterMode is constructed.
    """
    added = []
    for op_name, formula in SDPA_CPU_FORMULAS.items():
        op = getattr(torch.ops.aten, op_name)
        if op in torch_flop_counter.flop_registry:
            continue
        torch_flop_counter.register_flop_formula(op)(formula)
        added.append(op_name)
    return tuple(added)


register_sdpa_flop_formulas()


# ---------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True)
class CounterResult:
    """What one counter reports for one forward pass, in multiply-adds of the whole batch.

    `by_module`: qualified module name -> MACs of the ops run inside it (descendants included;
    "" is the whole model). `by_op`: the counter's own op key -> MACs. `uncounted_ops`: op ->
    number of calls the counter saw and gave 0 (data movement left out). `attention`: the
    attention path the model ran ("matmul", "sdpa", "mixed", or "none" without attention).
    """

    counter: str
    macs: int
    by_module: dict[str, int]
    by_op: dict[str, int]
    uncounted_ops: dict[str, int]
    attention: str
    notes: tuple[str, ...] = ()

    @property
    def flops(self) -> int:
        """2 × macs (one multiply-add = 2 floating-point operations)."""
        return 2 * self.macs


@dataclass(frozen=True)
class OpCall:
    """One outermost torch-level call made during a forward (the counter-neutral inventory).

    `api`: "F.conv2d", "F.linear", "Tensor.__matmul__" (the `@` operator), "Tensor.matmul" (the
    method), "torch.matmul", "Tensor.softmax", "F.softmax", "Tensor.__getitem__", … .
    `module` / `module_class`: the innermost module whose forward made the call ("" = root) and
    its exact class ("torch.nn.modules.linear.Linear"). `shapes`: shapes of the tensor
    arguments in call order; `out_shape`: shape of the (first) output. `attrs`: what a rule needs
    beyond shapes: `bias`, `affine`, `training`, `contiguous` (of a linear's input), `mode`
    (interpolation), `kernel` (the SDPA kernel that ran: the CPU flash kernel or "math").
    """

    api: str
    module: str
    module_class: str
    shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The op kind in analysis.symbolic's vocabulary ("conv", "deconv", "matmul", …)."""
        return API_KINDS.get(self.api, "data_movement" if is_data_movement(self.api) else "other")


API_KINDS = {
    "F.conv2d": "conv",
    "F.conv_transpose2d": "deconv",
    "F.linear": "linear",
    "Tensor.__matmul__": "matmul",
    "Tensor.matmul": "matmul",
    "torch.matmul": "matmul",
    "F.scaled_dot_product_attention": "sdpa",
    "Tensor.softmax": "softmax",
    "F.softmax": "softmax",
    "F.gelu": "gelu",
    "F.layer_norm": "layer_norm",
    "F.batch_norm": "batch_norm",
    "F.avg_pool2d": "avg_pool",
    "F.max_pool2d": "max_pool",
    "F.adaptive_avg_pool2d": "mean",
    "Tensor.mean": "mean",
    "F.interpolate": "interpolate",
    "Tensor.__add__": "add",
    "Tensor.add": "add",
    "torch.add": "add",
    "Tensor.__mul__": "scale",
    "Tensor.mul": "scale",
    "torch.mul": "scale",
}


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------------------------------------
# Shared machinery: the counting state of a model, a module stack, torch-level call naming.


def _attention_path(model: nn.Module) -> str:
    flags = {m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")}
    if not flags:
        return "none"
    if len(flags) == 2:
        return "mixed"
    return "sdpa" if flags.pop() else "matmul"


@contextlib.contextmanager
def _counting_state(model: nn.Module, attention: str | None) -> Iterator[str]:
    """Eval mode and the requested attention path for the duration; restores both after."""
    if attention is not None and attention not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {ATTENTION_PATHS} or None, got {attention!r}")
    training = [(m, m.training) for m in model.modules()]
    fused = [(m, m.fused_attn) for m in model.modules() if hasattr(m, "fused_attn")]
    model.eval()
    if attention is not None:
        for m, _ in fused:
            m.fused_attn = attention == "sdpa"
    try:
        yield _attention_path(model)
    finally:
        for m, flag in training:
            m.training = flag
        for m, flag in fused:
            m.fused_attn = flag


class _ModuleStack:
    """Forward hooks that keep the stack of (qualified name, module) being executed."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.stack: list[tuple[str, nn.Module]] = []
        self._handles: list[Any] = []

    def __enter__(self) -> _ModuleStack:
        for name, module in self.model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._push(name)))
            self._handles.append(module.register_forward_hook(self._pop(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _push(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            self.stack.append((name, module))

        return hook

    def _pop(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not self.stack or self.stack[-1][0] != name:
                raise RuntimeError(f"module stack out of order at {name!r}")
            self.stack.pop()

        return hook

    def innermost(self) -> tuple[str, nn.Module]:
        return self.stack[-1] if self.stack else ("", self.model)

    def names(self) -> list[str]:
        """The executing modules, outermost first, with the root as ""."""
        return [""] + [name for name, _ in self.stack if name]


# The original function objects, captured at import (ptflops replaces the attributes of F and
# torch while it counts, and the originals are what a TorchFunctionMode sees).
_API_NAMES: dict[int, str] = {
    **{
        id(obj): f"F.{name}"
        for name, obj in vars(F).items()
        if callable(obj) and not isinstance(obj, type)
    },
    **{
        id(getattr(torch, name)): f"torch.{name}"
        for name in ("matmul", "mm", "bmm", "addmm", "baddbmm", "add", "mul", "softmax", "mean")
    },
}


def _api_name(func: Callable[..., Any], method_call: bool) -> str:
    """"F.gelu", "torch.matmul", "Tensor.softmax"; "Tensor.__matmul__" for the `@` operator."""
    name = getattr(func, "_tensor_method", None) or getattr(func, "__name__", repr(func))
    known = _API_NAMES.get(id(func))
    if known is not None:
        return known
    qualname = getattr(func, "__qualname__", name)
    if (
        hasattr(func, "_tensor_method")
        or qualname.startswith(("TensorBase.", "Tensor."))
        or name == "__get__"
    ):
        if name in _OPERATOR_FORMS and not method_call:
            return f"Tensor.{_OPERATOR_FORMS[name]}"
        return f"Tensor.{name}"
    return f"{getattr(func, '__module__', None) or '?'}.{qualname}"


_METADATA_APIS = frozenset({
    "Tensor.__get__", "Tensor.dim", "Tensor.size", "Tensor.numel", "Tensor.stride",
    "Tensor.is_contiguous", "Tensor.is_floating_point",
})


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _call_attrs(api: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    if api in ("F.conv2d", "F.conv_transpose2d"):
        return {"bias": _arg(args, kwargs, 2, "bias", None) is not None}
    if api == "F.linear":
        x = args[0] if args else kwargs["input"]
        return {"bias": _arg(args, kwargs, 2, "bias", None) is not None,
                "contiguous": x.is_contiguous()}
    if api == "F.layer_norm":
        return {"affine": _arg(args, kwargs, 2, "weight", None) is not None}
    if api == "F.batch_norm":
        return {"affine": _arg(args, kwargs, 3, "weight", None) is not None,
                "training": bool(_arg(args, kwargs, 5, "training", False))}
    if api == "F.interpolate":
        return {"mode": _arg(args, kwargs, 3, "mode", "nearest")}
    return {}


def _make_call(
    api: str, module: str, module_obj: nn.Module, args: Sequence[Any],
    kwargs: dict[str, Any], out: Any, **extra_attrs: Any,
) -> OpCall:
    tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    return OpCall(
        api=api,
        module=module,
        module_class=_class_name(type(module_obj)),
        shapes=tuple(tuple(t.shape) for t in tensors),
        out_shape=tuple(outs[0].shape) if outs else (),
        attrs={**_call_attrs(api, args, kwargs), **extra_attrs},
    )


class _DispatchRecorder(TorchDispatchMode):
    """Counts the aten ops that actually execute (below FlopCounterMode's decompositions)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[Any] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func._overloadpacket] += 1
        return func(*args, **(kwargs or {}))


_SDPA_API = "F.scaled_dot_product_attention"


class _MethodMarks(threading.local):
    method: str | None = None


_MARKS = _MethodMarks()


@contextlib.contextmanager
def _mark_method_calls() -> Iterator[None]:
    """Wrap Tensor.matmul / add / mul for the duration so a method call can be told from `@ + *`.

    Under a TorchFunctionMode both `a @ b` and `a.matmul(b)` reach the mode with the current
    `torch.Tensor.matmul` attribute as `func`; only the method call has run the wrapper (and set
    the mark) before the mode is entered.
    """
    originals = {name: getattr(torch.Tensor, name) for name in _OPERATOR_FORMS}

    def marked(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def method(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            _MARKS.method = name
            return original(self, *args, **kwargs)

        method._tensor_method = name
        return method

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, marked(name, original))
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        _MARKS.method = None


class _CallRecorder(TorchFunctionMode):
    """Records every outermost torch-level call with the module that made it."""

    def __init__(self, modules: _ModuleStack) -> None:
        super().__init__()
        self.modules = modules
        self.calls: list[OpCall] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        method_call = _MARKS.method is not None
        _MARKS.method = None
        api = _api_name(func, method_call)
        kernels = _DispatchRecorder()
        try:
            with kernels if api == _SDPA_API else contextlib.nullcontext():
                out = func(*args, **kwargs)
        finally:
            _MARKS.method = None  # calling a marked method sets the mark again
        if api not in _METADATA_APIS:
            name, module = self.modules.innermost()
            extra = {"kernel": _sdpa_kernel(kernels)} if api == _SDPA_API else {}
            self.calls.append(_make_call(api, name, module, args, kwargs, out, **extra))
        return out


def _sdpa_kernel(kernels: _DispatchRecorder) -> str:
    """The SDPA kernel that ran: "_scaled_dot_product_flash_attention_for_cpu" or "math".

    On CPU the flash kernel needs 4-D q, k, v with one head dim (d_v = d among others); else
    the math fallback runs, which decomposes into bmm's that aten-level counters see.
    """
    for op in kernels.ops:
        if op.__name__.startswith("_scaled_dot_product") or op.__name__.startswith("_flash"):
            return op.__name__
    return "math"


def _as_input(inputs: Inputs) -> torch.Tensor:
    if isinstance(inputs, tuple):
        if len(inputs) != 1:
            raise ValueError("the counters here take a model with one tensor input")
        inputs = inputs[0]
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"expected a tensor input, got {type(inputs).__name__}")
    return inputs


def record_ops(
    model: nn.Module, inputs: Inputs, *, attention: str | None = None
) -> list[OpCall]:
    """The outermost torch-level calls one eval-mode forward makes, in order (no counter)."""
    x = _as_input(inputs)
    with _counting_state(model, attention), _ModuleStack(model) as modules:
        recorder = _CallRecorder(modules)
        with torch.no_grad(), _mark_method_calls(), recorder:
            model(x)
    return recorder.calls


# ---------------------------------------------------------------------------------------------
# fvcore.


def _fvcore_analysis(model: nn.Module, x: torch.Tensor):
    with warnings.catch_warnings():  # fvcore's import touches the deprecated torch.jit.script
        warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated")
        from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    # fvcore drops the ops of its built-in ignore list (fvcore.nn.jit_analysis._IGNORED_OPS)
    # without a trace; that list mixes data movement with arithmetic (aten::relu, aten::max,
    # aten::clamp, …). Keeping only the data movement there makes the arithmetic ones show up in
    # unsupported_ops(). Totals are unchanged: ignored and unsupported ops both count 0.
    analysis._ignored_ops = {op for op in analysis._ignored_ops if is_data_movement(op)}
    return analysis


def count_fvcore(
    model: nn.Module, inputs: Inputs, *, attention: str | None = "matmul"
) -> CounterResult:
    """fvcore FlopCountAnalysis (already one per multiply-add), per module and per op type."""
    x = _as_input(inputs)
    with _counting_state(model, attention) as path, torch.no_grad():
        analysis = _fvcore_analysis(model, x)
        total = int(analysis.total())
        by_module = {name: int(v) for name, v in analysis.by_module().items()}
        by_op = {name: int(v) for name, v in analysis.by_operator().items()}
        uncounted = {
            op: n for op, n in analysis.unsupported_ops().items() if not is_data_movement(op)
        }
    return CounterResult(
        counter="fvcore",
        macs=total,
        by_module=by_module,
        by_op=by_op,
        uncounted_ops=uncounted,
        attention=path,
        notes=(
            "fvcore's 'flop' is one multiply-add: reported as is",
            "jit trace: F.scaled_dot_product_attention is an unsupported op (0)",
        ),
    )


# ---------------------------------------------------------------------------------------------
# ptflops.


def _official_ptflops(model: nn.Module, x: torch.Tensor, backend: str) -> int:
    """get_model_complexity_info on a copy (it leaves hooks and methods on the model)."""
    from ptflops import get_model_complexity_info

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), torch.no_grad():
        macs, _ = get_model_complexity_info(
            copy.deepcopy(model),
            tuple(x.shape[1:]),
            input_constructor=lambda _res: x,
            print_per_layer_stat=False,
            as_strings=False,
            verbose=False,
            backend=backend,
            ost=io.StringIO(),
        )
    if macs is None:
        raise RuntimeError(f"ptflops ({backend}) failed:\n{stdout.getvalue()}")
    return int(macs)


class _PtflopsTracker:
    """What a ptflops-pytorch pass counts where, without changing what it counts.

    ptflops replaces attributes of F, torch and torch.Tensor by counting wrappers; each of those
    is wrapped once more here to attribute its counts to the patched name and to the executing
    modules. A TorchDispatchMode (below autograd, so it reroutes nothing) lists the aten ops
    that ran neither inside a hooked module nor inside a counting wrapper: the uncounted ones.
    (A TorchFunctionMode would not do: while one is active, `a + b` and `a @ b` resolve
    `torch.Tensor.add` / `.matmul` by name, so ptflops' wrappers would start counting them.)
    """

    def __init__(self, modules: _ModuleStack, supported: Callable[[nn.Module], bool]) -> None:
        self.modules = modules
        self.supported = supported
        self.collector = _TrackedCollector(self)
        self.by_module: Counter[str] = Counter()
        self.by_name: Counter[str] = Counter()
        self.uncounted: Counter[str] = Counter()
        self.active: list[str] = []  # names of the patched wrappers being executed

    def wrap(self, name: str, patched: Any) -> Callable[..., Any]:
        def tracked(*args: Any, **kwargs: Any) -> Any:
            self.active.append(name)
            try:
                return patched(*args, **kwargs)
            finally:
                self.active.pop()

        tracked.op = patched.op  # ptflops' unpatch_* restore `attribute.op`
        return tracked

    def record(self, flops: Any) -> None:
        name = self.active[-1] if self.active else "(unattributed)"
        self.by_name[name] += int(flops)
        for module in self.modules.names():
            self.by_module[module] += int(flops)


class _TrackedCollector(list):
    def __init__(self, tracker: _PtflopsTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def append(self, flops: Any) -> None:
        super().append(flops)
        self.tracker.record(flops)


class _PtflopsZeroOps(TorchDispatchMode):
    def __init__(self, tracker: _PtflopsTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tracker = self.tracker
        op = str(func._overloadpacket)
        if not (
            tracker.active
            or is_data_movement(op)
            or any(tracker.supported(m) for _, m in tracker.modules.stack)
        ):
            owner = type(tracker.modules.innermost()[1]).__name__
            tracker.uncounted[f"{op} in {owner}"] += 1
        return func(*args, **(kwargs or {}))


_PTFLOPS_TENSOR_OPS = ("matmul", "mm", "bmm", "addmm", "baddbmm", "mul", "add")


def _track_ptflops_patches(tracker: _PtflopsTracker) -> None:
    from ptflops.pytorch_engine import torch_function_wrapper

    for name, value in list(vars(F).items()):
        if isinstance(value, torch_function_wrapper):
            setattr(F, name, tracker.wrap(f"F.{name}", value))
    for name in _PTFLOPS_TENSOR_OPS:
        for owner, prefix in ((torch, "torch"), (torch.Tensor, "Tensor")):
            value = getattr(owner, name)
            if hasattr(value, "op"):
                setattr(owner, name, tracker.wrap(f"{prefix}.{name}", value))


def _ancestors(name: str) -> list[str]:
    """"a.b.c" -> ["", "a", "a.b"]; "" -> []."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts))]


def _ptflops_pytorch_pass(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """get_flops_pytorch's steps, instrumented (on a model copy: ptflops leaves methods on it)."""
    from ptflops import pytorch_engine as pe

    model = pe.add_flops_counting_methods(model)
    model.start_flops_count(ost=io.StringIO(), verbose=False, ignore_list=[])
    try:
        with _ModuleStack(model) as modules:
            tracker = _PtflopsTracker(modules, pe.is_supported_instance)
            functional, tensor_ops = tracker.collector, _TrackedCollector(tracker)
            pe.patch_functional(functional)
            try:
                pe.patch_tensor_ops(tensor_ops)
                try:
                    _track_ptflops_patches(tracker)
                    with torch.no_grad(), _PtflopsZeroOps(tracker):
                        model(x)
                finally:
                    pe.unpatch_tensor_ops()
            finally:
                pe.unpatch_functional()
        supported = {name for name, m in model.named_modules() if pe.is_supported_instance(m)}
        # ptflops sums the outermost hooked modules only (a hooked module's own count stands for
        # everything inside it).
        hooked = {
            name: (type(m).__name__, int(m.__flops__))
            for name, m in model.named_modules()
            if name in supported and not any(
                parent in supported for parent in _ancestors(name)
            )
        }
        batch = model.__batch_counter__
    finally:
        model.stop_flops_count()
    return dict(
        hooked=hooked,
        functional=sum(functional),
        tensor_ops=sum(tensor_ops),
        tracker=tracker,
        batch=batch,
    )


def _ptflops_pytorch(model: nn.Module, x: torch.Tensor, path: str) -> CounterResult:
    run = _ptflops_pytorch_pass(copy.deepcopy(model), x)
    hooked, tracker = run["hooked"], run["tracker"]
    module_sum = sum(flops for _, flops in hooked.values())
    functional_sum = run["functional"] + run["tensor_ops"]
    # ptflops divides the module-hook part by the batch size (a per-image figure) but not the
    # functional part; `macs` here is the whole batch, the library's own figure goes in notes.
    official = _official_ptflops(model, x, "pytorch")
    expected = int(module_sum / run["batch"] + run["functional"] + run["tensor_ops"])
    if official != expected:
        raise RuntimeError(
            f"ptflops-pytorch: the instrumented pass ({expected}) disagrees with "
            f"get_model_complexity_info ({official})"
        )
    by_module: Counter[str] = Counter({"": 0})
    by_op: Counter[str] = Counter()
    for name, (cls, flops) in hooked.items():
        for owner in (*_ancestors(name), name):
            by_module[owner] += flops
        by_op[cls] += flops
    by_module.update(tracker.by_module)
    by_op.update(tracker.by_name)
    total = int(module_sum + functional_sum)
    if by_module[""] != total:
        raise RuntimeError("ptflops-pytorch: per-module attribution does not add up")
    return CounterResult(
        counter="ptflops-pytorch",
        macs=total,
        by_module=dict(by_module),
        by_op=dict(by_op),
        uncounted_ops=dict(tracker.uncounted),
        attention=path,
        notes=(
            "ptflops reports MACs: reported as is (bias adds and elementwise ops count 1 each)",
            f"get_model_complexity_info returned {official} (module hooks divided by the batch "
            f"of {run['batch']}, functional counts not)",
            "module hooks match exact types only: subclasses (e.g. of nn.ConvTranspose2d or "
            "nn.LayerNorm) count 0; the `@ + *` operators are not intercepted",
            "uncounted_ops: aten ops run outside hooked modules and patched functions, "
            "as 'op in ModuleClass'",
        ),
    )


def _ptflops_aten_mode():
    from ptflops.aten_engine import FlopCounterMode as AtenMode

    class _Mode(AtenMode):
        """ptflops' aten counter with attribution to every module and a list of zero-ops."""

        def __init__(self) -> None:
            params: defaultdict[str, dict] = defaultdict(dict)
            params["print_params"] = {"file": io.StringIO()}
            super().__init__(module=None, verbose=False, output_params=params)
            self.uncounted: Counter[str] = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            packet = func._overloadpacket
            if packet not in self.all_ops and not is_data_movement(str(packet)):
                self.uncounted[str(packet)] += 1
            return super().__torch_dispatch__(func, types, args, kwargs)

    return _Mode()


def _ptflops_aten(model: nn.Module, x: torch.Tensor, path: str) -> CounterResult:
    mode = _ptflops_aten_mode()

    def push(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            mode.parents.append(name)

        return hook

    def pop(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            if mode.parents.pop() != name:
                raise RuntimeError(f"ptflops-aten: module stack out of order at {name!r}")

        return hook

    # ptflops attributes to the model's direct children only; these hooks give every module.
    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(push(name)))
            handles.append(module.register_forward_hook(pop(name)))
    try:
        with torch.no_grad(), mode:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    counts = mode.flop_counts
    total = int(sum(counts["Global"].values()))
    official = _official_ptflops(model, x, "aten")
    if official != total:
        raise RuntimeError(
            f"ptflops-aten: the instrumented pass ({total}) disagrees with "
            f"get_model_complexity_info ({official})"
        )
    by_module = {("" if name == "Global" else name): int(sum(ops.values()))
                 for name, ops in counts.items()}
    return CounterResult(
        counter="ptflops-aten",
        macs=total,
        by_module=by_module,
        by_op={str(op): int(v) for op, v in counts["Global"].items()},
        uncounted_ops=dict(mode.uncounted),
        attention=path,
        notes=(
            "ptflops reports MACs: reported as is (conv and addmm bias adds count 1 each)",
            "counts only aten.mm / addmm / bmm / convolution: SDPA's CPU flash kernel counts 0 "
            "(its math fallback, taken e.g. when d_v ≠ d, runs bmm's and is counted)",
        ),
    )


def count_ptflops(
    model: nn.Module,
    inputs: Inputs,
    *,
    backend: str = "pytorch",
    attention: str | None = "matmul",
) -> CounterResult:
    """ptflops get_model_complexity_info (MACs already) with `backend` "pytorch" or "aten".

    The total is the library's own (checked against an instrumented pass that gives the
    per-module and per-op breakdowns); the model is copied, since ptflops leaves hooks on it.
    """
    if backend not in ("pytorch", "aten"):
        raise ValueError(f"backend must be 'pytorch' or 'aten', got {backend!r}")
    x = _as_input(inputs)
    with _counting_state(model, attention) as path:
        if backend == "pytorch":
            return _ptflops_pytorch(model, x, path)
        return _ptflops_aten(model, x, path)


# ---------------------------------------------------------------------------------------------
# torch.utils.flop_counter.


def count_torch(
    model: nn.Module, inputs: Inputs, *, attention: str | None = "sdpa"
) -> CounterResult:
    """torch.utils.flop_counter.FlopCounterMode (2 per multiply-add) halved to MACs."""
    x = _as_input(inputs)
    register_sdpa_flop_formulas()
    with _counting_state(model, attention) as path:
        recorder = _DispatchRecorder()
        counter = torch_flop_counter.FlopCounterMode(display=False)
        with torch.no_grad(), recorder, counter:
            model(x)
    counts = counter.get_flop_counts()

    def halve(flops: int) -> int:
        if flops % 2:
            raise RuntimeError(f"FlopCounterMode reported an odd FLOP count {flops}")
        return flops // 2

    root = type(model).__name__
    by_module = {"": halve(counter.get_total_flops())}
    for name, ops in counts.items():
        if name in ("Global", root):
            continue
        by_module[name.removeprefix(root + ".")] = halve(sum(ops.values()))
    uncounted = {
        str(op): n for op, n in recorder.ops.items()
        if op not in counter.flop_registry and not is_data_movement(str(op))
    }
    return CounterResult(
        counter="torch",
        macs=by_module[""],
        by_module=by_module,
        by_op={str(op): halve(v) for op, v in counts.get("Global", {}).items()},
        uncounted_ops=uncounted,
        attention=path,
        notes=(
            "FlopCounterMode counts 2 per multiply-add: halved",
            "CPU SDPA counted by the formula registered for "
            "aten._scaled_dot_product_flash_attention_for_cpu",
        ),
    )


# ---------------------------------------------------------------------------------------------
# All four.


def count_model(
    model: nn.Module,
    inputs: Inputs,
    counters: Sequence[str] = COUNTERS,
) -> dict[str, CounterResult]:
    """Run the named counters on one input, each on its `DEFAULT_ATTENTION` path."""
    unknown = [name for name in counters if name not in COUNTERS]
    if unknown:
        raise ValueError(f"unknown counter(s) {unknown}; known: {', '.join(COUNTERS)}")
    out = {}
    for name in counters:
        attention = DEFAULT_ATTENTION[name]
        if name == "fvcore":
            out[name] = count_fvcore(model, inputs, attention=attention)
        elif name == "ptflops-pytorch":
            out[name] = count_ptflops(model, inputs, backend="pytorch", attention=attention)
        elif name == "ptflops-aten":
            out[name] = count_ptflops(model, inputs, backend="aten", attention=attention)
        else:
            out[name] = count_torch(model, inputs, attention=attention)
    return out


def image_input(
    model: nn.Module, img_size: tuple[int, int] = (224, 224), batch: int = 1
) -> torch.Tensor:
    """A fixed random B×C×H×W image batch for `model` (C from its config, else 3)."""
    config = getattr(model, "config", None)
    in_chans = getattr(config, "in_chans", 3)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, in_chans, *img_size, generator=generator)


def count_all(
    model_or_name: nn.Module | str,
    img_size: tuple[int, int] = (224, 224),
    batch: int = 1,
) -> dict[str, CounterResult]:
    """MACs of an eval-mode forward by each of `COUNTERS`, for a model or a registered name."""
    if isinstance(model_or_name, str):
        from edgevit import create_model

        model = create_model(model_or_name)
    else:
        model = model_or_name
    return count_model(model, image_input(model, img_size, batch))


# ---------------------------------------------------------------------------------------------
# Each counter's rules, per torch-level call.


class Rule(NamedTuple):
    formula: str
    macs: Callable[[OpCall], int]


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

RULES: dict[str, dict[str, Rule]] = {
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


def rule_macs(counter: str, call: OpCall) -> int:
    """What `counter` reports (in MACs) for one call; KeyError for a call without a rule."""
    rules = RULES[counter]
    if call.api in rules:
        return rules[call.api].macs(call)
    if is_data_movement(call.api):
        return _DATA_MOVEMENT_RULE.macs(call)
    raise KeyError(f"{counter}: no rule for {call.api} (in {call.module or 'the root'})")


def predicted_macs(counter: str, calls: Sequence[OpCall]) -> int:
    """Sum of `rule_macs` over an inventory from `record_ops`."""
    return sum(rule_macs(counter, call) for call in calls)


__all__ = [
    "API_KINDS",
    "ATTENTION_PATHS",
    "COUNTERS",
    "DATA_MOVEMENT_OPS",
    "DEFAULT_ATTENTION",
    "RULES",
    "SDPA_CPU_FORMULAS",
    "CounterResult",
    "OpCall",
    "Rule",
    "base_op_name",
    "conv_macs",
    "count_all",
    "count_fvcore",
    "count_model",
    "count_ptflops",
    "count_torch",
    "image_input",
    "is_data_movement",
    "linear_macs",
    "matmul_macs",
    "numel",
    "predicted_macs",
    "record_ops",
    "register_sdpa_flop_formulas",
    "rule_macs",
    "sdpa_macs",
]
