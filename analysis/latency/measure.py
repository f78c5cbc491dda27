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

This machine's speed drifts by tens of percent over minutes while the ratio of two models timed
side by side is stable to a few percent, so `measure_relative` interleaves the runs of a model
and a reference model (default `edgevit_xxs`) in one loop, alternating their order. Its noise
criterion is the cv of the per-run ratios, and the store keeps `reference_latency_ms` beside the
model's median.

Users' own devices (ONNX files out, measurements in as CSV): `analysis.latency.device_exchange`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from edgevit.config import (
    GLOBAL_ATTNS,
    LOCAL_AGGS,
    LOCAL_PROPS,
    MIN_IMG_SIZE,
    SAMPLERS,
    EdgeViTConfig,
)
from edgevit.layers import LGLBlock, Stem, trunc_normal_init
from edgevit.model import STAGE_STRIDES, EdgeViT

from analysis.latency.store import MeasurementStore, canonical_json, sha256_hex

if TYPE_CHECKING:
    import onnxruntime

BACKENDS = ("torch", "onnxruntime")
DEFAULT_REFERENCE = "edgevit_xxs"
ONNX_OPSET = 18
ONNX_REL_TOL = 1e-4  # max |onnx - torch| ≤ ONNX_REL_TOL × max |torch|
BLOCK_KINDS = ("lgl", "stem", "head")

ModelSpec = str | EdgeViTConfig | nn.Module


class OnnxExportError(RuntimeError):
    """A model could not be exported to ONNX with outputs matching torch."""


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
# Single blocks


@dataclass(frozen=True)
class BlockSpec:
    """One block in isolation, for lookup-table predictors.

    kind 'lgl': an `LGLBlock` (with the ablation switches) on a c×h×w map; 'stem': a
    `Stem(in_chans -> c, stride)` on an in_chans×h×w map; 'head': the final BatchNorm, global
    pooling and the classifier on a c×h×w map. `h`, `w` are the block's input map size; they are
    not part of `description()` (the store keeps them as the measurement's input H, W).
    """

    kind: str
    c: int  # channels (lgl: width; stem: output channels; head: input features)
    h: int
    w: int
    r: int = 1  # sample rate
    heads: int = 1
    mlp_hidden: int | None = None  # None: int(4 × c)
    kernel: int = 5
    local_agg: str = "conv"
    global_attn: str = "sparse"
    sampler: str = "top_left"
    local_prop: str = "deconv"
    qkv_bias: bool = True
    in_chans: int = 3  # stem input channels
    stride: int = 4  # stem stride
    num_classes: int = 1000  # head outputs

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"block kind must be one of {BLOCK_KINDS}, got {self.kind!r}")
        if self.mlp_hidden is None:
            object.__setattr__(self, "mlp_hidden", int(4 * self.c))
        for name in ("c", "h", "w", "r", "heads", "mlp_hidden", "kernel", "in_chans", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BlockSpec.{name} must be an integer ≥ 1, got {value!r}")
        classes = self.num_classes
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:
            raise ValueError(f"BlockSpec.num_classes must be an integer ≥ 0, got {classes!r}")
        if self.c % self.heads:
            raise ValueError(f"BlockSpec: c {self.c} is not a multiple of heads {self.heads}")
        if self.kernel % 2 == 0:
            raise ValueError(f"BlockSpec.kernel must be odd, got {self.kernel}")
        for name, allowed in (("local_agg", LOCAL_AGGS), ("global_attn", GLOBAL_ATTNS),
                              ("sampler", SAMPLERS), ("local_prop", LOCAL_PROPS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"BlockSpec.{name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        if self.kind == "stem" and (self.h < self.stride or self.w < self.stride):
            raise ValueError(f"BlockSpec: a stride-{self.stride} stem needs h, w ≥ {self.stride}")

    def description(self) -> dict[str, Any]:
        """The fields that change the block, switches it does not use left out, so that equal
        blocks describe equal (e.g. an r = 1 LGL block has no LocalAgg, sampler or LocalProp)."""
        if self.kind == "stem":
            return {"block": "stem", "in_chans": self.in_chans, "c": self.c, "stride": self.stride}
        if self.kind == "head":
            return {"block": "head", "c": self.c, "num_classes": self.num_classes}
        out: dict[str, Any] = {
            "block": "lgl", "c": self.c, "r": self.r, "heads": self.heads,
            "mlp_hidden": self.mlp_hidden, "qkv_bias": self.qkv_bias,
            "global_attn": self.global_attn, "local_agg": "none",
        }
        if self.r > 1 and self.local_agg != "none":
            out.update(local_agg=self.local_agg, kernel=self.kernel)
        if self.r > 1 and self.global_attn == "sparse":
            out.update(sampler=self.sampler, local_prop=self.local_prop)
        return out

    def to_json(self) -> str:
        """Canonical JSON of `description()` (the store's config JSON, kind 'block')."""
        return canonical_json(self.description())

    def in_channels(self) -> int:
        return self.in_chans if self.kind == "stem" else self.c

    def build(self) -> nn.Module:
        """The block, initialised as in EdgeViT, in eval mode."""
        if self.kind == "stem":
            module: nn.Module = Stem(in_chans=self.in_chans, out_chans=self.c, stride=self.stride)
        elif self.kind == "head":
            module = HeadBlock(dim=self.c, num_classes=self.num_classes)
        else:
            module = LGLBlock(
                dim=self.c,
                num_heads=self.heads,
                mlp_hidden=self.mlp_hidden,
                rate=self.r,
                kernel=self.kernel,
                qkv_bias=self.qkv_bias,
                local_agg=self.local_agg,
                global_attn=self.global_attn,
                sampler=self.sampler,
                local_prop=self.local_prop,
            )
        module.apply(trunc_normal_init)
        return module.eval()


class HeadBlock(nn.Module):
    """EdgeViT's head as one block: BatchNorm2d, global average pooling, linear classifier."""

    def __init__(self, *, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x).mean(dim=(2, 3)))  # (B, C, h, w) -> (B, classes)


def model_blocks(config: EdgeViTConfig, img_size: tuple[int, int]) -> list[BlockSpec]:
    """The blocks of an EdgeViT at an H×W input, in order: per stage its stem and LGL blocks,
    then the head; a model's latency is roughly the sum of these blocks' latencies."""
    h, w = img_size
    blocks: list[BlockSpec] = []
    in_chans = config.in_chans
    for i, (c, depth, r) in enumerate(zip(config.widths, config.depths, config.sample_rates)):
        stride = STAGE_STRIDES[i]
        blocks.append(BlockSpec(kind="stem", c=c, h=h, w=w, in_chans=in_chans, stride=stride))
        h, w = h // stride, w // stride
        lgl = BlockSpec(
            kind="lgl", c=c, h=h, w=w, r=r, heads=config.num_heads[i],
            mlp_hidden=config.mlp_hidden[i], kernel=config.local_kernel,
            local_agg=config.local_agg, global_attn=config.global_attn,
            sampler=config.sampler, local_prop=config.local_prop, qkv_bias=config.qkv_bias,
        )
        blocks.extend([lgl] * depth)
        in_chans = c
    blocks.append(BlockSpec(kind="head", c=config.widths[-1], h=h, w=w,
                            num_classes=config.num_classes))
    return blocks


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
    spec: ModelSpec | BlockSpec, batch_size: int = 1, img_size: Sequence[int] = (224, 224)
) -> Target:
    """A preset name, config, BlockSpec (its own h, w; `img_size` unused) or nn.Module, ready to
    time. Modules carrying an `EdgeViTConfig` as `.config` are described by it; others are not
    described and cannot be stored."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    if isinstance(spec, BlockSpec):
        shape = (batch_size, spec.in_channels(), spec.h, spec.w)
        return Target(spec.build(), shape, spec.to_json(), "block", spec.kind)
    h, w = check_img_size(img_size)
    if isinstance(spec, str):
        from edgevit.registry import preset_config

        spec = preset_config(spec)
    if isinstance(spec, EdgeViTConfig):
        module: nn.Module = EdgeViT(spec)
        config: EdgeViTConfig | None = spec
    elif isinstance(spec, nn.Module):
        module = spec
        config = getattr(spec, "config", None)
        config = config if isinstance(config, EdgeViTConfig) else None
    else:
        raise ValueError(f"expected a model name, EdgeViTConfig, BlockSpec or nn.Module, got "
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
# ONNX


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to `threads` inside, restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Exporter chatter (deprecation and tracer warnings, progress prints) kept off stdout."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _export_default(module: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False,
                      opset_version=opset, input_names=["input"], output_names=["output"],
                      verbose=False)


def _export_torchscript_static(
    module: nn.Module, example: torch.Tensor, path: Path, opset: int
) -> None:
    # torch.export bakes every shape in as a constant. Tracing EdgeViT directly records its
    # shape arithmetic instead, and ONNX's integer Div truncates where Python's // floors, so
    # `padded_size` pads wrongly on maps that are not multiples of r (LSA windows, odd sizes).
    static = torch.export.export(module, (example,)).module()
    torch.onnx.export(static, (example,), str(path), dynamo=False, opset_version=opset,
                      input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE)


def _export_torchscript(module: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                      input_names=["input"], output_names=["output"])


EXPORTERS: dict[str, Callable[[nn.Module, torch.Tensor, Path, int], None]] = {
    "torch.onnx (default)": _export_default,
    "torchscript (torch.export static shapes)": _export_torchscript_static,
    "torchscript": _export_torchscript,
}


def ort_session(path: str | os.PathLike[str], threads: int = 1, *, spinning: bool = False
                ) -> onnxruntime.InferenceSession:
    """A CPU session: `threads` intra-op threads, one inter-op thread.

    Without `spinning` (the default here) idle worker threads sleep at once; ONNX Runtime's own
    default lets them spin, which is faster for the session itself but slows whatever else runs
    on the cores meanwhile (here: torch runs timed interleaved with it, at half speed).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    spin = "1" if spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    if spinning:  # spin inside a run only: workers sleep as soon as Run() returns
        so.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def onnx_rel_error(module: nn.Module, path: str | os.PathLike[str], example: torch.Tensor) -> float:
    """max |onnxruntime - torch| / max |torch| on `example` (float32, eval mode)."""
    with torch.inference_mode(), torch_threads(1):
        ref = module(example).numpy()
    session = ort_session(path)
    out = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
    if out.shape != ref.shape:
        raise OnnxExportError(f"ONNX output shape {out.shape} differs from torch's {ref.shape}")
    scale = float(np.abs(ref).max())
    diff = float(np.abs(out.astype(np.float64) - ref).max())
    if not math.isfinite(diff):
        return math.inf
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def export_onnx(
    module: nn.Module, example: torch.Tensor, path: str | os.PathLike[str], opset: int = ONNX_OPSET
) -> str:
    """Export `module` for input `example` to `path` and check onnxruntime against torch.

    Tries the exporters of `EXPORTERS` in order and returns the name of the first whose file
    onnxruntime runs with max |diff| ≤ 1e-4 × max |torch output|; raises `OnnxExportError`
    listing every exporter's problem otherwise. Exports run on one torch thread: graph capture
    gains nothing from more, and idle OpenMP threads spinning on a busy machine cost plenty.
    """
    path = Path(path)
    module = module.eval()
    problems = []
    for name, export in EXPORTERS.items():
        try:
            with _quiet(), torch_threads(1):
                export(module, example, path, opset)
        except Exception as err:  # noqa: BLE001 - the next exporter may work; all are reported
            problems.append(f"{name}: export failed: {_first_line(err)}")
            continue
        try:
            error = onnx_rel_error(module, path, example)
        except Exception as err:  # noqa: BLE001 - onnxruntime cannot load or run the file
            problems.append(f"{name}: onnxruntime failed: {_first_line(err)}")
            continue
        if error <= ONNX_REL_TOL:
            return name
        problems.append(f"{name}: max |onnx - torch| = {error:.3g} × max |torch| > {ONNX_REL_TOL}")
    path.unlink(missing_ok=True)
    raise OnnxExportError("no ONNX export matches torch: " + "; ".join(problems))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def onnx_opset(path: str | os.PathLike[str]) -> int:
    """The default-domain opset an ONNX file was written for."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError(f"{path}: no default-domain opset")


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
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer ≥ 1, got {threads!r}")


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
    model: ModelSpec | BlockSpec,
    *,
    backend: str = "torch",
    threads: int = 1,
    batch_size: int = 1,
    img_size: Sequence[int] = (224, 224),
    protocol: Protocol = Protocol(),
) -> LatencyResult:
    """Median latency (ms per forward of a batch of `batch_size` H×W images) of one model."""
    _check_backend_threads(backend, threads)
    return _measure([prepare(model, batch_size, img_size)], backend, threads, protocol)


def measure_relative(
    model: ModelSpec | BlockSpec,
    reference_model: ModelSpec | BlockSpec = DEFAULT_REFERENCE,
    *,
    backend: str = "torch",
    threads: int = 1,
    batch_size: int = 1,
    img_size: Sequence[int] = (224, 224),
    protocol: Protocol = Protocol(),
) -> LatencyResult:
    """`model` timed interleaved with `reference_model` (same back-end, batch and input size):
    both medians, and `ratio` = latency_ms / reference_latency_ms, stable where absolute times
    drift. Noise is judged on the per-run ratios (`ratio_cv`)."""
    _check_backend_threads(backend, threads)
    targets = [prepare(model, batch_size, img_size), prepare(reference_model, batch_size, img_size)]
    return _measure(targets, backend, threads, protocol)


def measure_block(
    kind: str = "lgl",
    *,
    c: int,
    h: int,
    w: int,
    r: int = 1,
    heads: int = 1,
    mlp_hidden: int | None = None,
    kernel: int = 5,
    local_agg: str = "conv",
    global_attn: str = "sparse",
    sampler: str = "top_left",
    local_prop: str = "deconv",
    qkv_bias: bool = True,
    in_chans: int = 3,
    stride: int = 4,
    num_classes: int = 1000,
    backend: str = "torch",
    threads: int = 1,
    batch_size: int = 1,
    protocol: Protocol = Protocol(),
) -> LatencyResult:
    """One block in isolation on a (batch_size, C, h, w) input map; the fields are `BlockSpec`'s
    (kind 'lgl' with the ablation switches, 'stem' or 'head'). The result's config is the
    block's description (kind 'block'), its img_size the input map's (h, w)."""
    spec = BlockSpec(
        kind=kind, c=c, h=h, w=w, r=r, heads=heads, mlp_hidden=mlp_hidden, kernel=kernel,
        local_agg=local_agg, global_attn=global_attn, sampler=sampler, local_prop=local_prop,
        qkv_bias=qkv_bias, in_chans=in_chans, stride=stride, num_classes=num_classes,
    )
    return measure(spec, backend=backend, threads=threads, batch_size=batch_size,
                   protocol=protocol)


# ---------------------------------------------------------------------------------------------
# Storing and sweeping


def store_result(store: MeasurementStore, result: LatencyResult,
                 device_id: int | None = None) -> int:
    """Append a result (this machine's device unless `device_id`); returns the row id.

    The config (and the reference's) are added to `configs` in the same transaction.
    """
    if result.config_json is None:
        raise ValueError(f"{result.label}: an nn.Module without an EdgeViTConfig `.config` has no "
                         "description to store; measure a config, name or BlockSpec instead")
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
    items: Iterable[ModelSpec | BlockSpec],
    *,
    backend: str = "torch",
    threads: int = 1,
    batch_size: int = 1,
    img_size: Sequence[int] = (224, 224),
    reference: ModelSpec | BlockSpec | None = None,
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
        if reference is None:
            result = measure(item, backend=backend, threads=threads, batch_size=batch_size,
                             img_size=img_size, protocol=protocol)
        else:
            result = measure_relative(item, reference, backend=backend, threads=threads,
                                      batch_size=batch_size, img_size=img_size,
                                      protocol=protocol)
        if store is not None:
            store_result(store, result, device_id)
        results.append(result)
    return results


__all__ = [
    "BACKENDS",
    "DEFAULT_REFERENCE",
    "BlockSpec",
    "LatencyResult",
    "OnnxExportError",
    "Protocol",
    "export_onnx",
    "measure",
    "measure_block",
    "measure_many",
    "measure_relative",
    "model_blocks",
    "onnx_opset",
    "onnx_rel_error",
    "ort_session",
    "prepare",
    "store_result",
    "summarize",
    "time_interleaved",
    "torch_threads",
    "check_img_size",
]
