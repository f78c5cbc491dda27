"""Would another inference back-end score a subnet faster? The held-out pass of
`evaluate_subnet` (the fused eager subnet, 1,000 images) against the same subnet traced and
frozen by TorchScript (`torch.jit.freeze` + `optimize_for_inference`) and exported to ONNX
Runtime (the suite's `export_onnx`, a session whose idle threads sleep), one thread, timed
interleaved on the slowest configs of the accuracy study and the XXS preset.

Reported per config: median seconds of each back-end over the repeats, its ratio to eager
(< 1: slower than eager), the one-off preparation seconds (trace and freeze; export and check),
and whether all three predicted the same class for every image. Issue 16's goal 3 (≤ 5 s per
subnet on one core) needs eager's time to fall; a back-end is only worth adopting if its ratio
is well above 1 after its preparation is paid.

    python benchmarks/subnet_eval_backends.py [--configs sample_04,sample_06,edgevit_xxs]
        [--repeats 3] [--out benchmarks/subnet_eval_backends.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from analysis.accuracy.datasets import gather
from analysis.accuracy.studies import COMMITTED_SUPERNET, FASHION_STUDY
from analysis.accuracy.supernet import (
    EVAL_IMAGES,
    load_supernet,
    recalibrated_subnet,
    supernet_dataset,
)
from analysis.latency.onnx import export_onnx, ort_session
from edgevit.config import EdgeViTConfig

if TYPE_CHECKING:
    import onnxruntime

BATCH = 250  # images per call: EVAL_IMAGES in four equal batches, so one static ONNX shape


def onnx_runner(session: onnxruntime.InferenceSession
                ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function (B, C, H, W) images -> (B, classes) logits through `session`."""
    feed = session.get_inputs()[0].name

    def run(images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {feed: images.numpy()})[0])

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=str(COMMITTED_SUPERNET))
    parser.add_argument("--configs", default="sample_04,sample_06,edgevit_xxs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the results here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    supernet, record = load_supernet(args.supernet)
    dataset = supernet_dataset(record)
    study = {r["name"]: r for r in json.loads(FASHION_STUDY.read_text())["configs"]}
    batches = [gather(dataset.test, torch.arange(i, i + BATCH))
               for i in range(0, EVAL_IMAGES, BATCH)]
    rows = []
    for name in args.configs.split(","):
        # the model evaluate_subnet scores: its calibration draw, fused
        model = recalibrated_subnet(supernet, EdgeViTConfig.from_dict(study[name]["config"]),
                                    dataset)
        example = batches[0][0]
        start = time.perf_counter()
        with torch.inference_mode():
            frozen = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.trace(model, example)))
            frozen(example)  # the first calls specialise the graph
            frozen(example)
        prepare = {"torchscript": time.perf_counter() - start}
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            exporter = export_onnx(model, example, Path(tmp) / "subnet.onnx")
            session = ort_session(Path(tmp) / "subnet.onnx")
            prepare["onnxruntime"] = time.perf_counter() - start
        backends: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "eager": model, "torchscript": frozen, "onnxruntime": onnx_runner(session)}
        seconds: dict[str, list[float]] = {k: [] for k in backends}
        predicted: dict[str, torch.Tensor] = {}
        for _ in range(args.repeats):
            for backend, run in backends.items():
                start = time.perf_counter()
                with torch.inference_mode():
                    predicted[backend] = torch.cat([run(x).argmax(dim=1) for x, _ in batches])
                seconds[backend].append(time.perf_counter() - start)
        median = {k: statistics.median(v) for k, v in seconds.items()}
        rows.append(dict(
            name=name, macs=study[name]["macs"], exporter=exporter,
            seconds=median, seconds_all=seconds,
            eager_over=({k: median["eager"] / median[k] for k in backends if k != "eager"}),
            prepare_s=prepare,
            same_predictions=all(bool((predicted[k] == predicted["eager"]).all())
                                 for k in backends),
            eager_gmacs_per_s=study[name]["macs"] * EVAL_IMAGES / median["eager"] / 1e9))
        r = rows[-1]
        print(f"{name:12s} eager {median['eager']:.2f} s  torchscript {median['torchscript']:.2f}"
              f" s ({r['eager_over']['torchscript']:.2f}×)  onnxruntime "
              f"{median['onnxruntime']:.2f} s ({r['eager_over']['onnxruntime']:.2f}×)  prepare "
              f"{prepare['torchscript']:.1f} / {prepare['onnxruntime']:.1f} s  same predictions "
              f"{r['same_predictions']}  eager {r['eager_gmacs_per_s']:.1f} GMAC/s", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(dict(
            benchmark="subnet_eval_backends", supernet=Path(args.supernet).name,
            eval_images=EVAL_IMAGES, batch=BATCH, threads=1, repeats=args.repeats,
            machine=platform.processor() or platform.machine(), torch=torch.__version__,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            median_eager_over={k: float(np.median([r["eager_over"][k] for r in rows]))
                               for k in ("torchscript", "onnxruntime")},
            rows=rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
