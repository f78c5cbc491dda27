"""An append-only SQLite store of latency (and energy) measurements.

Tables
------
devices       one row per machine: `fingerprint_json` (canonical JSON of the CPU model, physical
              cores, hardware threads, usable CPUs, torch and onnxruntime versions, or of a
              user's own name for an external device) and its sha256 `fingerprint_hash` (unique).
configs       one row per architecture: canonical JSON (`EdgeViTConfig.to_json()` for
              kind='model', a block description for kind='block') and its sha256 `hash` (unique).
measurements  append-only (SQL triggers refuse UPDATE and DELETE): device, config hash, backend,
              batch size, input H × W (pixels), threads, median `latency_ms` per forward of the
              whole batch, `iqr_ms`, `cv` (std / mean of the timed runs), `runs`,
              `flagged_noisy`, optional `energy_mj` (millijoules per forward), `source`
              ('measured' | 'imported'), `created` (UTC ISO 8601) and, for a measurement timed
              interleaved with a reference model, `reference_latency_ms` and
              `reference_config_hash`.

Several processes may write at once (parallel NNI trials): the database runs in WAL mode, every
write is one `BEGIN IMMEDIATE` transaction taken under a busy timeout and retried with backoff,
and commits are synchronous (`synchronous=FULL`), so a row reported committed survives a killed
writer. Values are validated before anything is written: a NaN, infinite, zero or negative
latency raises ValueError naming the value, and nothing of that call is stored.

A store is marked as ours by SQLite's `application_id` header field (`STORE_APPLICATION_ID`).
A path holding any other SQLite database (another application's, with a `users` table, say) or
any other file is refused before a single byte is written: the store never adds its tables to,
nor switches the journal of, a file it does not own. A store written before the marker existed
(exactly our three tables) is recognised and marked.

The store lives at `$EDGEVIT_STORE` when set, else in the user's data directory
(`platformdirs.user_data_dir("edgevit-suite")/measurements.sqlite`); an explicit path wins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import platform
import random
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from analysis.runtime import checked_int, checked_real

if TYPE_CHECKING:
    import pandas as pd

ENV_VAR = "EDGEVIT_STORE"
APP_NAME = "edgevit-suite"
DEFAULT_FILENAME = "measurements.sqlite"
KINDS = ("model", "block")
SOURCES = ("measured", "imported")
STORE_APPLICATION_ID = 0x45565354  # "EVST" in SQLite's header: this file is a store
STORE_TABLES = frozenset({"devices", "configs", "measurements"})
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 5.0  # SQLite waits this long for a lock before a retry
LOCK_GIVE_UP_S = 120.0  # a store locked by another writer this long: ValueError, nothing written

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint_hash TEXT NOT NULL UNIQUE,
    fingerprint_json TEXT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS configs (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('model', 'block')),
    json TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    config_hash TEXT NOT NULL REFERENCES configs(hash),
    backend TEXT NOT NULL,
    batch_size INTEGER NOT NULL CHECK (batch_size >= 1),
    input_h INTEGER NOT NULL CHECK (input_h >= 1),
    input_w INTEGER NOT NULL CHECK (input_w >= 1),
    threads INTEGER CHECK (threads >= 1),
    latency_ms REAL NOT NULL CHECK (latency_ms > 0),
    iqr_ms REAL CHECK (iqr_ms >= 0),
    cv REAL CHECK (cv >= 0),
    runs INTEGER CHECK (runs >= 1),
    flagged_noisy INTEGER NOT NULL CHECK (flagged_noisy IN (0, 1)),
    energy_mj REAL CHECK (energy_mj > 0),
    source TEXT NOT NULL CHECK (source IN ('measured', 'imported')),
    created TEXT NOT NULL,
    reference_latency_ms REAL CHECK (reference_latency_ms > 0),
    reference_config_hash TEXT REFERENCES configs(hash)
);
CREATE INDEX IF NOT EXISTS measurements_config ON measurements(config_hash);
CREATE TRIGGER IF NOT EXISTS measurements_no_update BEFORE UPDATE ON measurements
BEGIN SELECT RAISE(ABORT, 'measurements are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS measurements_no_delete BEFORE DELETE ON measurements
BEGIN SELECT RAISE(ABORT, 'measurements are append-only: DELETE refused'); END;
"""


# ---------------------------------------------------------------------------------------------
# Canonical JSON, hashes, fingerprints


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces: equal objects give equal text (and equal hashes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256_hex(text: str) -> str:
    """sha256 of the UTF-8 text, 64 hex digits: the id of a config or a device."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_hash(fingerprint: Mapping[str, Any]) -> str:
    """The id of a device: sha256 of its fingerprint's canonical JSON (the store's
    `fingerprint_hash`, and a predictor's `PredictorSettings.fingerprint`)."""
    return sha256_hex(canonical_json(fingerprint))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _physical_cores() -> int:
    """Distinct (physical id, core id) pairs of /proc/cpuinfo; os.cpu_count() elsewhere."""
    try:
        cores, physical = set(), "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                cores.add((physical, value.strip()))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def device_fingerprint() -> dict[str, Any]:
    """This machine: CPU model, physical cores, hardware threads, usable CPUs, library versions."""
    import onnxruntime
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return {
        "cpu_model": _cpu_model(),
        "cores": _physical_cores(),
        "threads": os.cpu_count() or 1,
        "usable_cpus": usable,
        "machine": platform.machine(),
        "system": platform.system(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def external_device_fingerprint(name: str) -> dict[str, Any]:
    """A device the suite cannot inspect (a phone, a board), known by the user's own name."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"external device name must be a non-empty string, got {name!r}")
    return {"external_device": name.strip()}


def default_store_path() -> Path:
    """$EDGEVIT_STORE when set, else <user data dir>/edgevit-suite/measurements.sqlite."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)) / DEFAULT_FILENAME


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# ---------------------------------------------------------------------------------------------
# Validation


# Physical bounds of a stored measurement: one forward of one batch within an hour, with at
# most a kilojoule (a phone's whole battery is about 50 kJ).
MAX_LATENCY_MS = 3_600_000.0
MAX_ENERGY_MJ = 1_000_000.0


def _real(name: str, value: Any, *, positive: bool, optional: bool) -> float | None:
    """A finite real number (> 0 with `positive`, else ≥ 0); None allowed with `optional`."""
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} is required, got None")
    return checked_real(name, value, above=0 if positive else None,
                        at_least=None if positive else 0)


def _count(name: str, value: Any, *, optional: bool = False) -> int | None:
    """An integer ≥ 1 (None allowed with `optional`)."""
    return None if value is None and optional else checked_int(name, value, 1)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class MeasurementRecord:
    """One row of `measurements`, validated on construction (ValueError naming the value).

    `latency_ms` is the median time of one forward of the whole batch (milliseconds);
    `energy_mj` the energy of one forward (millijoules). Imported rows may leave the
    statistics (`iqr_ms`, `cv`, `runs`) and `threads` as None.
    """

    device_id: int
    config_hash: str
    backend: str
    batch_size: int
    input_h: int
    input_w: int
    latency_ms: float
    threads: int | None = None
    iqr_ms: float | None = None
    cv: float | None = None
    runs: int | None = None
    flagged_noisy: bool = False
    energy_mj: float | None = None
    source: str = "measured"
    reference_latency_ms: float | None = None
    reference_config_hash: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "device_id", _count("device_id", self.device_id))
        set_(self, "config_hash", _text("config_hash", self.config_hash))
        set_(self, "backend", _text("backend", self.backend))
        for name in ("batch_size", "input_h", "input_w"):
            set_(self, name, _count(name, getattr(self, name)))
        set_(self, "threads", _count("threads", self.threads, optional=True))
        set_(self, "runs", _count("runs", self.runs, optional=True))
        latency_ms = _real("latency_ms", self.latency_ms, positive=True, optional=False)
        set_(self, "latency_ms", latency_ms)
        for name in ("iqr_ms", "cv"):
            set_(self, name, _real(name, getattr(self, name), positive=False, optional=True))
        for name in ("energy_mj", "reference_latency_ms"):
            set_(self, name, _real(name, getattr(self, name), positive=True, optional=True))
        if not isinstance(self.flagged_noisy, (bool, int)) or self.flagged_noisy not in (0, 1):
            raise ValueError(f"flagged_noisy must be a bool, got {self.flagged_noisy!r}")
        set_(self, "flagged_noisy", bool(self.flagged_noisy))
        for name, top in (("latency_ms", MAX_LATENCY_MS), ("reference_latency_ms", MAX_LATENCY_MS),
                          ("iqr_ms", MAX_LATENCY_MS), ("energy_mj", MAX_ENERGY_MJ)):
            value = getattr(self, name)
            if value is not None and value > top:
                raise ValueError(f"{name} {value!r} is above the physical bound {top:g}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if (self.reference_latency_ms is None) != (self.reference_config_hash is None):
            raise ValueError(
                "reference_latency_ms and reference_config_hash go together, got "
                f"{self.reference_latency_ms!r} and {self.reference_config_hash!r}"
            )


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(MeasurementRecord))


# ---------------------------------------------------------------------------------------------
# The store


def _refuse_foreign(path: Path) -> None:
    """ValueError, touching nothing, when `path` exists and is not a measurement store: not a
    regular file, not SQLite, or a SQLite database of another application."""
    if not path.exists():
        return
    if not path.is_file():
        raise ValueError(f"measurement store {path} is not a regular file")
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
    except OSError as err:
        raise ValueError(f"cannot read measurement store {path}: {err}") from None
    if not header:
        return  # an empty file: a new store
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise ValueError(f"{path} is not a SQLite database, so not a measurement store; "
                         "nothing was written")
    if int.from_bytes(header[68:72], "big") == STORE_APPLICATION_ID:
        return
    try:  # unmarked: ours from before the marker, or another application's database
        reader = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in reader.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'")}
        finally:
            reader.close()
    except sqlite3.Error as err:
        raise ValueError(f"cannot read measurement store {path}: {err}") from None
    if tables and tables != STORE_TABLES:
        raise ValueError(f"{path} is a SQLite database of another application (tables "
                         f"{', '.join(sorted(tables))}), not a measurement store; nothing was "
                         "written")


def _is_lock_error(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text


class MeasurementStore:
    """The SQLite measurement store; safe to use from several processes at once.

    One connection per instance (do not share an instance between threads or processes; open
    one per process). Usable as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        _refuse_foreign(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, isolation_level=None
            )
        except (OSError, sqlite3.Error) as err:
            raise ValueError(f"cannot open measurement store {self.path}: {err}") from None
        self._depth = 0  # nesting of transaction()
        try:
            self._retry(lambda: self._conn.execute("PRAGMA journal_mode=WAL"))
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                for statement in _SCHEMA.split(";\n"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA application_id={STORE_APPLICATION_ID}")
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise ValueError(f"cannot open measurement store {self.path}: {err}") from None

    # -- plumbing -----------------------------------------------------------------------------

    def _retry(self, action: Any) -> Any:
        """Run `action()`, retrying with jittered backoff while the database stays locked: after
        the first busy timeout it says so on stderr, after LOCK_GIVE_UP_S it gives up."""
        deadline = time.monotonic() + LOCK_GIVE_UP_S
        for attempt in itertools.count():
            try:
                return action()
            except sqlite3.OperationalError as err:
                if not _is_lock_error(err):
                    raise
                if time.monotonic() >= deadline:
                    raise ValueError(f"measurement store {self.path} stayed locked by another "
                                     f"writer for {LOCK_GIVE_UP_S:.0f} s; gave up, nothing "
                                     "written") from None
                if attempt == 0:
                    print(f"waiting for the measurement store {self.path}: another process "
                          f"holds its lock (giving up after {LOCK_GIVE_UP_S:.0f} s)",
                          file=sys.stderr)
                time.sleep(min(1.0, 0.01 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[MeasurementStore]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT); nested uses join the outer one.

        Everything written inside is committed together, or nothing when an exception escapes.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._retry(lambda: self._conn.execute("BEGIN IMMEDIATE"))
        self._depth = 1
        try:
            yield self
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        else:
            self._retry(lambda: self._conn.execute("COMMIT"))
        finally:
            self._depth = 0

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------------

    def add_device(self, fingerprint: Mapping[str, Any] | None = None) -> int:
        """Id of the device with this fingerprint (this machine's by default), added if new."""
        fingerprint = dict(fingerprint) if fingerprint is not None else device_fingerprint()
        if not fingerprint:
            raise ValueError("a device fingerprint must not be empty")
        text = canonical_json(fingerprint)
        digest = fingerprint_hash(fingerprint)
        name = str(fingerprint.get("external_device") or fingerprint.get("cpu_model") or digest)
        with self.transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO devices (fingerprint_hash, fingerprint_json, name, created)"
                " VALUES (?, ?, ?, ?)",
                (digest, text, name, _utc_now()),
            )
            (device_id,) = self._conn.execute(
                "SELECT id FROM devices WHERE fingerprint_hash = ?", (digest,)
            ).fetchone()
        return int(device_id)

    def add_config(self, config_json: str, kind: str = "model") -> str:
        """Hash of a canonical config JSON (kind 'model' or 'block'), added if new.

        The text must already be canonical (sorted keys, no spaces), as `EdgeViTConfig.to_json()`
        and `canonical_json` write it, so equal configs get one hash.
        """
        if kind not in KINDS:
            raise ValueError(f"config kind must be one of {KINDS}, got {kind!r}")
        try:
            parsed = json.loads(config_json)
        except (TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"config JSON is malformed: {err}") from None
        if not isinstance(parsed, dict) or canonical_json(parsed) != config_json:
            raise ValueError("config JSON must be a canonical object (sorted keys, no spaces)")
        digest = sha256_hex(config_json)
        with self.transaction():
            row = self._conn.execute(
                "SELECT kind FROM configs WHERE hash = ?", (digest,)
            ).fetchone()
            if row is None:
                self._conn.execute(
                    "INSERT INTO configs (hash, kind, json, created) VALUES (?, ?, ?, ?)",
                    (digest, kind, config_json, _utc_now()),
                )
            elif row[0] != kind:
                raise ValueError(f"config {digest[:12]} is stored as kind {row[0]!r}, not {kind!r}")
        return digest

    def add_measurement(self, **fields: Any) -> int:
        """Append one measurement (the fields of `MeasurementRecord`); returns its row id."""
        return self.add_measurements([fields])[0]

    def add_measurements(self, rows: Iterable[MeasurementRecord | Mapping[str, Any]]) -> list[int]:
        """Append several measurements in one transaction: all are validated first, then stored
        together, or none is (ValueError naming the first bad value)."""
        records = []
        for i, row in enumerate(rows):
            if isinstance(row, MeasurementRecord):
                records.append(row)
                continue
            unknown = sorted(set(row) - set(_RECORD_FIELDS))
            if unknown:
                raise ValueError(f"measurement {i}: unknown field(s) {unknown}")
            try:
                records.append(MeasurementRecord(**row))
            except TypeError as err:
                raise ValueError(f"measurement {i}: {err}") from None
        ids = []
        with self.transaction():
            for record in records:
                self._check_references(record)
                values = dataclasses.asdict(record)
                values["flagged_noisy"] = int(values["flagged_noisy"])
                values["created"] = _utc_now()
                columns = ", ".join(values)
                marks = ", ".join("?" for _ in values)
                cursor = self._conn.execute(
                    f"INSERT INTO measurements ({columns}) VALUES ({marks})", tuple(values.values())
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def _check_references(self, record: MeasurementRecord) -> None:
        if not self._conn.execute(
            "SELECT 1 FROM devices WHERE id = ?", (record.device_id,)
        ).fetchone():
            raise ValueError(f"unknown device id {record.device_id}")
        for name in ("config_hash", "reference_config_hash"):
            digest = getattr(record, name)
            if digest is not None and not self.has_config(digest):
                raise ValueError(f"{name} {digest!r} is not in the store's configs")

    # -- reads --------------------------------------------------------------------------------

    def has_config(self, config_hash: str) -> bool:
        return bool(
            self._conn.execute("SELECT 1 FROM configs WHERE hash = ?", (config_hash,)).fetchone()
        )

    def config_json(self, config_hash: str) -> str | None:
        """The stored canonical JSON of a config, or None."""
        row = self._conn.execute(
            "SELECT json FROM configs WHERE hash = ?", (config_hash,)
        ).fetchone()
        return row[0] if row else None

    def device_hash(self, device_id: int) -> str:
        row = self._conn.execute(
            "SELECT fingerprint_hash FROM devices WHERE id = ?", (device_id,)
        ).fetchone()
        if row is None:
            raise ValueError(f"unknown device id {device_id}")
        return row[0]

    def count(self, table: str = "measurements") -> int:
        """Rows in one of the tables."""
        if table not in ("measurements", "devices", "configs"):
            raise ValueError(f"unknown table {table!r}")
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def to_dataframe(self) -> pd.DataFrame:
        """Every measurement joined with its device and config, oldest first.

        Columns: the measurement's own (id, device_id, config_hash, backend, batch_size, input_h,
        input_w, threads, latency_ms, iqr_ms, cv, runs, flagged_noisy, energy_mj, source, created,
        reference_latency_ms, reference_config_hash), then device_hash, device_name, config_kind,
        config_json.
        """
        import pandas as pd

        query = (
            "SELECT m.*, d.fingerprint_hash AS device_hash, d.name AS device_name, "
            "c.kind AS config_kind, c.json AS config_json "
            "FROM measurements m JOIN devices d ON d.id = m.device_id "
            "JOIN configs c ON c.hash = m.config_hash ORDER BY m.id"
        )
        frame = pd.read_sql_query(query, self._conn)
        frame["flagged_noisy"] = frame["flagged_noisy"].astype(bool)
        return frame

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_dataframe()` to a CSV file (floats written exactly); returns the path."""
        path = Path(path)
        self.to_dataframe().to_csv(path, index=False)
        return path


__all__ = [
    "ENV_VAR",
    "MeasurementRecord",
    "MeasurementStore",
    "canonical_json",
    "default_store_path",
    "device_fingerprint",
    "external_device_fingerprint",
    "sha256_hex",
]
