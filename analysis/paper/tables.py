"""The supplementary's quantitative claims, recomputed: Tables 1 and 2 (section D), their
efficiency column and Pareto optimality (section C), section A's cost formula per stage, and the
section B ablations' cost.

Tables 1 and 2 live in `analysis/paper/data/paper_tables.json` (units in the field names, source and
transcription notes inside). The printed "Efficiency (%/msW)" is the metric in % divided by the
energy in millijoules (1 ms × 1 W = 1 mJ): 38.7 / 2020 = 0.019. Each row is recomputed and
rounded half-up to the printed decimals; a row that does not round to the printed value is a
mismatch.

Pareto optimality is the supplementary's definition (section C): a model is optimal when no
other model is at least as good on both the metric (max) and the cost (min, CPU seconds or
joules) and strictly better on one. The tables print a ± spread for every cost;
`pareto_*_robust` says whether a model stays non-dominated in the worst case inside those
spreads (its own cost at +spread, every other model's at −spread).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.nas import non_dominated
from analysis.runtime import finite_float
from edgevit.config import EdgeViTConfig

if TYPE_CHECKING:
    from analysis.latency import LatencyResult

PAPER_TABLES_JSON = Path(__file__).resolve().parent / "data" / "paper_tables.json"
TASKS = ("detection", "segmentation")
OURS_PREFIX = "EdgeViT-"
ROW_NUMBERS = ("metric_pct", "cpu_s", "cpu_spread_s", "energy_j", "energy_spread_j",
               "efficiency_pct_per_mj_printed")
COSTS = {"latency": ("cpu_s", "cpu_spread_s"), "energy": ("energy_j", "energy_spread_j")}


# ---------------------------------------------------------------------------------------------
# Tables 1 and 2


@dataclass(frozen=True)
class PaperRow:
    """One printed row: the metric in % (AP or mIoU), CPU seconds and joules with their spreads."""

    model: str
    metric_pct: float
    cpu_s: float
    cpu_spread_s: float
    energy_j: float
    energy_spread_j: float
    efficiency_pct_per_mj_printed: float

    @property
    def ours(self) -> bool:
        return self.model.startswith(OURS_PREFIX)

    @property
    def energy_mj(self) -> float:
        return 1000.0 * self.energy_j


@dataclass(frozen=True)
class PaperTable:
    """One of the supplementary's tables at its input size."""

    task: str
    title: str
    img_size: tuple[int, int]
    metric: str  # "AP" or "mIoU"
    efficiency_decimals: int
    rows: tuple[PaperRow, ...]

    def row(self, model: str) -> PaperRow:
        for row in self.rows:
            if row.model == model:
                return row
        raise KeyError(f"{self.title}: no row {model!r}")


def _check_row(task: str, index: int, raw: Any) -> PaperRow:
    where = f"{task} row {index}"
    if not isinstance(raw, dict) or set(raw) != {"model", *ROW_NUMBERS}:
        raise ValueError(f"{where}: expected the fields model, {', '.join(ROW_NUMBERS)}")
    for name in ROW_NUMBERS:
        value = raw[name]
        number = finite_float(value)
        if number is None or number < 0:
            raise ValueError(f"{where} ({raw['model']}): {name} = {value!r} is not a number ≥ 0")
    if raw["energy_j"] <= 0 or raw["cpu_s"] <= 0:
        raise ValueError(f"{where} ({raw['model']}): cpu_s and energy_j must be > 0")
    return PaperRow(**{k: (v if k == "model" else float(v)) for k, v in raw.items()})


def load_paper_tables(path: str | Path = PAPER_TABLES_JSON) -> dict[str, PaperTable]:
    """task -> table, validated (every field present, numbers finite, models unique)."""
    data = json.loads(Path(path).read_text())
    tables = {}
    for task in TASKS:
        raw = data["tables"][task]
        rows = tuple(_check_row(task, i, r) for i, r in enumerate(raw["rows"]))
        models = [r.model for r in rows]
        if len(set(models)) != len(models):
            raise ValueError(f"{task}: a model appears twice in {models}")
        tables[task] = PaperTable(task, raw["title"], tuple(raw["img_size"]), raw["metric"],
                                  int(raw["efficiency_decimals"]), rows)
    return tables


def efficiency_pct_per_mj(metric_pct: float, energy_j: float) -> float:
    """The printed "Efficiency (%/msW)": metric in % per millijoule."""
    return metric_pct / (1000.0 * energy_j)


def round_half_up(value: float | Decimal, decimals: int) -> float:
    """Round as a table is printed (0.0125 -> 0.013), on the decimal digits of `value`."""
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    return float(exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def efficiency_rounded(metric_pct: float, energy_j: float, decimals: int) -> float:
    """The efficiency as it would be printed: the quotient of the printed decimals, computed in
    decimal arithmetic (no binary float error at a half) and rounded half-up."""
    quotient = Decimal(repr(metric_pct)) / (Decimal(repr(energy_j)) * 1000)
    return round_half_up(quotient, decimals)


def pareto_robust(metric: Sequence[float], cost: Sequence[float],
                  spread: Sequence[float]) -> np.ndarray:
    """Mask of the models that no other model dominates even with this model's cost at
    +spread and the other's at −spread (metric maximised, cost minimised)."""
    metric_a, cost_a, spread_a = (np.asarray(v, dtype=float) for v in (metric, cost, spread))
    worst, best = cost_a + spread_a, cost_a - spread_a
    keep = np.ones(len(metric_a), dtype=bool)
    for i in range(len(metric_a)):
        others = np.arange(len(metric_a)) != i
        dominates = (
            (metric_a >= metric_a[i]) & (best <= worst[i])
            & ((metric_a > metric_a[i]) | (best < worst[i]))
        )
        keep[i] = not (dominates & others).any()
    return keep


def recompute(table: PaperTable) -> list[dict[str, Any]]:
    """The table's rows with the recomputed efficiency and Pareto flags, as JSON-ready dicts."""
    metric = np.array([r.metric_pct for r in table.rows])
    flags: dict[str, np.ndarray] = {}
    for name, (cost_field, spread_field) in COSTS.items():
        cost = np.array([getattr(r, cost_field) for r in table.rows])
        spread = np.array([getattr(r, spread_field) for r in table.rows])
        flags[f"pareto_{name}"] = non_dominated(np.column_stack([metric, cost]), ("max", "min"))
        flags[f"pareto_{name}_robust"] = pareto_robust(metric, cost, spread)
    out = []
    for i, row in enumerate(table.rows):
        efficiency = efficiency_pct_per_mj(row.metric_pct, row.energy_j)
        rounded = efficiency_rounded(row.metric_pct, row.energy_j, table.efficiency_decimals)
        out.append(dict(
            model=row.model, ours=row.ours, metric=table.metric, metric_pct=row.metric_pct,
            cpu_s=row.cpu_s, cpu_spread_s=row.cpu_spread_s, energy_j=row.energy_j,
            energy_spread_j=row.energy_spread_j,
            efficiency_pct_per_mj_printed=row.efficiency_pct_per_mj_printed,
            efficiency_pct_per_mj=efficiency, efficiency_pct_per_mj_rounded=rounded,
            efficiency_matches=math.isclose(rounded, row.efficiency_pct_per_mj_printed,
                                            abs_tol=1e-12),
            **{name: bool(mask[i]) for name, mask in flags.items()},
        ))
    return out


def efficiency_mismatches(recomputed: Mapping[str, Sequence[dict[str, Any]]]
                          ) -> list[dict[str, Any]]:
    """The rows (of `task -> recompute(...)`) whose recomputed efficiency does not round to the
    printed one."""
    return [
        dict(task=task, model=row["model"], printed=row["efficiency_pct_per_mj_printed"],
             recomputed=row["efficiency_pct_per_mj"], rounded=row["efficiency_pct_per_mj_rounded"])
        for task, rows in recomputed.items() for row in rows if not row["efficiency_matches"]
    ]


def pareto_claims(rows: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """Section C's "all EdgeViTs are Pareto-optimal", per cost, on one recomputed table
    (and the same in the worst case inside the ± spreads)."""
    ours = [row for row in rows if row["ours"]]
    if not ours:
        raise ValueError("no EdgeViT rows in the table")
    return {key: all(row[f"pareto_{key}"] for row in ours)
            for name in COSTS for key in (name, f"{name}_robust")}


def report(tables: Mapping[str, PaperTable] | None = None) -> dict[str, Any]:
    """Everything `edgevit paper-tables` prints: per task the recomputed rows, the mismatching
    rows and the Pareto claims."""
    tables = load_paper_tables() if tables is None else tables
    recomputed = {task: recompute(table) for task, table in tables.items()}
    return dict(
        **recomputed,
        efficiency_mismatches=efficiency_mismatches(recomputed),
        all_edgevits_pareto={task: pareto_claims(rows) for task, rows in recomputed.items()},
        img_sizes={task: list(table.img_size) for task, table in tables.items()},
    )


# ---------------------------------------------------------------------------------------------
# Section A per stage


def _stage_terms_macs(ops: Sequence[Any], stage: int) -> dict[str, int]:
    """Exact MACs of the ops section A's terms stand for, summed over one stage's blocks."""
    fragments = {"la": ("mixer.dwconv",), "sa": ("attn@qk", "attn@av"), "lp": ("local_prop",)}
    prefix = f"stages.{stage}.blocks."
    return {term: sum(op.macs for op in ops if op.module.startswith(prefix)
                      and any(f in op.module for f in frags))
            for term, frags in fragments.items()}


def section_a_by_stage(config: EdgeViTConfig,
                       img_size: tuple[int, int] = (224, 224)) -> list[dict[str, Any]]:
    """Per stage: the supplementary's k²hwc + h²w²c/r⁴ + r²hwc (times the depth, k the config's
    kernel) beside the exact MACs of the ops those terms stand for, and the stage's whole cost.

    la / sa / lp: local aggregation (the depthwise k×k conv), sparse attention (q·kᵀ and
    attn·v), local propagation (the transposed conv). At r = 1 the formula is applied as printed,
    but the release's r = 1 block has no LocalAgg and no LocalProp (exact la = lp = 0) and its
    attention is full attention. `stage_macs` is the exact stage (stem and every block op).
    """
    from analysis.cost import model_cost
    from edgevit.config import stage_sizes

    cost = model_cost(config, img_size)
    stage_macs = cost.by_stage()
    rows = []
    for i, ((sh, sw), width, depth, rate) in enumerate(zip(
        stage_sizes(img_size), config.widths, config.depths, config.sample_rates
    )):
        k, hwc = config.local_kernel, sh * sw * width
        paper = dict(la=depth * k**2 * hwc, sa=depth * (sh * sw) ** 2 * width / rate**4,
                     lp=depth * rate**2 * hwc)
        exact = _stage_terms_macs(cost.ops, i)
        row: dict[str, Any] = dict(stage=i, height=sh, width=sw, channels=width, depth=depth,
                                   sample_rate=rate, kernel=k)
        for term in ("la", "sa", "lp"):
            row[f"{term}_paper_macs"] = paper[term]
            row[f"{term}_exact_macs"] = exact[term]
        row["paper_macs"] = sum(paper.values())
        row["exact_terms_macs"] = sum(exact.values())
        row["stage_macs"] = stage_macs[i]
        row["exact_over_paper"] = row["exact_terms_macs"] / row["paper_macs"]
        row["paper_share_of_stage"] = row["paper_macs"] / row["stage_macs"]
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Section B ablations

# name -> (paper table, variant as the paper prints it)
ABLATION_LABELS: dict[str, tuple[str, str]] = {
    "ablation_lgl": ("4a-4c", "LGL (base; sampler = the release's top-left pick)"),
    "ablation_wo_la": ("4a", "w/o LA"),
    "ablation_la_lsa": ("4a", "LA(LSA)"),
    "ablation_sampler_center": ("4b", "Center (pixel r//2, r//2)"),
    "ablation_sampler_avg": ("4b", "Avg"),
    "ablation_sampler_max": ("4b", "Max"),
    "ablation_wo_lp": ("4c", "w/o LP"),
    "ablation_lp_bilinear": ("4c", "LP(Bilinear)"),
}


def ablation_costs(img_size: tuple[int, int] = (224, 224)) -> list[dict[str, Any]]:
    """Every ablation (classifier included, as the paper's ~0.5 GFLOPs): exact MACs, params."""
    from analysis.cost import model_cost
    from edgevit import ABLATIONS

    if set(ABLATIONS) != set(ABLATION_LABELS):
        odd = set(ABLATIONS) ^ set(ABLATION_LABELS)
        raise ValueError(f"ablations and their paper labels differ: {sorted(odd)}")
    rows = []
    for name, config in ABLATIONS.items():
        cost = model_cost(config, img_size)
        table, variant = ABLATION_LABELS[name]
        rows.append(dict(name=name, table=table, variant=variant, depths=list(config.depths),
                         macs=cost.macs, params=cost.params, img_size=list(img_size)))
    return rows


def ablation_table(costs: Sequence[dict[str, Any]],
                   latencies: Sequence[LatencyResult | dict[str, Any]] = ()
                   ) -> list[dict[str, Any]]:
    """`ablation_costs()` rows joined with measured latencies by the result's label, which is
    the ablation's name when the config came from `edgevit.preset_config(name)` (the configs in
    `edgevit.ABLATIONS` all carry the base's name): `latency_ms` and `ratio` to the reference
    (None where not measured)."""
    by_name = {}
    for result in latencies:
        data = result if isinstance(result, dict) else result.to_dict()
        by_name[data.get("label", data.get("name"))] = data  # a result, or a joined row
    out = []
    for row in costs:
        measured = by_name.get(row["name"], {})
        out.append(dict(row, latency_ms=measured.get("latency_ms"), ratio=measured.get("ratio"),
                        reference_latency_ms=measured.get("reference_latency_ms"),
                        flagged_noisy=measured.get("flagged_noisy")))
    return out


__all__ = [
    "ABLATION_LABELS",
    "PAPER_TABLES_JSON",
    "TASKS",
    "PaperRow",
    "PaperTable",
    "ablation_costs",
    "ablation_table",
    "efficiency_mismatches",
    "efficiency_pct_per_mj",
    "efficiency_rounded",
    "load_paper_tables",
    "pareto_claims",
    "pareto_robust",
    "recompute",
    "report",
    "round_half_up",
    "section_a_by_stage",
]
