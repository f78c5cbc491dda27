"""`edgevit bench`, `edgevit export-onnx` and `edgevit import-csv`: latency on this machine into
the measurement store, and the round trip through users' own devices."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Any

from .common import (
    MIN_TIME,
    RUNS,
    THREADS,
    CliError,
    add_command,
    check_buildable,
    image_size,
    ranged_int,
    resolve_config,
    strict_int,
)


def _store(path: str | None) -> Any:
    from analysis.latency import MeasurementStore

    return MeasurementStore(path)


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one model, append it to the store, report median, IQR, cv and runs."""
    from analysis.latency import (
        BACKENDS,
        OnnxExportError,
        Protocol,
        measure,
        measure_relative,
        store_result,
    )

    if args.backend not in BACKENDS:
        raise CliError(f"--backend {args.backend!r}: choose one of {', '.join(BACKENDS)}")
    for option, value, least in (("--runs", args.runs, 1), ("--warmup", args.warmup, 0),
                                 ("--min-time", args.min_time, 0)):
        if not value >= least:
            raise CliError(f"{option} {value}: must be ≥ {least}")
    config = resolve_config(args.model)
    reference = resolve_config(args.reference) if args.reference else None
    h, w = image_size(args.img_size)
    for model in (config, reference) if reference is not None else (config,):
        check_buildable(model, (h, w), args.batch_size)
    protocol = Protocol(warmup_runs=args.warmup, min_runs=args.runs,
                        max_runs=max(args.runs, Protocol.max_runs), min_time_s=args.min_time)
    common = dict(backend=args.backend, threads=args.threads, batch_size=args.batch_size,
                  img_size=(h, w), protocol=protocol)
    try:
        with _store(args.store) as store:  # opened first: a bad path fails before measuring
            try:
                if reference is not None:
                    result = measure_relative(config, reference, **common)
                else:
                    result = measure(config, **common)
            except OnnxExportError as err:
                raise CliError(str(err)) from None
            device_id = store.add_device()
            measurement_id = store_result(store, result, device_id)
            device_hash = store.device_hash(device_id)
            store_path = str(store.path)
    except sqlite3.Error as err:
        raise CliError(f"measurement store: {err}") from None
    out = result.to_dict()
    out.pop("config_json")
    ref_json = out.pop("reference_config_json")
    out.update(model=config.name, device=device_hash, measurement_id=measurement_id,
               store=store_path, reference_config_hash=None)
    if ref_json is not None:
        from analysis.latency import sha256_hex

        out["reference_config_hash"] = sha256_hex(ref_json)
    if not args.json:
        noisy = "  NOISY (cv above threshold after re-measuring)" if result.flagged_noisy else ""
        print(f"{config.name}: {result.latency_ms:.3f} ms median (IQR {result.iqr_ms:.3f} ms, "
              f"cv {100 * result.cv:.1f} %, {result.runs} runs) on {args.backend}, "
              f"{args.threads} thread(s), batch {args.batch_size}, {h}×{w}{noisy}")
        if result.ratio is not None:
            print(f"  reference {result.reference_latency_ms:.3f} ms, ratio {result.ratio:.4f} "
                  f"(cv of ratios {100 * (result.ratio_cv or 0):.1f} %)")
        print(f"  stored as measurement {measurement_id} in {store_path}")
    return out


def cmd_export_onnx(args: argparse.Namespace) -> dict[str, Any]:
    """Write one verified ONNX file per model plus manifest.json for external devices."""
    import json

    from analysis.latency import OnnxExportError, export_onnx_bundle

    configs = [resolve_config(spec) for spec in args.models]
    h, w = image_size(args.img_size)
    for config in configs:
        check_buildable(config, (h, w))
    try:
        manifest = export_onnx_bundle(configs, args.out, (h, w), progress=not args.json)
    except OnnxExportError as err:
        raise CliError(str(err)) from None
    except OSError as err:
        raise CliError(f"cannot write to {args.out}: {err}") from None
    entries = json.loads(manifest.read_text())["configs"]
    if not args.json:
        for entry in entries:
            print(f"{entry['name']}: {Path(args.out) / entry['file']} ({entry['exporter']})")
        print(f"manifest: {manifest}")
    return dict(manifest=str(manifest), configs=[
        {k: e[k] for k in ("config_id", "name", "file", "input_shape", "opset", "exporter")}
        for e in entries
    ])


def cmd_import_csv(args: argparse.Namespace) -> dict[str, Any]:
    """Append users' measurements (CSV, schema in analysis.latency.device_exchange) to the
    store, all or none."""
    from analysis.latency import import_csv

    try:
        with _store(args.store) as store:
            rows = import_csv(args.csv, store, args.manifest)
            store_path = str(store.path)
    except sqlite3.Error as err:
        raise CliError(f"measurement store: {err}") from None
    if not args.json:
        print(f"imported {rows} measurement(s) from {args.csv} into {store_path}")
    return dict(rows=rows, store=store_path)


def _store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH",
                   help="SQLite store (default: $EDGEVIT_STORE, else the user data directory)")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "bench", cmd_bench, "measure a model's latency and store it")
    p.add_argument("--backend", default="torch", help="torch (default) or onnxruntime")
    p.add_argument("--threads", type=THREADS, default=1, help="intra-op threads (default 1)")
    p.add_argument("--batch-size", type=ranged_int(1, 65_536), default=1,
                   help="images per forward (default 1)")
    p.add_argument("--reference", metavar="NAME|config.json",
                   help="time interleaved with this reference model and report the ratio")
    p.add_argument("--runs", type=RUNS, default=30, help="minimum timed runs (default 30)")
    p.add_argument("--min-time", type=MIN_TIME, default=1.0, metavar="SECONDS",
                   help="minimum time spent in timed runs (default 1.0)")
    p.add_argument("--warmup", type=ranged_int(0, 100_000), default=5,
                   help="untimed warm-up runs (default 5)")
    _store_option(p)

    p = add_command(sub, "export-onnx", cmd_export_onnx,
                    "export models to ONNX with a manifest, for external devices", model=False)
    p.add_argument("models", nargs="+", metavar="NAME|config.json")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--img-size", type=strict_int, nargs="+", metavar="H W",
                   help="input height and width (default 224 224)")

    p = add_command(sub, "import-csv", cmd_import_csv,
                    "import measurements from external devices (CSV)", model=False)
    p.add_argument("csv", help="CSV: config_id,input_h,input_w,backend,device,latency_ms"
                               "[,energy_mj]")
    p.add_argument("--manifest", metavar="PATH", help="manifest.json of the exported bundle")
    _store_option(p)
