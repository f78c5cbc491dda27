"""Configs per second: the vectorised symbolic cost model vs one fvcore trace per config.

Both are measured in this one run on the same configs, and their answers compared: fvcore's
printed count must equal the symbolic inventory under fvcore's rules (analysis.counters.reconcile).
Goal: ≥ 10⁴× more configs per second, with the same answer.

    python benchmarks/cost_model_speed.py [--fvcore-configs 8] [--space-configs 200000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from analysis.cost import DEFAULT_SPACE, macs_params, model_cost
from analysis.counters import count_fvcore, image_input, predict
from edgevit.model import EdgeViT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fvcore-configs", type=int, default=8)
    parser.add_argument("--space-configs", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)
    configs = [DEFAULT_SPACE.decode(DEFAULT_SPACE.sample(rng)) for _ in range(args.fvcore_configs)]

    start = time.perf_counter()
    printed = []
    for config in configs:
        model = EdgeViT(config).eval()
        printed.append(count_fvcore(model, image_input(model)).macs)
    fvcore_s = time.perf_counter() - start
    same = all(count == predict("fvcore", model_cost(c).ops)[0]
               for count, c in zip(printed, configs))

    arrays = DEFAULT_SPACE.enumerate()
    index = rng.choice(len(arrays["head_dim"]), args.space_configs, replace=False)
    macs_params(arrays["widths"][:10], arrays["depths"][:10], arrays["sample_rates"][:10],
                arrays["head_dim"][:10], arrays["mlp_ratio"][:10])  # build the lambdas once
    start = time.perf_counter()
    macs, _ = macs_params(arrays["widths"][index], arrays["depths"][index],
                          arrays["sample_rates"][index], arrays["head_dim"][index],
                          arrays["mlp_ratio"][index])
    symbolic_s = time.perf_counter() - start
    spot = [DEFAULT_SPACE.decode(p) for p in (DEFAULT_SPACE.sample(rng) for _ in range(3))]
    vector_same = all(
        macs_params([c.widths], [c.depths], [c.sample_rates], c.head_dim, c.mlp_ratio)[0][0]
        == model_cost(c).macs for c in spot)

    fvcore_rate = len(configs) / fvcore_s
    symbolic_rate = len(index) / symbolic_s
    for label, count, seconds, rate in (("fvcore trace", len(configs), fvcore_s, fvcore_rate),
                                        ("vectorised", len(index), symbolic_s, symbolic_rate)):
        print(f"{label:13s}: {count:>8} configs in {seconds:8.3f} s = {rate:12.1f} configs/s")
    print(f"ratio        : {symbolic_rate / fvcore_rate:,.0f}× (goal ≥ 10,000×)")
    print(f"same answer  : fvcore printed = symbolic under fvcore's rules: {same}; "
          f"vectorised = per-config: {vector_same}")


if __name__ == "__main__":
    main()
