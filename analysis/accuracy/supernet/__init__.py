"""A weight-sharing supernet over the search space (Once-for-All / AutoFormer style).

One set of weights serves every point of a `SearchSpace`; a subnet is an ordinary
`EdgeViTConfig` of that space and runs as a plain `EdgeViT` whose tensors are slices of the
shared ones. One module per job:

- `space`: the space as stored in a checkpoint; the sandwich's largest, smallest and
  full-attention subnets.
- `model`: `SuperNet` and how its weights are shared (widths, heads, depths, MLP, one LocalProp
  kernel per sample rate r); `extract_subnet`.
- `recipe`: `SupernetRecipe`, the training settings that are part of a checkpoint's identity.
- `sandwich`: the sandwich step with in-place distillation and `train_supernet` (resumable,
  counter-based randomness, under torchrun too).
- `distributed`: the process group, the all-reduce and the cross-rank BatchNorm of torchrun.
- `evaluation`: BatchNorm recalibration and `evaluate_subnet` (a subnet's held-out top-1).
- `checkpoint`: `load_supernet`, the fingerprint and digest that name a trained supernet,
  `export_supernet`, `supernet_dataset`.
"""

from .checkpoint import (
    CHECKPOINT_NAME,
    EXPORT_DTYPES,
    RECORD_NAME,
    SUPERNET_FORMAT,
    export_supernet,
    load_supernet,
    supernet_dataset,
    supernet_digest,
    supernet_fingerprint,
)
from .distributed import CrossRankBatchNorm2d, all_reduce
from .evaluation import (
    CALIB_IMAGES,
    EVAL_IMAGES,
    SubnetScore,
    evaluate_subnet,
    recalibrate_batchnorm,
    recalibrated_subnet,
)
from .model import SuperNet, extract_subnet
from .recipe import SupernetRecipe
from .sandwich import (
    epoch_order,
    global_batch,
    make_optimizer,
    rank_share,
    sandwich_step,
    step_subnets,
    train_supernet,
)
from .space import (
    full_attention_config,
    largest_config,
    smallest_config,
    space_from_dict,
    space_to_dict,
)

__all__ = [
    "CALIB_IMAGES",
    "CHECKPOINT_NAME",
    "EVAL_IMAGES",
    "EXPORT_DTYPES",
    "RECORD_NAME",
    "SUPERNET_FORMAT",
    "CrossRankBatchNorm2d",
    "SubnetScore",
    "SuperNet",
    "SupernetRecipe",
    "all_reduce",
    "epoch_order",
    "evaluate_subnet",
    "export_supernet",
    "extract_subnet",
    "full_attention_config",
    "global_batch",
    "largest_config",
    "load_supernet",
    "make_optimizer",
    "rank_share",
    "recalibrate_batchnorm",
    "recalibrated_subnet",
    "sandwich_step",
    "smallest_config",
    "space_from_dict",
    "space_to_dict",
    "step_subnets",
    "supernet_dataset",
    "supernet_digest",
    "supernet_fingerprint",
    "train_supernet",
]
