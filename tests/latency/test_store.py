"""The SQLite measurement store: concurrent writers, killed writers, validation, export."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from analysis.latency import (
    ENV_VAR,
    MeasurementStore,
    canonical_json,
    default_store_path,
    external_device_fingerprint,
    sha256_hex,
)

CONFIG_JSON = canonical_json({"widths": [16, 16, 16, 16], "test": True})
DEVICE = {"cpu_model": "test cpu", "cores": 2, "threads": 2}


def base_row(store: MeasurementStore, **changes) -> dict:
    """A valid measurement for `store` (device and config added), with `changes` applied."""
    row = dict(
        device_id=store.add_device(DEVICE),
        config_hash=store.add_config(CONFIG_JSON, "model"),
        backend="torch",
        batch_size=1,
        input_h=64,
        input_w=64,
        threads=1,
        latency_ms=1.5,
        iqr_ms=0.1,
        cv=0.05,
        runs=20,
    )
    row.update(changes)
    return row


def _writer(path: str, writer: int, rows: int, start) -> None:
    """One of the concurrent writers: `rows` single-row transactions, latency_ms = writer.i."""
    start.wait()
    with MeasurementStore(path) as store:
        device_id = store.add_device(DEVICE)
        config_hash = store.add_config(CONFIG_JSON, "model")
        for i in range(rows):
            store.add_measurement(
                device_id=device_id, config_hash=config_hash, backend=f"writer{writer}",
                batch_size=1, input_h=64, input_w=64, latency_ms=1 + i, runs=i + 1,
            )


def test_eight_concurrent_writers_lose_no_row(tmp_path) -> None:
    path = str(tmp_path / "store.sqlite")
    writers, rows = 8, 50
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(path, w, rows, start)) for w in range(writers)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * writers
    with MeasurementStore(path) as store:
        frame = store.to_dataframe()
        assert store.count("devices") == 1 and store.count("configs") == 1
    assert len(frame) == writers * rows
    pairs = set(zip(frame["backend"], frame["runs"]))
    assert pairs == {(f"writer{w}", i + 1) for w in range(writers) for i in range(rows)}
    assert frame["id"].is_unique


KILLED_WRITER = """
import sys
from analysis.latency import MeasurementStore, canonical_json
store = MeasurementStore(sys.argv[1])
device_id = store.add_device({"cpu_model": "killed writer"})
config_hash = store.add_config(canonical_json({"killed": True}), "model")
i = 0
while True:
    i += 1
    (row_id,) = store.add_measurements([dict(
        device_id=device_id, config_hash=config_hash, backend="torch", batch_size=1,
        input_h=32, input_w=32, latency_ms=float(i), runs=i,
    )])
    print(row_id, i, flush=True)  # reported only after COMMIT returned
"""


def test_writer_killed_mid_run_keeps_every_committed_row(tmp_path) -> None:
    path = tmp_path / "store.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    reported = []
    deadline = time.monotonic() + 60
    while len(reported) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        reported.append(tuple(int(v) for v in line.split()))
    os.kill(proc.pid, signal.SIGKILL)  # while it is inserting in its loop
    rest, err = proc.communicate(timeout=30)
    reported += [tuple(int(v) for v in line.split()) for line in rest.splitlines() if line]
    assert proc.returncode == -signal.SIGKILL, err
    assert len(reported) >= 40, err

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    with MeasurementStore(path) as store:  # reopens (recovers the WAL) and still accepts writes
        frame = store.to_dataframe()
        store.add_measurement(**base_row(store))
    stored = dict(zip(frame["id"], frame["runs"]))
    for row_id, i in reported:
        assert stored.get(row_id) == i
    assert len(stored) >= len(reported)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("latency_ms", float("nan"), "latency_ms must be a finite number, got nan"),
        ("latency_ms", float("inf"), "latency_ms must be a finite number, got inf"),
        ("latency_ms", -1.0, "latency_ms must be > 0, got -1.0"),
        ("latency_ms", 0.0, "latency_ms must be > 0, got 0.0"),
        ("latency_ms", "3", "latency_ms must be a finite number"),
        ("latency_ms", None, "latency_ms is required"),
        ("energy_mj", -2.0, "energy_mj must be > 0, got -2.0"),
        ("latency_ms", 1e300, r"latency_ms 1e\+300 is above the physical bound 3\.6e\+06"),
        ("energy_mj", 1e7, r"energy_mj 10000000\.0 is above the physical bound 1e\+06"),
        ("iqr_ms", float("nan"), "iqr_ms must be a finite number"),
        ("cv", -0.1, "cv must be ≥ 0"),
        ("batch_size", 0, "batch_size must be an integer ≥ 1"),
        ("runs", 2.5, "runs must be an integer ≥ 1"),
        ("source", "guessed", "source must be one of"),
        ("config_hash", "0" * 64, "is not in the store's configs"),
        ("device_id", 99, "unknown device id 99"),
    ],
)
def test_bad_values_are_rejected_and_nothing_stored(tmp_path, field, value, message) -> None:
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        good = base_row(store)
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            store.add_measurements([good, base_row(store, **{field: value})])
        assert store.count() == 0  # the good row of the same call is not stored either


def test_measurements_are_append_only(tmp_path) -> None:
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        store.add_measurement(**base_row(store))
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    for statement in ("UPDATE measurements SET latency_ms = 2", "DELETE FROM measurements"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(statement)
    assert conn.execute("SELECT latency_ms FROM measurements").fetchall() == [(1.5,)]
    conn.close()


def test_configs_and_devices_are_keyed_by_canonical_hash(tmp_path) -> None:
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        digest = store.add_config(CONFIG_JSON, "model")
        assert digest == sha256_hex(CONFIG_JSON) and store.add_config(CONFIG_JSON) == digest
        assert store.config_json(digest) == CONFIG_JSON
        with pytest.raises(ValueError, match="canonical"):
            store.add_config('{"b": 1, "a": 2}')
        with pytest.raises(ValueError, match="stored as kind 'model'"):
            store.add_config(CONFIG_JSON, "block")
        phone = store.add_device(external_device_fingerprint("pixel 7"))
        assert store.add_device(external_device_fingerprint(" pixel 7 ")) == phone
        assert store.add_device(DEVICE) != phone
        assert store.count("configs") == 1 and store.count("devices") == 2


def test_export_round_trip(tmp_path) -> None:
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        ref_hash = store.add_config(canonical_json({"reference": 1}), "model")
        store.add_measurements([
            base_row(store, latency_ms=1 / 3, energy_mj=0.1 + 0.2),
            base_row(store, latency_ms=2.0, iqr_ms=None, cv=None, runs=None, threads=None,
                     source="imported", flagged_noisy=True),
            base_row(store, latency_ms=4.25, reference_latency_ms=math.pi,
                     reference_config_hash=ref_hash),
        ])
        frame = store.to_dataframe()
        path = store.to_csv(tmp_path / "out.csv")
    assert list(frame["latency_ms"]) == [1 / 3, 2.0, 4.25]
    assert list(frame["flagged_noisy"]) == [False, True, False]
    assert frame["config_json"].iloc[0] == CONFIG_JSON
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_store_location_from_argument_env_and_user_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.sqlite"))
    assert default_store_path() == tmp_path / "env.sqlite"
    with MeasurementStore() as store:
        assert store.path == tmp_path / "env.sqlite"
    with MeasurementStore(tmp_path / "arg.sqlite") as store:
        assert store.path == tmp_path / "arg.sqlite"
    monkeypatch.delenv(ENV_VAR)
    assert "edgevit-suite" in str(default_store_path())
    assert default_store_path().name == "measurements.sqlite"


@pytest.mark.parametrize("name", ["foreign.db", "a#b?c.db"])
def test_a_foreign_database_is_refused_byte_for_byte_unchanged(tmp_path, capsys, name) -> None:
    """Another application's SQLite file (a `users` table) as the store, through the API and
    through `edgevit import-csv` with EDGEVIT_STORE: refused, its bytes unchanged, no WAL."""
    import hashlib

    from analysis.cli import main

    path = tmp_path / name
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE users (name TEXT)")
        other.execute("INSERT INTO users VALUES ('alice')")
    other.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="another application.*users.*nothing was written"):
        MeasurementStore(path)
    csv = tmp_path / "phone.csv"
    csv.write_text("config_id,input_h,input_w,backend,device,latency_ms\n")
    code = main(["import-csv", str(csv), "--store", str(path)])
    assert code == 2 and "another application" in capsys.readouterr().err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "phone.csv"])


def test_not_a_database_and_an_unmarked_store(tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello" * 40)
    with pytest.raises(ValueError, match="not a SQLite database"):
        MeasurementStore(text)
    assert text.read_text() == "hello" * 40
    legacy = tmp_path / "legacy.sqlite"  # a store from before the marker: our three tables
    with MeasurementStore(legacy) as store:
        store.add_device()
    with sqlite3.connect(legacy) as conn:
        conn.execute("PRAGMA application_id=0")
    conn.close()
    with MeasurementStore(legacy) as store:  # recognised, and marked
        assert store.count() == 0
    with sqlite3.connect(legacy) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x45565354
    conn.close()


def test_a_store_locked_by_another_writer_says_so_and_gives_up(tmp_path, capsys,
                                                               monkeypatch) -> None:
    from analysis.latency import store as store_module

    path = tmp_path / "s.sqlite"
    MeasurementStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock and never lets go
    monkeypatch.setattr(store_module, "LOCK_GIVE_UP_S", 1.5)
    started = time.monotonic()
    with pytest.raises(ValueError, match="stayed locked by another writer for 2 s"):
        MeasurementStore(path, busy_timeout_s=0.2)  # its schema check already needs the lock
    assert time.monotonic() - started < 10
    assert capsys.readouterr().err.count("waiting for the measurement store") == 1
    holder.execute("ROLLBACK")
    holder.close()
