"""The supplementary's Tables 1-2 recomputed, and the paper's backbones measured here.

May import: edgevit, analysis.cost, analysis.counters, analysis.latency, analysis.accuracy,
analysis.nas.
"""

from .backbones import (
    BACKBONES,
    MEASURED_JSON,
    TASK_SIZES,
    BackboneSpec,
    compare_with_paper,
    load_energy_csv,
    load_measured,
    measure_backbones,
    rapl_status,
    results_header,
)
from .tables import (
    PAPER_TABLES_JSON,
    PaperRow,
    PaperTable,
    ablation_costs,
    ablation_table,
    efficiency_pct_per_mj,
    load_paper_tables,
    recompute,
    report,
    section_a_by_stage,
)

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "MEASURED_JSON",
    "PAPER_TABLES_JSON",
    "PaperRow",
    "PaperTable",
    "TASK_SIZES",
    "ablation_costs",
    "ablation_table",
    "compare_with_paper",
    "efficiency_pct_per_mj",
    "load_energy_csv",
    "load_measured",
    "load_paper_tables",
    "measure_backbones",
    "rapl_status",
    "recompute",
    "report",
    "results_header",
    "section_a_by_stage",
]
