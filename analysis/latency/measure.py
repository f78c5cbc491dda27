"""Latency of EdgeViTs and of their single blocks on this machine, and of exported models
measured by users on their own devices.

Back-ends
---------
torch        eager float32 under `torch.inference_mode`, `torch.set_num_threads(threads)`.
onnxruntime  the model exported to ONNX (torch's default exporter; when that is unavailable, e.g.
             without `onnxscript`, the TorchScript exporter on a `torch.export`-specialised copy,
             then the plain TorchScript exporter). Every export is run once by onnxruntime and
             compared with torch before any timing: max |diff| ≤ 1e-4 × max |torch output|, else
             `OnnxExportError`. Sessions use `intra_op_num_threads=threads`,
             `inter_op_num_threads=1` and no spinning threads.

Protocol
--------
Warm-up runs, then timed runs (`time.perf_counter` around each forward, garbage collection off)
until both `min_runs` and `min_time_s` are reached (or `max_runs`). A result reports the median
`latency_ms` of one forward of the whole batch, the interquartile range `iqr_ms`, the coefficient
of variation `cv` (sample std / mean) and the number of runs. A round whose noise (cv) exceeds
`cv_threshold` is measured again, up to `max_attempts` rounds in all; the least noisy round is
kept and `flagged_noisy` is set when even that one stays above the threshold.

Sessions of the onnxruntime back-end: `analysis.latency.onnx` (export checked against torch,
no spinning threads).

This machine's speed drifts by tens of percent over minutes while the ratio of two models timed
side by side is stable to a few percent, so `measure_relative` interleaves the runs of a model
and a reference model (default `edgevit_xxs`) in one loop, alternating their order. Its noise
criterion is the cv of the per-run ratios, and the store keeps `reference_latency_ms` beside the
model's median.

Users' own devices (ONNX files out, measurements in as CSV): `analysis.latency.device_exchange`.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.runtime import check_threads, torch_threads
from edgevit import EdgeViT, preset_config
from edgevit.config import MIN_IMG_SIZE, EdgeViTConfig

from .blocks import BlockAt
from .onnx import export_onnx, ort_session
from .store import MeasurementStore, sha256_hex

BACKENDS = ("torch", "onnxruntime")
REFERENCE_MODEL = "edgevit_xxs"  # every relative measurement is timed interleaved with it

ModelSpec = str | EdgeViTConfig | nn.Module


# ---------------------------------------------------------------------------------------------
# Protocol and results


@dataclass(frozen=True)
class Protocol:
    """How a latency is measured (run counts are forwards of the whole batch)."""

    warmup_runs: int = 5
    min_runs: int = 30
    max_runs: int = 2000
    min_time_s: float = 1.0  # keep timing until this much time was spent in timed runs
    cv_threshold: float = 0.10  # a round with cv above this is noisy
    max_attempts: int = 3  # rounds in all: one measurement plus re-measurements while noisy
    seed: int = 0  # of the random input

    def __post_init__(self) -> None:
        for name in ("min_runs", "max_runs", "max_attempts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Protocol.{name} must be an integer ≥ 1, got {value!r}")
        if not isinstance(self.warmup_runs, int) or self.warmup_runs < 0:
            raise ValueError(
                f"Protocol.warmup_runs must be an integer ≥ 0, got {self.warmup_runs!r}"
            )
        if self.max_runs < self.min_runs:
            raise ValueError(f"Protocol.max_runs {self.max_runs} < min_runs {self.min_runs}")
        if not (math.isfinite(self.min_time_s) and self.min_time_s >= 0):
            raise ValueError(f"Protocol.min_time_s must be ≥ 0, got {self.min_time_s!r}")
        if not (math.isfinite(self.cv_threshold) and self.cv_threshold > 0):
            raise ValueError(f"Protocol.cv_threshold must be > 0, got {self.cv_threshold!r}")


@dataclass(frozen=True)
class LatencyResult:
    """One measurement. Times are milliseconds per forward of the whole batch."""

    latency_ms: float  # median
    iqr_ms: float  # 75th - 25th percentile
    cv: float  # sample std / mean of the timed runs
    runs: int  # timed runs of the kept round
    flagged_noisy: bool  # the kept (least noisy) round was still above the cv threshold
    backend: str
    threads: int
    batch_size: int
    img_size: tuple[int, int]  # input H, W in pixels (a block's input map for blocks)
    attempts: int = 1  # rounds measured
    label: str = ""
    config_json: str | None = None  # canonical JSON (None for an undescribed nn.Module)
    config_kind: str = "model"  # 'model' | 'block'
    exporter: str | None = None  # ONNX exporter used (onnxruntime back-end)
    reference_latency_ms: float | None = None  # median of the interleaved reference model
    reference_config_json: str | None = None
    reference_config_kind: str = "model"  # 'model' | 'block'
    ratio_cv: float | None = None  # cv of the per-run ratios model / reference

    @property
    def config_hash(self) -> str | None:
        return sha256_hex(self.config_json) if self.config_json is not None else None

    @property
    def ratio(self) -> float | None:
        """latency_ms / reference_latency_ms, for a relative measurement."""
        if self.reference_latency_ms is None:
            return None
        return self.latency_ms / self.reference_latency_ms

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with `config_hash` and `ratio`."""
        out = dataclasses.asdict(self)
        out["img_size"] = list(self.img_size)
        out["config_hash"] = self.config_hash
        out["ratio"] = self.ratio
        return out


def summarize(times_ms: Sequence[float]) -> tuple[float, float, float]:
    """(median, IQR, cv) of run times in ms; IQR by linear percentiles, cv = sample std / mean."""
    if not times_ms:
        raise ValueError("no run times to summarize")
    values = np.asarray(times_ms, dtype=float)
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    cv = float(values.std(ddof=1) / values.mean()) if len(values) > 1 else 0.0
    return float(q50), float(q75 - q25), cv


# ---------------------------------------------------------------------------------------------
# What is measured


@dataclass(frozen=True)
class Target:
    """A module in eval mode with the input it is timed on and its description for the store."""

    module: nn.Module
    input_shape: tuple[int, int, int, int]  # (B, C, H, W)
    config_json: str | None
    kind: str  # 'model' | 'block'
    label: str

    def example(self, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(self.input_shape, generator=generator)


def check_img_size(img_size: Sequence[int]) -> tuple[int, int]:
    if len(img_size) != 2:
        raise ValueError(f"img_size must be (H, W), got {tuple(img_size)}")
    h, w = (int(v) for v in img_size)
    if h < MIN_IMG_SIZE or w < MIN_IMG_SIZE:
        raise ValueError(f"img_size {h}×{w}: EdgeViT needs H, W ≥ {MIN_IMG_SIZE}")
    return h, w


def prepare(
    spec: ModelSpec | BlockAt, batch_size: int = 1, img_size: Sequence[int] = (224, 224)
) -> Target:
    """A preset name, config, `BlockAt` (its own h, w; `img_size` unused) or nn.Module, ready to
    time. Modules carrying an `EdgeViTConfig` as `.config` are described by it; others are not
    described and cannot be stored."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    if isinstance(spec, BlockAt):
        shape = (batch_size, spec.in_chans, spec.h, spec.w)
        return Target(spec.build(), shape, spec.to_json(), "block", spec.kind)
    h, w = check_img_size(img_size)
    if isinstance(spec, str):
        spec = preset_config(spec)
    if isinstance(spec, EdgeViTConfig):
        module: nn.Module = EdgeViT(spec)
        config: EdgeViTConfig | None = spec
    elif isinstance(spec, nn.Module):
        module = spec
        config = getattr(spec, "config", None)
        config = config if isinstance(config, EdgeViTConfig) else None
    else:
        raise ValueError(f"expected a model name, EdgeViTConfig, BlockAt or nn.Module, got "
                         f"{type(spec).__name__}")
    in_chans = config.in_chans if config is not None else 3
    label = config.name if config is not None else type(module).__name__
    return Target(
        module.float().eval(),
        (batch_size, in_chans, h, w),
        config.to_json() if config is not None else None,
        "model",
        label,
    )


# ---------------------------------------------------------------------------------------------
# Timing


def time_interleaved(runners: Sequence[Callable[[], object]], protocol: Protocol
                      ) -> list[list[float]]:
    """Per-run times (ms) of each runner, timed in one loop in alternating order (ABBA...)."""
    for run in runners:
        for _ in range(protocol.warmup_runs):
            run()
    times: list[list[float]] = [[] for _ in runners]
    order = list(range(len(runners)))
    spent_s = 0.0
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(protocol.max_runs):
            if i >= protocol.min_runs and spent_s >= protocol.min_time_s:
                break
            for j in order if i % 2 == 0 else reversed(order):
                start = time.perf_counter()
                runners[j]()
                elapsed = time.perf_counter() - start
                times[j].append(elapsed * 1e3)
                spent_s += elapsed
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


@dataclass
class _Prepared:
    """A target with its runner for one back-end (and the ONNX exporter used)."""

    target: Target
    run: Callable[[], object]
    exporter: str | None


def _runner(target: Target, backend: str, threads: int, protocol: Protocol,
            onnx_path: Path) -> _Prepared:
    example = target.example(protocol.seed)
    if backend == "torch":
        return _Prepared(target, lambda: target.module(example), None)
    exporter = export_onnx(target.module, example, onnx_path)
    session = ort_session(onnx_path, threads)
    feeds = {session.get_inputs()[0].name: example.numpy()}
    output_names = [session.get_outputs()[0].name]
    return _Prepared(target, lambda: session.run(output_names, feeds), exporter)


def _check_backend_threads(backend: str, threads: int) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    check_threads(threads)


def _measure(targets: Sequence[Target], backend: str, threads: int,
             protocol: Protocol) -> LatencyResult:
    """Time targets[0] (interleaved with targets[1], the reference, when given)."""
    with tempfile.TemporaryDirectory(prefix="edgevit-onnx-") as tmp, torch_threads(threads):
        prepared = [_runner(t, backend, threads, protocol, Path(tmp) / f"{i}.onnx")
                    for i, t in enumerate(targets)]
        best: tuple[float, list[list[float]]] | None = None
        attempts = 0
        while attempts < protocol.max_attempts:
            attempts += 1
            with torch.inference_mode():
                times = time_interleaved([p.run for p in prepared], protocol)
            if len(times) == 1:
                noise = summarize(times[0])[2]
            else:
                noise = summarize([a / b for a, b in zip(times[0], times[1])])[2]
            if best is None or noise < best[0]:
                best = (noise, times)
            if noise <= protocol.cv_threshold:
                break
    assert best is not None
    noise, times = best
    median, iqr, cv = summarize(times[0])
    main = prepared[0].target
    reference = dict(
        reference_latency_ms=summarize(times[1])[0],
        reference_config_json=targets[1].config_json,
        reference_config_kind=targets[1].kind,
        ratio_cv=noise,
    ) if len(targets) > 1 else {}
    return LatencyResult(
        latency_ms=median, iqr_ms=iqr, cv=cv, runs=len(times[0]),
        flagged_noisy=noise > protocol.cv_threshold, backend=backend, threads=threads,
        batch_size=main.input_shape[0], img_size=(main.input_shape[2], main.input_shape[3]),
        attempts=attempts, label=main.label, config_json=main.config_json,
        config_kind=main.kind, exporter=prepared[0].exporter, **reference,
    )


def measure(
    model: ModelSpec | BlockAt,
    *,
    reference: ModelSpec | BlockAt | None = None,
    backend: str = "torch",
    threads: int = 1,
    batch_size: int = 1,
    img_size: Sequence[int] = (224, 224),
    protocol: Protocol = Protocol(),
) -> LatencyResult:
    """Median latency (ms per forward of a batch of `batch_size` H×W images) of one model.

    With `reference`, the model is timed interleaved with it (same back-end, batch and input
    size): both medians, and `ratio` = latency_ms / reference_latency_ms, stable where absolute
    times drift; noise is then judged on the per-run ratios (`ratio_cv`)."""
    _check_backend_threads(backend, threads)
    targets = [prepare(model, batch_size, img_size)]
    if reference is not None:
        targets.append(prepare(reference, batch_size, img_size))
    return _measure(targets, backend, threads, protocol)


def measure_relative(model: ModelSpec | BlockAt,
                     reference_model: ModelSpec | BlockAt = REFERENCE_MODEL,
                     **settings: Any) -> LatencyResult:
    """`measure(model, reference=reference_model, **settings)`."""
    return measure(model, reference=reference_model, **settings)


# ---------------------------------------------------------------------------------------------
# Storing and sweeping


def store_result(store: MeasurementStore, result: LatencyResult,
                 device_id: int | None = None) -> int:
    """Append a result (this machine's device unless `device_id`); returns the row id.

    The config (and the reference's) are added to `configs` in the same transaction.
    """
    if result.config_json is None:
        raise ValueError(f"{result.label}: an nn.Module without an EdgeViTConfig `.config` has no "
                         "description to store; measure a config, name or BlockAt instead")
    with store.transaction():
        if device_id is None:
            device_id = store.add_device()
        config_hash = store.add_config(result.config_json, result.config_kind)
        reference_hash = None
        if result.reference_config_json is not None:
            reference_hash = store.add_config(result.reference_config_json,
                                              result.reference_config_kind)
        elif result.reference_latency_ms is not None:
            raise ValueError("a relative result without a described reference cannot be stored")
        return store.add_measurement(
            device_id=device_id, config_hash=config_hash, backend=result.backend,
            batch_size=result.batch_size, input_h=result.img_size[0], input_w=result.img_size[1],
            threads=result.threads, latency_ms=result.latency_ms, iqr_ms=result.iqr_ms,
            cv=result.cv, runs=result.runs, flagged_noisy=result.flagged_noisy,
            source="measured", reference_latency_ms=result.reference_latency_ms,
            reference_config_hash=reference_hash,
        )


def measure_many(
    items: Iterable[ModelSpec | BlockAt],
    *,
    backend: str = "torch",
    threads: int = 1,
    batch_size: int = 1,
    img_size: Sequence[int] = (224, 224),
    reference: ModelSpec | BlockAt | None = None,
    store: MeasurementStore | None = None,
    protocol: Protocol = Protocol(),
    progress: bool = True,
) -> list[LatencyResult]:
    """Measure a sweep (relative to `reference` when given) under a tqdm progress bar, appending
    each result to `store` as soon as it is measured."""
    from tqdm import tqdm

    items = list(items)
    _check_backend_threads(backend, threads)
    device_id = store.add_device() if store is not None else None
    results = []
    for item in tqdm(items, desc=f"latency ({backend})", unit="model", disable=not progress):
        result = measure(item, reference=reference, backend=backend, threads=threads,
                         batch_size=batch_size, img_size=img_size, protocol=protocol)
        if store is not None:
            store_result(store, result, device_id)
        results.append(result)
    return results
