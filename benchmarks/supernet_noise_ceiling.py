"""How well can any accuracy method agree with the study's standalone ranking when it scores
only the first M held-out images? A noise ceiling, from the committed study alone (no
training, no scoring).

- Ceiling: the 16 standalone models were also scored on the first 2,000 held-out images after
  their last epoch (`curve[-1]`). They are the reference's own models (whose top-1 is on all
  10,000), so Kendall τ between the two is what a perfect method that scores 2,000 images
  would reach against this reference.
- Repeatability: the supernet method on the first M images (`supernet_prefix`, M = 250 …
  5,000; the search scores M = 1,000) against the same method on all 10,000
  (`supernet_full`).
- Bias: the supernet on all 10,000 against standalone. Noise alone would put τ near 0 here, not
  below it.

Bootstrap intervals as everywhere (`analysis.accuracy.rank_stats`, 2,000 resamples, seed 0).

    python benchmarks/supernet_noise_ceiling.py [--out benchmarks/supernet_noise_ceiling.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from analysis.accuracy.rank_stats import rank_correlation

STUDY = Path(__file__).resolve().parents[1] / "analysis/accuracy/data/supernet_study.json"


def noise_ceiling(study: dict[str, Any]) -> dict[str, Any]:
    """The three comparisons of the module doc, each {n, tau, tau_ci, rho, rho_ci}."""
    rows = study["configs"]
    standalone = [r["accuracy"] for r in rows]
    full = [r["supernet_full"] for r in rows]
    curve_images = study["settings"]["curve_images"]
    out: dict[str, Any] = {
        "ceiling": {
            "what": f"standalone models on the first {curve_images} held-out images vs the "
                    "same models on all of them",
            **rank_correlation([r["curve"][-1] for r in rows], standalone).to_dict()},
        "repeatability": {},
        "bias": {"what": "supernet on all held-out images vs standalone",
                 **rank_correlation(full, standalone).to_dict()},
        "spread": {"standalone": max(standalone) - min(standalone),
                   "supernet_full": max(full) - min(full)},
    }
    for images in sorted(rows[0]["supernet_prefix"], key=int):
        prefix = [r["supernet_prefix"][images] for r in rows]
        out["repeatability"][images] = rank_correlation(prefix, full).to_dict()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the results here (JSON)")
    args = parser.parse_args()
    result = dict(benchmark="supernet_noise_ceiling", study=str(STUDY.name),
                  **noise_ceiling(json.loads(STUDY.read_text())))
    for name in ("ceiling", "bias"):
        r = result[name]
        print(f"{name:14s} τ {r['tau']:+.2f} [{r['tau_ci'][0]:+.2f}, {r['tau_ci'][1]:+.2f}]"
              f"  ({r['what']})")
    for images, r in result["repeatability"].items():
        print(f"repeatability  τ {r['tau']:+.2f} [{r['tau_ci'][0]:+.2f}, {r['tau_ci'][1]:+.2f}]"
              f"  (supernet on the first {images} held-out images vs on all)")
    print(f"spread of top-1 across the 16 configs: standalone "
          f"{result['spread']['standalone']:.4f}, supernet {result['spread']['supernet_full']:.4f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
