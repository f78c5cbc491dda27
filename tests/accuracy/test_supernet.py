"""The weight-sharing supernet on a tiny space: extraction, sharing rules, the sandwich step,
BatchNorm recalibration, checkpoints, resume and the `supernet:CKPT` accuracy method."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from analysis.accuracy import AccuracyEvaluator, AccuracyMethod, load_digits_dataset
from analysis.accuracy.supernet import (
    CHECKPOINT_NAME,
    RECORD_NAME,
    SuperNet,
    SupernetRecipe,
    evaluate_subnet,
    export_supernet,
    extract_subnet,
    global_batch,
    load_supernet,
    make_optimizer,
    rank_share,
    recalibrate_batchnorm,
    sandwich_step,
    space_from_dict,
    space_to_dict,
    step_subnets,
    supernet_fingerprint,
    train_supernet,
)
from analysis.accuracy.supernet.model import _first_slice
from analysis.cost.search_space import SearchSpace
from edgevit import EdgeViT
from edgevit.config import EdgeViTConfig

TINY_SPACE = SearchSpace(
    head_dims=(8, 16),
    width_mults=((1, 2), (1, 2), (2,), (2, 3)),
    depths=((1, 2), (1,), (1, 2), (1,)),
    rates=((1, 2, 4), (1, 2), (1, 2), (1,)),
    mlp_ratios=(1.0, 2.0),
    base=EdgeViTConfig(widths=(16, 16, 32, 32), depths=(1, 1, 1, 1), sample_rates=(2, 2, 2, 1),
                       head_dim=16, local_kernel=3, name="tiny"),
)
TINY_RECIPE = dict(batch_size=16, random_subnets=1, save_every=2, warmup_fraction=0.25)


@pytest.fixture(scope="module")
def supernet() -> SuperNet:
    torch.manual_seed(0)
    net = SuperNet(TINY_SPACE, num_classes=10, in_chans=1)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode tests use them
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return net


def configs(net: SuperNet, n: int = 5) -> list[EdgeViTConfig]:
    rng = np.random.default_rng(1)
    return [net.largest, net.smallest] + [net.sample(rng) for _ in range(n)]


def test_largest_and_smallest_are_the_space_extremes(supernet) -> None:
    assert supernet.largest.widths == (32, 32, 32, 48) and supernet.largest.depths == (2, 1, 2, 1)
    assert supernet.largest.sample_rates == (2, 2, 2, 1) and supernet.largest.mlp_ratio == 2.0
    assert supernet.smallest.widths == (8, 8, 16, 16) and supernet.smallest.head_dim == 8
    assert supernet.smallest.sample_rates == (4, 2, 2, 1)
    assert supernet.largest.num_classes == 10 and supernet.largest.in_chans == 1


def test_an_extracted_subnet_is_a_plain_edgevit_with_the_supernets_outputs(supernet) -> None:
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    supernet.eval()
    seen_rates = set()
    for config in configs(supernet):
        rng = torch.random.get_rng_state()
        model = extract_subnet(supernet, config)
        assert torch.equal(torch.random.get_rng_state(), rng)  # built without drawing weights
        assert type(model) is EdgeViT and model.config == supernet.subnet_config(config)
        assert not model.training
        tensors = list(model.state_dict().values())
        assert all(t.device.type == "cpu" for t in tensors)
        assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())
        expected = supernet(x, config)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        seen_rates.add(config.sample_rates[0])
        # in train mode (batch statistics) too
        model.train()
        supernet.train()
        torch.testing.assert_close(model(x), supernet(x, config), rtol=1e-5, atol=1e-5)
        supernet.eval()
    assert len(seen_rates) >= 2  # more than one r of stage 0 was exercised


def test_subnets_take_the_first_channels_and_one_kernel_per_rate(supernet) -> None:
    config = supernet.smallest.replace(sample_rates=(2, 2, 2, 1))
    state = supernet.subnet_state(config)
    body = dict(supernet.named_parameters())
    qkv = body["body.stages.0.blocks.0.global_block.attn.qkv.weight"]  # (3·32, 32)
    sub = state["stages.0.blocks.0.global_block.attn.qkv.weight"]  # (3·8, 8)
    assert sub.shape == (24, 8)
    torch.testing.assert_close(sub[8:16], qkv[32:40, :8])  # k: its own first channels
    fc1 = state["stages.2.blocks.0.global_block.mlp.fc1.weight"]
    assert fc1.shape == (16, 16)  # width 16, mlp_ratio 1
    torch.testing.assert_close(fc1, body["body.stages.2.blocks.0.global_block.mlp.fc1.weight"]
                               [:16, :16])
    prop = "stages.0.blocks.0.global_block.attn.local_prop.weight"
    for r in (2, 4):
        sub = supernet.subnet_state(config.replace(sample_rates=(r, 2, 2, 1)))[prop]
        kernel = body[f"body.stages.0.blocks.0.global_block.attn.local_props.{r}.weight"]
        assert sub.shape == (8, 1, r, r)
        torch.testing.assert_close(sub, kernel[:8])
    # r = 1 has no LocalAgg and no LocalProp
    plain = supernet.subnet_state(config.replace(sample_rates=(1, 2, 2, 1)))
    assert not any(k.startswith("stages.0.blocks.0.local_agg") for k in plain)
    assert prop not in plain


def test_the_qkv_slice_by_hand() -> None:
    w = torch.arange(6 * 2, dtype=torch.float32).reshape(6, 2)  # q rows 0-1, k 2-3, v 4-5
    assert _first_slice(w, (3, 1), qkv=True).flatten().tolist() == [0.0, 4.0, 8.0]
    assert _first_slice(torch.arange(6.0), (3,), qkv=True).tolist() == [0.0, 2.0, 4.0]


def test_configs_outside_the_space_are_refused(supernet) -> None:
    with pytest.raises(ValueError):
        supernet.subnet_config(supernet.largest.replace(widths=(64, 32, 32, 48)))
    with pytest.raises(ValueError):
        supernet.subnet_config(supernet.largest.replace(sample_rates=(8, 2, 2, 1)))


def test_a_sandwich_step_trains_the_used_weights_only() -> None:
    torch.manual_seed(0)
    net = SuperNet(TINY_SPACE, num_classes=10, in_chans=1)
    recipe = SupernetRecipe(**TINY_RECIPE)
    optimizer = make_optimizer(net, recipe)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    subnets = [net.largest, net.smallest]  # stage-0 r: 2 and 4, never 1
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 10
    ce, kd = sandwich_step(net, optimizer, x, y, subnets, recipe)
    assert np.isfinite(ce) and ce > 0 and np.isfinite(kd) and kd >= 0
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "body.stages.0.blocks.0.global_block.attn.qkv.weight" in changed
    assert "body.stages.0.blocks.0.global_block.attn.local_props.4.weight" in changed
    assert "body.stages.0.blocks.0.global_block.attn.local_props.2.weight" in changed
    # the supernet's BatchNorm buffers are left alone by training (recalibrated per subnet)
    assert not any(k.endswith(("running_mean", "running_var")) for k in changed)


def test_every_rank_gets_its_share_and_the_same_subnets(supernet) -> None:
    batch = global_batch(100, 16, seed=3, step=7)  # epoch 1 (6 batches per epoch), batch 1
    assert len(batch) == 16 and len(set(batch.tolist())) == 16
    shares = [rank_share(batch, r, 4) for r in range(4)]
    assert np.concatenate(shares).tolist() == batch.tolist()
    with pytest.raises(ValueError, match="does not split evenly over 3 ranks"):
        rank_share(batch, 0, 3)
    a, b = step_subnets(supernet, 0, 5, 3), step_subnets(supernet, 0, 5, 3)
    assert [c.to_json() for c in a] == [c.to_json() for c in b]
    assert a[0] == supernet.largest and a[1] == supernet.smallest


def test_the_full_attention_subnet_joins_the_sandwich_when_asked(supernet) -> None:
    dense = supernet.full_attention
    assert dense.sample_rates == (1, 1, 1, 1)  # every stage of the tiny space allows r = 1
    assert (dense.widths, dense.depths, dense.mlp_ratio) == (
        supernet.largest.widths, supernet.largest.depths, supernet.largest.mlp_ratio)
    plain = step_subnets(supernet, 0, 5, 2)
    with_dense = step_subnets(supernet, 0, 5, 2, full_attention=True)
    assert dense not in plain[:2] and with_dense[2] == dense
    assert with_dense[:2] + with_dense[3:] == plain  # the random draws are unchanged
    # it trains the r = 1 path: the LayerNorm after propagation is skipped, qkv is not
    torch.manual_seed(0)
    net = SuperNet(TINY_SPACE, num_classes=10, in_chans=1)
    recipe = SupernetRecipe(**TINY_RECIPE, full_attention_subnet=True)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    sandwich_step(net, make_optimizer(net, recipe), x, torch.arange(8) % 10, [net.largest,
                  net.full_attention], recipe)
    changed = {k for k in before if not torch.equal(before[k], net.state_dict()[k])}
    assert "body.stages.0.blocks.0.global_block.attn.qkv.weight" in changed


def test_a_recipe_field_added_later_keeps_old_identities() -> None:
    old = SupernetRecipe().identity()
    assert "full_attention_subnet" not in old and "save_every" not in old
    assert SupernetRecipe.from_dict({k: v for k, v in SupernetRecipe().to_dict().items()
                                     if k != "full_attention_subnet"}).identity() == old
    dense = SupernetRecipe(full_attention_subnet=True).identity()
    assert dense == dict(old, full_attention_subnet=True)
    with pytest.raises(ValueError, match="full_attention_subnet 1 must be true or false"):
        SupernetRecipe(full_attention_subnet=1)


def test_batchnorm_recalibration_is_the_exact_average() -> None:
    model = nn.Sequential(nn.BatchNorm2d(2))
    model[0].running_mean.fill_(5.0)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 2, 3, 3, generator=gen) + 1.0 for _ in range(3)]
    recalibrate_batchnorm(model, batches)
    assert not model.training and model[0].momentum == 0.1
    torch.testing.assert_close(model[0].running_mean,
                               torch.cat(batches).mean(dim=(0, 2, 3)))


def test_fused_and_faithful_evaluation_agree(supernet) -> None:
    data = load_digits_dataset(32, max_per_class=5)
    for config in configs(supernet, 2):
        fused = evaluate_subnet(supernet, config, data, calib_images=40, eval_images=120)
        plain = evaluate_subnet(supernet, config, data, calib_images=40, eval_images=120,
                                fuse=False)
        assert fused.correct == plain.correct and fused.n_test == 120
        assert fused.calib_images == 40


def test_recalibrating_the_fused_form_gives_the_faithful_statistics(supernet) -> None:
    """evaluate_subnet recalibrates on the fused form (BatchNorms not yet folded): the
    statistics equal those of the faithful model recalibrated on the same images."""
    config = configs(supernet, 1)[0]
    faithful = extract_subnet(supernet, config)
    fused = extract_subnet(supernet, config).fuse(fold_batchnorm=False)
    gen = torch.Generator().manual_seed(3)
    batches = [torch.randn(8, 1, 32, 32, generator=gen) for _ in range(2)]
    recalibrate_batchnorm(faithful, batches)
    recalibrate_batchnorm(fused, batches)
    expected = {n: m for n, m in faithful.named_modules() if isinstance(m, nn.BatchNorm2d)}
    got = {n: m for n, m in fused.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert got.keys() == expected.keys() and len(got) > 1
    for name, norm in got.items():
        assert not norm.training and norm.num_batches_tracked == 2
        torch.testing.assert_close(norm.running_mean, expected[name].running_mean,
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(norm.running_var, expected[name].running_var,
                                   rtol=1e-4, atol=1e-5)


def test_prefix_counts_equal_scoring_fewer_images(supernet) -> None:
    data = load_digits_dataset(32)  # 360 held-out images: prefixes cross batch edges
    config = configs(supernet, 1)[0]
    full = evaluate_subnet(supernet, config, data, calib_images=40, eval_images=None,
                           batch_size=64, prefixes=(1, 64, 100, 300, 10_000))
    assert set(full.prefix_correct) == {1, 64, 100, 300}  # 10,000 > the held-out split
    for m, correct in full.prefix_correct.items():
        alone = evaluate_subnet(supernet, config, data, calib_images=40, eval_images=m,
                                batch_size=64)
        assert alone.correct == correct and alone.n_test == m


def test_checkpoint_resume_and_the_supernet_method(tmp_path) -> None:
    """4 steps straight == 2 steps, then resume for 2: the same weights and losses; the
    checkpoint loads with weights_only; `supernet:CKPT` scores a subnet."""
    options = dict(data="digits", img_size=32, space=TINY_SPACE, max_per_class=8, seed=1,
                   recipe=SupernetRecipe(steps=4, **TINY_RECIPE))
    straight = train_supernet(tmp_path / "a", **options)
    train_supernet(tmp_path / "b", stop_after=2, **options)
    half = json.loads((tmp_path / "b" / RECORD_NAME).read_text())
    assert half["step"] == 2 and not half["complete"]
    with pytest.raises(ValueError, match="pass --resume"):
        train_supernet(tmp_path / "b", **options)
    with pytest.raises(ValueError, match="another seed"):
        train_supernet(tmp_path / "b", resume=True, **{**options, "seed": 2})
    with pytest.raises(ValueError, match="another recipe"):
        train_supernet(tmp_path / "b", resume=True, **{**options, "recipe": SupernetRecipe(
            steps=4, full_attention_subnet=True, **TINY_RECIPE)})
    resumed = train_supernet(tmp_path / "b", resume=True, **options)
    assert resumed["losses"] == straight["losses"] and len(straight["losses"]) == 4
    a = torch.load(tmp_path / "a" / CHECKPOINT_NAME, weights_only=True)
    b = torch.load(tmp_path / "b" / CHECKPOINT_NAME, weights_only=True)
    assert a["step"] == b["step"] == 4
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    record = json.loads((tmp_path / "a" / RECORD_NAME).read_text())
    assert record["complete"] and record["seed"] == 1 and record["world_size"] == 1
    assert record["data"] == dict(source="digits", img_size=32, max_per_class=8)
    assert record["recipe"]["steps"] == 4 and space_from_dict(record["space"]) == TINY_SPACE
    assert space_to_dict(TINY_SPACE) == record["space"]

    net, meta = load_supernet(tmp_path / "a")
    assert meta["step"] == 4 and not net.training
    evaluator = AccuracyEvaluator(f"supernet:{tmp_path / 'a'}", eval_images=100,
                                  calib_images=64)
    result = evaluator.evaluate(TINY_SPACE.decode(TINY_SPACE.sample(np.random.default_rng(0))))
    assert 0.0 <= result.accuracy <= 1.0 and result.method.startswith("supernet:")
    assert result.details["n_test"] == 100 and result.details["calib_images"] == 64
    assert result.dataset["name"] == "digits" and result.seconds < 30
    assert AccuracyMethod.parse(f"supernet:{tmp_path}").kind == "supernet"
    with pytest.raises(ValueError, match="supernet checkpoint not found"):
        AccuracyEvaluator(f"supernet:{tmp_path / 'nowhere'}").evaluate(net.largest)


def test_a_warm_start_begins_from_the_given_supernet_and_is_recorded(tmp_path) -> None:
    """--init-from: step 0 holds the source's weights (an lr of 1e-12 keeps them to float32
    rounding after one step, while a cold start is far off); the record and the fingerprint
    name the source; resuming with another source, or a source of another space or data,
    is refused."""
    options = dict(data="digits", img_size=32, space=TINY_SPACE, max_per_class=8, seed=1)
    source = train_supernet(tmp_path / "source", recipe=SupernetRecipe(steps=2, **TINY_RECIPE),
                            **{**options, "seed": 2})  # other initial weights than "cold"
    still = SupernetRecipe(steps=2, **{**TINY_RECIPE, "lr": 1e-12, "save_every": 1})
    warm = train_supernet(tmp_path / "warm", recipe=still, init_from=tmp_path / "source",
                          stop_after=1, **options)
    cold = train_supernet(tmp_path / "cold", recipe=still, stop_after=1, **options)
    weights = {name: torch.load(tmp_path / name / CHECKPOINT_NAME, weights_only=True)["model"]
               for name in ("source", "warm", "cold")}
    for key, tensor in weights["source"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(weights["warm"][key], tensor, rtol=1e-5, atol=1e-7)
    assert max((weights["cold"][k] - t).abs().max().item()
               for k, t in weights["source"].items() if t.is_floating_point()) > 0.1
    assert warm["init_from"] == dict(path=str(tmp_path / "source"),
                                     fingerprint=supernet_fingerprint(source))
    assert supernet_fingerprint(warm)["init_from"] == supernet_fingerprint(source)
    assert "init_from" not in cold and "init_from" not in supernet_fingerprint(cold)
    with pytest.raises(ValueError, match="another init_from"):
        train_supernet(tmp_path / "warm", recipe=still, resume=True, **options)
    with pytest.raises(ValueError, match="another init_from"):
        train_supernet(tmp_path / "cold", recipe=still, resume=True,
                       init_from=tmp_path / "source", **options)
    resumed = train_supernet(tmp_path / "warm", recipe=still, resume=True,
                             init_from=tmp_path / "source", **options)
    assert resumed["step"] == 2 and resumed["init_from"] == warm["init_from"]
    with pytest.raises(ValueError, match="another data"):
        train_supernet(tmp_path / "other", recipe=still, init_from=tmp_path / "source",
                       **{**options, "img_size": 48})
    with pytest.raises(ValueError, match="--init-from: supernet checkpoint not found"):
        train_supernet(tmp_path / "other", recipe=still, init_from=tmp_path / "nowhere",
                       **options)


def test_an_fp16_export_loads_scores_alike_and_cannot_be_resumed(tmp_path, capsys) -> None:
    from analysis.cli import main

    options = dict(data="digits", img_size=32, space=TINY_SPACE, max_per_class=8,
                   recipe=SupernetRecipe(steps=2, **TINY_RECIPE))
    record = train_supernet(tmp_path / "run", **options)
    out = tmp_path / "ship" / "supernet-fp16.pt"
    assert main(["supernet", "export", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert "weights in float16" in capsys.readouterr().out
    stored = torch.load(out, weights_only=True)
    assert "optimizer" not in stored and stored["weights_dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in stored["model"].values()
               if v.is_floating_point())
    full = torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=True)
    weights_fp32 = sum(v.numel() * 4 for v in full["model"].values() if v.is_floating_point())
    assert sum(v.numel() * v.element_size() for v in stored["model"].values()
               if v.is_floating_point()) == weights_fp32 // 2
    # the training checkpoint also holds AdamW's two moments in float32
    assert out.stat().st_size < (tmp_path / "run" / CHECKPOINT_NAME).stat().st_size / 3

    net32, meta32 = load_supernet(tmp_path / "run")
    net16, meta16 = load_supernet(out)
    assert next(net16.parameters()).dtype == torch.float32  # computed in float32
    fp32, fp16 = supernet_fingerprint(meta32), supernet_fingerprint(meta16)
    assert fp32 == supernet_fingerprint(record) and fp16 == dict(fp32, weights_dtype="float16")
    data = load_digits_dataset(32, max_per_class=8)
    for config in configs(net32, 2):
        a = evaluate_subnet(net32, config, data, calib_images=40, eval_images=None)
        b = evaluate_subnet(net16, config, data, calib_images=40, eval_images=None)
        assert abs(a.correct - b.correct) <= 2  # fp16 rounding may flip a borderline image

    (tmp_path / "again").mkdir()
    out.rename(tmp_path / "again" / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match="inference export.*cannot be resumed"):
        train_supernet(tmp_path / "again", resume=True, **options)
    with pytest.raises(ValueError, match="overwrite its own source"):
        export_supernet(tmp_path / "run", tmp_path / "run" / CHECKPOINT_NAME)
    foreign = tmp_path / "notes.pt"
    foreign.write_bytes(b"someone else's file")
    with pytest.raises(ValueError, match="is not a supernet checkpoint: refusing"):
        export_supernet(tmp_path / "run", foreign)
    assert foreign.read_bytes() == b"someone else's file"
    with pytest.raises(ValueError, match="a folder or special file"):
        export_supernet(tmp_path / "run", tmp_path / "ship")
    export_supernet(tmp_path / "run", tmp_path / "again" / CHECKPOINT_NAME)  # ours: replaced


def test_the_cli_passes_the_full_attention_subnet_and_a_warm_start_on(tmp_path) -> None:
    from analysis.cli import main

    (tmp_path / "space.json").write_text(json.dumps(space_to_dict(TINY_SPACE)))
    train = ["supernet", "train", "--data", "digits", "--steps", "1", "--batch-size", "16",
             "--max-per-class", "2", "--space", str(tmp_path / "space.json"), "--json"]
    assert main([*train, "--full-attention-subnet", "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / RECORD_NAME).read_text())
    assert record["recipe"]["full_attention_subnet"] is True and record["step"] == 1
    assert supernet_fingerprint(record)["recipe"]["full_attention_subnet"] is True
    assert main([*train, "--init-from", str(tmp_path / "out"), "--out",
                 str(tmp_path / "warm")]) == 0
    warm = json.loads((tmp_path / "warm" / RECORD_NAME).read_text())
    assert warm["init_from"]["fingerprint"] == supernet_fingerprint(record)


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    from analysis.cli import main

    assert main(["supernet", "eval", str(tmp_path / "nowhere"), "edgevit_xxs"]) == 2
    assert "error: supernet checkpoint not found" in capsys.readouterr().err
    (tmp_path / "space.json").write_text('{"head_dims": [8]}')
    assert main(["supernet", "train", "--space", str(tmp_path / "space.json"), "--out",
                 str(tmp_path / "out")]) == 2
    assert "not a search space" in capsys.readouterr().err
    assert main(["supernet", "train", "--steps", "0", "--out", str(tmp_path / "out")]) == 2
    assert "argument --steps: 0 is not in 1..10,000,000" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
