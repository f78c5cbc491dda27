"""The torch adapter: torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add; halved
here), plus a formula this module registers for the CPU SDPA kernel (at import)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils import flop_counter as torch_flop_counter

from .recording import Inputs, _as_input, _counting_state, _DispatchRecorder
from .records import CounterResult, is_data_movement

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
