"""The exact cost of an EdgeViT: MACs, parameters and elementwise work per op (`ops`), batched
over arrays of configs (`batched`), the latency predictors' cost features (`features`), the
big-O of the paper against the exact count (`lgl_theory`), and the search space (`search_space`).

May import: edgevit.
"""

from .batched import ConfigBatch, macs_params, split_by_shared_fields, summed_quantities
from .features import FEATURE_NAMES, config_features, feature_matrix, op_features
from .lgl_theory import (
    RateChoice,
    crossover_side,
    exact_lgl_terms,
    lgl_block_macs,
    mhsa_block_macs,
    optimal_rate_big_o,
    optimal_rate_exact,
)
from .ops import ELEMENTWISE_KINDS, MAC_KINDS, ModelCost, Op, OpCost, model_cost
from .search_space import DEFAULT_SPACE, SPACE_JSON, SearchSpace, divisor_rates, stage_sides

__all__ = [
    "ConfigBatch",
    "DEFAULT_SPACE",
    "ELEMENTWISE_KINDS",
    "FEATURE_NAMES",
    "MAC_KINDS",
    "ModelCost",
    "Op",
    "OpCost",
    "RateChoice",
    "SPACE_JSON",
    "SearchSpace",
    "config_features",
    "crossover_side",
    "divisor_rates",
    "exact_lgl_terms",
    "feature_matrix",
    "lgl_block_macs",
    "macs_params",
    "mhsa_block_macs",
    "model_cost",
    "op_features",
    "optimal_rate_big_o",
    "optimal_rate_exact",
    "split_by_shared_fields",
    "stage_sides",
    "summed_quantities",
]
