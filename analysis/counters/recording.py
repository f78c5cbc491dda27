"""Recording a forward with torch function / dispatch modes: `record_ops(model, x)` lists the
calls a forward makes (a counter-neutral inventory), plus the machinery the adapters share: the
counting state of a model, a module stack, torch-level call naming."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .records import OpCall, _class_name

Inputs = torch.Tensor | tuple[torch.Tensor]  # one tensor, bare or in a 1-tuple

ATTENTION_PATHS = ("matmul", "sdpa")

# Tensor methods that also have an operator form (`a @ b`, `a + b`, `a * b`). A counter that
# monkey-patches `torch.Tensor.matmul` (ptflops) sees the method call but not the operator, so
# the inventory tells them apart: "Tensor.matmul" (method) vs "Tensor.__matmul__" (operator).
_OPERATOR_FORMS = {"matmul": "__matmul__", "add": "__add__", "mul": "__mul__"}


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
