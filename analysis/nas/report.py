"""From an experiment's trials to Pareto outputs: the front, its hypervolume against the
exhaustive front of the whole enumerated space, a CSV and an interactive plotly HTML.

Objectives: accuracy (↑, the method named in every output) and predicted latency_ms (↓).
The exhaustive front needs an accuracy that is vectorised over the space (`proxy:params`,
`proxy:macs`); for other methods it is skipped and the report says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.accuracy import TOP1_SCALE, AccuracyMethod, trust_of
from analysis.cost import DEFAULT_SPACE, macs_params
from analysis.latency import INTERVAL_LEVEL, LatencyPredictor
from edgevit import PRESETS, EdgeViTConfig

from .closed_loop import close_the_loop, loop_summary, machine_ratios
from .objectives import accuracy_objective
from .pareto import hypervolume, non_dominated, read_nni_trials

SENSES = ("max", "min")  # accuracy ↑, latency_ms ↓
REFERENCE_MARGIN = 0.1  # `reference_point`: how far past the nadir, as a share of the range


@dataclass
class ExhaustiveFront:
    """The whole space scored, and its non-dominated set."""

    accuracy: np.ndarray
    latency_ms: np.ndarray
    macs: np.ndarray
    front_index: np.ndarray  # indices into the enumeration, of the front

    @property
    def points(self) -> np.ndarray:
        return np.stack([self.accuracy, self.latency_ms], axis=1)

    def front_points(self) -> np.ndarray:
        return self.points[self.front_index]


def exhaustive_front(predictor: LatencyPredictor, method: str,
                     macs_budget: float | None = None) -> ExhaustiveFront:
    """Score every config of the default space and take its front (within the MACs budget)."""
    objective = accuracy_objective(method)
    if objective.vectorised is None:
        raise ValueError(f"accuracy {method!r} is not vectorised: no exhaustive front")
    space = DEFAULT_SPACE.enumerate()
    macs, params = macs_params(space)
    accuracy = objective.vectorised(macs, params)
    latency = predictor.predict_batch(space)
    admissible = np.ones(len(macs), dtype=bool) if macs_budget is None else macs <= macs_budget
    candidates = np.flatnonzero(admissible)
    mask = non_dominated(np.stack([accuracy[candidates], latency[candidates]], 1), SENSES)
    return ExhaustiveFront(accuracy, latency, macs, candidates[mask])


def reference_point(front: np.ndarray, margin: float = REFERENCE_MARGIN
                    ) -> tuple[float, float]:
    """The nadir of a front pushed out by `margin` of its range: (worst accuracy − m, worst
    latency + m). Every compared front uses the same point."""
    accuracy, latency = front[:, 0], front[:, 1]
    acc_span = max(accuracy.max() - accuracy.min(), 1e-12)
    lat_span = max(latency.max() - latency.min(), 1e-12)
    return float(accuracy.min() - margin * acc_span), float(latency.max() + margin * lat_span)


def trial_frame(experiment: str, experiments_dir: str | Path | None = None) -> pd.DataFrame:
    """Admissible trials (not rejected, finite objectives) with the echoed configs, one row per
    config: a config reported twice (a trial re-run after `nnictl resume`, or drawn again by the
    tuner) keeps its first result; `attrs["repeated"]` counts the rows left out."""
    frame = read_nni_trials(experiment, experiments_dir)
    dropped = frame.attrs.get("dropped", 0)
    if len(frame) == 0:
        raise ValueError(f"experiment {experiment!r} has no final results")
    repeated = frame.duplicated("config")
    frame = frame[~repeated]
    rejected = 0
    if "rejected" in frame:
        over = frame["rejected"].fillna(False).astype(bool)
        rejected = int(over.sum())
        frame = frame[~over]
    frame = frame.copy()
    frame = frame[np.isfinite(frame["accuracy"].astype(float))
                  & np.isfinite(frame["latency_ms"].astype(float))]
    frame["accuracy"] = frame["accuracy"].astype(float)
    frame["latency_ms"] = frame["latency_ms"].astype(float)
    frame["pareto"] = non_dominated(frame[["accuracy", "latency_ms"]].to_numpy(), SENSES)
    frame = frame.reset_index(drop=True)
    frame.attrs["dropped"] = dropped
    frame.attrs["repeated"] = int(repeated.sum())
    frame.attrs["rejected"] = rejected
    return frame


UNRECORDED_SCALE = "not recorded (trials before 2026-12-02 did not report it)"


def check_scales(trials: pd.DataFrame, method: str, *, allow_unrecorded: bool) -> str:
    """The one scale every row of `trials` (one method's) reported, which must be the scale
    this code gives `method` (`AccuracyMethod.scale`); ValueError otherwise: values of two
    scales on one front would rank nonsense (synflow became log10 of its flow on 2026-12-02; a
    supernet checkpoint retrained in place scores the same configs differently; an experiment
    resumed across either holds both). With `allow_unrecorded` (a report, not a resume):
    trials that all reported no scale pass as `UNRECORDED_SCALE` (an old experiment, reported
    as it is; a supernet's bare top-1 scale from before its digest was part of it counts as
    such), and a supernet checkpoint that no longer loads only needs the trials to agree."""
    parsed = AccuracyMethod.parse(method)
    try:
        today = parsed.scale
    except ValueError:  # the checkpoint moved or was removed: nothing to compare with
        if not allow_unrecorded:
            raise
        today = None
    column = (trials["accuracy_scale"] if "accuracy_scale" in trials
              else pd.Series([None] * len(trials), dtype=object))
    if parsed.kind == "supernet":  # top-1 of an unknown checkpoint
        column = column.where(column != TOP1_SCALE, None)
    counts = column.fillna(UNRECORDED_SCALE).value_counts()
    if counts.empty:
        return today or UNRECORDED_SCALE
    held_one = counts.index[0] if len(counts) == 1 else None
    if held_one is not None and (held_one == today or (allow_unrecorded and (
            today is None or held_one == UNRECORDED_SCALE))):
        return held_one
    held = "; ".join(f"{n} trials: {scale!r}" for scale, n in counts.items())
    now = f"this code gives it {today!r}" if today is not None else "they must agree"
    raise ValueError(f"trials of {method} hold values of another scale ({now}): {held}. "
                     "Values of two scales cannot share one front (was the method redefined "
                     "by an upgrade, or its supernet checkpoint retrained or replaced, between "
                     "this search and its resume?): start a new experiment")


def preset_points(predictor: LatencyPredictor, method: str) -> pd.DataFrame:
    objective = accuracy_objective(method)
    configs = list(PRESETS.values())
    return pd.DataFrame({"model": list(PRESETS),
                         "accuracy": [objective.evaluate(c) for c in configs],
                         "latency_ms": predictor.predict(configs)})


def preset_dominance(presets: pd.DataFrame, front: pd.DataFrame) -> dict[str, float]:
    """Preset -> by how much it dominates the reported front: the largest relative latency
    saving, (front latency − preset latency) / front latency, over the front points that are
    no more accurate than the preset (0 when it dominates none). A front that missed a better
    region of the space shows here: a preset lying in the space that beats the front by more
    than the predictor's error is a search failure, not noise."""
    out = {}
    for _, preset in presets.iterrows():
        beaten = front[front["accuracy"] <= preset["accuracy"]]
        savings = (beaten["latency_ms"] - preset["latency_ms"]) / beaten["latency_ms"]
        out[str(preset["model"])] = float(max(0.0, savings.max())) if len(beaten) else 0.0
    return out


def preset_tolerances(predictor: LatencyPredictor, fallback: float) -> tuple[dict[str, float],
                                                                               str]:
    """(preset -> the relative latency saving its predictor cannot resolve, the basis in words).

    With a fitted interval (factor w at the preset: low = p / w, high = p · w) a preset beats a
    front point by more than the predictor's stated error when even its high bound is faster:
    p · w < front latency, i.e. a saving above 1 − 1/w. Without one, `fallback` for all."""
    configs = list(PRESETS.values())
    if not math.isfinite(predictor.interval_log_halfwidth):
        return ({name: fallback for name in PRESETS},
                f"fixed {fallback:.0%}: the predictor states no interval")
    low, high = predictor.interval(configs)  # low / high = 1 / w²: one prediction, not two
    return ({name: float(1.0 - np.sqrt(lo / hi)) for name, lo, hi in zip(PRESETS, low, high)},
            f"the predictor's {INTERVAL_LEVEL:.0%} interval at each preset")


def presets_in_space() -> list[str]:
    """The presets that are points of the search space (the others differ in a fixed field)."""
    out = []
    for name, config in PRESETS.items():
        try:
            DEFAULT_SPACE.encode(config)
        except ValueError:
            continue
        out.append(name)
    return out


def write_offline_html(fig, path: str | Path) -> Path:
    """Write a plotly figure that opens without a network: plotly.js goes once into
    `plotly.min.js` beside the file (NNI users' machines are often offline or air-gapped)."""
    path = Path(path)
    fig.write_html(path, include_plotlyjs="directory")
    return path


def front_figure(trials: pd.DataFrame, presets: pd.DataFrame | None, method: str,
                 exhaustive: ExhaustiveFront | None = None,
                 measured: pd.DataFrame | None = None):
    """Plotly figure: all trials, the NNI front, the exhaustive front, the presets, and the
    measured front (each point's measured latency, its prediction and interval, its round)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_scatter(x=trials["latency_ms"], y=trials["accuracy"], mode="markers",
                    name="trials", marker=dict(color="lightgray", size=6),
                    text=trials["config"], hoverinfo="x+y")
    front = trials[trials["pareto"]].sort_values("latency_ms")
    fig.add_scatter(x=front["latency_ms"], y=front["accuracy"], mode="lines+markers",
                    name="NNI front", line=dict(shape="hv"), text=front["config"])
    if exhaustive is not None:
        points = exhaustive.front_points()
        order = np.argsort(points[:, 1])
        fig.add_scatter(x=points[order, 1], y=points[order, 0], mode="lines",
                        name="exhaustive front", line=dict(shape="hv", dash="dot"))
    if presets is not None:
        fig.add_scatter(x=presets["latency_ms"], y=presets["accuracy"], mode="markers+text",
                        name="presets", text=presets["model"], textposition="top center",
                        marker=dict(symbol="star", size=14))
    if measured is not None:
        fig.add_scatter(
            x=measured["measured_latency_ms"], y=measured["accuracy"], mode="markers",
            name="front, measured", marker=dict(symbol="x", size=10),
            error_x=dict(type="data", symmetric=False,
                         array=measured["interval_high_ms"] - measured["measured_latency_ms"],
                         arrayminus=measured["measured_latency_ms"] - measured["interval_low_ms"]),
            text=[f"predicted {p:.2f} ms, measured {m:.2f} ms (round {r}); bar: the predicted "
                  "90 % interval"
                  for p, m, r in zip(measured["predicted_latency_ms"],
                                     measured["measured_latency_ms"],
                                     measured["measured_round"])])
    trust = trust_of(method)
    meaning = score_meaning(method)
    named = f"{value_name(trust)} ({method})" + (f" = {meaning}" if meaning else "")
    fig.update_layout(xaxis_title="latency (ms)",
                      yaxis_title=f"{named}<br><sub>{trust['label']}</sub>",
                      title="EdgeViT search: accuracy vs latency")
    return fig


def write_report(experiment: str, *, predictor_path: str | Path | None = None,
                 out_dir: str | Path, method: str | None = None,
                 experiments_dir: str | Path | None = None, macs_budget: float | None = None,
                 measure: bool = False, threads: int | None = None, max_rounds: int = 3,
                 preset_tolerance: float = 0.10) -> dict:
    """trials.csv, front.csv, front.html (offline) and summary.json under `out_dir`; returns
    the summary. The front is the trials' own, on the latency each trial reported; a predictor
    adds the presets, the exhaustive front and `hypervolume_ratio` (and is needed to measure).
    The experiment is found as `analysis.nas.pareto.experiment_folder` says."""
    from .pareto import experiment_folder
    from .tuner import STUDY_FILE, read_study

    folder = experiment_folder(experiment, experiments_dir)  # before any folder is created
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = trial_frame(str(folder))
    methods = sorted(set(trials["accuracy_method"]))
    if method is None:
        if len(methods) != 1:
            raise ValueError(f"trials mix accuracy methods {methods}; pass one")
        method = methods[0]
    trials = trials[trials["accuracy_method"] == method]
    scale = check_scales(trials, method, allow_unrecorded=True)
    trust = trust_of(method)
    summary: dict = {"experiment": folder.name, "experiment_dir": str(folder),
                     "accuracy_method": method,
                     "accuracy_scale": scale,
                     "accuracy_trust": trust,
                     "trials": int(len(trials)), "front_size": int(trials["pareto"].sum()),
                     "dropped_without_echo": int(trials.attrs.get("dropped", 0)),
                     "repeated_configs": int(trials.attrs.get("repeated", 0)),
                     "rejected_in_trial": int(trials.attrs.get("rejected", 0))}
    if (folder / STUDY_FILE).is_file():  # ParetoTuner's study: what it never dispatched
        summary["tuner_study"] = read_study(folder / STUDY_FILE)
    trial_points = trials[["accuracy", "latency_ms"]].to_numpy()
    front_mask = trials["pareto"].to_numpy()
    predictor = presets = exhaustive = None
    if predictor_path is not None:
        predictor = LatencyPredictor.load(predictor_path)
        presets = preset_points(predictor, method)
        dominance = preset_dominance(presets, trials[trials["pareto"]])
        tolerance, basis = preset_tolerances(predictor, preset_tolerance)
        summary.update(preset_dominance=dominance, preset_tolerance=tolerance,
                       preset_tolerance_basis=basis)
        # a preset of the space faster than the front at equal or better accuracy by more
        # than the predictor's error: the search missed a region it could have found
        summary["presets_beating_front"] = [
            name for name in presets_in_space() if dominance[name] > tolerance[name]]
        try:
            exhaustive = exhaustive_front(predictor, method, macs_budget)
        except ValueError as err:
            summary["exhaustive"] = f"skipped: {err}"
    else:
        summary["exhaustive"] = "skipped: no predictor given"
    if exhaustive is not None:
        ref = reference_point(exhaustive.front_points())
        hv_nni = hypervolume(trial_points[front_mask], SENSES, ref)
        hv_all = hypervolume(exhaustive.front_points(), SENSES, ref)
        summary.update(reference_point=list(ref), hypervolume=hv_nni,
                       exhaustive_hypervolume=hv_all, hypervolume_ratio=hv_nni / hv_all,
                       space_size=int(len(exhaustive.macs)),
                       exhaustive_front_size=int(len(exhaustive.front_index)))
    else:
        ref = reference_point(trial_points[front_mask])
        summary.update(reference_point=list(ref), hypervolume=hypervolume(
            trial_points[front_mask], SENSES, ref))
    columns = ["trial_id", "accuracy", "latency_ms", "macs", "params", "accuracy_method",
               "pareto", "config"]
    named = {"accuracy": value_name(trust)}  # a proxy's raw value is a score, not an accuracy
    trials[columns].rename(columns=named).to_csv(out / "trials.csv", index=False)
    front = trials[trials["pareto"]].sort_values("latency_ms")
    if measure:
        if predictor is None:
            raise ValueError("measuring the front needs the predictor (--predictor)")
        front, rounds, final = close_the_loop(
            trials, predictor, machine_ratios(predictor, threads=threads), max_rounds=max_rounds)
        summary["measured_front"] = loop_summary(rounds, front)
        summary["front_size"] = int(len(front))
        columns += ["predicted_latency_ms", "interval_low_ms", "interval_high_ms",
                    "measured_latency_ms", "measured_round"]
        if final is not predictor:
            final.save(out / "predictor_refined.json")
            summary["refined_predictor"] = str(out / "predictor_refined.json")
    front[columns].rename(columns=named).to_csv(out / "front.csv", index=False)
    write_offline_html(front_figure(trials, presets, method, exhaustive,
                                    front if measure else None), out / "front.html")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["front"] = front
    return summary


def value_name(trust: dict) -> str:
    """"accuracy" for a validated method that measures top-1 (short training, a scored
    supernet), "score" otherwise: a proxy's value (synflow's log10 ≈ 4 … 16, jacob_cov's ≈ −700
    … −1500) is never labelled an accuracy, even where a study validates its ranking."""
    if AccuracyMethod.parse(trust["method"]).kind == "proxy":
        return "score"
    return "accuracy" if trust["validated"] else "score"


def score_meaning(method: str) -> str | None:
    """What a proxy's score is (e.g. "log10 of the synaptic flow …"); None for a method
    whose value is a top-1 accuracy."""
    parsed = AccuracyMethod.parse(method)
    return parsed.scale if parsed.kind == "proxy" else None


def front_table(front: pd.DataFrame, method: str) -> str:
    """The front as text: latency (predicted, and measured when the loop ran), accuracy (or
    score: `value_name`), MACs, per-stage widths/depths/r and the head_dim and mlp_ratio (two
    rows may differ only there), under the method's trust."""
    trust = trust_of(method)
    measured = "measured_latency_ms" in front
    latency = (f"{'pred. ms':>9s} {'meas. ms':>9s} {'round':>5s}" if measured
               else f"{'latency ms':>10s}")
    lines = [trust["label"]]
    if meaning := score_meaning(method):
        lines.append(f"score = {meaning}: it ranks configs; it is not an accuracy")
    lines.append(f"{latency} {value_name(trust):>9s} {'GMACs':>6s}  widths / depths / r / "
                 "head_dim, mlp_ratio")
    for _, row in front.iterrows():
        config = EdgeViTConfig.from_json(row["config"])
        times = (f"{row['predicted_latency_ms']:9.2f} {row['measured_latency_ms']:9.2f} "
                 f"{int(row['measured_round']):5d}" if measured else f"{row['latency_ms']:10.2f}")
        value = (f"{row['accuracy']:9.4f}" if value_name(trust) == "accuracy"
                 else f"{row['accuracy']:9.4g}")  # a score has no fixed scale
        lines.append(f"{times} {value} {row['macs'] / 1e9:6.3f}  "
                     f"{list(config.widths)} / {list(config.depths)} / "
                     f"{list(config.sample_rates)} / {config.head_dim}, {config.mlp_ratio:g}")
    return "\n".join(lines)


def configs_of(front: pd.DataFrame) -> Sequence[EdgeViTConfig]:
    return [EdgeViTConfig.from_json(text) for text in front["config"]]
