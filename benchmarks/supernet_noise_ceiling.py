"""How well can any accuracy method agree with the study's standalone ranking when it scores
only the first M held-out images? The noise ceiling of `analysis.accuracy.noise_ceiling`
(ceiling, repeatability, bias; see its doc), computed from the committed study alone (no
training, no scoring) and committed beside this script.

    python benchmarks/supernet_noise_ceiling.py [--out benchmarks/supernet_noise_ceiling.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis.accuracy.noise_ceiling import noise_ceiling, noise_table
from analysis.accuracy.studies import FASHION_STUDY


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the results here (JSON)")
    args = parser.parse_args()
    result = dict(benchmark="supernet_noise_ceiling", study=FASHION_STUDY.name,
                  **noise_ceiling(json.loads(FASHION_STUDY.read_text())))
    for row in noise_table(result):
        print(f"{row['comparison']:22s} τ {row['tau']:+.2f} "
              f"[{row['tau_ci'][0]:+.2f}, {row['tau_ci'][1]:+.2f}]  ({row['what']})")
    print(f"spread of top-1 across the configs: standalone "
          f"{result['spread']['standalone']:.4f}, supernet {result['spread']['supernet_full']:.4f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
