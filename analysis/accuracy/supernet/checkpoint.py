"""Supernet checkpoints on disk: loading (cached, with clear errors), the fingerprint and
digest that name a trained supernet, the inference export, and the data it was trained on.

A training checkpoint (`supernet.pt`) holds the weights, AdamW's state, the step, the loss
curve, the recipe, the space, the data and the seed, and loads with
`torch.load(weights_only=True)`; `supernet.json` beside it records the same in JSON (plus wall
time and machine). An export holds the weights only, in float16 by default.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..datasets import ImageDataset, load_dataset
from .model import SuperNet
from .recipe import SupernetRecipe
from .space import space_from_dict

SUPERNET_FORMAT = "edgevit-supernet/1"
CHECKPOINT_NAME = "supernet.pt"
RECORD_NAME = "supernet.json"


def checkpoint_path(path: str | Path) -> Path:
    """The checkpoint file of `path`: `path/supernet.pt` for a folder (or a name without a
    suffix), else `path` itself."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() or not path.suffix else path


def save_atomic(obj: Any, path: Path) -> None:
    """Write `obj` to `path` through a temporary file beside it and a rename, so a reader never
    sees half a file: JSON for a dict or list at a .json path, `torch.save` otherwise."""
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(obj, (dict, list)) and path.suffix == ".json":
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


_LOADED: dict[tuple[str, int], tuple[SuperNet, dict[str, Any]]] = {}


def load_supernet(path: str | Path) -> tuple[SuperNet, dict[str, Any]]:
    """(supernet in eval mode, its record) from a checkpoint file or its folder; cached by path
    and modification time. ValueError naming the problem when it is missing or not ours."""
    ckpt_path = checkpoint_path(path)
    if not ckpt_path.is_file():
        raise ValueError(f"supernet checkpoint not found: {ckpt_path}")
    key = (str(ckpt_path.resolve()), ckpt_path.stat().st_mtime_ns)
    if key not in _LOADED:
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as err:  # a pickle, a truncated file, not a torch file
            raise ValueError(f"{ckpt_path}: not a loadable supernet checkpoint "
                             f"({type(err).__name__}: {err})") from None
        if not isinstance(ckpt, dict) or ckpt.get("format") != SUPERNET_FORMAT:
            raise ValueError(f"{ckpt_path}: not a supernet checkpoint ({SUPERNET_FORMAT})")
        try:
            supernet = SuperNet(space_from_dict(ckpt["space"]), num_classes=ckpt["num_classes"],
                                in_chans=ckpt["in_chans"])
            supernet.load_state_dict(ckpt["model"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{ckpt_path}: a broken supernet checkpoint "
                             f"({type(err).__name__}: {str(err)[:300]})") from None
        record = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer")}
        _LOADED.clear()
        _LOADED[key] = (supernet.eval(), record)
    return _LOADED[key]


def supernet_fingerprint(record: dict[str, Any]) -> dict[str, Any]:
    """What makes two checkpoints the same trained supernet (JSON-ready): the step reached,
    the seed, the data, the space, the recipe's identity, the stored precision (an fp16
    export scores slightly differently) and, after a warm start, the fingerprint of the
    supernet it started from; not where the file lies."""
    out = dict(step=int(record["step"]), seed=int(record["seed"]), data=dict(record["data"]),
               space=record["space"],
               recipe=SupernetRecipe.from_dict(record["recipe"]).identity(),
               weights_dtype=record.get("weights_dtype", "float32"))
    if record.get("init_from"):  # a warm start: the supernet it started from
        out["init_from"] = record["init_from"]["fingerprint"]
    return out


def supernet_digest(record: dict[str, Any]) -> str:
    """A short name for the trained supernet of `record`: the first 12 hex digits of the
    SHA-256 of its canonical fingerprint (`supernet_fingerprint`), so the same training at the
    same step and precision has the same digest wherever the file lies, and a checkpoint
    retrained or replaced in place has another."""
    canonical = json.dumps(supernet_fingerprint(record), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


EXPORT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def export_supernet(src: str | Path, dst: str | Path, *, dtype: str = "float16"
                    ) -> dict[str, Any]:
    """Write the weights of checkpoint `src` (file or folder) to file `dst` for inference only:
    floating tensors in `dtype`, no optimizer state (it cannot be resumed), the record kept
    with `weights_dtype`; `load_supernet` reads it back in float32. Returns the record. A
    full-space supernet is 29.2 M parameters: 58 MB in float16 against 351 MB for a training
    checkpoint (fp32 weights and AdamW's two moments)."""
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"export dtype {dtype!r}: expected one of {sorted(EXPORT_DTYPES)}")
    src_path, dst = checkpoint_path(src), Path(dst)
    supernet, record = load_supernet(src_path)  # a ValueError for anything that is not ours
    try:
        same = dst.resolve() == src_path.resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop, a name too long
        raise ValueError(f"--out {dst}: {err}") from None
    if same:
        raise ValueError(f"{dst}: the export would overwrite its own source")
    if dst.is_dir() or (dst.exists() and not dst.is_file()):
        raise ValueError(f"--out {dst}: a folder or special file; name the .pt file to write")
    if dst.exists():  # replace only a supernet checkpoint of ours, never another file
        try:
            load_supernet(dst)
        except ValueError:
            raise ValueError(f"--out {dst} exists and is not a supernet checkpoint: refusing "
                             "to overwrite it") from None
    model = {k: v.to(EXPORT_DTYPES[dtype]) if v.is_floating_point() else v
             for k, v in supernet.state_dict().items()}
    record = dict(record, weights_dtype=dtype)  # the loaded record is cached: not changed
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(dict(record, model=model), dst)
    return record


def supernet_dataset(record: dict[str, Any]) -> ImageDataset:
    """The dataset a supernet was trained on, at its resolution (held-out split for scores)."""
    data = record["data"]
    return load_dataset(data["source"], data["img_size"], max_per_class=data["max_per_class"])
