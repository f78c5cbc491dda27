"""The accuracy axis: rank statistics on hand-made examples, proxies, short training, datasets,
the `edgevit accuracy` command and the committed study."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.accuracy import (
    FASHION_STUDY,
    PROXIES,
    STUDY_JSON,
    AccuracyEvaluator,
    AccuracyMethod,
    DatasetError,
    TrainRecipe,
    average_ranks,
    bootstrap_interval,
    build_model,
    cheapest_comparable,
    compute_proxy,
    correlation_table,
    first_per_class,
    kendall_tau,
    load_digits_dataset,
    load_image_folder,
    load_study,
    proxy_scores,
    spearman_rho,
    stratified_split,
    study_arrays,
    train_and_evaluate,
)
from analysis.cli import main
from analysis.cost import model_cost
from edgevit.config import PRESETS, EdgeViTConfig

# A network small enough to train in seconds: 4 stages of one block, 16..64 channels.
TINY = EdgeViTConfig(widths=(16, 32, 48, 64), depths=(1, 1, 1, 1), sample_rates=(2, 2, 2, 1),
                     head_dim=16, mlp_ratio=2.0, name="tiny")


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset(32)


# ---- rank statistics ------------------------------------------------------------------------

def test_rank_correlation_on_a_hand_made_example() -> None:
    # y swaps two neighbouring pairs of x: 8 concordant, 2 discordant of 10 pairs -> τ = 0.6;
    # rank differences (0, 1, 1, 1, 1): ρ = 1 − 6·4 / (5·24) = 0.8
    x, y = [1, 2, 3, 4, 5], [1, 3, 2, 5, 4]
    assert kendall_tau(x, y) == pytest.approx(0.6)
    assert spearman_rho(x, y) == pytest.approx(0.8)
    assert kendall_tau(x, y[::-1]) == pytest.approx(-0.6)


def test_rank_correlation_with_ties_by_hand() -> None:
    # pairs: 4 concordant, one tied in x only, one tied in y only -> τ-b = 4 / √(5·5) = 0.8;
    # average ranks (1, 2.5, 2.5, 4) and (1.5, 1.5, 3, 4): ρ = 3.75 / 4.5
    x, y = [1, 2, 2, 3], [1, 1, 2, 3]
    assert kendall_tau(x, y) == pytest.approx(0.8)
    assert spearman_rho(x, y) == pytest.approx(3.75 / 4.5)
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_rank_correlation_edge_cases() -> None:
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert spearman_rho([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman_rho([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError, match="one length"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="non-finite"):
        spearman_rho([1, 2, float("nan")], [1, 2, 3])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=3, max_size=12))
def test_rank_correlation_properties(pairs) -> None:
    x, y = np.array(pairs, dtype=float).T
    tau, rho = kendall_tau(x, y), spearman_rho(x, y)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(tau) and math.isnan(rho)
        return
    assert -1 - 1e-12 <= tau <= 1 + 1e-12 and -1 - 1e-12 <= rho <= 1 + 1e-12
    # ranks only: a strictly increasing transform of x changes nothing; swapping is symmetric
    assert kendall_tau(np.exp(x) + x**3, y) == pytest.approx(tau)
    assert spearman_rho(np.exp(x) + x**3, y) == pytest.approx(rho)
    assert kendall_tau(y, x) == pytest.approx(tau)
    assert kendall_tau(-x, y) == pytest.approx(-tau)


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(1)
    x = np.arange(30.0)
    y = x + rng.normal(0, 8, size=30)
    lo, hi = bootstrap_interval(x, y, kendall_tau, n_resamples=500, seed=3)
    assert (lo, hi) == bootstrap_interval(x, y, kendall_tau, n_resamples=500, seed=3)
    assert -1 <= lo < kendall_tau(x, y) < hi <= 1
    assert bootstrap_interval(x, 2 * x, spearman_rho, n_resamples=200) == (1.0, 1.0)
    table = correlation_table({"good": y, "bad": -y}, x, {"good": 1.0, "bad": 0.1},
                              n_resamples=200)
    assert [r["method"] for r in table] == ["good", "bad"]
    assert table[0]["tau"] == pytest.approx(-table[1]["tau"])


def test_cheapest_comparable_prefers_a_cheap_method_within_the_best_interval() -> None:
    rows = [dict(method="a", tau=0.5, tau_ci=(0.3, 0.7), seconds=5.0),
            dict(method="b", tau=0.35, tau_ci=(0.1, 0.6), seconds=0.01),
            dict(method="c", tau=0.2, tau_ci=(0.0, 0.4), seconds=0.001)]
    assert cheapest_comparable(rows)["method"] == "b"
    rows[1]["tau"] = 0.25  # now below a's interval
    assert cheapest_comparable(rows)["method"] == "a"


# ---- methods, proxies ----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["proxy", "proxy:", "zen:synflow", "proxy:flops", "train"])
def test_bad_methods_are_rejected(method) -> None:
    with pytest.raises(ValueError, match="accuracy method"):
        AccuracyMethod.parse(method)


def test_every_proxy_is_finite_and_deterministic(digits) -> None:
    first = proxy_scores(TINY, digits, seed=0)
    again = proxy_scores(TINY, digits, seed=0)
    assert set(first) == set(PROXIES) >= {"synflow", "jacob_cov", "snip", "grad_norm",
                                          "params", "macs"}
    for name, (score, seconds) in first.items():
        assert math.isfinite(score) and seconds >= 0, name
        assert score == again[name][0], name
    adapted = TINY.replace(num_classes=10, in_chans=1)
    assert first["params"][0] == pytest.approx(math.log10(model_cost(adapted).params))
    assert first["macs"][0] == pytest.approx(math.log10(model_cost(adapted, (32, 32)).macs))
    assert first["synflow"][0] > 0 and first["snip"][0] > 0 and first["grad_norm"][0] > 0


def test_proxies_depend_on_the_seed_and_leave_the_model_alone(digits) -> None:
    other = proxy_scores(TINY, digits, ("snip", "jacob_cov"), seed=1)
    base = proxy_scores(TINY, digits, ("snip", "jacob_cov"), seed=0)
    assert other["snip"][0] != base["snip"][0]
    model = build_model(TINY, digits, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from analysis.accuracy import compute_proxy

    images, labels = digits.test[:16]
    for name in PROXIES:
        compute_proxy(name, model, images, labels)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_search_objective_scores_with_a_proxy() -> None:
    from analysis.nas import accuracy_objective

    score = accuracy_objective("proxy:grad_norm").evaluate(TINY)
    assert math.isfinite(score) and score > 0


# ---- datasets ---------------------------------------------------------------------------------

def test_digits_split_is_stratified_and_deterministic(digits) -> None:
    from analysis.accuracy.datasets import _digits_arrays

    _, labels = _digits_arrays()
    train, test = stratified_split(labels, 0.2, seed=0)
    assert len(train) + len(test) == 1797 and not set(train) & set(test)
    assert np.array_equal(test, stratified_split(labels, 0.2, seed=0)[1])
    assert np.all(np.abs(np.bincount(labels[test]) - 0.2 * np.bincount(labels)) <= 1)
    assert digits.describe() == dict(name="digits", n_train=1437, n_test=360, num_classes=10,
                                     in_chans=1, img_size=32)
    image, label = digits.train[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32 and 0 <= int(label) < 10
    kept = first_per_class(labels, train, 3, seed=0)
    assert np.bincount(labels[kept]).tolist() == [3] * 10


def test_missing_or_empty_folders_are_clear_errors(tmp_path) -> None:
    with pytest.raises(DatasetError, match="dataset folder not found"):
        load_image_folder(tmp_path / "nowhere", 32)
    with pytest.raises(DatasetError, match="no images"):
        load_image_folder(tmp_path, 32)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="no images"):
        load_image_folder(tmp_path, 32)


def _write_digit_pngs(root, per_class: int) -> None:
    """Real images on disk: the first `per_class` digits 0 and 1 as 8×8 PNGs."""
    from PIL import Image

    from analysis.accuracy.datasets import _digits_arrays

    images, labels = _digits_arrays()
    for digit in (0, 1):
        folder = root / f"digit{digit}"
        folder.mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(labels == digit)[:per_class]):
            Image.fromarray((images[index] * 255).astype(np.uint8)).save(folder / f"{i}.png")


def test_an_image_folder_trains_end_to_end(tmp_path) -> None:
    _write_digit_pngs(tmp_path / "data", per_class=10)
    data = load_image_folder(tmp_path / "data", 32)
    assert data.describe() == dict(name=str(tmp_path / "data"), n_train=16, n_test=4,
                                   num_classes=2, in_chans=3, img_size=32)
    result = AccuracyEvaluator(f"train:{tmp_path / 'data'}", img_size=32, epochs=1,
                               progress=False).evaluate(TINY)
    assert result.method == f"train:{tmp_path / 'data'}@32"  # a folder's default side is 224
    assert 0.0 <= result.accuracy <= 1.0 and result.details["n_test"] == 4
    proxy = AccuracyEvaluator("proxy:snip", data=str(tmp_path / "data"), img_size=32).evaluate(TINY)
    assert math.isfinite(proxy.accuracy) and proxy.details["batch_size"] == 16
    # a train/ + val/ layout is used as given
    _write_digit_pngs(tmp_path / "split" / "train", per_class=6)
    _write_digit_pngs(tmp_path / "split" / "val", per_class=3)
    split = load_image_folder(tmp_path / "split", 32)
    assert (len(split.train), len(split.test)) == (12, 6)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height RGB pixels but holds one tiny IDAT chunk: Pillow reads
    its size from the header; decoding it would allocate width × height × 3 bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name, content, message", [
    ("bomb.png", _png_header(60_000, 60_000), "above the limit of 67,108,864"),  # 10.8 GB RGB
    ("wide.png", _png_header(10_000, 8_000), "above the limit"),  # under Pillow's own guard
    ("text.png", b"not an image at all", "cannot be read"),
    ("cut.png", _png_header(64, 64), "cannot be read"),  # truncated pixel data
])
def test_a_bad_image_in_a_train_folder_is_a_clear_error(tmp_path, capsys, name, content,
                                                        message) -> None:
    """Through the dataset and through `edgevit accuracy --method train:PATH`: a DatasetError
    naming the file, in bounded memory (the bomb is refused from its header)."""
    from analysis.cli import main

    _write_digit_pngs(tmp_path / "data", per_class=4)
    bad = tmp_path / "data" / "digit0" / name
    bad.write_bytes(content)
    data = load_image_folder(tmp_path / "data", 32)
    items = [data.train, data.test]
    with pytest.raises(DatasetError, match=message) as err:
        for split in items:
            for i in range(len(split)):
                split[i]
    assert str(bad) in str(err.value)
    code = main(["accuracy", "edgevit_xxs", "--method", f"train:{tmp_path / 'data'}",
                 "--img-size", "32", "--epochs", "1"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_fifo_in_a_train_folder_is_refused_not_waited_on(tmp_path) -> None:
    import os

    _write_digit_pngs(tmp_path / "data", per_class=4)
    os.mkfifo(tmp_path / "data" / "digit1" / "pipe.png")
    data = load_image_folder(tmp_path / "data", 32)
    with pytest.raises(DatasetError, match="is not a regular file"):
        for split in (data.train, data.test):
            for i in range(len(split)):
                split[i]


# ---- short training ---------------------------------------------------------------------------

def test_short_training_on_a_tiny_slice_beats_chance() -> None:
    data = load_digits_dataset(32, max_per_class=30)  # 300 training images, 360 held out
    recipe = TrainRecipe(epochs=6, batch_size=32)
    first = train_and_evaluate(TINY, data, recipe, seed=0, progress=False)
    again = train_and_evaluate(TINY, data, recipe, seed=0, progress=False)
    assert (first.n_train, first.n_test, first.steps) == (300, 360, 60)
    assert first.top1 >= 0.5, f"chance is 0.1, got {first.top1}"
    assert first.top1 == again.top1 and first.final_loss == again.final_loss


def test_channels_last_is_the_same_training_and_the_curve_has_one_point_per_epoch() -> None:
    data = load_digits_dataset(32, max_per_class=10)  # 100 training images, 360 held out
    nhwc = train_and_evaluate(TINY, data, TrainRecipe(epochs=3, batch_size=20), seed=0,
                              progress=False, curve_images=50)
    nchw = train_and_evaluate(TINY, data, TrainRecipe(epochs=3, batch_size=20,
                                                      channels_last=False), seed=0,
                              progress=False)
    # one layout or the other: the same arithmetic up to the order of float sums
    assert nhwc.final_loss == pytest.approx(nchw.final_loss, rel=1e-3)
    assert abs(nhwc.top1 - nchw.top1) <= 2 / 360
    assert len(nhwc.curve) == 3 and nchw.curve == ()
    assert all(k / 50 == a for a in nhwc.curve for k in [round(a * 50)])  # scored on 50 images
    with pytest.raises(ValueError, match="limit 0"):
        train_and_evaluate(TINY, data, TrainRecipe(epochs=1), curve_images=0, progress=False)


def test_recipe_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="epochs"):
        TrainRecipe(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        TrainRecipe(lr=-1.0)


# ---- the command line -------------------------------------------------------------------------

def test_cli_proxy_json(capsys) -> None:
    code = main(["accuracy", "edgevit_xxs", "--method", "proxy:params", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["method"] == "proxy:params"
    xxs = PRESETS["edgevit_xxs"].replace(num_classes=10, in_chans=1)
    assert out["accuracy"] == pytest.approx(math.log10(model_cost(xxs).params))


def test_cli_training_json(tmp_path, capsys) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY.to_dict()))
    code = main(["accuracy", str(path), "--method", "train:digits", "--epochs", "1",
                 "--max-per-class", "5", "--img-size", "32", "--seed", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["method"] == "train:digits" and out["seed"] == 3
    assert 0.0 <= out["accuracy"] <= 1.0
    assert out["dataset"]["n_train"] == 50 and out["details"]["recipe"]["epochs"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--method", "proxy:nope"], "unknown proxy"),
    (["--method", "train:/no/such/folder"], "dataset folder not found"),
    (["--method", "proxy:snip", "--epochs", "2"], "--epochs applies to train"),
    (["--method", "train:digits", "--img-size", "16"], "H, W ≥ 32"),
    (["--method", "proxy:params", "--threads", "999"], "threads 999"),
])
def test_cli_errors_are_one_line(capsys, argv, message) -> None:
    code = main(["accuracy", "edgevit_xxs", *argv])
    _, err = capsys.readouterr()
    assert code == 2 and message in err and err.count("\n") == 1


# ---- the committed study ----------------------------------------------------------------------

def test_committed_study_is_complete_and_consistent() -> None:
    study = load_study(STUDY_JSON)
    names = [row["name"] for row in study["configs"]]
    assert len(names) >= 30 and {"edgevit_xxs", "edgevit_xs", "edgevit_s"} <= set(names)
    assert len(set(names)) == len(names)
    accuracy, scores, seconds = study_arrays(study)
    assert np.all((accuracy >= 0) & (accuracy <= 1)) and np.ptp(accuracy) > 0
    assert set(scores) == set(PROXIES) and all(np.isfinite(v).all() for v in scores.values())
    stored = {row["method"]: row for row in study["table"]}
    for name, values in scores.items():  # the stored table follows from the stored rows
        assert kendall_tau(values, accuracy) == pytest.approx(stored[name]["tau"])
        assert spearman_rho(values, accuracy) == pytest.approx(stored[name]["rho"])
    assert study["recommended"]["method"] in PROXIES
    assert seconds["train"] > 0


@pytest.mark.parametrize("study_path", [STUDY_JSON, FASHION_STUDY], ids=["digits", "fashion"])
def test_committed_synflow_scores_are_todays_proxy(study_path) -> None:
    """The stored synflow column (log10 of the flow) is what the proxy gives today, recomputed
    for the study's lowest and highest scorer under the study's seed (synflow reads only the
    input's shape, so no images are needed)."""
    study = load_study(study_path)
    img_size = (study.get("settings") or study["dataset"])["img_size"]
    seed = (study.get("settings") or study)["seed"]
    rows = sorted(study["configs"], key=lambda row: row["proxies"]["synflow"])
    data_shape = SimpleNamespace(num_classes=10, in_chans=1)  # both studies: greyscale, 10 classes
    for row in (rows[0], rows[-1]):
        model = build_model(EdgeViTConfig.from_dict(row["config"]), data_shape, seed)
        images = torch.zeros(1, 1, img_size, img_size)
        score = compute_proxy("synflow", model, images, torch.zeros(1, dtype=torch.long))
        assert score == pytest.approx(row["proxies"]["synflow"], abs=1e-9), row["name"]
    assert rows[-1]["proxies"]["synflow"] - rows[0]["proxies"]["synflow"] > 3  # decades apart
