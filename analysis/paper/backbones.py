"""Section D's backbones on this machine: built through timm (`features_only=True`, the feature
pyramid a detection or segmentation neck reads, no neck or head), timed side by side, and
energy where the machine can read it.

Backbones: EdgeViT-XXS/XS/S (this package, registered with timm) and timm's `resnet18`,
`pvt_v2_b0`, `pvt_v2_b1`, all built with `pretrained=False` (nothing is downloaded). ResNet18
returns its four stride-4..32 maps (`out_indices=(1, 2, 3, 4)`), like the others. PVTv1-Tiny
is in the paper's tables but not in timm, so it is not measured.

Latency: every backbone is timed interleaved with the reference (ResNet18) by
`analysis.latency.measure.measure_relative`, one pair at a time, so the ratio to ResNet18 is free of
this machine's drift; the reference's own row is the median of its medians over the pairs.
The paper measured a Snapdragon 888 phone CPU, so only ratios are comparable, and loosely.

Energy: Linux exposes a CPU package's energy counter through powercap (RAPL, Intel and recent
AMD) at /sys/class/powercap/intel-rapl:N/energy_uj. Where a package zone is readable, the energy
of each forward is the counter's difference around it (wrap-around handled), interleaved with
the reference like the latency; it covers the whole package, other processes included. Where no
zone is readable, `rapl_status` says so and energies measured elsewhere can be imported in the
latency CSV schema (`load_energy_csv`); no energy is ever made up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analysis.latency import (  # the latency CSV's checks, shared so both imports validate alike
    Protocol,
    measure_relative,
    open_measurement_csv,
    parse_csv_row,
)
from analysis.runtime import torch_threads

from .tables import PaperTable, efficiency_pct_per_mj, load_paper_tables

POWERCAP_ROOT = Path("/sys/class/powercap")
MEASURED_JSON = Path(__file__).resolve().parent / "data" / "backbones_measured.json"
REFERENCE = "ResNet18"
TASK_SIZES: dict[str, tuple[int, int]] = {"detection": (800, 800), "segmentation": (512, 512)}


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: the paper's row name and how timm builds it."""

    label: str
    timm_name: str
    out_indices: tuple[int, ...] | None = None  # None: the model's own four maps
    ours: bool = False


BACKBONES: dict[str, BackboneSpec] = {spec.label: spec for spec in (
    BackboneSpec("EdgeViT-XXS", "edgevit_xxs", ours=True),
    BackboneSpec("EdgeViT-XS", "edgevit_xs", ours=True),
    BackboneSpec("EdgeViT-S", "edgevit_s", ours=True),
    BackboneSpec("ResNet18", "resnet18", out_indices=(1, 2, 3, 4)),  # skip the stride-2 map
    BackboneSpec("PVTv2-B0", "pvt_v2_b0"),
    BackboneSpec("PVTv2-B1", "pvt_v2_b1"),
)}
NOT_MEASURED = {"PVTv1-Tiny": "not in timm"}


def build_backbone(label: str) -> nn.Module:
    """The backbone of a paper row in eval mode, random weights (never downloads)."""
    import timm

    import edgevit  # noqa: F401 - registers the EdgeViTs with timm

    if label not in BACKBONES:
        raise ValueError(f"unknown backbone {label!r}; known: {', '.join(BACKBONES)}")
    spec = BACKBONES[label]
    kwargs: dict[str, Any] = {}
    if spec.out_indices is not None:
        kwargs["out_indices"] = spec.out_indices
    model = timm.create_model(spec.timm_name, pretrained=False, features_only=True, **kwargs)
    return model.eval()


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def backbone_macs(model: nn.Module, img_size: tuple[int, int]) -> int:
    """MACs of one forward at H×W (batch 1) by torch's FlopCounterMode, the one counter of
    `analysis.counters` that sees every model here (fused attention included)."""
    from analysis.counters import count_torch

    generator = torch.Generator().manual_seed(0)
    return count_torch(model, torch.randn(1, 3, *img_size, generator=generator)).macs


# ---------------------------------------------------------------------------------------------
# Energy: RAPL through powercap


@dataclass(frozen=True)
class RaplZone:
    path: Path
    name: str  # e.g. "package-0"
    max_energy_range_uj: int


def rapl_zones(root: str | os.PathLike[str] = POWERCAP_ROOT) -> list[RaplZone]:
    """The readable top-level RAPL zones (CPU packages: intel-rapl:N, not its subzones)."""
    zones = []
    base = Path(root)
    if not base.is_dir():
        return zones
    for path in sorted(base.glob("intel-rapl:*")):
        if path.name.count(":") != 1:
            continue  # intel-rapl:N:M is a subzone (core, uncore, dram) of package N
        try:
            int((path / "energy_uj").read_text())
            max_range = int((path / "max_energy_range_uj").read_text())
            name = (path / "name").read_text().strip() if (path / "name").exists() else path.name
        except (OSError, ValueError):
            continue  # present but unreadable (root-only since the 2020 RAPL side channel)
        zones.append(RaplZone(path, name, max_range))
    return zones


def rapl_status(root: str | os.PathLike[str] = POWERCAP_ROOT) -> dict[str, Any]:
    """Whether energy can be measured here: `available` and a one-line `reason`."""
    base = Path(root)
    zones = rapl_zones(base)
    if zones:
        names = ", ".join(f"{z.path.name} ({z.name})" for z in zones)
        return dict(available=True, reason=f"RAPL package zone(s) readable: {names}",
                    zones=[str(z.path) for z in zones])
    if not base.is_dir():
        why = f"{base} does not exist on this machine"
    elif not any(base.glob("intel-rapl:*")):
        why = f"{base} has no intel-rapl zone"
    else:
        why = f"the RAPL zones under {base} are not readable by this user"
    return dict(available=False, zones=[],
                reason=f"energy not available: {why}; import energies measured elsewhere "
                       "(CSV with energy_mj, see analysis.paper.backbones.load_energy_csv)")


class RaplMeter:
    """Cumulative energy of the RAPL package zones, in microjoules, wrap-around corrected."""

    def __init__(self, zones: Sequence[RaplZone]) -> None:
        if not zones:
            raise ValueError("no readable RAPL zone: energy cannot be measured here")
        self.zones = list(zones)

    def read(self) -> tuple[int, ...]:
        return tuple(int((z.path / "energy_uj").read_text()) for z in self.zones)

    def delta_uj(self, before: tuple[int, ...], after: tuple[int, ...]) -> int:
        total = 0
        for zone, a, b in zip(self.zones, before, after):
            total += b - a if b >= a else b + zone.max_energy_range_uj + 1 - a
        return total


def measure_energy_relative(
    run: Callable[[], object], reference_run: Callable[[], object], meter: RaplMeter, *,
    runs: int = 10, warmup_runs: int = 2,
) -> tuple[float, float]:
    """Median energy (mJ) of one call of `run` and of `reference_run`, read around each call,
    the two interleaved in alternating order (ABBA...)."""
    for f in (run, reference_run):
        for _ in range(warmup_runs):
            f()
    energies_mj: list[list[float]] = [[], []]
    for i in range(runs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for j in order:
            before = meter.read()
            (run, reference_run)[j]()
            energies_mj[j].append(meter.delta_uj(before, meter.read()) / 1000.0)
    return statistics.median(energies_mj[0]), statistics.median(energies_mj[1])


# ---------------------------------------------------------------------------------------------
# Side-by-side measurement


@dataclass(frozen=True)
class BackboneMeasurement:
    """One backbone at one input size, timed interleaved with the reference."""

    model: str
    img_size: tuple[int, int]
    latency_ms: float  # median of one forward (batch 1)
    reference_latency_ms: float
    ratio: float  # latency_ms / reference_latency_ms, from the same interleaved loop
    ratio_cv: float
    runs: int
    flagged_noisy: bool
    threads: int
    params: int
    reference: str = REFERENCE
    macs: int | None = None  # torch FlopCounterMode, when counted
    energy_mj: float | None = None  # per forward, RAPL package energy (None: not measured)
    reference_energy_mj: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["img_size"] = list(self.img_size)
        return out


def measure_backbones(
    labels: Sequence[str] = tuple(BACKBONES),
    img_size: tuple[int, int] = TASK_SIZES["detection"],
    *,
    reference: str = REFERENCE,
    threads: int = 1,
    protocol: Protocol = Protocol(),
    count_macs: bool = False,
    energy_runs: int = 10,
    powercap_root: str | os.PathLike[str] = POWERCAP_ROOT,
    progress: bool = True,
) -> list[BackboneMeasurement]:
    """Each backbone timed interleaved with `reference` at H×W; with RAPL readable, also its
    energy per forward (`energy_runs` interleaved forwards each). The reference's own row
    holds the median of its medians over the pairs, ratio 1."""
    from tqdm import tqdm

    labels = list(dict.fromkeys(labels))
    for label in [*labels, reference]:
        if label not in BACKBONES:
            raise ValueError(f"unknown backbone {label!r}; known: {', '.join(BACKBONES)}")
    zones = rapl_zones(powercap_root)
    meter = RaplMeter(zones) if zones else None
    ref_model = build_backbone(reference)
    generator = torch.Generator().manual_seed(protocol.seed)
    example = torch.randn(1, 3, *img_size, generator=generator)
    h, w = img_size
    rows: list[BackboneMeasurement] = []
    ref_medians: list[float] = []
    ref_energies: list[float] = []
    others = [label for label in labels if label != reference]
    for label in tqdm(others, desc=f"backbones {h}×{w}", unit="model", disable=not progress):
        model = build_backbone(label)
        result = measure_relative(model, ref_model, threads=threads, img_size=img_size,
                                  protocol=protocol)
        energy = ref_energy = None
        if meter is not None:
            with torch.inference_mode(), torch_threads(threads):
                energy, ref_energy = measure_energy_relative(
                    lambda m=model: m(example), lambda: ref_model(example), meter,
                    runs=energy_runs)
            ref_energies.append(ref_energy)
        assert result.reference_latency_ms is not None and result.ratio is not None
        ref_medians.append(result.reference_latency_ms)
        rows.append(BackboneMeasurement(
            model=label, img_size=(h, w), latency_ms=result.latency_ms,
            reference_latency_ms=result.reference_latency_ms, ratio=result.ratio,
            ratio_cv=result.ratio_cv or 0.0, runs=result.runs,
            flagged_noisy=result.flagged_noisy, threads=threads, params=num_params(model),
            reference=reference, macs=backbone_macs(model, img_size) if count_macs else None,
            energy_mj=energy, reference_energy_mj=ref_energy,
        ))
    if reference in labels:
        if not ref_medians:
            raise ValueError("the reference needs at least one other backbone to be timed with")
        ref_latency = statistics.median(ref_medians)
        ref_energy = statistics.median(ref_energies) if ref_energies else None
        rows.insert(labels.index(reference), BackboneMeasurement(
            model=reference, img_size=(h, w), latency_ms=ref_latency,
            reference_latency_ms=ref_latency, ratio=1.0, ratio_cv=0.0,
            runs=min(r.runs for r in rows), flagged_noisy=any(r.flagged_noisy for r in rows),
            threads=threads, params=num_params(ref_model), reference=reference,
            macs=backbone_macs(ref_model, img_size) if count_macs else None,
            energy_mj=ref_energy, reference_energy_mj=ref_energy,
        ))
    return rows


def compare_with_paper(
    measured: Sequence[BackboneMeasurement | Mapping[str, Any]],
    tables: Mapping[str, PaperTable] | None = None,
    img_sizes: Mapping[str, tuple[int, int]] | None = None,
) -> list[dict[str, Any]]:
    """Per paper table and row: the paper's CPU seconds and joules and their ratios to
    ResNet18's, beside the ratios measured here at the table's input size, or at
    `img_sizes[task]` for a reduced-size check (None where that size or model was not measured;
    PVTv1-Tiny never is)."""
    tables = load_paper_tables() if tables is None else tables
    rows = [m.to_dict() if isinstance(m, BackboneMeasurement) else dict(m) for m in measured]
    out = []
    for task, table in tables.items():
        ref = table.row(REFERENCE)
        size = tuple((img_sizes or {}).get(task, table.img_size))
        here = {r["model"]: r for r in rows if tuple(r["img_size"]) == size
                and r.get("reference", REFERENCE) == REFERENCE}
        for row in table.rows:
            m = here.get(row.model, {})
            energy, ref_energy = m.get("energy_mj"), m.get("reference_energy_mj")
            out.append(dict(
                task=task, model=row.model, img_size=list(size),
                paper_cpu_s=row.cpu_s, paper_ratio=row.cpu_s / ref.cpu_s,
                paper_energy_j=row.energy_j, paper_energy_ratio=row.energy_j / ref.energy_j,
                latency_ms=m.get("latency_ms"), ratio=m.get("ratio"),
                energy_mj=energy,
                energy_ratio=energy / ref_energy if energy and ref_energy else None,
                note=NOT_MEASURED.get(row.model, "" if m else "not measured at this size"),
            ))
    return out


# ---------------------------------------------------------------------------------------------
# Results file and imported energies


def load_measured(path: str | os.PathLike[str] = MEASURED_JSON) -> dict[str, Any] | None:
    """The committed results of `benchmarks/paper_backbones.py`, or None when absent."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def results_header(threads: int, protocol: Protocol) -> dict[str, Any]:
    """Provenance for a results file: when, where, with what."""
    from analysis.latency import device_fingerprint

    return dict(created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                torch=torch.__version__, threads=threads, protocol=asdict(protocol),
                device=device_fingerprint(), rapl=rapl_status())


def _backbone_ids() -> dict[str, str]:
    """config_id accepted in an energy CSV -> backbone label: the timm name, and for ours also
    the sha256 of the preset's config (the id `export_onnx_bundle` gives it)."""
    from analysis.latency import sha256_hex
    from edgevit.registry import preset_config

    ids = {}
    for label, spec in BACKBONES.items():
        ids[spec.timm_name] = label
        if spec.ours:
            ids[sha256_hex(preset_config(spec.timm_name).to_json())] = label
    return ids


def load_energy_csv(path: str | os.PathLike[str],
                    tables: Mapping[str, PaperTable] | None = None) -> list[dict[str, Any]]:
    """Backbone energies measured on other devices, in the latency CSV schema (columns
    config_id, input_h, input_w, backend, device, latency_ms, optional energy_mj; see
    `analysis.latency.measure`), config_id a backbone's timm name (`resnet18`, `edgevit_xs`, ...) or
    our preset's config hash. Every row is validated first: any problem raises ValueError
    naming the rows. Each row gets its `model` label and, where its input size is a paper
    table's and the model is in it, the paper's metric and `efficiency_pct_per_mj` on that
    device's energy (None where the row has no energy)."""
    tables = load_paper_tables() if tables is None else tables
    ids = _backbone_ids()
    reader = open_measurement_csv(path)
    rows, problems = [], []
    for number, raw in enumerate(reader, start=1):
        values, row_problems = parse_csv_row(raw, ids.__contains__, {})
        problems.extend(f"row {number}: {p}" for p in row_problems)
        if values is not None and not row_problems:
            rows.append(values)
    if problems:
        raise ValueError(f"{path}: {len(problems)} problem(s): " + "; ".join(problems[:5])
                         + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
                         + f" (known ids: {', '.join(s.timm_name for s in BACKBONES.values())})")
    if not rows:
        raise ValueError(f"{path}: no data rows")
    by_size = {table.img_size: table for table in tables.values()}
    out = []
    for values in rows:
        label = ids[values["config_id"]]
        table = by_size.get((values["input_h"], values["input_w"]))
        paper = next((r for r in table.rows if r.model == label), None) if table else None
        energy_mj = values["energy_mj"]
        efficiency = (efficiency_pct_per_mj(paper.metric_pct, energy_mj / 1000.0)
                      if paper is not None and energy_mj is not None else None)
        out.append(dict(values, model=label, task=table.task if table else None,
                        metric_pct=paper.metric_pct if paper else None,
                        efficiency_pct_per_mj=efficiency))
    return out


__all__ = [
    "BACKBONES",
    "MEASURED_JSON",
    "NOT_MEASURED",
    "POWERCAP_ROOT",
    "REFERENCE",
    "TASK_SIZES",
    "BackboneMeasurement",
    "BackboneSpec",
    "RaplMeter",
    "RaplZone",
    "backbone_macs",
    "build_backbone",
    "compare_with_paper",
    "load_energy_csv",
    "load_measured",
    "measure_backbones",
    "measure_energy_relative",
    "num_params",
    "rapl_status",
    "rapl_zones",
    "results_header",
]
