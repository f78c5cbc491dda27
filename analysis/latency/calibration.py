"""Calibrating latency predictors for one device, with their held-out error reported.

This machine's speed drifts by up to ±40 % over minutes, while two models timed interleaved
keep their ratio to a few percent. So every whole model is timed interleaved with a reference
model (the XXS preset), every block with a reference block, and each latency is brought to the
sweep's median reference time:

    latency_ms = raw_latency_ms × (median reference_ms / reference_ms) ** β

β = 1 is the plain ratio. But when other work slows the machine, the small reference slows down
more than larger models do (on this shared 2-vCPU machine the fitted β was 0.79–0.84 at 1 thread
and 0.84–0.91 at 2 threads), and the plain ratio over-corrects. β is fitted on the training
configs alone (`fit_state_exponent`) and applied to every whole-model row; blocks keep β = 1.
Predictors are fitted and scored on these numbers; the noise floor is the same held-out configs
measured twice the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.cost import DEFAULT_SPACE, split_by_shared_fields
from edgevit.config import PRESETS, EdgeViTConfig, stage_sizes

from .blocks import BlockAt, model_blocks
from .measure import REFERENCE_MODEL, LatencyResult, Protocol, measure_many
from .predictors import (
    BlockTable,
    FeatureModel,
    LatencyPredictor,
    MacsLinear,
    PredictorSettings,
    score,
)
from .store import MeasurementStore, device_fingerprint, fingerprint_hash
from .transfer import KindScaledTransfer

# the block every block is timed against: XXS's stage-3 block (c 144, 4 heads, r = 2) at 224²
REFERENCE_BLOCK = BlockAt(PRESETS[REFERENCE_MODEL].block_config(2),
                          *stage_sizes((224, 224))[2])


def sample_configs(count: int, seed: int = 0) -> list[EdgeViTConfig]:
    """The presets, then distinct random points of the search space, `count` in all."""
    if count < 1:
        raise ValueError(f"calibration budget must be ≥ 1 config, got {count}")
    rng = np.random.default_rng(seed)
    configs = list(PRESETS.values())[:count]
    seen = {config.to_json() for config in configs}
    while len(configs) < count:
        config = DEFAULT_SPACE.decode(DEFAULT_SPACE.sample(rng))
        if config.to_json() not in seen:
            seen.add(config.to_json())
            configs.append(config.replace(name=f"sample{len(configs)}"))
    return configs


def normalised_frame(results: Sequence[LatencyResult], kind: str) -> pd.DataFrame:
    """Relative results -> rows with latency_ms = ratio × the sweep's median reference (β = 1;
    whole-model rows are re-expressed with the fitted β by `evaluate_calibration`)."""
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


def state_adjusted(rows: pd.DataFrame, exponent: float, reference_ms: float) -> pd.DataFrame:
    """rows with latency_ms = raw_latency_ms × (reference_ms / reference_latency_ms) ** exponent."""
    scale = (reference_ms / rows["reference_latency_ms"].to_numpy(dtype=np.float64)) ** exponent
    return rows.assign(latency_ms=rows["raw_latency_ms"].to_numpy(dtype=np.float64) * scale)


MIN_REFERENCE_SPREAD = 0.01  # std of log reference time below which β cannot be told apart
MIN_ROWS_FOR_EXPONENT = 30  # fewer training rows: β = 1 rather than a noisy estimate


def fit_state_exponent(train: pd.DataFrame, reference_ms: float, *, iterations: int = 5,
                       bounds: tuple[float, float] = (0.0, 2.0)) -> float:
    """β of raw_ms ≈ f(config) · (reference_latency_ms / reference_ms) ** β, fitted on training
    rows: alternately fit f (per-kind cost features, no correction) to the adjusted latencies
    and regress log(raw / f) on log(reference / reference_ms). Configs are drawn at random, so
    the machine's state is independent of them and β is identified. 1 when the reference
    barely moved (nothing to fit) or with fewer than MIN_ROWS_FOR_EXPONENT rows; clipped to
    `bounds`."""
    from .predictors import FeatureModel

    log_reference = np.log(train["reference_latency_ms"].to_numpy(dtype=np.float64)
                           / reference_ms)
    if len(train) < MIN_ROWS_FOR_EXPONENT or log_reference.std() < MIN_REFERENCE_SPREAD:
        return 1.0
    configs = [EdgeViTConfig.from_json(text) for text in train["config_json"]]
    raw = train["raw_latency_ms"].to_numpy(dtype=np.float64)
    x = log_reference - log_reference.mean()
    exponent = 1.0
    for _ in range(iterations):
        base = FeatureModel(correction=False).fit(state_adjusted(train, exponent, reference_ms))
        residual = np.log(raw / base.predict(configs))
        exponent = float(np.clip(np.sum(x * residual) / np.sum(x * x), *bounds))
    return exponent


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
    state_exponent: float = 1.0  # β of the reference normalisation (1 = plain ratio)
    extra: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        normalised = (f", reference normalisation β = {self.state_exponent:.2f}"
                      if np.isfinite(self.reference_latency_ms) else "")
        lines = [f"held-out configs: {self.test_count} (trained on {self.train_count}), "
                 f"device {self.device}, {self.img_size[0]}×{self.img_size[1]}{normalised}",
                 f"{'predictor':17s} {'MAPE':>7s} {'±5 %':>6s} {'±10 %':>6s} {'τ':>6s} "
                 f"{'RMSE ms':>8s} {'in 90 % interval':>17s}"]
        rows = dict(self.scores)
        if self.noise_floor:
            rows["noise floor"] = self.noise_floor
        for name, s in rows.items():
            coverage = f"{s['coverage']:17.0%}" if "coverage" in s else f"{'':17s}"
            lines.append(f"{name:17s} {s['mape']:7.1%} {s['within_5']:6.0%} "
                         f"{s['within_10']:6.0%} {s['kendall_tau']:6.3f} {s['rmse_ms']:8.2f} "
                         f"{coverage}")
        return "\n".join(lines)


def fit_all(train: pd.DataFrame, blocks: pd.DataFrame | None, settings: PredictorSettings,
            prior: FeatureModel | None = None) -> dict[str, LatencyPredictor]:
    """The predictors fitted on the same whole-model rows (+ block rows for the table; with a
    `prior` of other settings, its per-kind transfer `KindScaledTransfer` too), each with its
    interval (`LatencyPredictor.fit_interval`) and `settings`."""
    fitters: dict[str, Callable[[pd.DataFrame], LatencyPredictor]] = {
        "macs_linear": lambda rows: MacsLinear().fit(rows),
        "features_gp": lambda rows: FeatureModel().fit(rows),
    }
    if prior is not None:
        fitters[KindScaledTransfer.kind] = lambda rows: KindScaledTransfer(prior).fit(rows)
    if blocks is not None and len(blocks):
        fitters["block_table"] = lambda rows: BlockTable().fit(pd.concat([blocks, rows]))
    predictors = {}
    for name, fit in fitters.items():
        predictor = fit(train)
        if isinstance(predictor, FeatureModel) and predictor.correction:
            # the folds keep the full fit's GP kernel (refitting the data, not the kernel)
            fit = functools.partial(_fit_with_kernel, predictor.kernel_theta)
        predictor.fit_interval(train, fit)
        predictor.settings = dataclasses.replace(settings, img_size=predictor.img_size)
        predictors[name] = predictor
    return predictors


def _fit_with_kernel(kernel_theta: list[float], rows: pd.DataFrame) -> FeatureModel:
    return FeatureModel(kernel_theta=kernel_theta).fit(rows)


CALIBRATION_STRATEGIES = ("random", "active")


def candidate_pool(size: int, seed: int = 0) -> list[EdgeViTConfig]:
    """Where an active sweep may measure: `size` distinct configs of the space, half drawn
    uniformly, half at its extremes (each parameter at its smallest or largest choice, drawn
    independently), which uniform draws rarely reach."""
    rng = np.random.default_rng(seed)
    choices = DEFAULT_SPACE.choices()
    seen: dict[str, EdgeViTConfig] = {}
    for attempt in range(20 * size):
        if len(seen) == size:
            break
        if attempt % 2:
            params = DEFAULT_SPACE.sample(rng)
        else:
            params = {name: (min(v) if rng.random() < 0.5 else max(v))
                      for name, v in choices.items()}
        config = DEFAULT_SPACE.decode(params)
        seen.setdefault(config.to_json(), config)
    return list(seen.values())


def choose_uncertain(measured: pd.DataFrame, pool: Sequence[EdgeViTConfig], count: int,
                     exclude: set[str] = frozenset()) -> list[EdgeViTConfig]:
    """`count` configs of `pool` (none whose JSON is in `exclude`) where a Gaussian-process
    predictor fitted on the whole-model rows measured so far is least certain: the largest
    predictive std of the log latency, one pick at a time, each pick then taken as measured at
    its own prediction (the "kriging believer"), so that one batch spreads over the space."""
    model = FeatureModel().fit(measured)
    if not model.correction:
        raise ValueError("choosing by uncertainty needs ≥ 5 measured configs")
    available = np.array([config.to_json() not in exclude for config in pool])
    rows = measured
    picks: list[EdgeViTConfig] = []
    for _ in range(min(count, int(available.sum()))):
        spread = np.full(len(pool), -np.inf)
        for index, batch in split_by_shared_fields(list(pool)):
            spread[index] = model.log_spread(batch)
        spread[~available] = -np.inf
        best = int(np.argmax(spread))
        picks.append(pool[best])
        available[best] = False
        believed = pd.DataFrame({"config_json": [pool[best].to_json()],
                                 "config_kind": "model", "input_h": model.img_size[0],
                                 "input_w": model.img_size[1],
                                 "latency_ms": model.predict([pool[best]])})
        rows = pd.concat([rows, believed], ignore_index=True)
        model = FeatureModel(kernel_theta=model.kernel_theta).fit(rows)
    return picks


def calibrate(
    *, device: str, budget: int, threads: int = 1, img_size: tuple[int, int] = (224, 224),
    seed: int = 0, store: MeasurementStore | None = None, holdout_fraction: float = 0.25,
    with_blocks: bool = True, noise_repeats: int = 10, protocol: Protocol = Protocol(),
    strategy: str = "random", progress: bool = True, prior: FeatureModel | None = None,
) -> tuple[dict[str, LatencyPredictor], CalibrationReport]:
    """Measure `budget` configs on this machine, fit every predictor, score on held-out ones.
    With a `prior` (a features-GP of other settings), its per-kind transfer is fitted and
    scored beside the others: the way to a new setting from a small budget.

    The held-out configs are a uniform random share of the space. The training configs are
    too with `strategy` "random"; with "active", a third of them (the presets first) are, and
    the rest are chosen in rounds by `choose_uncertain` from a `candidate_pool` that includes
    the space's extremes. At one seed both strategies hold out the same configs.
    """
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    if strategy not in CALIBRATION_STRATEGIES:
        raise ValueError(f"strategy must be one of {CALIBRATION_STRATEGIES}, got {strategy!r}")
    started = time.monotonic()
    configs = sample_configs(budget, seed)
    test_count = max(1, int(round(holdout_fraction * len(configs))))
    if len(configs) - test_count < 3:
        raise ValueError(f"budget {budget} leaves fewer than 3 training configs")
    order = np.random.default_rng(seed + 1).permutation(len(configs))
    test = [configs[i] for i in order[:test_count]]
    train = [configs[i] for i in order[test_count:]]
    reference = PRESETS[REFERENCE_MODEL]

    def timed(items: Sequence[EdgeViTConfig]) -> list[LatencyResult]:
        return measure_many(items, threads=threads, img_size=img_size, reference=reference,
                            store=store, protocol=protocol, progress=progress)

    test_results = timed(test)
    if strategy == "random":
        train_results = timed(train)
    else:
        wanted = len(train)
        presets = [c for c in train if c.name in PRESETS]
        train = (presets + [c for c in train if c.name not in PRESETS])[:max(5, wanted // 3)]
        train_results = timed(train)
        pool = candidate_pool(4000, seed + 2)
        chosen = {c.to_json() for c in train + test}
        while len(train) < wanted:
            measured = normalised_frame(train_results, "model")
            count = min(max(4, wanted // 8), wanted - len(train))
            picks = choose_uncertain(measured, pool, count, exclude=chosen)
            if not picks:
                break
            picks = [c.replace(name=f"active{len(train) + i}") for i, c in enumerate(picks)]
            chosen |= {c.to_json() for c in picks}
            train += picks
            train_results += timed(picks)
    frame = normalised_frame(test_results + train_results, "model")
    parts = [frame.iloc[:len(test_results)].assign(split="test"),
             frame.iloc[len(test_results):].assign(split="train")]

    if with_blocks:
        distinct = {}
        for config in test + train:
            for block in model_blocks(config, img_size):
                distinct.setdefault((block.to_json(), block.h, block.w), block)
        block_results = measure_many(list(distinct.values()), threads=threads,
                                     reference=REFERENCE_BLOCK, store=store, protocol=protocol,
                                     progress=progress)
        parts.append(normalised_frame(block_results, "block").assign(split="blocks"))
    if noise_repeats > 0:
        again = timed(test[:noise_repeats])
        parts.append(normalised_frame(again, "model").assign(split="repeat"))

    settings = PredictorSettings(backend="torch", threads=threads, batch_size=1,
                                 img_size=img_size, device=device,
                                 fingerprint=fingerprint_hash(device_fingerprint()))
    predictors, report = evaluate_calibration(pd.concat(parts, ignore_index=True),
                                              settings=settings, prior=prior)
    report.seconds = time.monotonic() - started
    report.extra["strategy"] = strategy
    return predictors, report


def evaluate_calibration(frame: pd.DataFrame, *, settings: PredictorSettings,
                         prior: FeatureModel | None = None
                         ) -> tuple[dict[str, LatencyPredictor], CalibrationReport]:
    """Fit and score measured rows with a `split` column: 'train' and 'test' configs, optional
    'blocks' (for the table) and 'repeat' (test configs measured again, for the noise floor),
    each with raw_latency_ms and reference_latency_ms. Whole-model latency_ms is recomputed with
    β fitted on the training rows, so this also re-scores stored calibrations. Rows without a
    reference time (a device's own absolute measurements) keep their latency_ms."""
    splits = {name: frame[frame["split"] == name] for name in ("train", "test", "blocks",
                                                               "repeat")}
    if len(splits["train"]) < 3 or len(splits["test"]) < 1:
        raise ValueError(f"need ≥ 3 training and ≥ 1 held-out rows, got "
                         f"{len(splits['train'])} and {len(splits['test'])}")
    swept = pd.concat([splits["train"], splits["test"]])
    reference_ms, exponent = float("nan"), 1.0
    if "reference_latency_ms" in swept and swept["reference_latency_ms"].notna().all():
        reference_ms = float(np.median(swept["reference_latency_ms"]))
        exponent = fit_state_exponent(splits["train"], reference_ms)
        for name in ("train", "test", "repeat"):
            splits[name] = state_adjusted(splits[name], exponent, reference_ms)
    train, test = splits["train"], splits["test"]
    blocks = splits["blocks"] if len(splits["blocks"]) else None

    predictors = fit_all(train, blocks, settings, prior)
    test_configs = [EdgeViTConfig.from_json(text) for text in test["config_json"]]
    measured = test["latency_ms"].to_numpy()
    scores = {name: score(p.predict(test_configs, check=False), measured,
                          p.interval(test_configs, check=False)).as_dict()
              for name, p in predictors.items()}
    for name, predictor in predictors.items():
        predictor.scores = scores[name]
    noise: dict[str, float] = {}
    if len(splits["repeat"]):
        again = splits["repeat"]
        first = test.drop_duplicates("config_json").set_index("config_json")["latency_ms"]
        noise = score(again["latency_ms"].to_numpy(),
                      first.loc[again["config_json"]].to_numpy()).as_dict()

    report = CalibrationReport(
        device=settings.device,
        img_size=(int(swept["input_h"].iloc[0]), int(swept["input_w"].iloc[0])),
        train_count=len(train), test_count=len(test), reference_latency_ms=reference_ms,
        scores=scores, noise_floor=noise, seconds=0.0,
        noisy_measurements=int(swept["flagged_noisy"].sum()) if "flagged_noisy" in swept else 0,
        state_exponent=exponent,
        extra={"train": train, "test": test, "blocks": blocks,
               "repeat": splits["repeat"] if len(splits["repeat"]) else None},
    )
    return predictors, report


COMMITTED_DATA = Path(__file__).resolve().parent / "data"
# Calibrations of the development CPU by `benchmarks/latency_predictors.py`, by thread count.
COMMITTED_CALIBRATIONS = {1: COMMITTED_DATA / "latency_cpu_1thread.csv",
                          2: COMMITTED_DATA / "latency_cpu_2threads.csv"}
# The search's default latency objective: the whole 2-core CPU.
COMMITTED_MEASUREMENTS = COMMITTED_CALIBRATIONS[2]


def committed_predictor(kind: str = "features_gp",
                        path: Path = COMMITTED_MEASUREMENTS) -> LatencyPredictor:
    """A predictor fitted on the training rows of a committed calibration of the development
    CPU (its settings from the JSON beside the CSV), for notebooks and benchmarks that must not
    time."""
    frame = pd.read_csv(path)
    train = frame[frame["split"] == "train"]
    return fit_all(train, frame[frame["split"] == "blocks"], recorded_settings(path))[kind]


def recorded_settings(path: Path, device: str = "development-cpu") -> PredictorSettings:
    """The settings of a calibration sweep written by `benchmarks/latency_predictors.py`: the
    CSV's input size and the JSON beside it (device fingerprint, thread count; torch, batch 1)."""
    frame = pd.read_csv(path, usecols=["input_h", "input_w"], nrows=1)
    record = json.loads(Path(path).with_suffix(".json").read_text())
    return PredictorSettings(
        backend="torch", threads=int(record["threads"]), batch_size=1,
        img_size=(int(frame["input_h"].iloc[0]), int(frame["input_w"].iloc[0])),
        device=device, fingerprint=fingerprint_hash(record["device"]))


def calibrate_from_frame(frame: pd.DataFrame, *, device: str, seed: int = 0,
                         holdout_fraction: float = 0.25, prior: FeatureModel | None = None
                         ) -> tuple[dict[str, LatencyPredictor], CalibrationReport]:
    """Fit and score on measurements already stored (`MeasurementStore.to_dataframe()`, e.g. a
    phone's imported CSV): the device's whole-model rows, a random share held out. Rows timed
    against a reference (all of them) are normalised like a fresh calibration's. With a
    `prior`, its per-kind transfer is fitted and scored too (a new device from few rows)."""
    rows = frame[(frame["config_kind"] == "model")]
    if "device_name" in rows:
        rows = rows[rows["device_name"] == device]
    if len(rows) < 4:
        raise ValueError(f"device {device!r}: {len(rows)} whole-model measurements stored; "
                         "need at least 4 to fit and hold some out")
    order = np.random.default_rng(seed + 1).permutation(len(rows))
    test_count = max(1, int(round(holdout_fraction * len(rows))))
    split = np.full(len(rows), "train", dtype=object)
    split[order[:test_count]] = "test"
    settings = PredictorSettings(
        backend=_only(rows, "backend"), threads=_threads(rows),
        batch_size=int(_only(rows, "batch_size")),
        img_size=(int(rows["input_h"].iloc[0]), int(rows["input_w"].iloc[0])), device=device,
        fingerprint=str(_only(rows, "device_hash")) if "device_hash" in rows else "")
    return evaluate_calibration(rows.assign(split=split, raw_latency_ms=rows["latency_ms"]),
                                settings=settings, prior=prior)


def _threads(rows: pd.DataFrame) -> int | None:
    """The rows' one thread count, or None where none was recorded (imported CSVs)."""
    if rows["threads"].isna().all():
        return None
    if rows["threads"].isna().any():
        raise ValueError("the measurements mix rows with and without a thread count; fit "
                         "one setting at a time")
    return int(_only(rows, "threads"))


def _only(rows: pd.DataFrame, column: str) -> Any:
    """The one value of `column` in `rows`; ValueError when the rows mix several."""
    values = rows[column].unique()
    if len(values) != 1:
        raise ValueError(f"the measurements mix {column} values {sorted(map(str, values))}; "
                         f"fit one {column} at a time")
    return values[0].item() if hasattr(values[0], "item") else values[0]
