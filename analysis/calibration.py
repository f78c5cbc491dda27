"""Calibrating latency predictors for one device, with their held-out error reported.

This machine's speed drifts by up to ±40 % over minutes, while two models timed interleaved
keep their ratio to ~2 %. So every whole model is timed interleaved with a reference model
(the XXS preset), every block with a reference block, and each latency is normalised to the
sweep's median reference: latency_ms = ratio × median(reference_latency_ms). Predictors are
fitted and scored on these drift-free numbers; the noise floor is the same configs measured
twice the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgevit.config import EdgeViTConfig
from edgevit.registry import preset_config

from .latency import BlockSpec, LatencyResult, Protocol, measure_many, model_blocks
from .predictors import BlockTable, FeatureModel, LatencyPredictor, MacsLinear, score
from .store import MeasurementStore

REFERENCE_MODEL = "edgevit_xxs"
REFERENCE_BLOCK = BlockSpec(kind="lgl", c=144, h=14, w=14, r=2, heads=4, mlp_hidden=576)
PRESET_NAMES = ("edgevit_xxs", "edgevit_xs", "edgevit_s")


def sample_configs(count: int, seed: int = 0) -> list[EdgeViTConfig]:
    """The presets, then distinct random points of the search space, `count` in all."""
    from search_space import DEFAULT_SPACE

    if count < 1:
        raise ValueError(f"calibration budget must be ≥ 1 config, got {count}")
    rng = np.random.default_rng(seed)
    configs = [preset_config(name) for name in PRESET_NAMES][:count]
    seen = {config.to_json() for config in configs}
    while len(configs) < count:
        config = DEFAULT_SPACE.decode(DEFAULT_SPACE.sample(rng))
        if config.to_json() not in seen:
            seen.add(config.to_json())
            configs.append(config.replace(name=f"sample{len(configs)}"))
    return configs


def normalised_frame(results: Sequence[LatencyResult], kind: str) -> pd.DataFrame:
    """Relative results -> rows with latency_ms = ratio × the sweep's median reference."""
    reference_ms = float(np.median([r.reference_latency_ms for r in results]))
    return pd.DataFrame({
        "config_json": [r.config_json for r in results],
        "config_kind": kind,
        "input_h": [r.img_size[0] for r in results],
        "input_w": [r.img_size[1] for r in results],
        "ratio": [r.ratio for r in results],
        "raw_latency_ms": [r.latency_ms for r in results],
        "reference_latency_ms": [r.reference_latency_ms for r in results],
        "flagged_noisy": [r.flagged_noisy for r in results],
        "latency_ms": [r.ratio * reference_ms for r in results],
    })


@dataclass
class CalibrationReport:
    """What a calibration measured and how well each predictor did on held-out configs."""

    device: str
    img_size: tuple[int, int]
    train_count: int
    test_count: int
    reference_latency_ms: float
    scores: dict[str, dict[str, float]]
    noise_floor: dict[str, float]
    seconds: float
    noisy_measurements: int
    extra: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"held-out configs: {self.test_count} (trained on {self.train_count}), "
                 f"device {self.device}, {self.img_size[0]}×{self.img_size[1]}",
                 f"{'predictor':14s} {'MAPE':>7s} {'±5 %':>6s} {'±10 %':>6s} {'τ':>6s} "
                 f"{'RMSE ms':>8s}"]
        rows = dict(self.scores)
        if self.noise_floor:
            rows["noise floor"] = self.noise_floor
        for name, s in rows.items():
            lines.append(f"{name:14s} {s['mape']:7.1%} {s['within_5']:6.0%} "
                         f"{s['within_10']:6.0%} {s['kendall_tau']:6.3f} {s['rmse_ms']:8.2f}")
        return "\n".join(lines)


def fit_all(train: pd.DataFrame, blocks: pd.DataFrame | None) -> dict[str, LatencyPredictor]:
    """The three predictors fitted on the same whole-model rows (+ block rows for the table)."""
    predictors: dict[str, LatencyPredictor] = {
        "macs_linear": MacsLinear().fit(train),
        "features_gp": FeatureModel().fit(train),
    }
    if blocks is not None and len(blocks):
        predictors["block_table"] = BlockTable().fit(pd.concat([blocks, train]))
    return predictors


def calibrate(
    *, device: str, budget: int, threads: int = 1, img_size: tuple[int, int] = (224, 224),
    seed: int = 0, store: MeasurementStore | None = None, holdout_fraction: float = 0.25,
    with_blocks: bool = True, noise_repeats: int = 10, protocol: Protocol = Protocol(),
    progress: bool = True,
) -> tuple[dict[str, LatencyPredictor], CalibrationReport]:
    """Measure `budget` configs on this machine, fit every predictor, score on held-out ones."""
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    started = time.monotonic()
    configs = sample_configs(budget, seed)
    results = measure_many(configs, threads=threads, img_size=img_size,
                           reference=preset_config(REFERENCE_MODEL), store=store,
                           protocol=protocol, progress=progress)
    frame = normalised_frame(results, "model")
    order = np.random.default_rng(seed + 1).permutation(len(frame))
    test_count = max(1, int(round(holdout_fraction * len(frame))))
    if len(frame) - test_count < 3:
        raise ValueError(f"budget {budget} leaves fewer than 3 training configs")
    test, train = frame.iloc[order[:test_count]], frame.iloc[order[test_count:]]

    blocks = None
    if with_blocks:
        distinct = {}
        for config in configs:
            for block in model_blocks(config, img_size):
                distinct.setdefault((block.to_json(), block.h, block.w), block)
        block_results = measure_many(list(distinct.values()), threads=threads,
                                     reference=REFERENCE_BLOCK, store=store, protocol=protocol,
                                     progress=progress)
        blocks = normalised_frame(block_results, "block")

    predictors = fit_all(train, blocks)
    for predictor in predictors.values():
        predictor.device = device
    test_configs = [EdgeViTConfig.from_json(text) for text in test["config_json"]]
    measured = test["latency_ms"].to_numpy()
    scores = {name: score(p.predict(test_configs), measured).as_dict()
              for name, p in predictors.items()}

    noise: dict[str, float] = {}
    again = None
    if noise_repeats > 0:
        repeat = test_configs[:noise_repeats]
        again = normalised_frame(
            measure_many(repeat, threads=threads, img_size=img_size,
                         reference=preset_config(REFERENCE_MODEL), protocol=protocol,
                         progress=progress), "model")
        # on ratios, not each sweep's own normalised ms (the reference drifts between sweeps),
        # expressed in ms at this sweep's median reference
        reference_ms = float(np.median(frame["reference_latency_ms"]))
        first = test["ratio"].to_numpy()[: len(repeat)] * reference_ms
        noise = score(again["ratio"].to_numpy() * reference_ms, first).as_dict()

    report = CalibrationReport(
        device=device, img_size=tuple(img_size), train_count=len(train), test_count=test_count,
        reference_latency_ms=float(np.median(frame["reference_latency_ms"])), scores=scores,
        noise_floor=noise, seconds=time.monotonic() - started,
        noisy_measurements=int(frame["flagged_noisy"].sum()),
        extra={"train": train, "test": test, "blocks": blocks, "repeat": again},
    )
    return predictors, report


COMMITTED_MEASUREMENTS = Path(__file__).resolve().parent / "data" / "latency_cpu.csv"


def committed_predictor(kind: str = "features_gp",
                        path: Path = COMMITTED_MEASUREMENTS) -> LatencyPredictor:
    """A predictor fitted on the training rows measured by `benchmarks/latency_predictors.py`
    on the development CPU (committed), for notebooks and benchmarks that must not time."""
    frame = pd.read_csv(path)
    train = frame[frame["split"] == "train"]
    predictors = fit_all(train, frame[frame["split"] == "blocks"])
    predictor = predictors[kind]
    predictor.device = "development-cpu"
    return predictor


def calibrate_from_frame(frame: pd.DataFrame, *, device: str, seed: int = 0,
                         holdout_fraction: float = 0.25
                         ) -> tuple[dict[str, LatencyPredictor], CalibrationReport]:
    """Fit and score on measurements already stored (e.g. a phone's imported CSV)."""
    rows = frame[(frame["config_kind"] == "model")]
    if "device_name" in rows:
        rows = rows[rows["device_name"] == device]
    if len(rows) < 4:
        raise ValueError(f"device {device!r}: {len(rows)} whole-model measurements stored; "
                         "need at least 4 to fit and hold some out")
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    test_count = max(1, int(round(holdout_fraction * len(rows))))
    test, train = rows.iloc[order[:test_count]], rows.iloc[order[test_count:]]
    predictors = fit_all(train, None)
    for predictor in predictors.values():
        predictor.device = device
    test_configs = [EdgeViTConfig.from_json(text) for text in test["config_json"]]
    measured = test["latency_ms"].to_numpy(dtype=np.float64)
    scores = {name: score(p.predict(test_configs), measured).as_dict()
              for name, p in predictors.items()}
    size = (int(rows["input_h"].iloc[0]), int(rows["input_w"].iloc[0]))
    report = CalibrationReport(device=device, img_size=size, train_count=len(train),
                               test_count=test_count, reference_latency_ms=float("nan"),
                               scores=scores, noise_floor={}, seconds=0.0,
                               noisy_measurements=0)
    return predictors, report
