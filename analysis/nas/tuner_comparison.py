"""Hypervolume against trials for NNI's tuners and optuna's multi-objective samplers.

Both see the same objectives: accuracy by a vectorised method (↑) and predicted latency_ms
(↓), looked up from the exhaustive scoring of the whole space, so a trial costs microseconds
and every tuner is compared on identical numbers. NNI's tuners are single-objective: each run
is split into `restarts` experiments, each maximising a Tchebycheff scalarisation with its own
weights (so the runs spread along the front), driven in process through the tuner API
(`generate_parameters` / `receive_trial_result`) — the same algorithms `nnictl` runs, without
the ~2 s per-trial overhead of the manager. Optuna's TPE, NSGA-II and GP samplers are
multi-objective. The GP sampler sees every parameter as ordinal (the index of its sorted
choices), so its kernel relates neighbouring widths, depths and sample rates; a suggested index
is decoded back to the NNI value and looked up like any other trial.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.cost import DEFAULT_SPACE, SPACE_JSON

from .objectives import draw_tchebycheff_weights, tchebycheff_reward
from .pareto import hypervolume_curve
from .report import SENSES, ExhaustiveFront, reference_point
from .tuner import SpaceCodec

NNI_TUNERS = ("Random", "TPE", "Evolution")
# optuna sampler -> how it sees the space: "categorical" (the NNI choices) or "ordinal" (an
# integer index into the sorted choices, decoded back to the choice before the lookup)
OPTUNA_ENCODINGS = {"optuna-TPE": "categorical", "optuna-NSGAII": "categorical",
                    "optuna-GP": "ordinal"}
OPTUNA_SAMPLERS = tuple(OPTUNA_ENCODINGS)


@dataclass
class SpaceObjectives:
    """Objective values of every enumerated config, looked up by NNI parameters."""

    accuracy: np.ndarray
    latency_ms: np.ndarray
    admissible: np.ndarray  # within the MACs budget

    @classmethod
    def from_exhaustive(cls, exhaustive: ExhaustiveFront,
                        macs_budget: float | None = None) -> SpaceObjectives:
        admissible = (np.ones(len(exhaustive.macs), dtype=bool) if macs_budget is None
                      else exhaustive.macs <= macs_budget)
        return cls(exhaustive.accuracy, exhaustive.latency_ms, admissible)

    def __call__(self, params: dict[str, Any]) -> tuple[float, float, bool]:
        row = DEFAULT_SPACE.row(params)
        return float(self.accuracy[row]), float(self.latency_ms[row]), bool(self.admissible[row])

    @property
    def ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        ok = self.admissible
        return ((float(self.accuracy[ok].min()), float(self.accuracy[ok].max())),
                (float(self.latency_ms[ok].min()), float(self.latency_ms[ok].max())))


def _nni_tuner(name: str, seed: int):
    if name == "TPE":
        from nni.algorithms.hpo.tpe_tuner import TpeTuner
        return TpeTuner(optimize_mode="maximize", seed=seed)
    if name == "Random":
        from nni.algorithms.hpo.random_tuner import RandomTuner
        return RandomTuner(seed=seed)
    if name == "Evolution":
        import random

        from nni.algorithms.hpo.evolution_tuner import EvolutionTuner
        random.seed(seed)  # the evolution tuner draws from the global generators
        np.random.seed(seed)
        return EvolutionTuner(optimize_mode="maximize", population_size=16)
    raise ValueError(f"unknown NNI tuner {name!r}; known: {NNI_TUNERS}")


def run_nni(name: str, objectives: SpaceObjectives, trials: int, *, restarts: int = 4,
            seed: int = 0) -> np.ndarray:
    """(trials, 2) objective points in trial order; inadmissible trials are NaN rows."""
    import json
    import logging

    logging.getLogger("nni").setLevel(logging.WARNING)  # TPE logs every duplicate it redraws
    space = json.loads(SPACE_JSON.read_text())
    acc_range, lat_range = objectives.ranges
    points = []
    per_run = [trials // restarts + (i < trials % restarts) for i in range(restarts)]
    for run, count in enumerate(per_run):
        tuner = _nni_tuner(name, seed + run)
        tuner.update_search_space(space)
        weights = draw_tchebycheff_weights(seed + run)
        for trial in range(count):
            params = tuner.generate_parameters(trial)
            accuracy, latency, ok = objectives(params)
            reward = (tchebycheff_reward(accuracy, latency, weights=weights,
                                         accuracy_range=acc_range, latency_range_ms=lat_range)
                      if ok else -2.0)
            tuner.receive_trial_result(trial, params, reward)
            points.append((accuracy, latency) if ok else (np.nan, np.nan))
    return np.asarray(points)


def suggest_params(trial: Any, encoding: str) -> dict[str, Any]:
    """NNI parameters for one optuna trial (an `optuna.Trial`), encoded as ParetoTuner encodes
    them (`SpaceCodec`): "categorical", each parameter a `suggest_categorical` over its
    choices; "ordinal", a `suggest_int` over the index of its choices sorted by value (all are
    numbers), decoded back to the value."""
    codec = SpaceCodec(DEFAULT_SPACE.to_nni(), encoding)
    drawn = {name: (trial.suggest_int(name, dist.low, dist.high) if encoding == "ordinal"
                    else trial.suggest_categorical(name, list(dist.choices)))
             for name, dist in codec.distributions.items()}
    return codec.to_nni(drawn)


def run_optuna(name: str, objectives: SpaceObjectives, trials: int, *, seed: int = 0
               ) -> np.ndarray:
    """(trials, 2) points of an optuna multi-objective study, NaN rows where inadmissible."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
        # multivariate TPE models the joint choice of every stage (the space is strongly
        # coupled); measured here it beats the independent default by ~3-4 points of HV
        "optuna-TPE": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                         n_startup_trials=20),
        "optuna-NSGAII": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=16),
        # Gaussian process (Matern 5/2, one length scale per parameter) with log expected
        # hypervolume improvement, on ordinal indices; measured here it reaches 98.3-98.8 % of
        # the exhaustive HV after 300 trials on every seed tried (about 3 min per run on one
        # core), where categorical choices left it between 91 % and 99 %
        "optuna-GP": lambda: optuna.samplers.GPSampler(seed=seed,
                                                       deterministic_objective=True),
    }
    if name not in samplers:
        raise ValueError(f"unknown optuna sampler {name!r}; known: {OPTUNA_SAMPLERS}")
    worst = (objectives.ranges[0][0], objectives.ranges[1][1])
    points: list[tuple[float, float]] = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        params = suggest_params(trial, OPTUNA_ENCODINGS[name])
        accuracy, latency, ok = objectives(params)
        points.append((accuracy, latency) if ok else (np.nan, np.nan))
        return (accuracy, latency) if ok else worst

    with warnings.catch_warnings():  # multivariate TPE and deterministic GP are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = samplers[name]()
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return np.asarray(points)


def hypervolume_by_trial(points: np.ndarray, reference: tuple[float, float]) -> np.ndarray:
    """Hypervolume of the admissible points among the first t trials, t = 1..N."""
    filled = np.where(np.isnan(points), [[reference[0], reference[1]]], points)
    return hypervolume_curve(filled, SENSES, reference)


def compare(exhaustive: ExhaustiveFront, trials: int, *, seed: int = 0, restarts: int = 4,
            macs_budget: float | None = None,
            methods: tuple[str, ...] = NNI_TUNERS + OPTUNA_SAMPLERS) -> dict[str, np.ndarray]:
    """Method -> hypervolume ratio to the exhaustive front after each trial."""
    from .pareto import hypervolume

    objectives = SpaceObjectives.from_exhaustive(exhaustive, macs_budget)
    reference = reference_point(exhaustive.front_points())
    full = hypervolume(exhaustive.front_points(), SENSES, reference)
    out = {}
    for method in methods:
        if method in NNI_TUNERS:
            points = run_nni(method, objectives, trials, restarts=restarts, seed=seed)
        else:
            points = run_optuna(method, objectives, trials, seed=seed)
        out[method] = hypervolume_by_trial(points, reference) / full
    return out
