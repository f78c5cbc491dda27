"""Pareto fronts and hypervolume, and reading an NNI experiment's trials back.

Objectives are columns of a (N, M) array with a sense each: "max" (accuracy) or "min"
(latency_ms, macs). Hypervolume comes from pymoo's `HV` indicator (all objectives turned into
minimisation), against a reference point that every compared front shares.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

SENSES = ("max", "min")


def _as_minimisation(points: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != len(senses):
        raise ValueError(f"points must be (N, {len(senses)}), got {points.shape}")
    for sense in senses:
        if sense not in SENSES:
            raise ValueError(f"objective sense must be one of {SENSES}, got {sense!r}")
    if not np.isfinite(points).all():
        raise ValueError("objective values must be finite (NaN or inf found)")
    signs = np.array([-1.0 if sense == "max" else 1.0 for sense in senses])
    return points * signs


def non_dominated(points: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    """Boolean mask (N,) of the points no other point dominates (duplicates are all kept).

    Sort-based sweep for two objectives (O(N log N), fine for the ≥ 10⁶-point enumerated space);
    pairwise comparison in blocks for more.
    """
    cost = _as_minimisation(points, senses)
    count = len(cost)
    if count == 0:
        return np.zeros(0, dtype=bool)
    if cost.shape[1] == 2:
        order = np.lexsort((cost[:, 1], cost[:, 0]))  # by first objective, then second
        first, second = cost[order, 0], cost[order, 1]
        _, group_start = np.unique(first, return_index=True)  # runs of equal first objective
        group_of = np.repeat(np.arange(len(group_start)), np.diff(np.append(group_start, count)))
        group_min = second[group_start]  # sorted: the first of a run has its smallest second
        # smallest second objective among points with a strictly smaller first objective
        before = np.concatenate(([np.inf], np.minimum.accumulate(group_min)[:-1]))
        keep_sorted = (second == group_min[group_of]) & (second < before[group_of])
        mask = np.zeros(count, dtype=bool)
        mask[order] = keep_sorted
        return mask
    mask = np.ones(count, dtype=bool)
    for start in range(0, count, 1024):
        block = cost[start:start + 1024]
        dominated = ((cost[None, :, :] <= block[:, None, :]).all(-1)
                     & (cost[None, :, :] < block[:, None, :]).any(-1)).any(1)
        mask[start:start + 1024] = ~dominated
    return mask


def hypervolume(points: np.ndarray, senses: Sequence[str], reference: Sequence[float]) -> float:
    """Hypervolume dominated by `points` up to `reference` (pymoo), in objective units."""
    from pymoo.indicators.hv import HV

    cost = _as_minimisation(points, senses)
    ref = _as_minimisation(np.asarray([reference], dtype=np.float64), senses)[0]
    inside = (cost < ref).all(axis=1)
    if not inside.any():
        return 0.0
    return float(HV(ref_point=ref)(cost[inside]))


def hypervolume_curve(points: np.ndarray, senses: Sequence[str],
                      reference: Sequence[float]) -> np.ndarray:
    """Hypervolume of the first t points, for t = 1..N (the order in which trials finished)."""
    points = np.asarray(points, dtype=np.float64)
    out = np.zeros(len(points))
    for t in range(len(points)):
        prefix = points[: t + 1]
        out[t] = hypervolume(prefix[non_dominated(prefix, senses)], senses, reference)
    return out


# ---- NNI experiments ------------------------------------------------------------------------

def nni_home() -> Path:
    """NNI's default experiments folder, which also holds its registry of experiments
    (`.experiment`, written by `nnictl create` and `Experiment.start`)."""
    return Path.home() / "nni-experiments"


def registered_experiments() -> dict[str, Path]:
    """Experiment id -> the folder NNI recorded it in (its `experimentWorkingDirectory`), from
    NNI's registry `~/nni-experiments/.experiment`; {} when there is none or it is unreadable."""
    path = nni_home() / ".experiment"
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(registry, dict):
        return {}
    out = {}
    for experiment_id, entry in registry.items():
        log_dir = entry.get("logDir") if isinstance(entry, dict) else None
        out[experiment_id] = Path(log_dir).expanduser() if log_dir else nni_home()
    return out


def experiment_folder(experiment: str, experiments_dir: str | Path | None = None) -> Path:
    """The folder of an experiment (holding db/, log/ and the tuner's study): `experiment` as
    a folder path, else the id under `experiments_dir`, else where NNI's registry recorded it,
    else under ~/nni-experiments. ValueError naming the places looked in."""
    candidate = Path(experiment)
    if (candidate / "db" / "nni.sqlite").is_file():
        return candidate
    if experiments_dir is not None:
        places = [Path(experiments_dir)]
    else:
        places = [registered_experiments().get(experiment), nni_home()]
    looked = []
    for base in places:
        if base is None:
            continue
        folder = base.expanduser() / experiment
        if (folder / "db" / "nni.sqlite").is_file():
            return folder
        looked.append(str(folder))
    raise ValueError(f"no NNI experiment {experiment!r}: looked in {', '.join(looked)} "
                     "(pass --experiments-dir where its experimentWorkingDirectory is)")


def nni_database(experiment: str, experiments_dir: str | Path | None = None) -> Path:
    """The SQLite database of an experiment id (or a path to the db / the experiment folder);
    see `experiment_folder` for where an id is looked for."""
    candidate = Path(experiment)
    if candidate.suffix == ".sqlite" and candidate.is_file():
        return candidate
    return experiment_folder(experiment, experiments_dir) / "db" / "nni.sqlite"


def read_nni_trials(experiment: str, experiments_dir: str | Path | None = None) -> pd.DataFrame:
    """Final results of every trial of an experiment, from its SQLite database.

    The metric column is JSON encoded twice. NNI 3.0 can pair a metric with the wrong
    parameters (trialConcurrency > 1; and ids are reissued after `nnictl resume`), so each row's
    config is the trial's own echo (`config` in the result dict), never NNI's parameter record.
    Results without an echo are dropped and counted in `frame.attrs["dropped"]`.
    """
    path = nni_database(experiment, experiments_dir)
    if not path.is_file():
        raise ValueError(f"no NNI experiment database at {path}")
    try:  # read-only, the path percent-encoded into the URI (a '#' or '?' stays in the name)
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT timestamp, trialJobId, parameterId, data FROM MetricData "
                "WHERE type = 'FINAL' ORDER BY timestamp"
            ).fetchall()
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{path} is not a readable NNI experiment database: {err}") from None
    records, dropped = [], 0
    for timestamp, trial_id, parameter_id, data in rows:
        try:
            value = json.loads(data)
            if isinstance(value, str):
                value = json.loads(value)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if not isinstance(value, dict) or "config" not in value:
            dropped += 1
            continue
        records.append(dict(value, trial_id=trial_id, parameter_id=parameter_id,
                            timestamp_ms=timestamp))
    frame = pd.DataFrame.from_records(records)
    frame.attrs["dropped"] = dropped
    frame.attrs["database"] = str(path)
    return frame
