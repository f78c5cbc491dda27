"""The fused inference path (edgevit/fuse.py) against the faithful model.

Every path (eager unfused and fused, ONNX Runtime on the fused export, torch.compile of the
fused model) must give the faithful outputs to ≤ 1e-4 relative on the official reference
vectors and on random configs; plus the fused model's contract (eval only, its state_dict,
undoing a fusion) and the exactness of each rewrite on its own.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from config_strategies import configs_and_sizes
from hypothesis import given, settings
from hypothesis import strategies as st
from test_model import official_filled_model, relative_error
from torch import nn

import edgevit
from analysis.latency import export_onnx, onnx_opset, onnx_rel_error
from edgevit import EdgeViT, EdgeViTConfig, create_model
from edgevit.fuse import (
    FUSED_MARKER,
    PointwiseLinear,
    compile_fused,
    fold_batchnorm_into_pointwise,
    fold_batchnorms,
    fold_identity_into_depthwise,
    onednn_linear_available,
    use_broadcast_local_prop,
)
from edgevit.layers import DeconvProp, GlobalBlock, GlobalSparseAttn, LocalAgg, Stem

ONNX_OPSET = 20  # torch 2.14's default export opset (benchmarks/inference_speed.py uses it too)
REL_TOL = 1e-4
TINY = EdgeViTConfig(widths=(16, 32, 48, 64), depths=(1, 1, 2, 1), sample_rates=(4, 2, 2, 1),
                     head_dim=16, num_classes=10, name="tiny")


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial norms and biases, so that a fold that drops a term cannot pass: BatchNorm
    statistics and affine parameters, LayerNorm affine parameters and every bias."""
    generator = torch.Generator().manual_seed(seed)

    def like(t: torch.Tensor, scale: float, offset: float = 0.0) -> torch.Tensor:
        return offset + scale * torch.randn(t.shape, generator=generator)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(like(module.running_mean, 0.3))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape,
                                                          generator=generator))
            if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
                module.weight.copy_(like(module.weight, 0.2, 1.0))
                module.bias.copy_(like(module.bias, 0.2))
            elif isinstance(getattr(module, "bias", None), nn.Parameter):
                module.bias.copy_(like(module.bias, 0.2))
    return model


def fused_copy(model: EdgeViT) -> EdgeViT:
    return copy.deepcopy(model).fuse()


def assert_equal_outputs(model: EdgeViT, x: torch.Tensor) -> None:
    """Unfused (matmul and SDPA attention) and fused forwards agree to REL_TOL."""
    model.eval()
    with torch.inference_mode():
        expected = model.set_fused_attn(False)(x)
        sdpa = model.set_fused_attn(True)(x)
        fused = fused_copy(model)(x)
    assert relative_error(sdpa.numpy(), expected.numpy()) <= REL_TOL
    assert fused.shape == expected.shape
    assert relative_error(fused.numpy(), expected.numpy()) <= REL_TOL


# ---- the official reference vectors ---------------------------------------------------------


def test_fused_reference_logits_xxs_224(vectors, official_state_dicts, reference_dir) -> None:
    model = official_filled_model(vectors, official_state_dicts, "edgevit_xxs").fuse()
    with torch.inference_mode():
        logits = model(vectors.image(224, 224)).numpy()
    expected = np.load(reference_dir / "edgevit_xxs_224_logits.npy")
    assert logits.shape == expected.shape == (1, 1000)
    assert relative_error(logits, expected) <= REL_TOL


def test_fused_reference_features_xxs_512(vectors, official_state_dicts, reference_dir) -> None:
    model = official_filled_model(vectors, official_state_dicts, "edgevit_xxs").fuse()
    with torch.inference_mode():
        features = model.forward_features(vectors.image(512, 512))
    expected = np.load(reference_dir / "edgevit_xxs_512_features.npy")
    assert features.shape == expected.shape == (1, 288, 16, 16)
    assert features.is_contiguous(memory_format=torch.channels_last)
    assert relative_error(features.numpy(), expected) <= REL_TOL


def test_fused_onnxruntime_reference_logits(tmp_path, vectors, official_state_dicts,
                                            reference_dir) -> None:
    model = official_filled_model(vectors, official_state_dicts, "edgevit_xxs").fuse()
    image = vectors.image(224, 224)
    path = tmp_path / "xxs_fused.onnx"
    export_onnx(model, image, path, opset=ONNX_OPSET)
    assert onnx_opset(path) == ONNX_OPSET == torch.onnx._constants.ONNX_DEFAULT_OPSET

    from analysis.latency import ort_session

    session = ort_session(path)
    logits = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
    expected = np.load(reference_dir / "edgevit_xxs_224_logits.npy")
    assert relative_error(logits, expected) <= REL_TOL


def test_compiled_reference_logits(vectors, official_state_dicts, reference_dir) -> None:
    compiled = compile_fused(official_filled_model(vectors, official_state_dicts, "edgevit_xxs"))
    with torch.inference_mode():
        logits = compiled(vectors.image(224, 224)).numpy()
    expected = np.load(reference_dir / "edgevit_xxs_224_logits.npy")
    assert relative_error(logits, expected) <= REL_TOL


# ---- random configs and the paper's ablations -----------------------------------------------


@st.composite
def random_cases(draw) -> tuple[EdgeViTConfig, tuple[int, int], int]:
    """Small configs (fast to run twice), sizes up to 140 pixels, and a weight seed."""
    config, size = draw(configs_and_sizes(max_width_mult=3, mlp_ratios=[1.5, 2.0, 4.0, 2.7],
                                          class_counts=[0, 10], max_side=140))
    return config, size, draw(st.integers(0, 2**16))


@settings(max_examples=30, deadline=None)
@given(case=random_cases())
def test_random_configs_fused_equal(case) -> None:
    config, size, seed = case
    torch.manual_seed(seed)
    model = randomize(EdgeViT(config), seed)
    assert_equal_outputs(model, torch.randn(2, config.in_chans, *size))


@pytest.mark.parametrize("size", [(224, 224), (97, 161)])
@pytest.mark.parametrize("name", sorted(edgevit.ABLATIONS))
def test_ablations_fused_equal(name: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = randomize(create_model(name))
    assert_equal_outputs(model, torch.randn(1, 3, *size))


@pytest.mark.parametrize(
    "name, size",
    [("ablation_lgl", (97, 161)), ("ablation_la_lsa", (100, 76)), ("ablation_wo_lp", (64, 64)),
     ("ablation_wo_la", (96, 128)), ("ablation_lp_bilinear", (70, 90)),
     ("ablation_sampler_center", (99, 99))],
)
def test_onnxruntime_runs_fused_ablations(tmp_path, name: str, size: tuple[int, int]) -> None:
    torch.manual_seed(1)
    model = randomize(create_model(name)).eval()
    fused = fused_copy(model)
    x, other = torch.randn(1, 3, *size), torch.randn(1, 3, *size)
    export_onnx(fused, x, tmp_path / "fused.onnx", opset=ONNX_OPSET)
    assert onnx_rel_error(model.set_fused_attn(False), tmp_path / "fused.onnx", other) <= REL_TOL


def test_compiled_tiny_config_and_ablation_switches() -> None:
    """One compile covers LSA, SRA-free sparse attention, a padded map and odd sizes."""
    torch.manual_seed(2)
    model = randomize(EdgeViT(TINY.replace(local_agg="lsa"))).eval()
    x = torch.randn(1, 3, 72, 104)  # stage maps 18×26, 9×13, ...: every rate pads
    with torch.inference_mode():
        expected = model.set_fused_attn(False)(x)
        compiled = compile_fused(copy.deepcopy(model))
        assert relative_error(compiled(x).numpy(), expected.numpy()) <= REL_TOL


# ---- the fused model's contract -------------------------------------------------------------


def test_fuse_needs_eval_and_fused_models_cannot_train() -> None:
    model = create_model("edgevit_xxs")
    with pytest.raises(RuntimeError, match="eval"):
        model.train().fuse()
    fused = model.eval().fuse()
    assert fused is model and fused.is_fused
    with pytest.raises(RuntimeError, match="inference only"):
        fused.train()
    assert not any(p.requires_grad for p in fused.parameters())
    fused.eval()  # train(False) stays allowed


def test_fuse_is_idempotent() -> None:
    torch.manual_seed(3)
    model = randomize(create_model("edgevit_xxs")).eval()
    x = torch.randn(1, 3, 96, 96)
    fused = model.fuse()
    with torch.inference_mode():
        once = fused(x)
        twice = fused.fuse()(x)
    assert torch.equal(once, twice)


def test_fused_state_dict_differs_loudly_and_fusion_is_undone_by_reloading() -> None:
    torch.manual_seed(4)
    original = randomize(create_model("edgevit_xxs")).eval()
    weights = copy.deepcopy(original.state_dict())
    x = torch.randn(1, 3, 128, 96)
    fused = fused_copy(original)
    state = fused.state_dict()
    assert FUSED_MARKER in state
    assert "stages.0.blocks.0.local_agg.norm1.running_mean" in weights
    assert "stages.0.blocks.0.local_agg.norm1.running_mean" not in state
    assert "stages.0.blocks.0.global_block.attn.delegate_norm.weight" in state
    assert state["stages.0.blocks.0.local_agg.mlp.fc1.weight"].dim() == 2
    with pytest.raises(RuntimeError, match="fused"):
        fused.load_state_dict(weights)
    with pytest.raises(RuntimeError, match=FUSED_MARKER):
        create_model("edgevit_xxs").load_state_dict(state)
    restored = create_model("edgevit_xxs").eval()
    restored.load_state_dict(weights)
    with torch.inference_mode():
        assert torch.equal(restored(x), original(x))
        assert torch.equal(fused_copy(restored)(x), fused(x))


def test_fused_structure() -> None:
    """What fuse() rewrites on the release's XXS: which modules are left where."""
    model = create_model("edgevit_xxs").eval().fuse()
    batch_norms = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms == ["norm"]  # only the final one, whose output forward_features returns
    assert not any(isinstance(m, (nn.Linear, nn.Conv2d)) and getattr(m, "kernel_size", None)
                   == (1, 1) for m in model.modules())
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == [model.head]
    pointwise = [m for m in model.modules() if isinstance(m, PointwiseLinear)]
    assert sum(m.gelu for m in pointwise) == 5 + 7  # the FFN of every LocalAgg and GlobalBlock
    blocks = [m for m in model.modules() if isinstance(m, (LocalAgg, GlobalBlock))]
    assert all(b.pos_embed_folded for b in blocks)
    sparse = [m for m in model.modules() if isinstance(m, GlobalSparseAttn) and m.rate > 1]
    assert len(sparse) == 5 and all(m.delegate_norm is not None for m in sparse)
    assert all(m.local_prop.broadcast_weight is not None for m in sparse)


def test_fused_maps_stay_channels_last() -> None:
    """No layout round trip between blocks: every stem and block hands on a channels-last map."""
    model = create_model("edgevit_xxs").eval().fuse()
    outputs = []
    for module in model.modules():
        if isinstance(module, (Stem, LocalAgg, GlobalBlock)):
            module.register_forward_hook(lambda m, args, out: outputs.append(out))
    with torch.inference_mode():
        model(torch.randn(1, 3, 160, 160))
    assert len(outputs) == 4 + 7 + 5
    assert all(out.is_contiguous(memory_format=torch.channels_last) for out in outputs)


# ---- each rewrite on its own ----------------------------------------------------------------


@pytest.mark.parametrize("as_pointwise_linear", [False, True])
def test_fold_batchnorm_into_pointwise_is_exact(as_pointwise_linear: bool) -> None:
    """Into a 1×1 convolution, or into the `PointwiseLinear` a fused model holds instead."""
    torch.manual_seed(5)
    norm = randomize(nn.BatchNorm2d(6)).eval()
    conv = nn.Conv2d(6, 4, 1)
    x = torch.randn(2, 6, 5, 3)
    with torch.no_grad():
        expected = conv(norm(x))
        layer = PointwiseLinear(conv) if as_pointwise_linear else conv
        fold_batchnorm_into_pointwise(norm, layer)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)
    not_pointwise = PointwiseLinear(nn.Linear(6, 4)) if as_pointwise_linear else nn.Conv2d(6, 4, 3)
    with pytest.raises(ValueError, match="1×1"):  # a 3×3 kernel; a linear on tokens, not maps
        fold_batchnorm_into_pointwise(norm, not_pointwise)


def test_deferred_batchnorm_fold_equals_fuse() -> None:
    """fuse(fold_batchnorm=False) keeps LocalAgg's BatchNorms and computes the same outputs;
    fold_batchnorms then gives the structure and outputs of a plain fuse()."""
    torch.manual_seed(7)
    model = randomize(create_model("edgevit_xxs")).eval()
    x = torch.randn(2, 3, 96, 80)
    fused = fused_copy(model)
    deferred = copy.deepcopy(model).fuse(fold_batchnorm=False)
    assert deferred.is_fused
    kept = [n for n, m in deferred.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(kept) == 1 + 2 * 5  # the final norm, and norm1 and norm2 of the 5 LocalAggs
    with torch.inference_mode():
        expected = model(x)
        assert relative_error(deferred(x).numpy(), expected.numpy()) <= REL_TOL
        fold_batchnorms(deferred)
        assert [n for n, m in deferred.named_modules()
                if isinstance(m, nn.BatchNorm2d)] == ["norm"]
        torch.testing.assert_close(deferred(x), fused(x), rtol=1e-5, atol=1e-5)


def test_fold_batchnorms_refuses_unfused_models_and_training_norms() -> None:
    model = create_model("edgevit_xxs").eval()
    with pytest.raises(RuntimeError, match="fold_batchnorm=False"):
        fold_batchnorms(model)
    model.fuse(fold_batchnorm=False)
    model.stages[0].blocks[0].local_agg.norm2.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        fold_batchnorms(model)


def test_fold_identity_into_depthwise_is_exact() -> None:
    torch.manual_seed(6)
    conv = nn.Conv2d(5, 5, 3, padding=1, groups=5)
    x = torch.randn(1, 5, 7, 4)
    expected = x + conv(x)
    fold_identity_into_depthwise(conv)
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="depthwise"):
        fold_identity_into_depthwise(nn.Conv2d(5, 5, 3, padding=1))


@pytest.mark.parametrize("rate", [2, 3, 4, 7])
def test_broadcast_local_prop_equals_transposed_convolution(rate: int) -> None:
    torch.manual_seed(rate)
    prop = DeconvProp(dim=6, rate=rate)
    x = torch.randn(2, 6, 3, 5)
    with torch.no_grad():
        expected = prop(x)
        use_broadcast_local_prop(prop)
        out = prop(x)
        out_channels_last = prop(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == expected.shape == (2, 6, 3 * rate, 5 * rate)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_channels_last, expected, rtol=1e-5, atol=1e-6)
    assert "broadcast_weight" not in prop.state_dict()


@pytest.mark.parametrize("gelu", [False, True])
def test_pointwise_linear_paths_agree(gelu: bool) -> None:
    """oneDNN's kernel (where available) and the F.linear / F.conv2d fallback give the layer."""
    torch.manual_seed(7)
    conv, linear = nn.Conv2d(12, 20, 1), nn.Linear(12, 20)
    x_map = torch.randn(2, 12, 5, 7).contiguous(memory_format=torch.channels_last)
    x_tokens = torch.randn(2, 9, 12)
    act = F.gelu if gelu else (lambda t: t)
    for layer, x in ((conv, x_map), (conv, x_map.contiguous()), (linear, x_tokens)):
        pointwise = PointwiseLinear(layer, gelu=gelu)
        with torch.no_grad():
            expected = act(layer(x))
            fast = pointwise(x)
            pointwise.onednn = False
            fallback = pointwise(x)
        torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fallback, expected, rtol=1e-5, atol=1e-5)


def test_onednn_linear_available_on_this_build() -> None:
    """The torch pinned here ships oneDNN's fused linear; without it the fast path is off."""
    assert onednn_linear_available() == torch.backends.mkldnn.is_available()
