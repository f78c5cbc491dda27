"""The sandwich-training recipe of a supernet, part of its checkpoint's identity."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# recipe fields added after checkpoints were committed, with the default they had implicitly
ADDED_RECIPE_FIELDS: dict[str, Any] = {"full_attention_subnet": False}


@dataclass(frozen=True)
class SupernetRecipe:
    """Sandwich training; every field is part of the checkpoint's identity except `save_every`
    (and the `ADDED_RECIPE_FIELDS` at their defaults)."""

    steps: int = 3000
    batch_size: int = 128  # global: split evenly across ranks
    lr: float = 1e-3  # AdamW peak
    weight_decay: float = 0.05
    label_smoothing: float = 0.1  # the largest subnet's cross-entropy
    warmup_fraction: float = 0.05
    random_subnets: int = 2  # k: subnets drawn at random each step beside largest and smallest
    temperature: float = 1.0  # in-place distillation's softmax temperature
    grad_clip: float = 5.0  # max global gradient norm (0: none)
    save_every: int = 200  # steps between checkpoints
    # also distil the largest widths with r = 1 wherever allowed (`full_attention_config`)
    full_attention_subnet: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "save_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"supernet recipe: {name} {value!r} must be an integer ≥ 1")
        if not (isinstance(self.random_subnets, int) and self.random_subnets >= 0):
            raise ValueError(f"supernet recipe: random_subnets {self.random_subnets!r} must "
                             "be an integer ≥ 0")
        if not isinstance(self.full_attention_subnet, bool):
            raise ValueError(f"supernet recipe: full_attention_subnet "
                             f"{self.full_attention_subnet!r} must be true or false")
        if not (self.lr > 0 and self.temperature > 0 and self.grad_clip >= 0
                and 0 <= self.label_smoothing < 1 and 0 <= self.warmup_fraction < 1):
            raise ValueError("supernet recipe: lr, temperature > 0; grad_clip ≥ 0; "
                             "label_smoothing, warmup_fraction in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that make two trainings the same; a field added after the first
        checkpoints were written is left out at its default, so those keep their identity."""
        out = self.to_dict()
        del out["save_every"]
        for name, default in ADDED_RECIPE_FIELDS.items():
            if out[name] == default:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupernetRecipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"supernet recipe: unknown field(s) {unknown}")
        return cls(**data)
