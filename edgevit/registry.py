"""Named models: the release's presets and the paper's ablations, in this package and in timm.

The timm registration waits for timm: if timm is already imported it happens at once, otherwise
when timm is first imported (a one-shot import hook). `import edgevit` therefore never imports
timm or torchvision itself, which saves seconds in every process that only builds, costs or
scores a model (each NNI trial is one).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .ablations import ABLATIONS
from .checkpoint import load_checkpoint
from .config import PRESETS, EdgeViTConfig
from .model import EdgeViT

_CONFIGS: dict[str, EdgeViTConfig] = {}
_BUILT_IN: dict[str, EdgeViTConfig] = {**PRESETS, **ABLATIONS}  # registered here and in timm


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
        from timm.models import build_model_with_cfg

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


def _register_with_timm() -> None:
    """Register every preset and ablation in timm. A name that another package registered in
    timm first gets timm's own behaviour: a warning, and the later registration (ours) wins."""
    from timm.models import is_model as timm_is_model
    from timm.models import register_model as timm_register_model

    for name in _BUILT_IN:
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


class _RegisterWhenTimmLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the first `import timm` it asks the other finders for timm's
    spec and wraps its loader, so that `_register_with_timm` runs right after timm's own
    `__init__`; then it leaves `sys.meta_path`."""

    def find_spec(self, fullname: str, path: Any, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.loader is None:
            return spec
        run_timm_init = spec.loader.exec_module

        def run_timm_init_then_register(module: Any) -> None:
            run_timm_init(module)
            _register_with_timm()

        spec.loader.exec_module = run_timm_init_then_register  # type: ignore[method-assign]
        return spec


def _register_all() -> None:
    """Register every preset here, and in timm now or as soon as timm is imported."""
    for name, config in _BUILT_IN.items():
        register_config(name, config)
    if "timm" in sys.modules:
        _register_with_timm()
    else:
        sys.meta_path.insert(0, _RegisterWhenTimmLoads())


_register_all()
