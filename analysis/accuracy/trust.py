"""How far an accuracy method can be trusted, and the rule that picks the search's default.

A method is *validated* when the lower end of the bootstrap interval of its Kendall τ against
accuracy (standalone training) lies above 0: its ranking agrees with training beyond what the
configs' sampling explains. The default rule (`validated_default`) picks, among the validated
methods, the best per second of compute: the cheapest (fewest seconds per config) whose τ is
not below the lower end of the best validated method's interval — i.e. no validated method is
significantly better. When no method is validated, the answer is *unvalidated*
(`MethodChoice.method is None`), and outputs must say "accuracy unvalidated" rather than
quietly use one: a rule that fires on a null result would pick a method by noise.

Rows are what `analysis.accuracy.rank_stats.correlation_table(scores, accuracy, seconds)` gives
(`method`, `n`, `tau`, `tau_ci`, `seconds`; `rho`, `rho_ci` optional), optionally with the study's
`dataset` and `img_size`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

UNVALIDATED = "accuracy unvalidated"
REQUIRED = ("method", "tau", "tau_ci", "seconds")


def is_validated(row: Mapping[str, Any]) -> bool:
    """τ's interval lies above 0 (a NaN interval never validates)."""
    lo = row["tau_ci"][0]
    return bool(math.isfinite(lo) and lo > 0 and math.isfinite(row["tau"]))


@dataclass(frozen=True)
class MethodChoice:
    """The default accuracy method with the evidence for it, or the lack of one."""

    method: str | None  # None: nothing is validated
    tau: float = float("nan")
    tau_ci: tuple[float, float] = (float("nan"), float("nan"))
    seconds: float = float("nan")  # per config
    n: int | None = None  # configs in the study
    dataset: str | None = None
    img_size: int | None = None
    validated: tuple[str, ...] = ()  # every validated method, best τ first
    best_unvalidated: dict[str, Any] = field(default_factory=dict)  # when nothing validates

    @property
    def is_validated(self) -> bool:
        return self.method is not None

    def label(self) -> str:
        """One line for tables, summaries and the CLI: the method, its data and its τ
        [interval], or "accuracy unvalidated" with the best τ seen."""
        if self.method is None:
            best = self.best_unvalidated
            if not best:
                return f"{UNVALIDATED} (no study)"
            lo, hi = best["tau_ci"]
            return (f"{UNVALIDATED} (no method's Kendall τ interval lies above 0; best "
                    f"{best['method']}: τ {best['tau']:.2f} [{lo:.2f}, {hi:.2f}])")
        where = ""
        if self.dataset:
            where = f" on {self.dataset}" + (f" {self.img_size}×{self.img_size}"
                                             if self.img_size else "")
        lo, hi = self.tau_ci
        n = f", n={self.n}" if self.n is not None else ""
        return (f"{self.method}{where}: Kendall τ {self.tau:.2f} [{lo:.2f}, {hi:.2f}]{n}, "
                f"{self.seconds:.3g} s/config")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tau_ci"] = list(self.tau_ci)
        out["validated"] = list(self.validated)
        out["label"] = self.label()
        return out


def validated_default(table: Sequence[Mapping[str, Any]]) -> MethodChoice:
    """The default method of a study's correlation table (see the module doc for the rule);
    `MethodChoice(method=None)` when no method is validated. ValueError on a malformed row."""
    for row in table:
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise ValueError(f"correlation row {dict(row)!r} lacks {missing}")
    validated = sorted((r for r in table if is_validated(r)), key=lambda r: -r["tau"])
    if not validated:
        finite = [r for r in table if math.isfinite(r["tau"])]
        best = max(finite, key=lambda r: r["tau"]) if finite else {}
        return MethodChoice(method=None, best_unvalidated=dict(
            method=best["method"], tau=float(best["tau"]),
            tau_ci=[float(v) for v in best["tau_ci"]]) if best else {})
    floor = validated[0]["tau_ci"][0]
    comparable = [r for r in validated if r["tau"] >= floor]
    chosen = min(comparable, key=lambda r: (r["seconds"], -r["tau"]))
    return MethodChoice(method=str(chosen["method"]), tau=float(chosen["tau"]),
                        tau_ci=(float(chosen["tau_ci"][0]), float(chosen["tau_ci"][1])),
                        seconds=float(chosen["seconds"]), n=chosen.get("n"),
                        dataset=chosen.get("dataset"), img_size=chosen.get("img_size"),
                        validated=tuple(str(r["method"]) for r in validated))


@functools.cache
def study_table(path: str | Path | None = None, *, n_resamples: int = 2000,
                seed: int = 0) -> tuple[dict[str, Any], ...]:
    """The correlation table of a committed proxy study (default: the digits study of
    `analysis.accuracy.methods.STUDY_JSON`); proxies are named `proxy:NAME`."""
    from .methods import STUDY_JSON, load_study, study_arrays
    from .rank_stats import correlation_table

    study = load_study(STUDY_JSON if path is None else path)
    accuracy, scores, seconds = study_arrays(study)
    table = correlation_table(scores, accuracy, {k: seconds[k] for k in scores},
                              n_resamples=n_resamples, seed=seed)
    data = study.get("dataset", {})
    for row in table:
        row["method"] = f"proxy:{row['method']}"
        row["dataset"], row["img_size"] = data.get("name"), data.get("img_size")
    return tuple(table)


def study_default(path: str | Path | None = None, *, n_resamples: int = 2000,
                  seed: int = 0) -> MethodChoice:
    """`validated_default` of a committed proxy study's table (`study_table`)."""
    return validated_default(study_table(path, n_resamples=n_resamples, seed=seed))


def trust_of(method: str, path: str | Path | None = None) -> dict[str, Any]:
    """What every output says about an accuracy method: whether a committed study validates
    it, its Kendall τ [interval] and the study's data, in one `label`. Short training is the
    reference the studies measure against; anything else not in a study is unvalidated."""
    if method.startswith("train:"):
        return {"method": method, "validated": True, "label": f"{method}: held-out top-1 "
                "of short standalone training (the reference the proxy studies measure)"}
    for row in study_table(path):
        if row["method"] == method:
            lo, hi = row["tau_ci"]
            where = f" on {row['dataset']} {row['img_size']}×{row['img_size']}" \
                if row.get("dataset") else ""
            validated = is_validated(row)
            verdict = "validated" if validated else UNVALIDATED
            return {"method": method, "validated": validated, "tau": float(row["tau"]),
                    "tau_ci": [float(lo), float(hi)], "dataset": row.get("dataset"),
                    "img_size": row.get("img_size"),
                    "label": f"{method}{where}: Kendall τ {row['tau']:.2f} [{lo:.2f}, "
                             f"{hi:.2f}] against short training, n={row.get('n')}: {verdict}"}
    return {"method": method, "validated": False,
            "label": f"{method}: in no committed study: {UNVALIDATED}"}
