"""Latency predictors behind one interface, saved as JSON (never pickle), and their evaluation.

  MacsLinear      latency = a·MACs + b, least squares on whole-model measurements (baseline)
  BlockTable      additive lookup table of measured blocks (stems, LGL blocks, head), as in
                  FBNet / Once-for-All; a model is the sum of its blocks plus a fitted offset
  FeatureModel    per-kind cost features (analysis.cost.features) with non-negative per-kind
                  throughputs fitted on relative error, plus a learned correction: a Gaussian
                  process (scikit-learn) on the log residuals, calibrated on a small set of
                  whole-model measurements of the target device

All predict `latency_ms` of inference for configs under fixed `PredictorSettings` (back-end,
threads, batch size, input size, dtype, device), either for a list of configs (`predict`) or for
a column-wise `ConfigBatch` (`predict_batch`, vectorised: the whole enumerated space in seconds).
A predictor refuses settings it was not calibrated for (`check_settings`).

Uncertainty: every prediction has a 90 % interval, prediction × exp(±q·s), where s is the
Gaussian process's predictive std of the log residual (features_gp; 1 for the others) and q is
the split-conformal quantile of |log(measured / predicted)| / s over 5-fold cross-validation of
the training configs (`fit_interval`); calibration reports the interval's coverage on held-out
configs. Measurements are
a pandas DataFrame with columns `config_json`, `input_h`, `input_w`, `latency_ms` (and, for
the table, `block_json` rows of block measurements).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from scipy.stats import kendalltau
from sklearn.exceptions import ConvergenceWarning

from analysis.cost import (
    FEATURE_NAMES,
    ConfigBatch,
    feature_matrix,
    macs_params,
    split_by_shared_fields,
)
from analysis.runtime import checked_int, checked_real, finite_float, parse_json, read_user_text
from edgevit.config import MAX_IMG_SIZE, MIN_IMG_SIZE, EdgeViTConfig

from .blocks import BlockAt, head_block, model_blocks, stage_blocks

FORMAT_VERSION = 2  # 2: settings, held-out scores and the interval recorded
CHUNK = 200_000  # configs per vectorised evaluation (bounds the memory of a batch)
INTERVAL_LEVEL = 0.9  # nominal coverage of every prediction's interval
INTERVAL_FOLDS = 5
MAX_PREDICTOR_BYTES = 256 * 1024**2  # a GP on thousands of configs stays far below
MAX_THREADS = 1_024  # settings bounds: far above any device this suite measures
MAX_BATCH_SIZE = 65_536
MAX_NAME_CHARS = 200  # backend, dtype, device and fingerprint


def _finite_array(name: str, value: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    """`value` as a float64 array of `shape` (None: any length) with only finite entries."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be an array of numbers") from None
    if array.ndim != len(shape) or any(want is not None and got != want
                                       for got, want in zip(array.shape, shape)):
        raise ValueError(f"{name} has shape {array.shape}, expected "
                         f"{tuple('n' if s is None else s for s in shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds a non-finite number")
    return array


@dataclass(frozen=True)
class PredictorSettings:
    """What a predictor predicts: the latency of one forward of `batch_size` images of
    `img_size` in `dtype`, on `backend` with `threads` intra-op threads, on `device` (the
    user's name) whose `fingerprint` (the store's device hash of this machine, or "" for an
    imported device known only by its name) was measured. `threads` is None when the
    measurements did not record it (a device's imported CSV)."""

    backend: str = "torch"
    threads: int | None = 1
    batch_size: int = 1
    img_size: tuple[int, int] = (224, 224)
    dtype: str = "float32"
    device: str = ""
    fingerprint: str = ""

    def __post_init__(self) -> None:
        """Each setting checked (ValueError naming it): a predictor file cannot carry a
        setting that skips the size checks (an image of 0×0 or 10⁵×10⁵, say)."""
        for name in ("backend", "dtype", "device", "fingerprint"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
                raise ValueError(f"settings.{name} must be a text of at most "
                                 f"{MAX_NAME_CHARS} characters, got {value!r:.80}")
        set_ = object.__setattr__
        if self.threads is not None:
            set_(self, "threads", checked_int("settings.threads", self.threads, 1,
                                              MAX_THREADS))
        set_(self, "batch_size", checked_int("settings.batch_size", self.batch_size, 1,
                                          MAX_BATCH_SIZE))
        if not isinstance(self.img_size, (list, tuple)) or len(self.img_size) != 2:
            raise ValueError(f"settings.img_size must be (H, W), got {self.img_size!r:.80}")
        set_(self, "img_size", tuple(checked_int("settings.img_size", side, MIN_IMG_SIZE,
                                              MAX_IMG_SIZE) for side in self.img_size))

    def describe(self) -> str:
        h, w = self.img_size
        threads = ("threads not recorded" if self.threads is None
                   else f"{self.threads} thread{'s' * (self.threads != 1)}")
        return (f"{self.backend}, {threads}, batch "
                f"{self.batch_size}, {h}×{w}, {self.dtype}"
                + (f" on {self.device}" if self.device else ""))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["img_size"] = list(self.img_size)
        return out


SETTING_NAMES = ("backend", "threads", "batch_size", "img_size", "dtype")


def _configs_of(frame: pd.DataFrame) -> list[EdgeViTConfig]:
    return [EdgeViTConfig.from_json(text) for text in frame["config_json"]]


def _check_measurements(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ValueError(f"measurements lack column(s) {missing}")
    if len(frame) == 0:
        raise ValueError("no measurements to fit")
    latency = frame["latency_ms"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(latency) | (latency <= 0)
    if bad.any():
        raise ValueError(f"measurement rows {np.flatnonzero(bad).tolist()} have a non-finite or "
                         "non-positive latency_ms")


def _single_size(frame: pd.DataFrame) -> tuple[int, int]:
    sizes = set(zip(frame["input_h"].astype(int), frame["input_w"].astype(int)))
    if len(sizes) != 1:
        raise ValueError(f"measurements mix input sizes {sorted(sizes)}; fit one size at a time")
    return sizes.pop()


def conformal_halfwidth(measured: np.ndarray,
                        held_out: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                        seed: int = 0) -> float:
    """q of the module docstring: `held_out(mask)` fits on the rows outside `mask` and returns
    (predicted latency, spread s) of the rows inside; over `INTERVAL_FOLDS` folds, q is the
    ⌈(n + 1)·level⌉-th smallest |log(measured / predicted)| / s."""
    folds = min(INTERVAL_FOLDS, len(measured))
    if folds < 2:
        raise ValueError("an interval needs at least 2 whole-model measurements")
    assignment = np.random.default_rng(seed).permutation(len(measured)) % folds
    ratios = np.empty(len(measured))
    for fold in range(folds):
        out = assignment == fold
        predicted, spread = held_out(out)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios[out] = np.abs(np.log(measured[out] / predicted)) / spread
    # a fold that predicts a non-positive latency (a line fitted on 3 configs, say) is a miss
    # no interval covers: an infinite half-width says so
    ratios[~np.isfinite(ratios)] = np.inf
    rank = min(len(ratios), math.ceil((len(ratios) + 1) * INTERVAL_LEVEL))
    return float(np.sort(ratios)[rank - 1])


class LatencyPredictor:
    """Interface: `fit(measurements)`, `predict_batch(batch)` / `predict(configs)` ->
    latency_ms, `save` / `load`. Subclasses implement `predict_batch`."""

    kind: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[LatencyPredictor]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind in LatencyPredictor._registry:
            raise ValueError(f"predictor kind {cls.kind!r} registered twice")
        LatencyPredictor._registry[cls.kind] = cls

    settings: PredictorSettings = PredictorSettings()
    scores: dict[str, float] = {}  # held-out scores of the calibration that fitted it
    interval_log_halfwidth: float = math.nan  # q of the module docstring (nan: not fitted)
    source: str = ""  # the file it was loaded from ("" if fitted in this process)

    @property
    def img_size(self) -> tuple[int, int]:
        return self.settings.img_size

    @img_size.setter
    def img_size(self, value: tuple[int, int]) -> None:
        self.settings = dataclasses.replace(self.settings, img_size=tuple(value))

    @property
    def device(self) -> str:
        return self.settings.device

    @device.setter
    def device(self, value: str) -> None:
        self.settings = dataclasses.replace(self.settings, device=str(value))

    def check_settings(self, **wanted: Any) -> None:
        """ValueError naming both settings when a wanted one (backend, threads, batch_size,
        img_size, dtype; None: the predictor's own) differs from what it was calibrated for."""
        unknown = sorted(set(wanted) - set(SETTING_NAMES))
        if unknown:
            raise ValueError(f"unknown predictor setting(s) {unknown}; known: {SETTING_NAMES}")
        given = {k: (tuple(v) if k == "img_size" else v) for k, v in wanted.items()
                 if v is not None}
        differing = [k for k, v in given.items() if getattr(self.settings, k) != v]
        if differing:
            asked = dataclasses.replace(self.settings, **given)
            raise ValueError(f"the {self.kind} predictor was calibrated for "
                             f"{self.settings.describe()}, not {asked.describe()} "
                             f"({', '.join(differing)} differ): calibrate one for these "
                             "settings")

    def fit(self, measurements: pd.DataFrame) -> LatencyPredictor:
        raise NotImplementedError

    def predict_batch(self, batch: ConfigBatch, *, check: bool = True) -> np.ndarray:
        """latency_ms of every config of `batch`, shape (N,), in chunks of `CHUNK` configs.
        With `check`, a prediction that is not finite and > 0 raises ValueError naming the
        predictor's file and the config; scoring a fit (which may be that bad) passes False."""
        out = np.empty(len(batch))
        for start in range(0, len(batch), CHUNK):
            part = slice(start, start + CHUNK)
            out[part] = self.predict_chunk(batch[part])
            bad = ~(np.isfinite(out[part]) & (out[part] > 0))
            if check and bad.any():
                row = start + int(np.flatnonzero(bad)[0])
                config = batch.config(row)
                raise ValueError(
                    f"the {self.kind} predictor{' ' + self.source if self.source else ''} "
                    f"predicts {out[row]:.6g} ms for widths {config.widths}, depths "
                    f"{config.depths}, sample rates {config.sample_rates} "
                    f"(and {int(bad.sum()) - 1} more of {len(batch)}): a latency must be "
                    "finite and > 0; recalibrate it")
        return out

    def predict(self, configs: Sequence[EdgeViTConfig], *, check: bool = True) -> np.ndarray:
        """latency_ms of each config, in order, shape (N,); `check` as in `predict_batch`."""
        out = np.empty(len(configs))
        for rows, batch in split_by_shared_fields(list(configs)):
            out[rows] = self.predict_batch(batch, check=check)
        return out

    def predict_chunk(self, batch: ConfigBatch) -> np.ndarray:
        """`predict_batch` on at most `CHUNK` configs: what each predictor implements."""
        raise NotImplementedError

    def log_spread(self, batch: ConfigBatch) -> np.ndarray:
        """s of the module docstring per config: how uncertain the predictor says it is."""
        return np.ones(len(batch))

    def interval_batch(self, batch: ConfigBatch, *, check: bool = True
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) latency_ms of each config's `INTERVAL_LEVEL` interval; `check` as in
        `predict_batch`."""
        if math.isnan(self.interval_log_halfwidth):
            raise ValueError(f"the {self.kind} predictor has no fitted interval "
                             "(fit_interval was not run)")
        center = self.predict_batch(batch, check=check)
        spread = np.concatenate([self.log_spread(batch[s:s + CHUNK])
                                 for s in range(0, len(batch), CHUNK)]) if len(batch) else \
            np.zeros(0)
        width = np.exp(self.interval_log_halfwidth * spread)
        return center / width, center * width

    def interval(self, configs: Sequence[EdgeViTConfig], *, check: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) latency_ms of each config's interval, in order; `check` as in
        `predict_batch`."""
        low, high = np.empty(len(configs)), np.empty(len(configs))
        for rows, batch in split_by_shared_fields(list(configs)):
            low[rows], high[rows] = self.interval_batch(batch, check=check)
        return low, high

    def fit_interval(self, models: pd.DataFrame,
                     refit: Callable[[pd.DataFrame], LatencyPredictor],
                     seed: int = 0) -> LatencyPredictor:
        """Set q (the module docstring) by split-conformal cross-validation: `refit` fits a
        fresh predictor of this kind on some of the whole-model rows `models`, which then
        predicts the rest; q is the ⌈(n + 1)·level⌉-th smallest |log residual| / s."""
        configs = _configs_of(models)
        measured = models["latency_ms"].to_numpy(dtype=np.float64)

        def held_out(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            fitted = refit(models[~out])
            held = [configs[i] for i in np.flatnonzero(out)]
            predicted, spread = np.empty(len(held)), np.empty(len(held))
            for rows, batch in split_by_shared_fields(held):
                predicted[rows] = fitted.predict_batch(batch, check=False)
                spread[rows] = fitted.log_spread(batch)
            return predicted, spread

        self.interval_log_halfwidth = conformal_halfwidth(measured, held_out, seed)
        return self

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LatencyPredictor:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """Write the predictor as JSON."""
        interval = ({"level": INTERVAL_LEVEL, "log_halfwidth": self.interval_log_halfwidth}
                    if math.isfinite(self.interval_log_halfwidth) else None)
        document = {"format": FORMAT_VERSION, "kind": self.kind,
                    "settings": self.settings.to_dict(), "scores": dict(self.scores),
                    "interval": interval, "state": self.state()}
        Path(path).write_text(json.dumps(document, indent=1, allow_nan=interval is None))

    @staticmethod
    def load(path: str | Path) -> LatencyPredictor:
        """Read a predictor written by `save`; a corrupt or foreign file raises ValueError."""
        path = Path(path)
        document = parse_json(read_user_text(path, "predictor file", MAX_PREDICTOR_BYTES),
                              f"{path} is not a valid predictor file")
        try:
            fmt = document["format"]
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path} is not a valid predictor file: {err!r}") from None
        if fmt == 1:
            raise ValueError(f"{path} was written before predictors recorded their settings "
                             "(format 1): it does not say which back-end, threads, batch size "
                             "and dtype it was calibrated for; recalibrate with "
                             "`edgevit calibrate`")
        try:
            if fmt != FORMAT_VERSION:
                raise ValueError(f"format {fmt!r} (expected {FORMAT_VERSION})")
            cls = LatencyPredictor._registry[document["kind"]]
            if not isinstance(document["state"], dict):
                raise ValueError("state must be an object")
            predictor = cls.from_state(document["state"])
            settings = dict(document["settings"])
            predictor.settings = PredictorSettings(**settings)
            predictor.scores = {}
            for name, value in document["scores"].items():
                number = finite_float(value)
                if number is None and not (isinstance(value, float) and math.isnan(value)):
                    raise ValueError(f"score {name[:40]!r} = {value!r:.40} is not a number "
                                     "(or NaN)")
                predictor.scores[name] = math.nan if number is None else number
            interval = document["interval"]
            if interval is not None:
                if interval["level"] != INTERVAL_LEVEL:
                    raise ValueError(f"interval level {interval['level']!r}, expected "
                                     f"{INTERVAL_LEVEL}")
                halfwidth = finite_float(interval["log_halfwidth"])
                if halfwidth is None or halfwidth < 0:
                    raise ValueError("the interval's half-width must be a finite number ≥ 0")
                predictor.interval_log_halfwidth = halfwidth
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
            raise ValueError(f"{path} is not a valid predictor file: {err!r:.300}") from None
        predictor.source = str(path)
        return predictor


class MacsLinear(LatencyPredictor):
    """Baseline: latency_ms = slope · MACs + intercept."""

    kind = "macs_linear"

    def __init__(self, slope_ms_per_gmac: float = 0.0, intercept_ms: float = 0.0) -> None:
        self.slope_ms_per_gmac = slope_ms_per_gmac
        self.intercept_ms = intercept_ms

    def fit(self, measurements: pd.DataFrame) -> MacsLinear:
        _check_measurements(measurements, ("config_json", "input_h", "input_w", "latency_ms"))
        self.img_size = _single_size(measurements)
        gmacs = self.predict_gmacs(_configs_of(measurements))
        latency = measurements["latency_ms"].to_numpy(dtype=np.float64)
        design = np.stack([gmacs, np.ones_like(gmacs)], axis=1)
        (self.slope_ms_per_gmac, self.intercept_ms), *_ = np.linalg.lstsq(design, latency,
                                                                          rcond=None)
        return self

    def predict_gmacs(self, configs: Sequence[EdgeViTConfig]) -> np.ndarray:
        out = np.empty(len(configs))
        for rows, batch in split_by_shared_fields(list(configs)):
            out[rows] = macs_params(batch, self.img_size)[0] / 1e9
        return out

    def predict_chunk(self, batch: ConfigBatch) -> np.ndarray:
        gmacs = macs_params(batch, self.img_size)[0] / 1e9
        return self.slope_ms_per_gmac * gmacs + self.intercept_ms

    def state(self) -> dict[str, Any]:
        return {"slope_ms_per_gmac": float(self.slope_ms_per_gmac),
                "intercept_ms": float(self.intercept_ms)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MacsLinear:
        return cls(checked_real("slope_ms_per_gmac", state["slope_ms_per_gmac"]),
                   checked_real("intercept_ms", state["intercept_ms"]))


class FeatureModel(LatencyPredictor):
    """Per-kind cost features × non-negative fitted costs, times a learned correction.

    Base: latency ≈ Σ_k θ_k · f_k (θ ≥ 0: ms per MAC of each kind, ms per element, ms per op),
    fitted by non-negative least squares on *relative* error, so small and large models count
    alike. Correction: a Gaussian process on log(measured / base) over standardised log features;
    it is refitted on load from the stored training points with the stored kernel parameters.
    """

    kind = "features_gp"

    def __init__(self, correction: bool = True,
                 kernel_theta: Sequence[float] | None = None) -> None:
        """`kernel_theta`: keep these GP kernel parameters instead of optimising them (the
        cross-validation of `fit_interval` refits with the full fit's kernel)."""
        self.correction = correction
        self.theta = np.zeros(len(FEATURE_NAMES))
        self.train_x = np.zeros((0, len(FEATURE_NAMES)))
        self.train_residual = np.zeros(0)
        self.kernel_theta: list[float] = list(kernel_theta or [])
        self._optimize_kernel = kernel_theta is None
        self._gp = None

    def _base(self, features: np.ndarray) -> np.ndarray:
        return features @ self.theta

    @staticmethod
    def _gp_inputs(features: np.ndarray) -> np.ndarray:
        return np.log1p(features)

    def _make_gp(self, optimize: bool):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = ConstantKernel(0.01, (1e-5, 1.0)) * RBF(
            np.ones(len(FEATURE_NAMES)), (1e-2, 1e5)
        ) + WhiteKernel(1e-3, (1e-6, 1e-1))
        if not optimize:
            kernel = kernel.clone_with_theta(np.asarray(self.kernel_theta))
        return GaussianProcessRegressor(kernel=kernel, normalize_y=False,
                                        optimizer="fmin_l_bfgs_b" if optimize else None,
                                        random_state=0)

    def fit(self, measurements: pd.DataFrame) -> FeatureModel:
        _check_measurements(measurements, ("config_json", "input_h", "input_w", "latency_ms"))
        self.img_size = _single_size(measurements)
        return self.fit_features(self.features_of(_configs_of(measurements)),
                                 measurements["latency_ms"].to_numpy(dtype=np.float64))

    def fit_features(self, features: np.ndarray, latency: np.ndarray) -> FeatureModel:
        """Fit on a feature matrix (N, F) at this predictor's input size and latencies (N,)."""
        scale = features.max(axis=0)
        scale[scale == 0] = 1.0
        theta_scaled, _ = nnls(features / scale / latency[:, None], np.ones(len(latency)))
        self.theta = theta_scaled / scale
        self.train_x = self._gp_inputs(features)
        self.train_residual = np.log(latency / np.maximum(self._base(features), 1e-9))
        self._gp = None
        if self.correction and len(latency) >= 5:
            with warnings.catch_warnings():
                # a length scale at its bound only says that feature does not matter
                warnings.simplefilter("ignore", ConvergenceWarning)
                gp = self._make_gp(optimize=self._optimize_kernel).fit(self.train_x,
                                                                        self.train_residual)
            self.kernel_theta = gp.kernel_.theta.tolist()
            self._gp = gp
        else:
            self.correction = False
        return self

    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, F), latency_ms (N,)) it was fitted on, recovered from its state (the
        GP's inputs are log1p(features), its targets log(latency / base))."""
        features = np.expm1(self.train_x)
        return features, self._base(features) * np.exp(self.train_residual)

    def with_measurements(self, configs: Sequence[EdgeViTConfig],
                          latency_ms: np.ndarray) -> FeatureModel:
        """A new predictor of the same settings, fitted on this one's training set and the
        given measurements (at these settings) together; its interval is refitted too."""
        features, latency = self.training_set()
        features = np.concatenate([features, self.features_of(list(configs))])
        latency = np.concatenate([latency, np.asarray(latency_ms, dtype=np.float64)])
        refit = FeatureModel(correction=self.correction)
        refit.settings, refit.scores = self.settings, {}
        refit.fit_features(features, latency)
        if math.isfinite(self.interval_log_halfwidth):
            refit.fit_interval_features(features, latency)
        return refit

    def _fitted_gp(self):
        """The correction's GP (refitted from the stored points with the stored kernel after a
        load)."""
        if self._gp is None:
            self._gp = self._make_gp(optimize=False).fit(self.train_x, self.train_residual)
        return self._gp

    def _correction(self, features: np.ndarray) -> np.ndarray:
        if not self.correction:
            return np.zeros(len(features))
        return self._fitted_gp().predict(self._gp_inputs(features))

    def _predict_features(self, features: np.ndarray) -> np.ndarray:
        return self._base(features) * np.exp(self._correction(features))

    def features_of(self, configs: Sequence[EdgeViTConfig]) -> np.ndarray:
        """Feature matrix (N, F) of configs at the predictor's input size."""
        out = np.zeros((len(configs), len(FEATURE_NAMES)))
        for rows, batch in split_by_shared_fields(list(configs)):
            out[rows] = feature_matrix(batch, self.img_size)
        return out

    def predict_chunk(self, batch: ConfigBatch) -> np.ndarray:
        return self._predict_features(feature_matrix(batch, self.img_size))

    def fit_interval_features(self, features: np.ndarray, latency: np.ndarray,
                              seed: int = 0) -> FeatureModel:
        """`fit_interval` on a feature matrix: 5-fold cross-validation with this fit's kernel."""
        def held_out(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            fitted = FeatureModel(correction=self.correction,
                                  kernel_theta=self.kernel_theta or None)
            fitted.fit_features(features[~out], latency[~out])
            return fitted._predict_features(features[out]), fitted._spread(features[out])

        self.interval_log_halfwidth = conformal_halfwidth(latency, held_out, seed)
        return self

    def _spread(self, features: np.ndarray) -> np.ndarray:
        if not self.correction:
            return np.ones(len(features))
        _, std = self._fitted_gp().predict(self._gp_inputs(features), return_std=True)
        return np.maximum(std, 1e-6)

    def log_spread(self, batch: ConfigBatch) -> np.ndarray:
        """The Gaussian process's predictive std of the log residual (1 without it)."""
        return self._spread(feature_matrix(batch, self.img_size))

    def state(self) -> dict[str, Any]:
        return {"features": list(FEATURE_NAMES), "theta": self.theta.tolist(),
                "correction": self.correction, "kernel_theta": list(self.kernel_theta),
                "train_x": self.train_x.tolist(), "train_residual": self.train_residual.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureModel:
        if list(state["features"]) != list(FEATURE_NAMES):
            raise ValueError(f"features {state['features']} differ from {list(FEATURE_NAMES)}")
        if not isinstance(state["correction"], bool):
            raise ValueError(f"correction must be true or false, got {state['correction']!r:.80}")
        predictor = cls(correction=state["correction"])
        predictor.theta = _finite_array("theta", state["theta"], (len(FEATURE_NAMES),))
        if (predictor.theta < 0).any():  # fitted by non-negative least squares
            raise ValueError("theta holds a negative cost, which no fit of this kind writes")
        predictor.kernel_theta = _finite_array("kernel_theta", state["kernel_theta"],
                                               (None,)).tolist()
        predictor.train_x = _finite_array("train_x", state["train_x"],
                                          (None, len(FEATURE_NAMES)))
        predictor.train_residual = _finite_array("train_residual", state["train_residual"],
                                                 (len(predictor.train_x),))
        return predictor


def _block_key(block_json: str, height: int, width: int) -> str:
    return f"{block_json}@{int(height)}x{int(width)}"


class BlockTable(LatencyPredictor):
    """Additive lookup table: a model's latency = a · Σ its blocks' measured latencies + b.

    `fit` takes block measurements (`config_kind` == "block": the block's JSON, its input map
    size and latency) to fill the table, and whole-model measurements, if any, to fit a and b
    (otherwise a = 1, b = 0). A config with a block missing from the table raises ValueError.
    """

    kind = "block_table"

    def __init__(self) -> None:
        self.table_ms: dict[str, float] = {}
        self.scale = 1.0
        self.offset_ms = 0.0

    def blocks_of(self, config: EdgeViTConfig) -> list[str]:
        return [_block_key(block.to_json(), block.h, block.w)
                for block in model_blocks(config, self.img_size)]

    def config_sum_ms(self, config: EdgeViTConfig) -> float:
        """Σ of the measured latencies of `config`'s blocks; ValueError naming missing ones."""
        keys = self.blocks_of(config)
        missing = sorted({key for key in keys if key not in self.table_ms})
        if missing:
            raise ValueError(f"block table lacks {len(missing)} block(s) of {config.name}: "
                             f"{missing[:3]}")
        return sum(self.table_ms[key] for key in keys)

    def block_sum_ms(self, batch: ConfigBatch) -> np.ndarray:
        """Σ of the blocks of every config of `batch`, vectorised: per stage, each distinct
        setting of the columns that shape its stem and block is looked up once."""
        total = np.zeros(len(batch))
        previous_width = np.full(len(batch), batch.base.in_chans)
        for i in range(4):
            setting = np.stack([previous_width, batch.widths[:, i], batch.head_dim,
                                batch.mlp_ratio, batch.sample_rates[:, i], batch.local_kernel], 1)
            _, first, inverse = np.unique(setting, axis=0, return_index=True,
                                          return_inverse=True)
            stem_ms, block_ms = np.array([
                [self._lookup(block) for block in stage_blocks(batch.config(row),
                                                               self.img_size, i)]
                for row in first]).T
            inverse = inverse.reshape(-1)
            total += stem_ms[inverse] + batch.depths[:, i] * block_ms[inverse]
            previous_width = batch.widths[:, i]
        _, first, inverse = np.unique(batch.widths[:, 3], return_index=True, return_inverse=True)
        head_ms = np.array([self._lookup(head_block(batch.config(row), self.img_size))
                            for row in first])
        return total + head_ms[inverse.reshape(-1)]

    def _lookup(self, block: BlockAt) -> float:
        key = _block_key(block.to_json(), block.h, block.w)
        if key not in self.table_ms:
            raise ValueError(f"block table lacks the block {key}")
        return self.table_ms[key]

    def fit(self, measurements: pd.DataFrame) -> BlockTable:
        _check_measurements(measurements, ("config_json", "input_h", "input_w", "latency_ms",
                                           "config_kind"))
        blocks = measurements[measurements["config_kind"] == "block"]
        models = measurements[measurements["config_kind"] == "model"]
        if len(blocks) == 0:
            raise ValueError("a block table needs block measurements (config_kind 'block')")
        grouped: dict[str, list[float]] = {}
        for text, height, width, value in zip(blocks["config_json"], blocks["input_h"],
                                              blocks["input_w"], blocks["latency_ms"]):
            grouped.setdefault(_block_key(text, height, width), []).append(float(value))
        self.table_ms = {key: float(np.median(values)) for key, values in grouped.items()}
        if len(models):
            self.img_size = _single_size(models)
            sums = np.array([self.config_sum_ms(config) for config in _configs_of(models)])
            latency = models["latency_ms"].to_numpy(dtype=np.float64)
            design = np.stack([sums, np.ones_like(sums)], axis=1) / latency[:, None]
            (self.scale, self.offset_ms), *_ = np.linalg.lstsq(design, np.ones(len(latency)),
                                                               rcond=None)
        return self

    def predict_chunk(self, batch: ConfigBatch) -> np.ndarray:
        return self.scale * self.block_sum_ms(batch) + self.offset_ms

    def state(self) -> dict[str, Any]:
        return {"table_ms": self.table_ms, "scale": float(self.scale),
                "offset_ms": float(self.offset_ms)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BlockTable:
        predictor = cls()
        table = state["table_ms"]
        if not isinstance(table, dict):
            raise ValueError(f"table_ms must map blocks to latencies, got a "
                             f"{type(table).__name__}")
        predictor.table_ms = {}
        for key, value in table.items():
            latency_ms = finite_float(value)
            if latency_ms is None or latency_ms <= 0:
                raise ValueError(f"table_ms[{key[:80]!r}] = {value!r:.40} is not a latency > 0")
            predictor.table_ms[key] = latency_ms
        predictor.scale = checked_real("scale", state["scale"])
        predictor.offset_ms = checked_real("offset_ms", state["offset_ms"])
        return predictor


@dataclass(frozen=True)
class PredictorScore:
    """Accuracy of predictions against held-out measurements."""

    count: int
    rmse_ms: float
    mape: float  # mean |pred - meas| / meas
    within_5: float  # share of configs within ±5 %
    within_10: float  # share within ±10 %
    kendall_tau: float
    coverage: float | None = None  # share of measurements inside their predicted interval

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def score(predicted_ms: np.ndarray, measured_ms: np.ndarray,
          interval: tuple[np.ndarray, np.ndarray] | None = None) -> PredictorScore:
    """RMSE, MAPE, shares within ±5 % / ±10 %, Kendall τ of predicted against measured, and
    with (low, high) intervals the share of measurements inside theirs."""
    predicted_ms = np.asarray(predicted_ms, dtype=np.float64)
    measured_ms = np.asarray(measured_ms, dtype=np.float64)
    if predicted_ms.shape != measured_ms.shape or predicted_ms.ndim != 1:
        raise ValueError("predicted and measured latencies must be 1-D arrays of one length")
    coverage = None
    if interval is not None:
        low, high = (np.asarray(v, dtype=np.float64) for v in interval)
        if low.shape != measured_ms.shape or high.shape != measured_ms.shape:
            raise ValueError("interval bounds must match the measurements in shape")
        coverage = float(((low <= measured_ms) & (measured_ms <= high)).mean())
    relative = np.abs(predicted_ms - measured_ms) / measured_ms
    tau = kendalltau(predicted_ms, measured_ms).statistic if len(measured_ms) > 1 else np.nan
    return PredictorScore(
        count=len(measured_ms),
        rmse_ms=float(np.sqrt(np.mean((predicted_ms - measured_ms) ** 2))),
        mape=float(relative.mean()),
        within_5=float((relative <= 0.05).mean()),
        within_10=float((relative <= 0.10).mean()),
        kendall_tau=float(tau),
        coverage=coverage,
    )
