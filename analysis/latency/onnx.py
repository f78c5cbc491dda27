"""ONNX export checked against torch, and ONNX Runtime sessions that leave the cores alone.

Export: torch's default exporter; when that is unavailable (e.g. without `onnxscript`), the
TorchScript exporter on a `torch.export`-specialised copy, then the plain TorchScript exporter.
Every export is run once by onnxruntime and compared with torch before it is used:
max |diff| ≤ 1e-4 × max |torch output|, else `OnnxExportError`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from analysis.runtime import torch_threads

if TYPE_CHECKING:
    import onnxruntime

ONNX_OPSET = 18
ONNX_REL_TOL = 1e-4  # max |onnx - torch| ≤ ONNX_REL_TOL × max |torch|


class OnnxExportError(RuntimeError):
    """A model could not be exported to ONNX with outputs matching torch."""


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
