"""Users' own devices: verified ONNX files out, their latency measurements in (CSV).

`export_onnx_bundle(configs, out_dir, img_size)` writes `<config_id>.onnx` per config (batch 1,
float32, input named "input") and `manifest.json` (config id = sha256 of the config's canonical
JSON, the config, input shape, file name, opset, exporter). Users time the files on their
devices and send back a CSV with a header row and these columns, in any order:

    config_id   the manifest's config id (or the hash of a config already in the store)
    input_h     input height in pixels, integer ≥ 1 (must match the manifest's file)
    input_w     input width in pixels, integer ≥ 1 (must match the manifest's file)
    backend     the runtime used, free text (e.g. "tflite-gpu", "onnxruntime-android")
    device      the device's name, free text (e.g. "pixel 7"); one store device per name
    latency_ms  median latency of one forward, milliseconds: finite and > 0
    energy_mj   optional column (cells may be empty): energy of one forward, millijoules, > 0

Rows are stored with batch size 1, source 'imported', no thread count and no run statistics.
Every row is validated first; any problem (a malformed row, an unknown config id, a NaN,
infinite, zero or negative latency, a bad energy) raises ValueError naming the row numbers
(row 1 = the first data row; lines count the header) and nothing from the file is stored.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from analysis.runtime import parse_json, read_user_text
from edgevit.config import EdgeViTConfig

from .measure import check_img_size, prepare
from .onnx import export_onnx, onnx_opset
from .store import MeasurementStore, sha256_hex

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024**2  # a manifest entry is about 1 KB
MAX_CSV_BYTES = 256 * 1024**2  # millions of rows
CSV_REQUIRED = ("config_id", "input_h", "input_w", "backend", "device", "latency_ms")
CSV_OPTIONAL = ("energy_mj",)


def _as_config(item: str | EdgeViTConfig) -> EdgeViTConfig:
    if isinstance(item, EdgeViTConfig):
        return item
    if isinstance(item, str):
        from edgevit.registry import preset_config

        return preset_config(item)
    raise ValueError(f"expected a model name or EdgeViTConfig, got {type(item).__name__}")


def export_onnx_bundle(
    configs: Iterable[str | EdgeViTConfig],
    out_dir: str | os.PathLike[str],
    img_size: Sequence[int] = (224, 224),
    progress: bool = True,
) -> Path:
    """One verified `<config_id>.onnx` per distinct config (batch 1) and `manifest.json` in
    `out_dir`; returns the manifest's path. config_id = sha256 of `config.to_json()`.

    A folder that already holds a bundle gains the new configs: the manifest is merged, every
    earlier entry kept (an entry of the same config and input size is exported again). Any
    other `manifest.json`, or an `.onnx` file of this name that no manifest lists, is not ours:
    ValueError, nothing written."""
    from tqdm import tqdm

    h, w = check_img_size(img_size)
    unique: dict[str, EdgeViTConfig] = {}
    for item in configs:
        config = _as_config(item)
        unique.setdefault(sha256_hex(config.to_json()), config)
    if not unique:
        raise ValueError("no configs to export")
    out = Path(out_dir)
    path = out / MANIFEST_NAME
    earlier: dict[str, dict[str, Any]] = {}
    if os.path.lexists(path):
        try:
            earlier = {config_id: {k: v for k, v in entry.items() if k != "config_json"}
                       for config_id, entry in load_manifest(path).items()}
        except ValueError as err:
            raise ValueError(f"{path} exists and is not a bundle manifest this suite wrote "
                             f"({err}); not replaced, nothing written") from None
    for config_id in unique:
        file = out / f"{config_id}.onnx"
        if os.path.lexists(file) and config_id not in earlier:
            raise ValueError(f"{file} exists and no manifest lists it; not replaced, nothing "
                             "written")
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for config_id, config in tqdm(unique.items(), desc="onnx export", unit="model",
                                  disable=not progress):
        target = prepare(config, 1, (h, w))
        file = f"{config_id}.onnx"
        exporter = export_onnx(target.module, target.example(0), out / file)
        entries.append(dict(
            config_id=config_id, name=config.name, config=config.identity_dict(),
            input_name="input", input_shape=list(target.input_shape), file=file,
            opset=onnx_opset(out / file), exporter=exporter,
        ))
    exported = {entry["config_id"] for entry in entries}
    kept = [entry for config_id, entry in earlier.items() if config_id not in exported]
    manifest = dict(
        format_version=1,
        csv_columns=list(CSV_REQUIRED) + [f"{c} (optional)" for c in CSV_OPTIONAL],
        configs=kept + entries,
    )
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load_manifest(manifest: str | os.PathLike[str] | dict[str, Any]) -> dict[str, dict[str, Any]]:
    """config_id -> entry of a bundle's manifest; ValueError when malformed or when an id is not
    the hash of its config."""
    if isinstance(manifest, dict):
        data, where = manifest, "manifest"
    else:
        where = str(manifest)
        data = parse_json(read_user_text(manifest, "manifest", MAX_MANIFEST_BYTES),
                          f"manifest {where}")
    if not isinstance(data, dict) or not isinstance(data.get("configs"), list):
        raise ValueError(f"{where}: expected an object with a 'configs' list")
    entries = {}
    for i, entry in enumerate(data["configs"]):
        try:
            config = EdgeViTConfig.from_dict(entry["config"])
            config_id = entry["config_id"]
            shape = [int(v) for v in entry["input_shape"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: entry {i} is malformed: {err}") from None
        if sha256_hex(config.to_json()) != config_id or len(shape) != 4:
            raise ValueError(f"{where}: entry {i}: config_id {config_id!r} is not the hash of "
                             "its config (or the input shape is not B×C×H×W)")
        entries[config_id] = dict(entry, config_json=config.to_json(), input_shape=shape)
    return entries


def parse_csv_row(row: dict[str | None, Any], known: Callable[[str], bool],
                   shapes: dict[str, list[int]]) -> tuple[dict[str, Any] | None, list[str]]:
    """One data row -> (values, problems)."""
    problems = []
    if None in row:
        problems.append(f"{len(row[None])} more field(s) than the header")
    if any(value is None for key, value in row.items() if key is not None):
        problems.append("fewer fields than the header")
        return None, problems
    values: dict[str, Any] = {}
    config_id = row["config_id"].strip()
    if not config_id:
        problems.append("empty config_id")
    elif not known(config_id):
        problems.append(f"unknown config_id {config_id!r} (not in the manifest or the store)")
    values["config_id"] = config_id
    for name in ("input_h", "input_w"):
        text = row[name].strip()
        try:
            values[name] = int(text)
            if values[name] < 1:
                raise ValueError
        except ValueError:
            problems.append(f"{name} {text!r} is not an integer ≥ 1")
    for name in ("backend", "device"):
        values[name] = row[name].strip()
        if not values[name]:
            problems.append(f"empty {name}")
    for name, optional in (("latency_ms", False), ("energy_mj", True)):
        text = (row.get(name) or "").strip()
        if not text and optional:
            values[name] = None
            continue
        try:
            number = float(text)
        except ValueError:
            problems.append(f"{name} {text!r} is not a number")
            continue
        if not math.isfinite(number) or number <= 0:
            problems.append(f"{name} {text!r} must be a finite number > 0")
        values[name] = number
    shape = shapes.get(config_id)
    if shape and not problems and (values["input_h"], values["input_w"]) != tuple(shape[2:]):
        problems.append(f"input {values['input_h']}×{values['input_w']} differs from the "
                        f"manifest's file ({shape[2]}×{shape[3]})")
    return values, problems


def open_measurement_csv(path: str | os.PathLike[str]) -> csv.DictReader:
    """A reader over a measurement CSV whose header was checked against the schema."""
    text = read_user_text(path, "measurement CSV", MAX_CSV_BYTES)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as err:
        raise ValueError(f"{path}: the header is not CSV ({err}); nothing stored") from None
    missing = [c for c in CSV_REQUIRED if c not in header]
    unknown = [c for c in header if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if missing or unknown or len(set(header)) != len(header):
        raise ValueError(f"{path}: header {header}: missing {missing}, unknown {unknown} "
                         f"(columns: {', '.join(CSV_REQUIRED)}, optional {CSV_OPTIONAL[0]}); "
                         "nothing stored")
    return reader


def import_csv(
    path: str | os.PathLike[str],
    store: MeasurementStore,
    manifest: str | os.PathLike[str] | dict[str, Any] | None = None,
) -> int:
    """Store a CSV of measurements from external devices (schema in the module docstring);
    returns the number of rows stored. Everything is validated first; any problem raises
    ValueError naming the rows and nothing from the file is stored."""
    entries = load_manifest(manifest) if manifest is not None else {}
    shapes = {config_id: entry["input_shape"] for config_id, entry in entries.items()}
    reader = open_measurement_csv(path)

    def known(config_id: str) -> bool:
        return config_id in entries or store.has_config(config_id)

    rows, problems = [], []
    try:
        for number, row in enumerate(reader, start=1):
            values, row_problems = parse_csv_row(row, known, shapes)
            problems.extend(f"row {number} (line {reader.line_num}): {p}" for p in row_problems)
            if values is not None and not row_problems:
                rows.append(values)
    except csv.Error as err:  # e.g. a field above csv's 128 KiB limit
        raise ValueError(f"{path}: line {reader.line_num} is not CSV ({err}); nothing "
                         "stored") from None
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5
                                           else "")
        raise ValueError(f"{path}: {len(problems)} problem(s), nothing stored: {shown}")
    if not rows:
        raise ValueError(f"{path}: no data rows; nothing stored")

    from .store import external_device_fingerprint

    with store.transaction():
        devices = {name: store.add_device(external_device_fingerprint(name))
                   for name in sorted({r["device"] for r in rows})}
        for config_id in sorted({r["config_id"] for r in rows} & set(entries)):
            store.add_config(entries[config_id]["config_json"], "model")
        store.add_measurements([
            dict(device_id=devices[r["device"]], config_hash=r["config_id"], backend=r["backend"],
                 batch_size=shapes.get(r["config_id"], [1])[0], input_h=r["input_h"],
                 input_w=r["input_w"], latency_ms=r["latency_ms"], energy_mj=r["energy_mj"],
                 source="imported")
            for r in rows
        ])
    return len(rows)


__all__ = [
    "CSV_OPTIONAL",
    "CSV_REQUIRED",
    "MANIFEST_NAME",
    "export_onnx_bundle",
    "import_csv",
    "load_manifest",
    "open_measurement_csv",
    "parse_csv_row",
]
