"""The ptflops adapters: get_model_complexity_info with backend="pytorch" (module hooks plus
monkey-patched torch.nn.functional / tensor methods) and backend="aten" (a TorchDispatchMode over
aten.mm / addmm / bmm / convolution)."""

from __future__ import annotations

import contextlib
import copy
import io
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .recording import Inputs, _as_input, _counting_state, _ModuleStack
from .records import CounterResult, is_data_movement


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
