"""The supplementary's ablations (section B, main paper Tables 4a-4c) as named configs.

Each is built at the paper's ~0.5 GMACs scale on the XXS widths; the supplementary says the
depths were "down-scaled to have 0.5 GFLOPs", without the numbers, so the depths here are
chosen so that every variant lands within 0.5-0.6 GMACs at 224², next to the base's 0.55
(a test checks the range).
"""

from __future__ import annotations

from .config import PRESETS, EdgeViTConfig

ABLATION_BASE = PRESETS["edgevit_xxs"].replace(name="ablation_lgl")

ABLATIONS: dict[str, EdgeViTConfig] = {
    # The reference point of every table: the official LGL block.
    "ablation_lgl": ABLATION_BASE,
    # Table 4a: "w/o LA": no LocalAgg and no sparse attention; a PVT-v2 SRA block does both.
    "ablation_wo_la": ABLATION_BASE.replace(
        local_agg="none", global_attn="sra", depths=(1, 1, 5, 2)
    ),
    # Table 4a: "LA(LSA)": LocalAgg's convolutions replaced by Twins' locally-grouped attention.
    "ablation_la_lsa": ABLATION_BASE.replace(local_agg="lsa", depths=(1, 1, 3, 1)),
    # Table 4b: samplers. The paper's "Center" is the release's top-left pick (the base).
    "ablation_sampler_center": ABLATION_BASE.replace(sampler="center"),
    "ablation_sampler_avg": ABLATION_BASE.replace(sampler="avg"),
    "ablation_sampler_max": ABLATION_BASE.replace(sampler="max"),
    # Table 4c: "w/o LP": SRA in place of GlobalSparseAttn, LocalAgg kept.
    "ablation_wo_lp": ABLATION_BASE.replace(global_attn="sra", depths=(1, 1, 2, 2)),
    # Table 4c: "LP(Bilinear)": bilinear upsampling in place of the transposed convolution.
    "ablation_lp_bilinear": ABLATION_BASE.replace(local_prop="bilinear"),
}
