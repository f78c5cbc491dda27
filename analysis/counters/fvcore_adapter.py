"""The fvcore adapter: fvcore.nn.FlopCountAnalysis (jit trace; its "flop" is one multiply-add)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .recording import Inputs, _as_input, _counting_state
from .records import CounterResult, is_data_movement


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
