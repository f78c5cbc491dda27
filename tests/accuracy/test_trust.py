"""The default-method rule: only a validated method (τ's interval above 0) may be the default;
among those, the cheapest one not significantly worse than the best."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analysis.accuracy import (
    DIGITS_STUDY,
    FASHION_STUDY,
    PROXIES,
    UNVALIDATED,
    AccuracyEvaluator,
    AccuracyMethod,
    SupernetRecipe,
    correlation_table,
    digits_table,
    fashion_table,
    is_validated,
    study_default,
    supernet_fingerprint,
    train_supernet,
    trust_of,
    validated_default,
)

NAN = float("nan")


def row(method: str, tau: float, lo: float, hi: float, seconds: float, **extra) -> dict:
    return dict(method=method, n=16, tau=tau, tau_ci=(lo, hi), seconds=seconds, **extra)


def test_nothing_validated_gives_no_default_and_says_so() -> None:
    table = [row("proxy:jacob_cov", 0.08, -0.18, 0.33, 0.05),
             row("proxy:synflow", -0.10, -0.40, 0.20, 0.02),
             row("proxy:params", NAN, NAN, NAN, 0.0001),  # a constant score
             row("proxy:snip", 0.30, 0.0, 0.55, 0.04)]  # the interval touches 0: not above it
    choice = validated_default(table)
    assert choice.method is None and not choice.is_validated and choice.validated == ()
    assert choice.label().startswith(UNVALIDATED)
    assert "best proxy:snip: τ 0.30 [0.00, 0.55]" in choice.label()
    assert choice.to_dict()["label"] == choice.label()
    assert validated_default([]).label() == f"{UNVALIDATED} (no study)"


def test_the_cheapest_method_within_the_best_validated_interval_wins() -> None:
    table = [row("train:fashion-mnist", 0.90, 0.80, 0.97, 60.0),
             row("supernet:ckpt", 0.75, 0.55, 0.90, 2.0, dataset="fashion-mnist", img_size=64),
             row("proxy:snip", 0.40, 0.10, 0.65, 0.05),
             row("proxy:jacob_cov", 0.95, -0.2, 0.99, 0.01)]  # high τ, unvalidated: ignored
    choice = validated_default(table)
    # the supernet's 0.75 is below training's lower end 0.80 (significantly worse): training
    assert choice.method == "train:fashion-mnist"
    assert choice.validated == ("train:fashion-mnist", "supernet:ckpt", "proxy:snip")
    table[0] = row("train:fashion-mnist", 0.90, 0.70, 0.97, 60.0)  # a wider interval
    choice = validated_default(table)
    assert choice.method == "supernet:ckpt" and choice.seconds == 2.0
    assert choice.label() == ("supernet:ckpt on fashion-mnist 64×64: Kendall τ 0.75 "
                              "[0.55, 0.90], n=16, 2 s/config")


def test_validation_is_the_interval_above_zero() -> None:
    assert is_validated(row("a", 0.2, 0.01, 0.4, 1.0))
    assert not is_validated(row("a", 0.2, 0.0, 0.4, 1.0))
    assert not is_validated(row("a", NAN, NAN, NAN, 1.0))
    with pytest.raises(ValueError, match="lacks"):
        validated_default([dict(method="a", tau=0.3)])


def test_the_rule_on_a_real_correlation_table() -> None:
    rng = np.random.default_rng(0)
    accuracy = rng.normal(size=24)
    scores = {"good": accuracy + 0.1 * rng.normal(size=24), "noise": rng.normal(size=24)}
    table = correlation_table(scores, accuracy, {"good": 1.0, "noise": 0.001},
                              n_resamples=300)
    choice = validated_default(table)
    assert choice.method == "good" and choice.tau > 0.7 and choice.tau_ci[0] > 0


def test_the_committed_digits_study_validates_nothing() -> None:
    """Issue 16: the digits saturate, so no proxy's τ differs from 0 there."""
    choice = validated_default(digits_table(json.loads(DIGITS_STUDY.read_text()),
                                            n_resamples=500))
    assert choice.method is None and UNVALIDATED in choice.label()
    assert math.isfinite(choice.best_unvalidated["tau"])


# ---- where a method runs is part of its name, and of its trust ------------------------------

@pytest.mark.parametrize("text, canonical, source, size", [
    ("proxy:snip", "proxy:snip", "digits", None),
    ("proxy:snip@digits/32", "proxy:snip", "digits", 32),  # the defaults, written out
    ("proxy:snip@fashion-mnist/64", "proxy:snip@fashion-mnist/64", "fashion-mnist", 64),
    ("proxy:snip@fashion-mnist", "proxy:snip@fashion-mnist", "fashion-mnist", None),
    ("proxy:snip@64", "proxy:snip@64", "digits", 64),
    ("train:fashion-mnist@64", "train:fashion-mnist@64", "fashion-mnist", 64),
    ("train:fashion-mnist@32", "train:fashion-mnist", "fashion-mnist", 32),
    ("train:/data/a@b", "train:/data/a@b", "/data/a@b", None),  # an @ inside a path
    ("supernet:runs/a@64", "supernet:runs/a@64", None, None),  # a checkpoint fixes both
])
def test_a_method_string_names_where_it_runs(text, canonical, source, size) -> None:
    method = AccuracyMethod.parse(text)
    assert str(method) == canonical and method.source == source and method.img_size == size
    assert AccuracyMethod.parse(canonical) == AccuracyMethod.parse(str(method))


@pytest.mark.parametrize("text, message", [
    ("proxy:snip@", "after @ a proxy takes"),
    ("proxy:snip@fashion-mnist/", "after @ a proxy takes"),
    ("proxy:snip@a/b", "after @ a proxy takes"),
    ("proxy:snip@16", "below the 32 pixels"),
    ("train:digits@big", "training takes @SIZE"),
    ("proxy:nope@fashion-mnist/64", "unknown proxy"),
])
def test_a_malformed_where_is_named(text, message) -> None:
    with pytest.raises(ValueError, match=message):
        AccuracyMethod.parse(text)


def test_an_evaluator_refuses_a_size_that_contradicts_its_method() -> None:
    with pytest.raises(ValueError, match="input side 64 disagrees with the 32"):
        AccuracyEvaluator("proxy:snip@fashion-mnist/64", img_size=32)
    evaluator = AccuracyEvaluator("proxy:snip", data="fashion-mnist", img_size=64)
    assert str(evaluator.method) == "proxy:snip@fashion-mnist/64"


def test_a_proxy_is_trusted_only_where_it_was_studied() -> None:
    digits = trust_of("proxy:jacob_cov@digits/32")
    assert digits["method"] == "proxy:jacob_cov" and digits["dataset"] == "digits"
    elsewhere = trust_of("proxy:jacob_cov@digits/64")
    assert not elsewhere["validated"] and "tau" not in elsewhere
    assert "in no committed study at this dataset and resolution" in elsewhere["label"]
    assert "studied as proxy:jacob_cov" in elsewhere["label"]


def study_file(tmp_path, n: int, supernet: dict | None) -> dict:
    """A hand-made Fashion-MNIST study: synflow ranks like training, snip reversed."""
    accuracy = np.linspace(0.80, 0.90, n)
    rows = []
    for i, acc in enumerate(accuracy):
        row = dict(name=f"c{i}", accuracy=float(acc),
                   proxies={p: float(i if p == "synflow" else -i if p == "snip" else i % 2)
                            for p in PROXIES},
                   proxy_seconds={p: 0.1 for p in PROXIES}, train_seconds=60.0)
        if supernet is not None:
            row.update(supernet=float(acc), supernet_seconds=2.0)
        rows.append(row)
    return dict(settings=dict(img_size=64, epochs=10), configs=rows, noise=[],
                **({"supernet": supernet} if supernet else {}))


def test_the_fashion_table_names_each_method_where_it_ran(tmp_path) -> None:
    assert fashion_table(study_file(tmp_path, 3, None)) == []  # too few configs
    table = {r["method"]: r for r in fashion_table(study_file(tmp_path, 8, None),
                                                   n_resamples=300)}
    assert set(table) == {f"proxy:{p}@fashion-mnist/64" for p in PROXIES}
    assert table["proxy:synflow@fashion-mnist/64"]["tau"] == pytest.approx(1.0)
    assert table["proxy:snip@fashion-mnist/64"]["tau"] == pytest.approx(-1.0)
    assert all(r["dataset"] == "fashion-mnist" and r["img_size"] == 64 for r in table.values())


def test_a_supernet_inherits_a_study_tau_only_for_the_checkpoint_scored(
        tmp_path, monkeypatch) -> None:
    from test_supernet import TINY_SPACE

    from analysis.accuracy import studies

    recipe = SupernetRecipe(steps=2, batch_size=16, random_subnets=0)
    kwargs = dict(data="digits", img_size=32, space=TINY_SPACE, max_per_class=20,
                  recipe=recipe)
    record = train_supernet(tmp_path / "scored", stop_after=1, **kwargs)
    train_supernet(tmp_path / "other", **kwargs)  # the same training, one step further
    study = study_file(tmp_path, 8, dict(path=str(tmp_path / "scored"),
                                         fingerprint=supernet_fingerprint(record)))
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    monkeypatch.setattr(studies, "FASHION_STUDY", path)
    studies.committed_table.cache_clear()
    try:
        scored = trust_of(f"supernet:{tmp_path / 'scored'}")
        assert scored["validated"] and scored["tau"] == pytest.approx(1.0)
        assert "on fashion-mnist 64×64: Kendall τ 1.00" in scored["label"]
        other = trust_of(f"supernet:{tmp_path / 'other'}")
        assert not other["validated"] and "no study scored this checkpoint at step 2" in \
            other["label"]
        # the supernet and synflow are both validated at τ 1; synflow is cheaper (0.1 s)
        choice = study_default(n_resamples=300)
        assert choice.method == "proxy:synflow@fashion-mnist/64"
        assert f"supernet:{tmp_path / 'scored'}" in choice.validated
    finally:
        studies.committed_table.cache_clear()


def test_the_default_is_one_this_machine_can_run(tmp_path, monkeypatch) -> None:
    """Without Fashion-MNIST installed, the default comes from the rows that can still run."""
    from analysis.accuracy import FASHION_MNIST_ENV, committed_table, usable

    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "absent"))
    rows = committed_table()
    assert any(r["dataset"] == "fashion-mnist" for r in rows)
    assert not any(usable(r) for r in rows if r["dataset"] == "fashion-mnist")
    choice = study_default()
    method = choice.method or choice.best_unvalidated["method"]
    assert "fashion-mnist" not in method and usable(dict(method=method))
    assert all(r["dataset"] != "fashion-mnist" for r in rows if r["method"] == method)
    # a supernet trained on Fashion-MNIST scores there: present but unusable without it
    supernet = dict(method=f"supernet:{FASHION_STUDY}", dataset="fashion-mnist")
    assert not usable(supernet) and usable(dict(supernet, dataset="digits"))


def test_a_default_supernet_is_named_by_its_absolute_path(tmp_path, monkeypatch) -> None:
    """A study records its checkpoint relative to the repository; its table row and the
    search's default give the absolute path, so a search started in any folder loads the file
    the study scored."""
    from analysis.accuracy import studies
    from analysis.nas import default_accuracy_method

    study = study_file(tmp_path, 8, dict(path="checkpoints/scored.pt", fingerprint={}))
    for i, config in enumerate(study["configs"]):  # no proxy ranks like training any more
        config["proxies"] = {p: float(i % 2) for p in PROXIES}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "scored.pt").write_bytes(b"present")  # `usable` checks presence
    monkeypatch.setattr(studies, "FASHION_STUDY", path)
    monkeypatch.setattr(studies, "REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path.parent)
    studies.committed_table.cache_clear()
    try:
        scored = f"supernet:{tmp_path / 'checkpoints' / 'scored.pt'}"
        assert study_default(n_resamples=300).method == scored
        assert default_accuracy_method() == scored
        (tmp_path / "checkpoints" / "scored.pt").unlink()  # gone: a proxy again
        studies.committed_table.cache_clear()
        assert default_accuracy_method().startswith("proxy:")
    finally:
        studies.committed_table.cache_clear()
