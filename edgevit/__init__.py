"""EdgeViT (Pan et al., ECCV 2022): a faithful, fast PyTorch implementation.

Importing this package registers `edgevit_xxs`, `edgevit_xs`, `edgevit_s` and the paper's
ablations with timm, so `timm.create_model("edgevit_xs", features_only=True)` works; it does
not import timm itself: the names reach timm when timm is imported, before or after this.
"""

from .ablations import ABLATIONS
from .checkpoint import checkpoint_filter_fn, load_checkpoint
from .config import PRESET_PARAMS, PRESETS, EdgeViTConfig
from .model import EdgeViT
from .registry import create_model, list_models, preset_config, register_config

__all__ = [
    "ABLATIONS",
    "PRESETS",
    "PRESET_PARAMS",
    "EdgeViT",
    "EdgeViTConfig",
    "checkpoint_filter_fn",
    "create_model",
    "list_models",
    "load_checkpoint",
    "preset_config",
    "register_config",
]
