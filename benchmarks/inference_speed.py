"""Fast EdgeViT inference on the CPU against the release's operation order, in one run.

Paths, each on batch 1, float32, `--threads` intra-op threads:

  official     `EdgeViT` as built, with `set_fused_attn(False)`: NCHW maps, BatchNorms,
               matmul-softmax-matmul attention, the ConvTranspose2d LocalProp; the release's
               operation order (saic-fi/edgevit src/edgevit.py). The reference of every ratio.
  fused        the same weights after `model.fuse()` (eager PyTorch, see edgevit/fuse.py).
  compiled     `edgevit.fuse.compile_fused(model)`: torch.compile (inductor, CPU) of the fused
               model with freezing. Skipped with --no-compile (each case compiles for ~20 s).
  ort          the fused model exported to ONNX (opset ONNX_OPSET, torch 2.14's default) and
               run by ONNX Runtime with its default thread pool (idle workers spin a moment
               before they sleep).
  ort_nospin   the same session options but workers that sleep at once
               (`analysis.latency.ort_session`'s default, used for the latency store:
               spinning workers slow down whatever shares the cores).
  ort_official the official path exported the same way (how much of ORT's speed is fusion's).

Before any timing, every path's output on a random image must equal the official path's to
max |diff| ≤ 1e-4 × max |official| (the tests check the same on the reference vectors).

Timing: after --warmup untimed runs each, the paths of one case run interleaved in one loop of
--runs rounds, the order alternating every round (A B C, C B A, ...), so that drift of this
shared machine's speed hits every path alike. In a round each path runs twice back to back and
only the second run is timed: PyTorch's OpenMP workers keep spinning for milliseconds after a
forward, and the settling run keeps that cost (or ONNX Runtime's sleeping workers) from being
charged to whichever path comes next; after each timed run the loop idles for --gap-ms, so
that no path's spinning workers are still busy when the next path starts. The table shows the
medians of the timed runs.

Speed-up = median(official) / median(path). GMAC/s = the exact MACs of the cost model
(`analysis.cost.ops.model_cost`) / median latency. The ceiling is this CPU's sgemm rate
measured in the same run at the same thread count: the fastest of torch.mm (BLAS), oneDNN's
linear kernel and ONNX Runtime's MatMul (MLAS) on 1024×1024 float32 matrices (on AMD CPUs
MKL's sgemm runs at half the rate of oneDNN's and MLAS's, which is why fused eager uses
oneDNN).

The issue's goals, checked at the end: fused eager ≥ 1.3× and ONNX Runtime ≥ 2× the official
path in every case. Rows go to results/inference_speed.csv (results/ is not committed).

Full run (the defaults; ~6 min on a quiet 2-core machine):
    python benchmarks/inference_speed.py
Smoke run (seconds):
    python benchmarks/inference_speed.py --runs 3 --warmup 1 --cases edgevit_xxs@224 --no-compile
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import edgevit
from analysis.cost import model_cost
from analysis.latency import export_onnx, ort_session
from edgevit.fuse import compile_fused, onednn_linear_available

REPO_ROOT = Path(__file__).resolve().parents[1]

ONNX_OPSET = 20  # torch 2.14's default opset (torch.onnx._constants.ONNX_DEFAULT_OPSET)
DEFAULT_CASES = ("edgevit_xxs@224", "edgevit_xs@224", "edgevit_s@224", "edgevit_xxs@512",
                 "edgevit_xxs@800")
GOALS = {"fused": 1.3, "ort": 2.0}  # minimum speed-up over the official path
REL_TOL = 1e-4
CSV_PATH = REPO_ROOT / "results" / "inference_speed.csv"
SGEMM_SIZE = 1024


def parse_case(text: str) -> tuple[str, int]:
    name, _, size = text.partition("@")
    if name not in edgevit.list_models() or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected MODEL@SIZE with a known model, got {text!r}")
    return name, int(size)


def rel_error(y: np.ndarray, y_ref: np.ndarray) -> float:
    return float(np.abs(y.astype(np.float64) - y_ref).max() / np.abs(y_ref).max())


def time_interleaved(runners: list[Callable[[], object]], runs: int, warmup: int,
                     gap_ms: float = 0.0) -> list[list[float]]:
    """Per-run times (ms) of each runner: `runs` rounds in alternating order, each runner run
    twice per round and timed the second time, then `gap_ms` idle (see the module
    docstring)."""
    for run in runners:
        for _ in range(warmup):
            run()
    times: list[list[float]] = [[] for _ in runners]
    order = list(range(len(runners)))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(runs):
            for j in order if i % 2 == 0 else reversed(order):
                runners[j]()
                start = time.perf_counter()
                runners[j]()
                times[j].append((time.perf_counter() - start) * 1e3)
                if gap_ms:
                    time.sleep(gap_ms / 1e3)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def median_ms(run: Callable[[], object], runs: int, warmup: int) -> float:
    return statistics.median(time_interleaved([run], runs, warmup)[0])


def sgemm_gmacs(threads: int, runs: int, warmup: int, tmp: Path) -> dict[str, float]:
    """GMAC/s of a 1024×1024×1024 float32 matrix product, per library."""
    n = SGEMM_SIZE
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator)
    b = torch.randn(n, n, generator=generator)
    runners: dict[str, Callable[[], object]] = {"torch.mm": lambda: torch.mm(a, b)}
    if onednn_linear_available():
        runners["oneDNN"] = lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    runners["ORT MatMul"] = _ort_matmul(b.numpy(), a.numpy(), threads, tmp / "sgemm.onnx")
    with torch.inference_mode():
        return {name: n**3 / median_ms(run, runs, warmup) / 1e6 for name, run in runners.items()}


def _ort_matmul(weight: np.ndarray, x: np.ndarray, threads: int, path: Path
                ) -> Callable[[], object]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = x.shape[0]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "sgemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    onnx.save(model, path)
    session = ort_session(path, threads, spinning=True)
    return lambda: session.run(None, {"x": x})


def run_case(name: str, size: int, args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    torch.manual_seed(0)
    official = edgevit.create_model(name).eval().set_fused_attn(False)
    fused = copy.deepcopy(official).fuse()
    x = torch.randn(1, 3, size, size)
    paths: dict[str, Callable[[], object]] = {
        "official": lambda: official(x),
        "fused": lambda: fused(x),
    }
    compile_s = None
    if args.compile:
        start = time.perf_counter()
        compiled = compile_fused(copy.deepcopy(official))
        with torch.inference_mode():
            compiled(x)
        compile_s = time.perf_counter() - start
        paths["compiled"] = lambda: compiled(x)
    feeds = {"input": x.numpy()}
    for label, module, spinning in (("ort", fused, True), ("ort_nospin", fused, False),
                                    ("ort_official", official, True)):
        file = tmp / f"{name}_{size}_{label}.onnx"
        export_onnx(module, x, file, opset=ONNX_OPSET)
        session = ort_session(file, args.threads, spinning=spinning)
        paths[label] = lambda session=session: session.run(None, feeds)[0]

    with torch.inference_mode():
        reference = official(x).numpy()
        for label, run in paths.items():
            out = run()
            out = out.numpy() if isinstance(out, torch.Tensor) else out
            error = rel_error(out, reference)
            if error > REL_TOL:
                raise SystemExit(f"{name}@{size}: {label} differs from official by {error:.3g}")
        times = time_interleaved(list(paths.values()), args.runs, args.warmup, args.gap_ms)
    macs = model_cost(official.config, (size, size)).macs
    row: dict[str, object] = {"case": f"{name}@{size}", "macs": macs, "compile_s": compile_s}
    for label, runs in zip(paths, times):
        row[f"{label}_ms"] = statistics.median(runs)
        row[f"{label}_gmacs"] = macs / statistics.median(runs) / 1e6
    for label in paths:
        row[f"{label}_speedup"] = row["official_ms"] / row[f"{label}_ms"]
    return row


def print_table(rows: list[dict[str, object]], labels: list[str], ceiling: float) -> None:
    print(f"\n{'case':18s}" + "".join(f"{label + ' ms':>16s}" for label in labels))
    for row in rows:
        print(f"{row['case']:18s}" + "".join(f"{row[f'{label}_ms']:16.2f}" for label in labels))
    print(f"\n{'speed-up':18s}" + "".join(f"{label:>16s}" for label in labels))
    for row in rows:
        print(f"{row['case']:18s}"
              + "".join(f"{row[f'{label}_speedup']:15.2f}×" for label in labels))
    print(f"\n{'GMAC/s (% ceil.)':18s}" + "".join(f"{label:>16s}" for label in labels))
    for row in rows:
        cells = [f"{row[f'{label}_gmacs']:7.1f} ({100 * row[f'{label}_gmacs'] / ceiling:4.1f}%)"
                 for label in labels]
        print(f"{row['case']:18s}" + "".join(f"{cell:>16s}" for cell in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", type=parse_case,
                        default=[parse_case(c) for c in DEFAULT_CASES], metavar="MODEL@SIZE")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per path (≥ 20)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gap-ms", type=float, default=20.0,
                        help="idle time after each timed run, so spinning workers settle")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the torch.compile path")
    parser.add_argument("--csv", type=Path, default=CSV_PATH)
    args = parser.parse_args(argv)
    if args.runs < 20:
        print(f"note: --runs {args.runs} < 20: a smoke run, not a measurement")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, medians of {args.runs} "
          f"interleaved runs")

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgevit-speed-") as tmp:
        for name, size in args.cases:
            row = run_case(name, size, args, Path(tmp))
            rows.append(row)
            compiled = f" (compiled in {row['compile_s']:.0f} s)" if row["compile_s"] else ""
            print(f"{row['case']}: " + ", ".join(
                f"{key[:-3]} {value:.2f} ms" for key, value in row.items() if key.endswith("_ms"))
                + compiled)
        sgemm = sgemm_gmacs(args.threads, max(args.runs, 5), args.warmup, Path(tmp))
    ceiling = max(sgemm.values())
    labels = [key[:-3] for key in rows[0] if key.endswith("_ms")]
    print_table(rows, labels, ceiling)
    print(f"\nsgemm {SGEMM_SIZE}³ on {args.threads} threads (GMAC/s): "
          + ", ".join(f"{k} {v:.1f}" for k, v in sgemm.items()) + f"; ceiling {ceiling:.1f}")

    ok = True
    for label, goal in GOALS.items():
        worst = min(row[f"{label}_speedup"] for row in rows)
        met = worst >= goal
        ok &= met
        print(f"goal {label} ≥ {goal}× official: worst {worst:.2f}× -> "
              f"{'met' if met else 'NOT met'}")
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) + ["threads", "runs",
                                                                    "sgemm_ceiling_gmacs"])
        writer.writeheader()
        for row in rows:
            writer.writerow(dict(row, threads=args.threads, runs=args.runs,
                                 sgemm_ceiling_gmacs=ceiling))
    print(f"rows written to {args.csv}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
