"""The default-method rule: only a validated method (τ's interval above 0) may be the default;
among those, the cheapest one not significantly worse than the best."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.accuracy import (
    UNVALIDATED,
    correlation_table,
    is_validated,
    study_default,
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
    choice = study_default(n_resamples=500)
    assert choice.method is None and UNVALIDATED in choice.label()
    assert math.isfinite(choice.best_unvalidated["tau"])
