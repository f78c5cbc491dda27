"""analysis.runtime's checks of users' values and files: finite_float and the checks built on it
(an integer beyond the float range, which a JSON file can hold, is refused with the checker's
own error, never OverflowError), checked_int, checked_real, regular_file."""

from __future__ import annotations

import json
import math
import os

import pytest

from analysis.latency.store import MeasurementRecord
from analysis.nas.experiment import SearchSettings
from analysis.nas.tuner import MetricError, read_metric
from analysis.paper import tables as paper_tables
from analysis.runtime import checked_int, checked_real, finite_float, regular_file
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


@pytest.mark.parametrize("value, low, high, message", [
    (True, 1, None, "integer ≥ 1, got True"),
    (2.0, 1, None, "integer ≥ 1, got 2.0"),
    ("2_24", 32, 8192, "integer in 32..8192, got '2_24'"),
    (0, 1, None, "integer ≥ 1, got 0"),
    (8193, 32, 8192, "integer in 32..8192, got 8193"),
    (HUGE, 1, 1024, "integer in 1..1024, got 1000000"),  # the repr is cut at 80 characters
])
def test_checked_int_refuses(value, low, high, message) -> None:
    with pytest.raises(ValueError, match=f"^threads must be an {message}"):
        checked_int("threads", value, low, high)


def test_checked_int_and_real_accept() -> None:
    import numpy as np

    assert checked_int("n", np.int64(7), 1, 10) == 7 and type(checked_int("n", 7, 1)) is int
    assert checked_real("x", 0, at_least=0) == 0.0
    assert checked_real("x", np.float32(2.5), above=0) == 2.5
    for value, kwargs, message in ((0.0, {"above": 0}, "x must be > 0, got 0.0"),
                                   (-1, {"at_least": 0}, "x must be ≥ 0, got -1"),
                                   (math.nan, {}, "x must be a finite number, got nan"),
                                   (HUGE, {}, "x must be a finite number")):
        with pytest.raises(ValueError, match=message):
            checked_real("x", value, **kwargs)


def test_regular_file(tmp_path) -> None:
    (tmp_path / "a.json").write_text("{}")
    assert regular_file(tmp_path / "a.json", "predictor").st_size == 2
    with pytest.raises(ValueError, match="predictor not found: .*missing"):
        regular_file(tmp_path / "missing", "predictor")
    with pytest.raises(ValueError, match="is not a regular file"):
        regular_file(tmp_path, "predictor")
    os.mkfifo(tmp_path / "fifo")  # refused from its stat, never opened (a read would block)
    with pytest.raises(ValueError, match="fifo is not a regular file"):
        regular_file(tmp_path / "fifo", "predictor")
