"""Random EdgeViT configs and input sizes for property-based tests (hypothesis)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from edgevit import EdgeViTConfig
from edgevit.config import GLOBAL_ATTNS, LOCAL_AGGS, LOCAL_PROPS, SAMPLERS


@st.composite
def configs_and_sizes(draw, *, max_width_mult: int, mlp_ratios: Sequence[float],
                      class_counts: Sequence[int], max_side: int
                      ) -> tuple[EdgeViTConfig, tuple[int, int]]:
    """A valid config over every switch (widths = head_dim × 1..max_width_mult per stage,
    depths 1–2, r 1–5) and an input size (H, W) in pixels, each side 32..max_side."""
    head_dim = draw(st.sampled_from([8, 12, 16]))
    config = EdgeViTConfig(
        widths=tuple(head_dim * draw(st.integers(1, max_width_mult)) for _ in range(4)),
        depths=tuple(draw(st.integers(1, 2)) for _ in range(4)),
        sample_rates=tuple(draw(st.integers(1, 5)) for _ in range(4)),
        head_dim=head_dim,
        mlp_ratio=draw(st.sampled_from(list(mlp_ratios))),
        local_kernel=draw(st.sampled_from([3, 5, 7])),
        num_classes=draw(st.sampled_from(list(class_counts))),
        in_chans=draw(st.sampled_from([1, 3])),
        qkv_bias=draw(st.booleans()),
        sampler=draw(st.sampled_from(SAMPLERS)),
        local_prop=draw(st.sampled_from(LOCAL_PROPS)),
        local_agg=draw(st.sampled_from(LOCAL_AGGS)),
        global_attn=draw(st.sampled_from(GLOBAL_ATTNS)),
    )
    return config, (draw(st.integers(32, max_side)), draw(st.integers(32, max_side)))
