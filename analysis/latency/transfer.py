"""Predictors for new settings from few measurements, with a `FeatureModel` of other settings
(another thread count, input size, back-end or device) as the prior.

  TransferModel       latency ≈ e^a · base^b: the prior's per-kind cost model (θ · features at
                      the new input size, without its GP correction) re-scaled by a power law
  KindScaledTransfer  latency ≈ Σ_k s_k θ_k f_k (× the prior's GP correction, when carrying it
                      helps): one scale per op kind, because a second thread, another back-end
                      or another chip speeds up dense MACs, depthwise MACs, attention and
                      element-wise work by different factors, which one power law cannot follow

Both fit on whole-model measurements of the new settings (the DataFrame columns of
`analysis.latency.predictors`) and are saved as JSON with the prior inside.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from analysis.cost import FEATURE_NAMES, ConfigBatch, feature_matrix, split_by_shared_fields
from analysis.runtime import checked_real

from .predictors import (
    INTERVAL_LEVEL,
    FeatureModel,
    LatencyPredictor,
    PredictorSettings,
    _check_measurements,
    _configs_of,
    _finite_array,
    _single_size,
)

SHRINKAGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e3)  # λ tried by leave-one-out
MIN_FOR_SCALES = 4  # fewer measurements: one common scale (λ = ∞) and no interval


def _features(configs: list, img_size: tuple[int, int]) -> np.ndarray:
    out = np.zeros((len(configs), len(FEATURE_NAMES)))
    for rows, batch in split_by_shared_fields(configs):
        out[rows] = feature_matrix(batch, img_size)
    return out


def _prior_from_state(state: dict[str, Any]) -> FeatureModel:
    prior = FeatureModel.from_state(state["prior"])
    prior.settings = PredictorSettings(**state["prior_settings"])
    return prior


class TransferModel(LatencyPredictor):
    """A `FeatureModel` calibrated for other settings (the prior: another back-end, thread
    count, input size or device), adapted to these from few measurements:

        latency ≈ e^a · base(config)^b,

    where base is the prior's per-kind cost model (θ · features, without its GP correction)
    evaluated at this predictor's input size: per-kind costs carry over between settings
    better than absolute times do, and a, b (least squares on log latencies) re-scale them.
    """

    kind = "transfer"

    def __init__(self, prior: FeatureModel | None = None) -> None:
        self.prior = prior if prior is not None else FeatureModel(correction=False)
        self.log_scale = 0.0  # a
        self.exponent = 1.0  # b

    def _log_base(self, batch: ConfigBatch) -> np.ndarray:
        base = self.prior._base(feature_matrix(batch, self.img_size))
        return np.log(np.maximum(base, 1e-12))

    def fit(self, measurements: pd.DataFrame) -> TransferModel:
        _check_measurements(measurements, ("config_json", "input_h", "input_w", "latency_ms"))
        self.img_size = _single_size(measurements)
        configs = _configs_of(measurements)
        log_base = np.empty(len(configs))
        for rows, batch in split_by_shared_fields(configs):
            log_base[rows] = self._log_base(batch)
        log_latency = np.log(measurements["latency_ms"].to_numpy(dtype=np.float64))
        if len(configs) >= 3:
            design = np.stack([np.ones_like(log_base), log_base], axis=1)
            (self.log_scale, self.exponent), *_ = np.linalg.lstsq(design, log_latency,
                                                                  rcond=None)
        else:  # too few to fit a slope: keep the prior's ranking, re-scale only
            self.exponent = 1.0
            self.log_scale = float(np.mean(log_latency - log_base))
        return self

    def predict_chunk(self, batch: ConfigBatch) -> np.ndarray:
        return np.exp(self.log_scale + self.exponent * self._log_base(batch))

    def state(self) -> dict[str, Any]:
        return {"prior": self.prior.state(), "prior_settings": self.prior.settings.to_dict(),
                "log_scale": float(self.log_scale), "exponent": float(self.exponent)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TransferModel:
        predictor = cls(_prior_from_state(state))
        predictor.log_scale = checked_real("log_scale", state["log_scale"])
        predictor.exponent = checked_real("exponent", state["exponent"])
        return predictor


def _shrunk_scales(contributions: np.ndarray, target: np.ndarray, shrinkage: float
                   ) -> np.ndarray:
    """Per-kind scales s ≥ 0 (K,) minimising Σ_i (Σ_k s_k C_ik / t_i − 1)² + λ Σ_k (s_k − c)²
    over s and a common scale c ≥ 0 (non-negative least squares on the stacked system).
    Kinds no config has (a zero column) get c."""
    relative = contributions / target[:, None]  # kind k's share of config i, × prior / truth
    used = np.flatnonzero(relative.any(axis=0))
    k = len(used)
    root = math.sqrt(shrinkage)
    system = np.zeros((len(target) + k, k + 1))
    system[:len(target), :k] = relative[:, used]
    system[len(target):, :k] = root * np.eye(k)
    system[len(target):, k] = -root
    rhs = np.concatenate([np.ones(len(target)), np.zeros(k)])
    solution, _ = nnls(system, rhs, maxiter=50 * (k + 1))
    scales = np.full(contributions.shape[1], solution[k])
    scales[used] = solution[:k]
    return scales


class KindScaledTransfer(LatencyPredictor):
    """A `FeatureModel` of other settings adapted per op kind from few measurements:

        latency ≈ (Σ_k s_k · θ_k · f_k(config)) · exp(g(config) if carried),

    θ_k the prior's cost per unit of feature k (dense MACs, depthwise MACs, attention MACs,
    norm / activation / other elements, traffic, ops), f_k at this predictor's input size, g the
    prior's GP correction. The scales s_k ≥ 0 are fitted on relative error and shrunk toward one
    common scale c with weight λ (`_shrunk_scales`): λ → ∞ is a single re-scaling of the prior,
    λ → 0 re-fits every kind freely. λ (from `SHRINKAGES`) and whether to carry g are chosen by
    leave-one-out over the measurements, and the 90 % interval's half-width is the conformal
    quantile of the chosen fit's leave-one-out |log residuals| (slightly optimistic: the same
    residuals chose λ).
    """

    kind = "transfer_per_kind"

    def __init__(self, prior: FeatureModel | None = None) -> None:
        self.prior = prior if prior is not None else FeatureModel(correction=False)
        self.scales = np.ones(len(FEATURE_NAMES))
        self.shrinkage = math.inf  # λ
        self.carry_correction = False

    def _parts(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per-kind contributions θ_k f_k (N, K), the prior's log correction g (N,))."""
        return features * self.prior.theta, self.prior._correction(features)

    def fit(self, measurements: pd.DataFrame) -> KindScaledTransfer:
        _check_measurements(measurements, ("config_json", "input_h", "input_w", "latency_ms"))
        self.img_size = _single_size(measurements)
        latency = measurements["latency_ms"].to_numpy(dtype=np.float64)
        contributions, correction = self._parts(_features(_configs_of(measurements),
                                                          self.img_size))
        n = len(latency)
        if n < MIN_FOR_SCALES:
            self.carry_correction, self.shrinkage = False, math.inf
            common = float(np.exp(np.mean(np.log(latency / contributions.sum(axis=1)))))
            self.scales = np.full(len(FEATURE_NAMES), common)
            self.interval_log_halfwidth = math.nan
            return self
        best: tuple[float, float, bool, np.ndarray] | None = None
        for carry in (False, True):
            target = latency * np.exp(-correction) if carry else latency
            for shrinkage in SHRINKAGES:
                loo = np.empty(n)
                for i in range(n):
                    keep = np.arange(n) != i
                    scales = _shrunk_scales(contributions[keep], target[keep], shrinkage)
                    loo[i] = contributions[i] @ scales
                with np.errstate(divide="ignore", invalid="ignore"):
                    residual = np.abs(np.log(target / loo))
                residual[~np.isfinite(residual)] = np.inf
                error = float(np.mean(residual))
                if best is None or error < best[0]:
                    best = (error, shrinkage, carry, residual)
        _, self.shrinkage, self.carry_correction, residual = best
        target = latency * np.exp(-correction) if self.carry_correction else latency
        self.scales = _shrunk_scales(contributions, target, self.shrinkage)
        rank = min(n, math.ceil((n + 1) * INTERVAL_LEVEL))
        self.interval_log_halfwidth = float(np.sort(residual)[rank - 1])
        return self

    def predict_chunk(self, batch: ConfigBatch) -> np.ndarray:
        contributions, correction = self._parts(feature_matrix(batch, self.img_size))
        out = contributions @ self.scales
        return out * np.exp(correction) if self.carry_correction else out

    def state(self) -> dict[str, Any]:
        return {"prior": self.prior.state(), "prior_settings": self.prior.settings.to_dict(),
                "features": list(FEATURE_NAMES), "scales": self.scales.tolist(),
                "shrinkage": self.shrinkage if math.isfinite(self.shrinkage) else None,
                "carry_correction": self.carry_correction}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> KindScaledTransfer:
        if list(state["features"]) != list(FEATURE_NAMES):
            raise ValueError(f"features {state['features']} differ from {list(FEATURE_NAMES)}")
        if not isinstance(state["carry_correction"], bool):
            raise ValueError("carry_correction must be true or false, got "
                             f"{state['carry_correction']!r:.80}")
        predictor = cls(_prior_from_state(state))
        predictor.scales = _finite_array("scales", state["scales"], (len(FEATURE_NAMES),))
        if (predictor.scales < 0).any():  # fitted by non-negative least squares
            raise ValueError("scales hold a negative value, which no fit of this kind writes")
        shrinkage = state["shrinkage"]
        predictor.shrinkage = math.inf if shrinkage is None else checked_real("shrinkage",
                                                                              shrinkage)
        predictor.carry_correction = state["carry_correction"]
        return predictor
