"""The Fashion-MNIST accuracy study as an (architecture, accuracy, latency) table of EdgeViT's
space, and the accuracy–latency front it measures.

Every config of the study (`analysis.accuracy.studies.FASHION_STUDY`: standalone top-1 after
training, the supernet's inherited top-1, log10 synflow, exact MACs and params, all at the
study's input size) gets the latency a predictor gives its architecture at the predictor's
own settings, with the predictor's 90 % interval, and a flag for the configs on the Pareto
front of (standalone top-1 ↑, predicted latency ↓): a front whose accuracy axis was measured by
training, not ranked by a proxy. The committed table (`benchmarks/study_front.py`) uses the
committed features-GP of the development CPU (torch, 2 threads, batch 1, 224×224).
`with_measured` adds latencies timed on a machine (as the closed loop times a search's front:
a ratio to the XXS reference, timed interleaved, brought to the predictor's milliseconds), the
front they give, and how the predictions agree with them.

The study trains with 10 classes and 1 input channel; the latency is of the architecture as the
search space defines it (its 1,000-class head, 3 input channels), at the predictor's input
size: the deployment cost, not the study's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.latency import INTERVAL_LEVEL, LatencyPredictor, score
from analysis.runtime import finite_float
from edgevit.config import EdgeViTConfig

from .closed_loop import predicted_interval
from .pareto import non_dominated

COLUMNS = ("name", "widths", "depths", "sample_rates", "head_dim", "mlp_ratio",
           "standalone_top1", "supernet_top1", "synflow_log10", "study_img_size", "macs",
           "params", "latency_ms_predicted", "latency_ms_low", "latency_ms_high",
           "interval_level", "latency_settings", "on_front")


def study_front(study: dict[str, Any], predictor: LatencyPredictor) -> list[dict[str, Any]]:
    """One row per config of `study`, in its order, with `COLUMNS`:

    - `standalone_top1`: held-out top-1 (fraction) after the study's standalone training;
      `supernet_top1`: the study's supernet column (held-out top-1 with inherited weights on
      the search's 1,000 images; None when the study scored no supernet);
      `synflow_log10`: the proxy's score (a rank, not an accuracy);
    - `macs`, `params`: exact, at `study_img_size` × `study_img_size` (the study's input);
    - `latency_ms_predicted` and its interval (`latency_ms_low`, `latency_ms_high`: the
      predictor's `interval_level`, 0.9) at `latency_settings` (the predictor's own,
      `PredictorSettings.describe()`; the interval is None for a predictor without one);
    - `on_front`: no other config of the study has a higher standalone top-1 at a lower or
      equal predicted latency, or the same top-1 at a lower latency.

    ValueError when the study has no configs or a config lies outside what the predictor was
    calibrated for (`LatencyPredictor.predict`'s own check)."""
    rows = study["configs"]
    if not rows:
        raise ValueError("the study has no configs")
    configs = [EdgeViTConfig.from_dict(r["config"]) for r in rows]
    latency_ms = predictor.predict(configs)
    lo, hi = predicted_interval(predictor, configs)
    top1 = np.array([r["accuracy"] for r in rows], dtype=np.float64)
    front = non_dominated(np.stack([top1, latency_ms], axis=1), ("max", "min"))
    img_size = study["settings"]["img_size"]
    settings = predictor.settings.describe()
    table = []
    for i, (row, config) in enumerate(zip(rows, configs)):
        table.append(dict(
            name=row["name"], widths=list(config.widths), depths=list(config.depths),
            sample_rates=list(config.sample_rates), head_dim=config.head_dim,
            mlp_ratio=config.mlp_ratio, standalone_top1=float(top1[i]),
            supernet_top1=row.get("supernet"), synflow_log10=row["proxies"]["synflow"],
            study_img_size=img_size, macs=int(row["macs"]), params=int(row["params"]),
            latency_ms_predicted=float(latency_ms[i]), latency_ms_low=finite_float(lo[i]),
            latency_ms_high=finite_float(hi[i]), interval_level=INTERVAL_LEVEL,
            latency_settings=settings,
            on_front=bool(front[i])))
    return table


def front_text(table: list[dict[str, Any]]) -> str:
    """`study_front`'s rows (with `with_measured`'s columns when present) as a text table,
    fastest first, front configs starred."""
    first = table[0]
    size = first["study_img_size"]
    lines = [f"top-1 after standalone training (held out) and MACs at the study's {size}×{size}; "
             f"latency predicted at {first['latency_settings']}; * on the front",
             "    top-1  supernet  synflow  MMACs  params M  latency ms [interval]"
             + ("  measured (via XXS)" if "latency_ms_measured_via_xxs" in first else "")
             + "  config"]
    for row in sorted(table, key=lambda r: r["latency_ms_predicted"]):
        supernet = "" if row["supernet_top1"] is None else f"{row['supernet_top1']:.4f}"
        interval = ("" if row["latency_ms_low"] is None else
                    f"[{row['latency_ms_low']:.1f}, {row['latency_ms_high']:.1f}]")
        measured = (f"  {row['latency_ms_measured_via_xxs']:18.1f}"
                    if "latency_ms_measured_via_xxs" in row else "")
        lines.append(
            f"{'*' if row['on_front'] else ' '}  {row['standalone_top1']:.4f}  {supernet:>8s}  "
            f"{row['synflow_log10']:7.2f}  {row['macs'] / 1e6:5.1f}  {row['params'] / 1e6:8.2f}"
            f"  {row['latency_ms_predicted']:6.1f} {interval:>14s}{measured}  {row['name']}: "
            f"{row['widths']} / {row['depths']} / {row['sample_rates']} / {row['head_dim']}, "
            f"{row['mlp_ratio']:g}")
    return "\n".join(lines)


def with_measured(table: list[dict[str, Any]], ratios: np.ndarray, reference_ms: float
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(`table` with three columns more, the agreement) for `ratios` (N,): each config's
    measured latency over the XXS reference's, timed interleaved on one machine
    (`closed_loop.machine_ratios`), one per row.

    - `latency_ratio_to_xxs_measured`: the ratio as measured;
    - `latency_ms_measured_via_xxs`: ratio × `reference_ms` (the predictor's latency for the
      reference), so that it compares with `latency_ms_predicted` whatever the machine's speed
      (the closed loop's convention);
    - `on_front_measured`: the front with that latency.

    The agreement is `analysis.latency.score`'s on predicted against measured-via-XXS (MAPE,
    shares within ±5/±10 %, Kendall τ, share inside the predicted intervals as `in_interval`,
    None for a predictor without intervals)
    with `same_front`: whether the measured latencies put the same configs on the front.
    ValueError for a count that does not match or a ratio or reference that is not a positive
    finite number."""
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.shape != (len(table),):
        raise ValueError(f"{ratios.shape} measured ratios for {len(table)} configs")
    if not (np.isfinite(ratios).all() and (ratios > 0).all()):
        raise ValueError(f"measured ratios must be positive and finite: {ratios}")
    if not (np.isfinite(reference_ms) and reference_ms > 0):
        raise ValueError(f"reference latency {reference_ms} ms must be positive and finite")
    measured_ms = ratios * reference_ms
    top1 = np.array([r["standalone_top1"] for r in table], dtype=np.float64)
    front = non_dominated(np.stack([top1, measured_ms], axis=1), ("max", "min"))
    rows = [dict(row, latency_ratio_to_xxs_measured=float(ratio),
                 latency_ms_measured_via_xxs=float(ms), on_front_measured=bool(on))
            for row, ratio, ms, on in zip(table, ratios, measured_ms, front)]
    predicted = np.array([r["latency_ms_predicted"] for r in table])
    interval = None if any(r["latency_ms_low"] is None for r in table) else (
        np.array([r["latency_ms_low"] for r in table]),
        np.array([r["latency_ms_high"] for r in table]))
    agreement = score(predicted, measured_ms, interval).as_dict()
    agreement["in_interval"] = agreement.pop("coverage", None)  # None: the predictor has none
    agreement["same_front"] = bool((front == np.array([r["on_front"] for r in table])).all())
    return rows, agreement
