"""Adapters for four MAC counters, all reporting multiply-adds, and each counter's rules as data.

Counters (names are the keys of `count_all`):

  fvcore           fvcore.nn.FlopCountAnalysis (jit trace; its "flop" is one multiply-add)
  ptflops-pytorch  ptflops.get_model_complexity_info(backend="pytorch") (module hooks plus
                   monkey-patched torch.nn.functional / tensor methods)
  ptflops-aten     ptflops.get_model_complexity_info(backend="aten") (a TorchDispatchMode over
                   aten.mm / addmm / bmm / convolution)
  torch            torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add; halved
                   here), plus a formula `torch_adapter` registers for the CPU SDPA kernel

Every adapter returns a `CounterResult` in MACs (one multiply-add = 1; `flops` = 2 × `macs`) of
the whole input batch, with the counter's own per-module and per-op breakdowns and the ops the
counter saw but gave no count to (`uncounted_ops`; data movement such as views, permutes,
slicing and padding, `DATA_MOVEMENT_OPS`, is left out of that list).

`RULES` states, per counter and per torch-level call (`OpCall.api`), what the counter reports;
`rule_macs(counter, call)` computes it. `record_ops(model, x)` lists the calls a forward makes
(a counter-neutral inventory), so `predicted_macs(counter, record_ops(model, x))` reproduces
each adapter's total; the rules were read from the libraries' source (fvcore 0.1.5.post20221221,
ptflops 0.7.5, torch 2.14.1) and checked on tiny modules in tests/test_counters.py.

Modules:

  formulas         pure per-op formulas: numel, conv_macs, linear_macs, matmul_macs, sdpa_macs
  records          CounterResult, OpCall, API_KINDS, DATA_MOVEMENT_OPS, is_data_movement
  recording        record_ops (torch function / dispatch modes) and the machinery the adapters
                   share: counting state, module stack, call naming
  fvcore_adapter   count_fvcore
  ptflops_adapter  count_ptflops (backend "pytorch" or "aten")
  torch_adapter    count_torch and the CPU SDPA formula registration (SDPA_CPU_FORMULAS,
                   register_sdpa_flop_formulas, run at import)
  combined         COUNTERS, DEFAULT_ATTENTION, count_model, count_all, image_input
  rules            Rule, CounterRules, RULES, rule_macs, predicted_macs
  reconcile        predict (a counter's MACs from the cost model's ops), reconcile (printed
                   against predicted, per counter, with the reasons)
"""

from .combined import COUNTERS, DEFAULT_ATTENTION, count_all, count_model, image_input
from .formulas import conv_macs, linear_macs, matmul_macs, numel, sdpa_macs
from .fvcore_adapter import count_fvcore
from .ptflops_adapter import count_ptflops
from .reconcile import predict, reconcile
from .recording import ATTENTION_PATHS, record_ops
from .records import (
    API_KINDS,
    DATA_MOVEMENT_OPS,
    CounterResult,
    OpCall,
    base_op_name,
    is_data_movement,
)
from .rules import RULES, CounterRules, Rule, predicted_macs, rule_macs
from .torch_adapter import SDPA_CPU_FORMULAS, count_torch, register_sdpa_flop_formulas

__all__ = [
    "API_KINDS",
    "ATTENTION_PATHS",
    "COUNTERS",
    "DATA_MOVEMENT_OPS",
    "DEFAULT_ATTENTION",
    "RULES",
    "SDPA_CPU_FORMULAS",
    "CounterResult",
    "CounterRules",
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
    "predict",
    "predicted_macs",
    "reconcile",
    "record_ops",
    "register_sdpa_flop_formulas",
    "rule_macs",
    "sdpa_macs",
]
