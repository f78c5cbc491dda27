"""The model against the official release: parameters, test vectors, checkpoints, sizes, timm."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import timm
import torch

import edgevit
from edgevit import PRESET_PARAMS, EdgeViT, checkpoint_filter_fn, create_model

PRESET_NAMES = list(edgevit.PRESETS)


def official_zero_state_dict(official_state_dicts: dict, name: str) -> dict[str, torch.Tensor]:
    """A state_dict with the official keys and shapes (zeros), as the release would save it."""
    out = {}
    for key, shape in official_state_dicts[name]["state_dict"].items():
        dtype = torch.long if key.endswith("num_batches_tracked") else torch.float32
        out[key] = torch.zeros(shape, dtype=dtype)
    return out


def official_filled_model(vectors, official_state_dicts: dict, name: str) -> EdgeViT:
    """Our model loaded with the reference weights `fill(official state_dict)`."""
    model = create_model(name).eval()
    weights = vectors.fill(official_zero_state_dict(official_state_dicts, name))
    model.load_state_dict(checkpoint_filter_fn(weights, model), strict=True)
    return model


def relative_error(y: np.ndarray, y_ref: np.ndarray) -> float:
    return float(np.abs(y - y_ref).max() / np.abs(y_ref).max())


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_parameter_counts_match_release(name: str, official_state_dicts: dict) -> None:
    model = create_model(name)
    assert model.num_params() == PRESET_PARAMS[name] == official_state_dicts[name]["num_params"]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_official_keys_map_onto_ours(name: str, official_state_dicts: dict) -> None:
    model = create_model(name)
    mapped = checkpoint_filter_fn(official_zero_state_dict(official_state_dicts, name), model)
    ours = model.state_dict()
    assert set(mapped) == set(ours)
    assert all(tuple(mapped[k].shape) == tuple(ours[k].shape) for k in ours)


@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "matmul"])
def test_reference_logits_xxs_224(vectors, official_state_dicts, reference_dir, fused) -> None:
    model = official_filled_model(vectors, official_state_dicts, "edgevit_xxs")
    model.set_fused_attn(fused)
    with torch.no_grad():
        logits = model(vectors.image(224, 224)).numpy()
    expected = np.load(reference_dir / "edgevit_xxs_224_logits.npy")
    assert logits.shape == expected.shape == (1, 1000)
    assert relative_error(logits, expected) <= 1e-4


def test_reference_features_xxs_512(vectors, official_state_dicts, reference_dir) -> None:
    model = official_filled_model(vectors, official_state_dicts, "edgevit_xxs")
    with torch.no_grad():
        features = model.forward_features(vectors.image(512, 512)).numpy()
    expected = np.load(reference_dir / "edgevit_xxs_512_features.npy")
    assert features.shape == expected.shape == (1, 288, 16, 16)
    assert relative_error(features, expected) <= 1e-4


def test_center_sampler_differs_from_official(vectors, official_state_dicts, reference_dir) -> None:
    """The vectors can tell the samplers apart: the paper's "center" is not the release's pick."""
    model = official_filled_model(vectors, official_state_dicts, "edgevit_xxs")
    for module in model.modules():
        if type(module).__name__ == "Sampler":
            module.kind = "center"
    with torch.no_grad():
        logits = model(vectors.image(224, 224)).numpy()
    expected = np.load(reference_dir / "edgevit_xxs_224_logits.npy")
    assert relative_error(logits, expected) > 1e-3


def test_checkpoint_file_loads_with_weights_only(tmp_path, vectors, official_state_dicts) -> None:
    weights = vectors.fill(official_zero_state_dict(official_state_dicts, "edgevit_xxs"))
    path = tmp_path / "official.pth"
    torch.save({"model": weights}, path)
    model = create_model("edgevit_xxs", checkpoint_path=path)
    reference = official_filled_model(vectors, official_state_dicts, "edgevit_xxs")
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_checkpoint_mismatch_names_keys(tmp_path, vectors, official_state_dicts) -> None:
    weights = vectors.fill(official_zero_state_dict(official_state_dicts, "edgevit_xxs"))
    del weights["head.bias"]
    weights["extra.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(weights, path)
    with pytest.raises(ValueError, match=r"head\.bias.*extra\.weight"):
        create_model("edgevit_xxs", checkpoint_path=path)


def test_checkpoint_refuses_pickled_objects(tmp_path) -> None:
    path = tmp_path / "pickled.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a module, not tensors: needs pickle
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        create_model("edgevit_xxs", checkpoint_path=path)


@pytest.mark.parametrize("name", sorted(edgevit.ABLATIONS))
def test_every_ablation_trains_one_step(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, drop_path_rate=0.1).train()
    x = torch.randn(2, 3, 96, 128)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize("size", [(97, 160), (225, 301), (32, 32), (33, 47)])
@pytest.mark.parametrize("name", ["edgevit_xxs", "ablation_la_lsa", "ablation_wo_lp",
                                  "ablation_sampler_max", "ablation_lp_bilinear"])
def test_odd_sizes_run_and_match_stage_shapes(name: str, size: tuple[int, int]) -> None:
    model = create_model(name).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, *size))
        logits = model(torch.randn(1, 3, *size))
    c, h, w = model.stage_shapes(*size)[-1]
    assert features.shape == (1, c, h, w)
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_sparse_attention_on_a_map_not_divisible_by_r() -> None:
    """14×14 map, r = 4: the 4×4 top-left delegates attend, LocalProp fills 16×16, crop to 14."""
    from edgevit.layers import GlobalSparseAttn

    torch.manual_seed(0)
    attn = GlobalSparseAttn(dim=8, num_heads=2, rate=4).eval()
    x_map = torch.randn(1, 8, 14, 14)
    with torch.no_grad():
        out = attn(x_map.flatten(2).transpose(1, 2), 14, 14)  # (1, 196, 8)
        delegates = x_map[:, :, ::4, ::4].flatten(2).transpose(1, 2)  # (1, 16, 8)
        q, k, v = attn.qkv(delegates).reshape(1, 16, 3, 2, 4).permute(2, 0, 3, 1, 4)
        mixed = torch.softmax(q @ k.transpose(-2, -1) * 4**-0.5, -1) @ v  # (1, 2, 16, 4)
        mixed = mixed.transpose(1, 2).reshape(1, 16, 8).transpose(1, 2).reshape(1, 8, 4, 4)
        spread = torch.nn.functional.conv_transpose2d(
            mixed, attn.local_prop.weight, attn.local_prop.bias, stride=4, groups=8
        )[:, :, :14, :14]
        expected = attn.proj(attn.norm(spread.flatten(2).transpose(1, 2)))
    assert out.shape == (1, 196, 8)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.randn(3, 224, 224), "4-D"),
        (torch.randn(1, 1, 224, 224), "3 input channels"),
        (torch.randn(1, 3, 31, 224), "H, W ≥ 32"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.long), "floating-point"),
    ],
)
def test_wrong_inputs_raise_clear_errors(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("edgevit_xxs")(bad)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_timm_features_only_gives_four_stage_maps(name: str) -> None:
    model = timm.create_model(name, features_only=True)
    maps = model(torch.randn(1, 3, 224, 224))
    config = edgevit.preset_config(name)
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    assert [m.shape[1] for m in maps] == list(config.widths)
    assert [m.shape[-1] for m in maps] == [56, 28, 14, 7]


def test_timm_create_model_matches_ours() -> None:
    ours = create_model("edgevit_xs", num_classes=7)
    theirs = timm.create_model("edgevit_xs", num_classes=7)
    assert theirs.num_params() == ours.num_params()
    assert theirs.pretrained_cfg["architecture"] == "edgevit_xs"
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("edgevit_xs", pretrained=True)


def test_registering_a_name_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        edgevit.register_config("edgevit_xxs", edgevit.preset_config("edgevit_s"))


def assert_fresh_python_runs(script: str) -> None:
    """Run `script` in a new interpreter (nothing imported yet); its asserts must hold."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_name_timm_already_has_warns_and_ours_wins() -> None:
    """Another package (the official release's code, say) registered `edgevit_xxs` in timm
    first: importing ours warns, naming both, and ours is what timm then builds."""
    script = (
        "import warnings, timm\n"
        "from timm.models import register_model\n"
        "def edgevit_xxs(pretrained=False, **kwargs):\n"
        "    raise AssertionError('the earlier registration was used')\n"
        "register_model(edgevit_xxs)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import edgevit\n"
        "messages = [str(w.message) for w in caught if 'edgevit_xxs' in str(w.message)]\n"
        "assert len(messages) == 1 and '__main__' in messages[0] and 'edgevit.registry' in "
        "messages[0], messages\n"
        "assert type(timm.create_model('edgevit_xxs')) is edgevit.EdgeViT\n"
    )
    assert_fresh_python_runs(script)


def test_importing_edgevit_leaves_timm_unimported_until_a_user_imports_it() -> None:
    """`import edgevit` costs no timm/torchvision import; the timm names appear the moment
    timm is imported, through any of its submodules."""
    script = (
        "import sys, edgevit\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('timm', 'torchvision')]\n"
        "assert not loaded, loaded\n"
        "assert type(edgevit.create_model('edgevit_xxs')) is edgevit.EdgeViT\n"
        "from timm.models import create_model, is_model\n"
        "assert all(is_model(n) for n in edgevit.list_models()), edgevit.list_models()\n"
        "model = create_model('edgevit_s', features_only=True)\n"
        "assert model.feature_info.channels() == list(edgevit.preset_config('edgevit_s').widths)\n"
        "assert not [f for f in sys.meta_path if 'Timm' in type(f).__name__]\n"
    )
    assert_fresh_python_runs(script)


def test_drop_path_draws_as_timms_and_is_the_identity_in_eval() -> None:
    from timm.layers import DropPath as TimmDropPath

    from edgevit.layers import DropPath

    x = torch.randn(64, 5, 3, 3)
    ours, theirs = DropPath(0.3).train(), TimmDropPath(0.3).train()
    torch.manual_seed(0)
    expected = theirs(x)
    torch.manual_seed(0)
    got = ours(x)
    assert torch.equal(got, expected)
    dropped = (got.flatten(1) == 0).all(dim=1)
    assert 0 < dropped.sum() < 64  # whole samples dropped, the others scaled by 1 / 0.7
    torch.testing.assert_close(got[~dropped], x[~dropped] / 0.7)
    assert ours.eval()(x) is x
    with pytest.raises(ValueError, match="drop_prob"):
        DropPath(1.0)


def test_reset_classifier_follows_timms_contract() -> None:
    model = create_model("edgevit_xxs")
    model.reset_classifier(7, global_pool="avg")
    assert model.get_classifier().out_features == 7 == model.config.num_classes
    model.reset_classifier(0)
    assert isinstance(model.head, torch.nn.Identity)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 288)
    with pytest.raises(ValueError, match="average only"):
        model.reset_classifier(5, global_pool="max")


def test_blocks_refuse_misspelt_keywords() -> None:
    from edgevit.layers import ConvMixer, LocallyGroupedAttn, SpatialReductionAttn

    for layer, kwargs in ((ConvMixer, dict(dim=8, kernel=3)),
                          (LocallyGroupedAttn, dict(dim=8, kernel=3, num_heads=2)),
                          (SpatialReductionAttn, dict(dim=8, num_heads=2, rate=2))):
        layer(**kwargs)
        with pytest.raises(TypeError, match="qkv_bais"):
            layer(**kwargs, qkv_bais=False)


def test_the_models_blocks_are_built_from_its_block_configs() -> None:
    from edgevit.layers import LGLBlock

    config = edgevit.preset_config("ablation_la_lsa")
    model = EdgeViT(config)
    for i, stage in enumerate(model.stages):
        block = config.block_config(i)
        twin = LGLBlock(block)
        assert [(n, p.shape) for n, p in stage.blocks[0].named_parameters()] == \
            [(n, p.shape) for n, p in twin.named_parameters()]
        assert stage.downsample.proj.stride == (config.stem_config(i).stride,) * 2


def test_forward_head_pre_logits() -> None:
    model = create_model("edgevit_xxs").eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, 64, 64))
        pooled = model.forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
    assert pooled.shape == (2, 288) and logits.shape == (2, 1000)
    assert torch.allclose(model.head(pooled), logits)


@pytest.mark.parametrize("name", sorted(edgevit.ABLATIONS))
def test_ablations_sit_at_the_papers_half_gmac_scale(name: str) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(name).eval().set_fused_attn(False)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    macs = counter.get_total_flops() / 2  # FlopCounterMode counts 2 per multiply-add
    assert 0.5e9 <= macs <= 0.6e9


@pytest.mark.parametrize("name, total", [("edgevit_xxs", 4723.8076927708),
                                         ("ablation_la_lsa", 4177.2500563415),
                                         ("ablation_wo_la", 4444.6137524187)])
def test_a_seed_builds_the_same_network_as_before(name: str, total: float) -> None:
    """Layers draw their initial weights in a fixed order, so a seed gives the same network:
    the sums were computed by the code before the per-stage block config (commit 8aadb27);
    the committed studies (proxies at initialisation, seeded training) depend on it."""
    torch.manual_seed(0)
    model = create_model(name)
    total_now = sum(float(p.detach().double().sum()) for p in model.parameters())
    assert total_now == pytest.approx(total, abs=1e-6)
