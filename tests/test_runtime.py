"""analysis.runtime.finite_float, and the checks built on it: an integer beyond the float range
(a JSON file can hold one) is refused with the checker's own error, never OverflowError."""

from __future__ import annotations

import json
import math

import pytest

from analysis.latency.store import MeasurementRecord
from analysis.nas.experiment import SearchSettings
from analysis.nas.tuner import MetricError, read_metric
from analysis.paper import tables as paper_tables
from analysis.runtime import finite_float
from edgevit import PRESETS, EdgeViTConfig

HUGE = 10**400  # float(HUGE) raises OverflowError


@pytest.mark.parametrize("value, expected", [
    (3, 3.0), (-2.5, -2.5), (10**300, 1e300),
    (HUGE, None), (-HUGE, None), (math.nan, None), (math.inf, None),
    (True, None), ("1", None), (None, None), ([1.0], None),
])
def test_finite_float(value, expected) -> None:
    assert finite_float(value) == expected


def test_config_refuses_a_huge_mlp_ratio() -> None:
    data = dict(PRESETS["edgevit_xxs"].to_dict(), mlp_ratio=HUGE)
    with pytest.raises(ValueError, match="mlp_ratio"):
        EdgeViTConfig.from_dict(data)


def test_store_refuses_a_huge_latency() -> None:
    with pytest.raises(ValueError, match="latency_ms must be a finite number"):
        MeasurementRecord(device_id=1, config_hash="x", backend="torch", batch_size=1,
                          input_h=224, input_w=224, latency_ms=HUGE)


def test_tuner_refuses_a_huge_objective() -> None:
    with pytest.raises(MetricError, match="latency_ms"):
        read_metric(json.dumps({"accuracy": 0.5, "latency_ms": HUGE}),
                    ("accuracy", "latency_ms"))


def test_search_settings_refuse_a_huge_budget(tmp_path) -> None:
    with pytest.raises(ValueError, match="macs_budget"):
        SearchSettings(predictor=tmp_path / "p.json", macs_budget=HUGE)


def test_paper_tables_refuse_a_huge_energy(tmp_path) -> None:
    raw = json.loads(paper_tables.PAPER_TABLES_JSON.read_text())
    raw["tables"]["detection"]["rows"][0]["energy_j"] = HUGE
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="energy_j"):
        paper_tables.load_paper_tables(path)
