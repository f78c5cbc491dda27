"""Loading checkpoints: the release's key names mapped onto this implementation's modules."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

_STEM_KEY = re.compile(r"^patch_embed(\d)\.(.*)$")
_BLOCK_KEY = re.compile(r"^blocks(\d)\.(\d+)\.(LocalAgg|SelfAttn)\.(.*)$")
# Inner module names that differ: the release's LocalAgg holds its pw-dw-pw mixer flat.
_LOCAL_AGG_RENAMES = {"conv1.": "mixer.conv1.", "attn.": "mixer.dwconv.", "conv2.": "mixer.conv2."}
_GLOBAL_RENAMES = {"attn.LocalProp.": "attn.local_prop."}


def _rename_prefix(inner: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if inner.startswith(old):
            return new + inner[len(old):]
    return inner


def _rename_official_key(key: str) -> str:
    """One official key -> this implementation's key (stages numbered from 0, not 1)."""
    if match := _STEM_KEY.match(key):
        return f"stages.{int(match[1]) - 1}.downsample.{match[2]}"
    if match := _BLOCK_KEY.match(key):
        prefix = f"stages.{int(match[1]) - 1}.blocks.{match[2]}."
        if match[3] == "LocalAgg":
            return prefix + "local_agg." + _rename_prefix(match[4], _LOCAL_AGG_RENAMES)
        return prefix + "global_block." + _rename_prefix(match[4], _GLOBAL_RENAMES)
    return key


def checkpoint_filter_fn(
    state_dict: dict[str, torch.Tensor], model: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Map a state_dict of the official release (saic-fi/edgevit) onto `EdgeViT` keys.

    Pure: returns a new dict. Keys already in this implementation's form pass through unchanged;
    a wrapper's `"model"` / `"state_dict"` entry and a `module.` prefix are unwrapped.
    """
    for wrapper in ("model", "state_dict", "model_ema"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            state_dict = state_dict[wrapper]
            break
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        out[_rename_official_key(key)] = value
    return out


def load_state_dict_checked(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load strictly; on any mismatch raise ValueError naming the missing and unexpected keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong_shape:
        raise ValueError(
            "checkpoint does not fit the model: "
            f"missing keys {missing}; unexpected keys {unexpected}; wrong shapes {wrong_shape}"
        )
    model.load_state_dict(state_dict, strict=True)


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load an official or native checkpoint file (no pickle: `weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint file not found: {path}")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or pickled file: say which and why
        raise ValueError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state_dict, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state_dict).__name__}, not a state_dict")
    load_state_dict_checked(model, checkpoint_filter_fn(state_dict, model))
    return model
