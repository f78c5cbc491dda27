"""The tuner comparison's optuna samplers, on the real space with cheap synthetic objectives."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest

from analysis.cost import DEFAULT_SPACE
from analysis.nas import (
    OPTUNA_ENCODINGS,
    SENSES,
    SpaceObjectives,
    hypervolume,
    hypervolume_by_trial,
    non_dominated,
    reference_point,
    run_optuna,
    suggest_params,
)


class RecordingObjectives(SpaceObjectives):
    """SpaceObjectives that keeps every looked-up parameter dict (one per trial)."""

    seen: list[dict[str, Any]]

    def __call__(self, params: dict[str, Any]) -> tuple[float, float, bool]:
        self.seen.append(dict(params))
        return super().__call__(params)


@pytest.fixture(scope="module")
def objectives() -> RecordingObjectives:
    """Every config of the default space: a params-like accuracy (↑, log10 of a weight count)
    and a latency-like cost in arbitrary ms (↓, cut by the sample rate); the largest 10 % of
    weight counts are inadmissible, as the MACs budget makes some configs."""
    space = DEFAULT_SPACE.enumerate()
    widths, depths, rates = space.widths, space.depths, space.sample_rates
    weights = ((widths ** 2 * depths).sum(1) * (2.0 + space.mlp_ratio)).astype(np.float64)
    latency_ms = (widths * depths * (1.0 + 4.0 / rates)).sum(1) / space.head_dim * 0.1
    out = RecordingObjectives(np.log10(weights), latency_ms,
                              weights <= np.quantile(weights, 0.9))
    out.seen = []
    return out


def test_ordinal_indices_decode_to_sorted_choices(objectives) -> None:
    choices = DEFAULT_SPACE.choices()
    lowest = optuna.trial.FixedTrial({name: 0 for name in choices})
    highest = optuna.trial.FixedTrial({name: len(v) - 1 for name, v in choices.items()})
    assert suggest_params(lowest, "ordinal") == {
        name: min(v) for name, v in DEFAULT_SPACE.choices().items()}
    assert suggest_params(highest, "ordinal") == {
        name: max(v) for name, v in DEFAULT_SPACE.choices().items()}
    second = optuna.trial.FixedTrial({name: 1 for name in choices})
    params = suggest_params(second, "ordinal")
    assert params["rate_0"] == 2 and params["width_mult_3"] == 8 and params["depth_2"] == 3
    with pytest.raises(ValueError, match="unknown encoding"):
        suggest_params(lowest, "one-hot")


def test_gp_sampler_trials_are_points_of_the_space(objectives) -> None:
    assert OPTUNA_ENCODINGS["optuna-GP"] == "ordinal"
    trials = 25
    objectives.seen.clear()
    points = run_optuna("optuna-GP", objectives, trials, seed=0)
    assert points.shape == (trials, 2) and len(objectives.seen) == trials
    for params, point in zip(objectives.seen, points):
        DEFAULT_SPACE.decode(params)  # raises on anything outside the space
        row = DEFAULT_SPACE.row(params)
        if objectives.admissible[row]:
            assert tuple(point) == (objectives.accuracy[row], objectives.latency_ms[row])
        else:
            assert np.isnan(point).all()
    table = np.stack([objectives.accuracy, objectives.latency_ms], 1)[objectives.admissible]
    front = table[non_dominated(table, SENSES)]
    reference = reference_point(front)
    curve = hypervolume_by_trial(points, reference) / hypervolume(front, SENSES, reference)
    assert np.all(np.diff(curve) >= -1e-12)
    assert 0 < curve[-1] <= 1 + 1e-9
