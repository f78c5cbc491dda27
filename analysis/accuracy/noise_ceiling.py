"""How well can any accuracy method agree with the Fashion-MNIST study's standalone ranking when
it scores only the first M held-out images? A noise ceiling, from the study alone (no training,
no scoring).

- Ceiling: the standalone models were also scored on the first `curve_images` held-out images
  after their last epoch (`curve[-1]`). They are the reference's own models (whose top-1 is on
  all held-out images), so Kendall τ between the two is what a perfect method that scores that
  many images would reach against this reference.
- Repeatability: the supernet method on the first M images (`supernet_prefix`; the search
  scores M = 1,000) against the same method on all held-out images (`supernet_full`).
- Bias: the supernet on all held-out images against standalone. Noise alone would put τ near 0
  there, not below it.

Bootstrap intervals as everywhere (`rank_stats.rank_correlation`).
"""

from __future__ import annotations

from typing import Any

from .rank_stats import rank_correlation


def has_noise_columns(study: dict[str, Any]) -> bool:
    """Whether every config of `study` has the columns `noise_ceiling` reads (the supernet's
    prefix and full-set scores come with `benchmarks/supernet_study.py --supernet CKPT`)."""
    rows = study["configs"]
    return bool(rows) and all("supernet_prefix" in r and "supernet_full" in r for r in rows)


def noise_ceiling(study: dict[str, Any], *, n_resamples: int = 2000,
                  seed: int = 0) -> dict[str, Any]:
    """The module doc's three comparisons, each `RankCorrelation.to_dict()` (n, tau, tau_ci,
    rho, rho_ci) with a `what`; `repeatability` maps M (a string, as the study's keys) to one;
    `spread` is max − min top-1 (fraction) of standalone and of the supernet on all images.
    Raises ValueError when the study lacks the supernet's columns (`has_noise_columns`)."""
    if not has_noise_columns(study):
        raise ValueError("the study has no supernet_prefix / supernet_full columns: score a "
                         "checkpoint first (benchmarks/supernet_study.py --supernet CKPT)")
    rows = study["configs"]
    kwargs = dict(n_resamples=n_resamples, seed=seed)
    standalone = [r["accuracy"] for r in rows]
    full = [r["supernet_full"] for r in rows]
    curve_images = study["settings"]["curve_images"]
    repeatability = {}
    for images in sorted(rows[0]["supernet_prefix"], key=int):
        prefix = [r["supernet_prefix"][images] for r in rows]
        repeatability[images] = {
            "what": f"supernet on the first {images} held-out images vs on all of them",
            **rank_correlation(prefix, full, **kwargs).to_dict()}
    return {
        "ceiling": {
            "what": f"standalone models on the first {curve_images} held-out images vs the "
                    "same models on all of them",
            **rank_correlation([r["curve"][-1] for r in rows], standalone, **kwargs).to_dict()},
        "repeatability": repeatability,
        "bias": {"what": "supernet on all held-out images vs standalone",
                 **rank_correlation(full, standalone, **kwargs).to_dict()},
        "spread": {"standalone": max(standalone) - min(standalone),
                   "supernet_full": max(full) - min(full)},
    }


def noise_table(ceiling: dict[str, Any]) -> list[dict[str, Any]]:
    """`noise_ceiling`'s result as rows (comparison, what, n, tau, tau_ci, rho, rho_ci): the
    ceiling, each repeatability M in increasing order, then the bias."""
    named = [("ceiling", ceiling["ceiling"])]
    named += [(f"repeatability M={m}", r) for m, r in ceiling["repeatability"].items()]
    named.append(("bias", ceiling["bias"]))
    return [dict(comparison=name, **row) for name, row in named]
