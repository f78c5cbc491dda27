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


def usable(row: Mapping[str, Any]) -> bool:
    """A row a search can run here: a supernet row only while its checkpoint is present, a
    Fashion-MNIST row (a supernet trained on it included: it recalibrates and scores there)
    only where the dataset is installed."""
    from .datasets import FASHION_MNIST
    from .fashion_mnist import fashion_mnist_dir
    from .methods import AccuracyMethod

    method = AccuracyMethod.parse(row["method"])
    if method.kind == "supernet" and not Path(method.name).exists():
        return False
    source = row.get("dataset") if method.kind == "supernet" else method.source
    return source != FASHION_MNIST or fashion_mnist_dir().is_dir()


def study_default(*, n_resamples: int = 2000, seed: int = 0) -> MethodChoice:
    """`validated_default` over every committed study's rows that a search can run here
    (`analysis.accuracy.studies.committed_table`, `usable`)."""
    from .studies import committed_table

    return validated_default([r for r in committed_table(n_resamples, seed) if usable(r)])


def _label(method: str, row: Mapping[str, Any]) -> dict[str, Any]:
    lo, hi = row["tau_ci"]
    where = f" on {row['dataset']} {row['img_size']}×{row['img_size']}" \
        if row.get("dataset") else ""
    validated = is_validated(row)
    verdict = "validated" if validated else UNVALIDATED
    return {"method": method, "validated": validated, "tau": float(row["tau"]),
            "tau_ci": [float(lo), float(hi)], "n": row.get("n"), "dataset": row.get("dataset"),
            "img_size": row.get("img_size"),
            "label": f"{method}{where}: Kendall τ {row['tau']:.2f} [{lo:.2f}, {hi:.2f}] "
                     f"against standalone training, n={row.get('n')}: {verdict}"}


def trust_of(method: str) -> dict[str, Any]:
    """What every output says about an accuracy method: whether a committed study validates
    it where it runs (dataset and resolution are part of the method string), its Kendall τ
    [interval] and the study's data, in one `label`. Short training is the reference the
    studies measure against. A supernet checkpoint inherits a study's τ only when it is the
    checkpoint the study scored (same training and step: `supernet_fingerprint`). Anything
    else is unvalidated, and the label says where the method was studied instead."""
    from .methods import AccuracyMethod
    from .studies import committed_table

    parsed = AccuracyMethod.parse(method)
    canonical = str(parsed)
    if parsed.kind == "train":
        return {"method": canonical, "validated": True, "label": f"{canonical}: held-out top-1 "
                "of short standalone training (the reference the studies measure against)"}
    table = committed_table()
    if parsed.kind == "supernet":
        from .supernet import load_supernet, supernet_fingerprint

        try:
            fingerprint = supernet_fingerprint(load_supernet(parsed.name)[1])
        except ValueError as err:
            return {"method": canonical, "validated": False,
                    "label": f"{canonical}: in no committed study ({err}): {UNVALIDATED}"}
        for row in table:
            if row.get("supernet") == fingerprint:
                return _label(canonical, row)
        return {"method": canonical, "validated": False,
                "label": f"{canonical}: in no committed study (no study scored this "
                         f"checkpoint at step {fingerprint['step']}): {UNVALIDATED}"}
    for row in table:
        if row["method"] == canonical:
            return _label(canonical, row)
    studied = sorted({r["method"] for r in table if r["method"].startswith(
        f"{parsed.kind}:{parsed.name}@") or r["method"] == f"{parsed.kind}:{parsed.name}"})
    elsewhere = f" (studied as {', '.join(studied)})" if studied else ""
    return {"method": canonical, "validated": False,
            "label": f"{canonical}: in no committed study at this dataset and resolution"
                     f"{elsewhere}: {UNVALIDATED}"}
