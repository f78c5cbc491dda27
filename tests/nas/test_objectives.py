"""The scalarisation NNI's built-in tuners maximise: correct for an accuracy of any sign and
scale (the MnasNet reward with a negative proxy would reward slower models)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.nas import mnas_reward, objective_ranges, tchebycheff_reward


def draws(rng: np.random.Generator, count: int, accuracy_lo: float, accuracy_hi: float):
    """Random objective ranges, weights and points, some of them outside the ranges."""
    for _ in range(count):
        a_lo, a_hi = np.sort(rng.uniform(accuracy_lo, accuracy_hi, 2))
        l_lo, l_hi = np.sort(rng.uniform(1.0, 80.0, 2))
        share = rng.uniform(0.05, 0.95)
        span_a, span_l = a_hi - a_lo, l_hi - l_lo
        accuracy = rng.uniform(a_lo - 0.5 * span_a, a_hi + 0.5 * span_a)
        latency = rng.uniform(max(0.1, l_lo - 0.5 * span_l), l_hi + 0.5 * span_l)
        yield dict(weights=(share, 1 - share), accuracy_range=(a_lo, a_hi),
                   latency_range_ms=(l_lo, l_hi)), accuracy, latency, span_a, span_l


@pytest.mark.parametrize("accuracy_lo, accuracy_hi", [(-1500.0, -700.0), (-3.0, 2.0),
                                                      (0.5, 0.99)])
def test_faster_or_more_accurate_always_scores_higher(accuracy_lo, accuracy_hi) -> None:
    """A negative-valued proxy (jacob_cov ≈ −700 … −1500), one crossing zero, and a positive
    accuracy: at equal accuracy the faster config scores strictly higher, at equal latency the
    more accurate one does, wherever the points lie relative to the stated ranges."""
    rng = np.random.default_rng(0)
    for kwargs, accuracy, latency, span_a, span_l in draws(rng, 4000, accuracy_lo,
                                                           accuracy_hi):
        reward = tchebycheff_reward(accuracy, latency, **kwargs)
        faster = latency - rng.uniform(1e-3, 0.5) * span_l
        better = accuracy + rng.uniform(1e-3, 0.5) * span_a
        assert tchebycheff_reward(accuracy, faster, **kwargs) > reward
        assert tchebycheff_reward(better, latency, **kwargs) > reward


def test_scale_and_offset_of_the_accuracy_do_not_matter() -> None:
    rng = np.random.default_rng(1)
    for kwargs, accuracy, latency, _, _ in draws(rng, 500, 0.2, 0.9):
        scale, offset = rng.uniform(1.0, 2000.0), rng.uniform(-3000.0, 3000.0)
        a_lo, a_hi = kwargs["accuracy_range"]
        moved = dict(kwargs, accuracy_range=(a_lo * scale + offset, a_hi * scale + offset))
        assert tchebycheff_reward(accuracy * scale + offset, latency, **moved) == pytest.approx(
            tchebycheff_reward(accuracy, latency, **kwargs), rel=1e-9, abs=1e-9)


def test_mnas_reward_refuses_the_sign_it_would_invert() -> None:
    # what MnasNet's formula does with jacob_cov: the slower model would score higher
    assert -920.0 * (41.2 / 22.8) ** -0.07 > -920.0 * (22.8 / 22.8) ** -0.07
    with pytest.raises(ValueError, match="positive accuracy"):
        mnas_reward(-920.0, 41.2, 22.8)
    with pytest.raises(ValueError, match="positive accuracy"):
        mnas_reward(0.0, 41.2, 22.8)
    assert mnas_reward(0.8, 20.0, 10.0) < mnas_reward(0.8, 15.0, 10.0) < mnas_reward(0.9, 15.0,
                                                                                       10.0)


def test_tchebycheff_by_hand() -> None:
    reward = tchebycheff_reward(0.75, 15.0, weights=(0.5, 0.5), accuracy_range=(0.5, 1.0),
                                latency_range_ms=(10.0, 20.0), rho=0.05)
    assert reward == pytest.approx(-0.25 - 0.05 * 0.5)
    with pytest.raises(ValueError, match="hi > lo"):
        tchebycheff_reward(0.5, 1.0, weights=(0.5, 0.5), accuracy_range=(1.0, 1.0),
                           latency_range_ms=(0.0, 1.0))


def test_objective_ranges_hold_the_presets() -> None:
    from analysis.cost import model_cost
    from edgevit import PRESETS

    def predict_ms(configs):
        return np.array([40.0 * model_cost(c).macs / 1e9 + 3.0 for c in configs])

    (a_lo, a_hi), (l_lo, l_hi) = objective_ranges("proxy:params", predict_ms)
    for config in PRESETS.values():
        assert a_lo < np.log10(model_cost(config).params) < a_hi
        assert l_lo < predict_ms([config])[0] < l_hi
