"""Named models: the release's presets and the paper's ablations, in this package and in timm."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timm.models import build_model_with_cfg
from timm.models import is_model as timm_is_model
from timm.models import register_model as timm_register_model

from .ablations import ABLATIONS
from .checkpoint import load_checkpoint
from .config import PRESETS, EdgeViTConfig
from .model import EdgeViT

_CONFIGS: dict[str, EdgeViTConfig] = {}


def register_config(name: str, config: EdgeViTConfig) -> None:
    """Add a named config; a name registered twice is an error, not an overwrite."""
    if name in _CONFIGS:
        raise ValueError(f"model name {name!r} is already registered")
    _CONFIGS[name] = config.replace(name=name)


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a glob pattern, sorted."""
    from fnmatch import fnmatch

    return sorted(name for name in _CONFIGS if fnmatch(name, pattern))


def preset_config(name: str) -> EdgeViTConfig:
    """The config registered under `name`; ValueError listing the known names otherwise."""
    try:
        return _CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def create_model(
    name: str, checkpoint_path: str | Path | None = None, **overrides: Any
) -> EdgeViT:
    """Build a registered model; `overrides` change config fields (e.g. num_classes=10).

    `checkpoint_path` loads an official or native checkpoint (weights only, no pickle).
    """
    model = EdgeViT(preset_config(name), **overrides)
    if checkpoint_path is not None:
        load_checkpoint(model, checkpoint_path)
    return model


def _timm_entrypoint(name: str) -> Callable[..., EdgeViT]:
    """A timm model function for `name`, named `name` (timm registers by `__name__`)."""

    def build(pretrained: bool = False, **kwargs: Any) -> Any:
        if pretrained:
            raise ValueError(
                f"{name}: no pretrained weights are shipped; load a checkpoint with "
                "edgevit.create_model(name, checkpoint_path=...)"
            )
        config = preset_config(name)
        kwargs.pop("pretrained_cfg", None)  # timm passes None; ours describes the preset
        pretrained_cfg = dict(
            architecture=name,
            num_classes=config.num_classes,
            input_size=(config.in_chans, 224, 224),
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            first_conv="stages.0.downsample.proj",
            classifier="head",
        )
        return build_model_with_cfg(
            EdgeViT,
            name,
            pretrained=False,
            pretrained_cfg=pretrained_cfg,
            feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
            config=config,
            **kwargs,
        )

    build.__name__ = name
    build.__qualname__ = name
    build.__doc__ = f"EdgeViT model {name} (edgevit suite)."
    return build


def _register_all() -> None:
    """Register every preset here and in timm. A name that another package registered in timm
    first gets timm's own behaviour: a warning, and the later registration (ours) wins."""
    for name, config in {**PRESETS, **ABLATIONS}.items():
        register_config(name, config)
        entrypoint = _timm_entrypoint(name)
        if timm_is_model(name):
            warnings.warn(f"timm already has a model named {name!r} (from "
                          f"{_timm_module_of(name)}); {entrypoint.__module__} replaces it",
                          stacklevel=2)
        with warnings.catch_warnings():  # timm's own overwrite warning says the same
            warnings.simplefilter("ignore", UserWarning)
            timm_register_model(entrypoint)


def _timm_module_of(name: str) -> str:
    from timm.models._registry import _model_to_module

    return _model_to_module.get(name, "another module")


_register_all()
