"""The four MAC counters: their rules on tiny hand-computable modules, then on whole models."""

from __future__ import annotations

import contextlib
import importlib
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

import edgevit
from analysis import counters
from analysis.counters import (
    COUNTERS,
    DEFAULT_ATTENTION,
    conv_macs,
    count_all,
    count_fvcore,
    count_model,
    count_ptflops,
    count_torch,
    image_input,
    matmul_macs,
    predicted_macs,
    record_ops,
    rule_macs,
    sdpa_macs,
)
from edgevit.layers import DeconvProp, LayerNorm2d, multi_head_attention


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Counting is shape arithmetic: one intra-op thread avoids spinning on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Pure formulas.


def test_conv_macs_closed_forms() -> None:
    # Grouped: (6, 4/2, 3, 3) weight at 5×5 outputs, batch 2.
    assert conv_macs((2, 4, 5, 5), (6, 2, 3, 3), (2, 6, 5, 5)) == 2 * 6 * 2 * 9 * 25
    # Depthwise ConvTranspose2d(k=r=2, stride 2) on 4×5 -> 8×10: one MAC per output pixel.
    assert conv_macs((1, 3, 4, 5), (3, 1, 2, 2), (1, 3, 8, 10), transposed=True) == 3 * 8 * 10


def test_matmul_and_sdpa_macs() -> None:
    assert matmul_macs((2, 3, 4, 5), (2, 3, 5, 6)) == 2 * 3 * 4 * 5 * 6
    assert matmul_macs((4, 5), (3, 5, 6)) == 3 * 4 * 5 * 6  # broadcast over b's batch
    assert matmul_macs((5,), (5, 6)) == 5 * 6
    with pytest.raises(ValueError):
        matmul_macs((4, 5), (4, 5))
    # q·kᵀ (Nq·Nk·d) plus attn·v (Nq·Nk·d_v) per (batch, head).
    assert sdpa_macs((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 6)) == 2 * 3 * 5 * (4 + 6)


# ---------------------------------------------------------------------------------------------
# Tiny modules: what each counter reports, by hand.


class Lambda(nn.Module):
    def __init__(self, fn, **buffers: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        for name, value in buffers.items():
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


class TransposedLinear(nn.Module):
    """A Linear fed a non-contiguous 3-D view, as the qkv of sampled tokens is."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.transpose(1, 2))


class Attention(nn.Module):
    """q (1, 2, 3, 4) from the input, fixed k (1, 2, 5, 4) and v (1, 2, 5, d_v), through the
    model's own attention switch. On CPU, SDPA runs the flash kernel for d_v = 4 and the math
    fallback (bmm's) for d_v ≠ 4."""

    def __init__(self, d_v: int = 6) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("k", torch.randn(1, 2, 5, 4, generator=gen))
        self.register_buffer("v", torch.randn(1, 2, 5, d_v, generator=gen))
        self.fused_attn = True

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return multi_head_attention(q, self.k, self.v, 0.5, self.fused_attn)


def _same(n: int) -> dict[str, int]:
    return dict.fromkeys(COUNTERS, n)


def _only_ptflops_pytorch(n: int) -> dict[str, int]:
    return {"fvcore": 0, "ptflops-pytorch": n, "ptflops-aten": 0, "torch": 0}


def _xt(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-2, -1)


# (id, module factory, input shape, expected MACs per counter)
TINY_CASES = [
    # conv: 2·(6·2·3·3)·25 = 5400 MACs; bias 2·6·25 = 300 adds.
    ("conv_grouped_bias", lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), (2, 4, 5, 5),
     {"fvcore": 5400, "ptflops-pytorch": 5700, "ptflops-aten": 5700, "torch": 5400}),
    # depthwise, stride 2, 7×7 -> 3×3: (3·1·3·3)·9.
    ("conv_depthwise", lambda: nn.Conv2d(3, 3, 3, stride=2, groups=3, bias=False),
     (1, 3, 7, 7), _same(243)),
    # depthwise ConvTranspose2d(k=2, stride=2) 4×5 -> 8×10: c·h·w = 240 (no extra r²).
    ("deconv_depthwise", lambda: nn.ConvTranspose2d(3, 3, 2, stride=2, groups=3),
     (1, 3, 4, 5), {"fvcore": 240, "ptflops-pytorch": 480, "ptflops-aten": 480, "torch": 240}),
    # the release's LocalProp is a subclass: ptflops' exact-type hooks miss it.
    ("deconv_subclass", lambda: DeconvProp(dim=3, rate=2), (1, 3, 4, 5),
     {"fvcore": 240, "ptflops-pytorch": 0, "ptflops-aten": 480, "torch": 240}),
    # linear on (2, 3, 4): 6 rows·4·5 = 120 MACs, bias 6·5 = 30 adds.
    ("linear_3d", lambda: nn.Linear(4, 5), (2, 3, 4),
     {"fvcore": 120, "ptflops-pytorch": 150, "ptflops-aten": 150, "torch": 120}),
    # the same on a non-contiguous view: aten runs mm + add, so ptflops-aten drops the bias.
    ("linear_3d_noncontiguous", TransposedLinear, (2, 4, 3),
     {"fvcore": 120, "ptflops-pytorch": 150, "ptflops-aten": 120, "torch": 120}),
    ("linear_2d_no_bias", lambda: nn.Linear(4, 5, bias=False), (3, 4), _same(60)),
    # x @ xᵀ on (2, 3, 4, 5): 2·3·4·5·4 = 480; the @ operator escapes ptflops-pytorch.
    ("matmul_operator_4d", lambda: Lambda(lambda m, x: x @ _xt(x)), (2, 3, 4, 5),
     {"fvcore": 480, "ptflops-pytorch": 0, "ptflops-aten": 480, "torch": 480}),
    ("matmul_torch_function", lambda: Lambda(lambda m, x: torch.matmul(x, _xt(x))),
     (2, 3, 4, 5), _same(480)),
    ("matmul_method", lambda: Lambda(lambda m, x: x.matmul(_xt(x))), (2, 3, 4, 5), _same(480)),
    # (4, 5) @ (3, 5, 6): 3·4·5·6 = 360; fvcore's prod(a)·b[-1] = 20·6 misses b's batch.
    ("matmul_broadcast", lambda: Lambda(lambda m, x: m.a @ x, a=torch.ones(4, 5)), (3, 5, 6),
     {"fvcore": 120, "ptflops-pytorch": 0, "ptflops-aten": 360, "torch": 360}),
    ("softmax_method", lambda: Lambda(lambda m, x: x.softmax(-1)), (2, 3, 4), _same(0)),
    ("softmax_functional", lambda: Lambda(lambda m, x: F.softmax(x, -1)), (2, 3, 4),
     _only_ptflops_pytorch(24)),
    # nn.GELU: ptflops' module hook and its patched F.gelu both count numel.
    ("gelu_module", nn.GELU, (2, 3, 4), _only_ptflops_pytorch(48)),
    ("gelu_functional", lambda: Lambda(lambda m, x: F.gelu(x)), (2, 3, 4),
     _only_ptflops_pytorch(24)),
    # LayerNorm on 24 elements: fvcore 5·numel (4 without weight); ptflops 1·numel.
    ("layer_norm", lambda: nn.LayerNorm(4), (2, 3, 4),
     {"fvcore": 120, "ptflops-pytorch": 24, "ptflops-aten": 0, "torch": 0}),
    ("layer_norm_no_affine", lambda: nn.LayerNorm(4, elementwise_affine=False), (2, 3, 4),
     {"fvcore": 96, "ptflops-pytorch": 24, "ptflops-aten": 0, "torch": 0}),
    ("layer_norm_2d_subclass", lambda: LayerNorm2d(4), (1, 4, 2, 3),
     {"fvcore": 120, "ptflops-pytorch": 0, "ptflops-aten": 0, "torch": 0}),
    # eval BatchNorm on 96 elements: 2·numel affine, 1·numel without.
    ("batch_norm_eval", lambda: nn.BatchNorm2d(3), (2, 3, 4, 4),
     {"fvcore": 192, "ptflops-pytorch": 192, "ptflops-aten": 0, "torch": 0}),
    ("batch_norm_eval_no_affine", lambda: nn.BatchNorm2d(3, affine=False), (2, 3, 4, 4),
     {"fvcore": 96, "ptflops-pytorch": 96, "ptflops-aten": 0, "torch": 0}),
    # pooling 32 input elements: ptflops counts the module hook and the patched function.
    ("avg_pool_module", lambda: nn.AvgPool2d(2), (1, 2, 4, 4), _only_ptflops_pytorch(64)),
    ("avg_pool_functional", lambda: Lambda(lambda m, x: F.avg_pool2d(x, 2)), (1, 2, 4, 4),
     _only_ptflops_pytorch(32)),
    ("max_pool_module", lambda: nn.MaxPool2d(2), (1, 2, 4, 4), _only_ptflops_pytorch(64)),
    ("max_pool_functional", lambda: Lambda(lambda m, x: F.max_pool2d(x, 2)), (1, 2, 4, 4),
     _only_ptflops_pytorch(32)),
    ("strided_slice", lambda: Lambda(lambda m, x: x[:, :, ::2, ::2]), (1, 2, 4, 4), _same(0)),
    # bilinear ×2 of (1, 2, 3, 4): 96 outputs; fvcore 4·numel(out), ptflops numel(out).
    ("bilinear_functional",
     lambda: Lambda(lambda m, x: F.interpolate(x, scale_factor=2, mode="bilinear")),
     (1, 2, 3, 4), {"fvcore": 384, "ptflops-pytorch": 96, "ptflops-aten": 0, "torch": 0}),
    ("bilinear_upsample_module", lambda: nn.Upsample(scale_factor=2, mode="bilinear"),
     (1, 2, 3, 4), {"fvcore": 384, "ptflops-pytorch": 192, "ptflops-aten": 0, "torch": 0}),
    # global pooling of 48 elements.
    ("adaptive_avg_pool_module", lambda: nn.AdaptiveAvgPool2d(1), (1, 3, 4, 4),
     {"fvcore": 48, "ptflops-pytorch": 96, "ptflops-aten": 0, "torch": 0}),
    ("adaptive_avg_pool_functional", lambda: Lambda(lambda m, x: F.adaptive_avg_pool2d(x, 1)),
     (1, 3, 4, 4), {"fvcore": 48, "ptflops-pytorch": 48, "ptflops-aten": 0, "torch": 0}),
    ("mean", lambda: Lambda(lambda m, x: x.mean((2, 3))), (1, 3, 4, 4), _same(0)),
    ("residual_add", lambda: Lambda(lambda m, x: x + x), (2, 3), _same(0)),
    ("add_function", lambda: Lambda(lambda m, x: torch.add(x, x)), (2, 3),
     _only_ptflops_pytorch(6)),
    ("add_method", lambda: Lambda(lambda m, x: x.add(x)), (2, 3), _only_ptflops_pytorch(6)),
    ("scale_operator", lambda: Lambda(lambda m, x: x * 0.5), (2, 3), _same(0)),
    ("scale_method", lambda: Lambda(lambda m, x: x.mul(0.5)), (2, 3), _only_ptflops_pytorch(6)),
    ("pad", lambda: Lambda(lambda m, x: F.pad(x, (0, 1, 0, 2))), (1, 2, 3, 3), _same(0)),
    # attention, q (1, 2, 3, 4), k (1, 2, 5, 4), v (1, 2, 5, 6): 2·3·5·4 + 2·3·5·6 = 300.
    # fvcore and ptflops run the matmul path (their default), torch the SDPA kernel.
    ("attention_default_paths", Attention, (1, 2, 3, 4),
     {"fvcore": 300, "ptflops-pytorch": 0, "ptflops-aten": 300, "torch": 300}),
]


@pytest.fixture(scope="module")
def tiny_results() -> dict[str, tuple[dict, dict]]:
    """Per case: (count_model's results, the inventory per attention path)."""
    out = {}
    gen = torch.Generator().manual_seed(0)
    for case_id, factory, shape, _ in TINY_CASES:
        model = factory()
        x = torch.randn(*shape, generator=gen)
        inventories = {path: record_ops(model, x, attention=path) for path in ("matmul", "sdpa")}
        out[case_id] = (count_model(model, x), inventories)
    return out


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize(
    "case_id, expected", [(case[0], case[3]) for case in TINY_CASES], ids=[c[0] for c in TINY_CASES]
)
def test_tiny_module_counts(tiny_results, case_id: str, expected: dict, counter: str) -> None:
    results, inventories = tiny_results[case_id]
    result = results[counter]
    assert result.macs == expected[counter]
    assert result.by_module[""] == result.macs
    assert sum(result.by_op.values()) == result.macs
    # The rules, applied to the counter-neutral inventory, say the same.
    calls = inventories[DEFAULT_ATTENTION[counter]]
    assert predicted_macs(counter, calls) == expected[counter]


def test_depthwise_deconv_has_no_extra_r_squared(tiny_results) -> None:
    """dw ConvTranspose2d(k=r, stride=r) on h'×w': c·h'·w'·r² = c·h·w MACs (h = r·h')."""
    results, _ = tiny_results["deconv_depthwise"]
    c, h, w = 3, 8, 10
    assert results["fvcore"].macs == results["torch"].macs == c * h * w
    # ptflops adds the bias, one add per output pixel, and nothing else.
    assert results["ptflops-aten"].macs == results["ptflops-pytorch"].macs == 2 * c * h * w


def test_uncounted_ops_are_listed(tiny_results) -> None:
    results, _ = tiny_results["deconv_subclass"]
    assert results["ptflops-pytorch"].uncounted_ops == {"aten.convolution in DeconvProp": 1}
    results, _ = tiny_results["gelu_functional"]
    assert results["fvcore"].uncounted_ops == {"aten::gelu": 1}
    assert results["torch"].uncounted_ops == {"aten.gelu": 1}
    assert results["ptflops-aten"].uncounted_ops == {"aten.gelu": 1}
    assert results["ptflops-pytorch"].uncounted_ops == {}  # patched: counted
    results, _ = tiny_results["matmul_operator_4d"]
    assert results["ptflops-pytorch"].uncounted_ops == {"aten.bmm in Lambda": 1}
    results, _ = tiny_results["pad"]  # data movement is not listed
    assert all(not r.uncounted_ops for r in results.values())


def test_attention_path_is_recorded(tiny_results) -> None:
    results, _ = tiny_results["attention_default_paths"]
    assert {c: r.attention for c, r in results.items()} == DEFAULT_ATTENTION
    results, _ = tiny_results["linear_3d"]
    assert {r.attention for r in results.values()} == {"none"}


@pytest.mark.parametrize("d_v, kernel, aten_macs", [
    (4, "_scaled_dot_product_flash_attention_for_cpu", 0),  # not mapped by ptflops-aten
    (6, "math", 2 * 3 * 5 * (4 + 6)),  # the fallback's bmm's are
])
def test_sdpa_counts_per_counter(d_v: int, kernel: str, aten_macs: int) -> None:
    """On the SDPA path fvcore and ptflops-pytorch see no attention; FlopCounterMode always does
    (registered formula or bmm's); ptflops-aten only when the math fallback runs."""
    model, q = Attention(d_v), torch.randn(1, 2, 3, 4)
    macs = 2 * 3 * 5 * (4 + d_v)
    calls = record_ops(model, q, attention="sdpa")
    (sdpa,) = [c for c in calls if c.api == "F.scaled_dot_product_attention"]
    assert sdpa.attrs["kernel"] == kernel
    assert count_torch(model, q, attention="sdpa").macs == macs
    assert count_torch(model, q, attention="matmul").macs == macs
    fvcore = count_fvcore(model, q, attention="sdpa")
    assert fvcore.macs == 0
    assert fvcore.uncounted_ops == {"aten::scaled_dot_product_attention": 1}
    aten = count_ptflops(model, q, backend="aten", attention="sdpa")
    assert aten.macs == aten_macs
    if aten_macs == 0:
        assert aten.uncounted_ops == {f"aten.{kernel}": 1}  # reported, not dropped
    pytorch = count_ptflops(model, q, backend="pytorch", attention="sdpa")
    assert pytorch.macs == 0
    for counter, measured in [("torch", macs), ("fvcore", 0), ("ptflops-aten", aten_macs),
                              ("ptflops-pytorch", 0)]:
        assert predicted_macs(counter, calls) == measured
    assert model.fused_attn is True  # the adapters restore the model's switch


# ---------------------------------------------------------------------------------------------
# FlopCounterMode and CPU SDPA.


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func._overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_cpu_sdpa_dispatches_to_flash_for_cpu() -> None:
    q = torch.randn(2, 3, 10, 8, requires_grad=True)
    with _Ops() as ops:
        F.scaled_dot_product_attention(q, q, q, scale=0.3).sum().backward()
    sdpa_ops = {name for name in ops.names if "attention" in name}
    assert sdpa_ops == set(counters.SDPA_CPU_FORMULAS)


def test_flop_counter_needs_the_cpu_sdpa_formula() -> None:
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    bare = flop_counter.FlopCounterMode(display=False)
    del bare.flop_registry[op]  # the mode's own snapshot: what torch 2.14.1 ships
    with bare:
        F.scaled_dot_product_attention(q, k, v)
    assert bare.get_total_flops() == 0
    with flop_counter.FlopCounterMode(display=False) as mode:
        F.scaled_dot_product_attention(q, k, v)
    assert mode.get_total_flops() == 2 * 2 * 3 * 5 * (4 + 4)


@pytest.mark.parametrize("shapes", [
    ((2, 3, 7, 8), (2, 3, 11, 8), (2, 3, 11, 8)),
    ((1, 4, 5, 6), (1, 4, 5, 6), (1, 4, 5, 10)),
])
def test_sdpa_flops_equal_the_matmul_path(shapes) -> None:
    q, k, v = (torch.randn(s) for s in shapes)
    with flop_counter.FlopCounterMode(display=False) as fused:
        F.scaled_dot_product_attention(q, k, v)
    with flop_counter.FlopCounterMode(display=False) as explicit:
        (q @ k.transpose(-2, -1)).softmax(-1) @ v
    assert fused.get_total_flops() == explicit.get_total_flops() == 2 * sdpa_macs(*shapes)


def test_registration_is_idempotent() -> None:
    registry = flop_counter.flop_registry
    ops = [getattr(torch.ops.aten, name) for name in counters.SDPA_CPU_FORMULAS]
    before = [registry[op] for op in ops]
    assert counters.register_sdpa_flop_formulas() == ()
    assert counters.register_sdpa_flop_formulas() == ()
    reloaded = importlib.reload(counters.torch_adapter)  # the module that registers at import
    assert reloaded.register_sdpa_flop_formulas() == ()
    assert [registry[op] for op in ops] == before


# ---------------------------------------------------------------------------------------------
# A TorchFunctionMode changes what ptflops-pytorch counts.


def test_ptflops_counts_operators_under_a_torch_function_mode() -> None:
    """Under any TorchFunctionMode (torch.device(...) as a context is one), `a @ b` and `a + b`
    are resolved through `torch.Tensor.matmul` / `.add`, which ptflops has patched."""
    from ptflops import get_model_complexity_info

    model = Lambda(lambda m, x: x @ _xt(x) + 1.0)  # (3, 4, 5) @ (3, 5, 4): 240, + 48 adds

    def ptflops_macs() -> int:
        macs, _ = get_model_complexity_info(
            model, (3, 4, 5), as_strings=False, print_per_layer_stat=False, ost=io.StringIO()
        )
        return macs

    assert ptflops_macs() == 0
    with torch.device("cpu"):
        assert ptflops_macs() == 3 * 4 * 5 * 4 + 3 * 4 * 4
    with contextlib.redirect_stdout(io.StringIO()):
        assert count_ptflops(model, torch.randn(1, 3, 4, 5)).macs == 0  # the adapter: unchanged


# ---------------------------------------------------------------------------------------------
# Whole models.

PRESET_CORE_MACS = {  # FlopCounterMode ÷ 2: convolutions, linears, attention matmuls
    "edgevit_xxs": 551_262_816,
    "edgevit_xs": 1_127_815_200,
    "edgevit_s": 1_911_021_792,
}
PRESET_FVCORE_MACS = {  # the paper's "GFLOPs" 0.6 / 1.1 / 1.9
    "edgevit_xxs": 557_457_984,
    "edgevit_xs": 1_136_470_560,
    "edgevit_s": 1_923_271_008,
}
PRESET_PTFLOPS_MACS = {  # (backend pytorch, backend aten)
    "edgevit_xxs": (548_709_544, 556_203_016),
    "edgevit_xs": (1_126_289_752, 1_134_724_024),
    "edgevit_s": (1_903_442_296, 1_921_312_792),
}


@pytest.fixture(scope="module")
def preset_results() -> dict[str, tuple[dict, dict]]:
    out = {}
    for name in PRESET_CORE_MACS:
        model = edgevit.create_model(name)
        x = image_input(model)
        inventories = {path: record_ops(model, x, attention=path) for path in ("matmul", "sdpa")}
        out[name] = (count_all(model), inventories)
    return out


@pytest.mark.parametrize("name", list(PRESET_CORE_MACS))
def test_preset_counts(preset_results, name: str) -> None:
    results, _ = preset_results[name]
    assert results["torch"].macs == PRESET_CORE_MACS[name]
    assert results["torch"].attention == "sdpa"
    assert results["fvcore"].macs == PRESET_FVCORE_MACS[name]
    assert results["fvcore"].attention == "matmul"
    pytorch_macs, aten_macs = PRESET_PTFLOPS_MACS[name]
    assert results["ptflops-pytorch"].macs == pytorch_macs
    assert results["ptflops-aten"].macs == aten_macs


@pytest.mark.parametrize("name", list(PRESET_CORE_MACS))
def test_fvcore_is_core_plus_norms(preset_results, name: str) -> None:
    """fvcore = the core MACs + 5·numel per LayerNorm + 2·numel per eval BatchNorm."""
    results, inventories = preset_results[name]
    by_op = results["fvcore"].by_op
    assert by_op["conv"] + by_op["linear"] + by_op["matmul"] == PRESET_CORE_MACS[name]
    calls = inventories["matmul"]
    ln = sum(5 * counters.numel(c.shapes[0]) for c in calls if c.api == "F.layer_norm")
    bn = sum(2 * counters.numel(c.shapes[0]) for c in calls if c.api == "F.batch_norm")
    assert (by_op["layer_norm"], by_op["batch_norm"]) == (ln, bn)
    assert set(by_op) == {"conv", "linear", "matmul", "layer_norm", "batch_norm"}
    assert set(results["fvcore"].uncounted_ops) == {
        "aten::add", "aten::gelu", "aten::mul", "aten::softmax", "aten::mean",
        "aten::floor_divide",  # traced shape arithmetic (c // heads)
    }


@pytest.mark.parametrize("name", list(PRESET_CORE_MACS))
@pytest.mark.parametrize("counter", COUNTERS)
def test_rules_reproduce_presets(preset_results, name: str, counter: str) -> None:
    results, inventories = preset_results[name]
    calls = inventories[results[counter].attention]
    assert predicted_macs(counter, calls) == results[counter].macs


def test_per_module_breakdowns_agree_on_a_stage(preset_results) -> None:
    """A stage's stem conv is counted alike: torch/fvcore without bias, ptflops with it."""
    results, _ = preset_results["edgevit_xxs"]
    proj = "stages.0.downsample.proj"  # Conv2d(3, 36, 4, stride 4) on 224² -> 56²
    macs = 36 * 3 * 16 * 56 * 56
    assert results["fvcore"].by_module[proj] == results["torch"].by_module[proj] == macs
    assert results["ptflops-pytorch"].by_module[proj] == macs + 36 * 56 * 56
    assert results["ptflops-aten"].by_module[proj] == macs + 36 * 56 * 56


ODD_SIZE = (100, 76)  # 25×19 at stage 0: padding to multiples of r and of the LSA window


@pytest.mark.parametrize("name", edgevit.list_models("ablation_*"))
def test_rules_reproduce_ablations(name: str) -> None:
    model = edgevit.create_model(name)
    x = image_input(model, ODD_SIZE)
    results = count_model(model, x)
    inventories = {path: record_ops(model, x, attention=path) for path in ("matmul", "sdpa")}
    for counter, result in results.items():
        assert predicted_macs(counter, inventories[result.attention]) == result.macs, counter
    assert count_torch(model, x, attention="matmul").macs == results["torch"].macs


def test_torch_counts_sdpa_like_the_matmul_path_on_xxs() -> None:
    model = edgevit.create_model("edgevit_xxs")
    x = image_input(model)
    fused = count_torch(model, x, attention="sdpa")
    explicit = count_torch(model, x, attention="matmul")
    assert fused.macs == explicit.macs == PRESET_CORE_MACS["edgevit_xxs"]
    assert fused.by_op["aten._scaled_dot_product_flash_attention_for_cpu"] == explicit.by_op[
        "aten.bmm"
    ]


def test_count_all_leaves_the_model_alone_and_scales_with_batch() -> None:
    model = edgevit.create_model("edgevit_xxs").train().set_fused_attn(True)
    one = count_all(model, img_size=(64, 64))
    two = count_all(model, img_size=(64, 64), batch=2)
    assert model.training
    assert all(m.fused_attn for m in model.modules() if hasattr(m, "fused_attn"))
    for counter in COUNTERS:
        assert two[counter].macs == 2 * one[counter].macs
        assert two[counter].flops == 4 * one[counter].macs
    # ptflops' own figure divides the hooked modules by the batch but not F.gelu's count.
    gelu = one["ptflops-pytorch"].by_op["F.gelu"]
    per_image = (two["ptflops-pytorch"].macs - 2 * gelu) // 2 + 2 * gelu
    assert f"returned {per_image} " in two["ptflops-pytorch"].notes[1]


def test_rules_table_is_complete() -> None:
    """Every counter states a rule, with its formula in words, for the same torch-level calls."""
    apis = set(counters.API_KINDS)
    for counter in COUNTERS:
        assert set(counters.RULES[counter].calls) == apis, counter
        assert all(rule.formula for rule in counters.RULES[counter].calls.values())


def test_rules_refuse_unknown_calls() -> None:
    call = counters.OpCall("F.silu", "", "torch.nn.modules.activation.SiLU", ((2, 3),), (2, 3))
    with pytest.raises(KeyError, match="no rule for F.silu"):
        rule_macs("fvcore", call)
    assert counters.OpCall("Tensor.reshape", "", "x", ((2, 3),), (6,)).kind == "data_movement"
    with pytest.raises(ValueError):
        count_model(nn.Linear(2, 2), torch.randn(1, 2), counters=("nvidia",))
