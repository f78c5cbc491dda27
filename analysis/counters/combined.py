"""All four counters on one input: `COUNTERS`, each one's `DEFAULT_ATTENTION` path, `count_model`,
`count_all` and the fixed `image_input` they use."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .fvcore_adapter import count_fvcore
from .ptflops_adapter import count_ptflops
from .recording import Inputs
from .records import CounterResult
from .torch_adapter import count_torch

COUNTERS = ("fvcore", "ptflops-pytorch", "ptflops-aten", "torch")

# Which attention path each counter counts in `count_all`. fvcore (jit trace) and both ptflops
# backends give SDPA no count, so they see the release's explicit q·kᵀ -> softmax -> ·v, which
# is also what the paper's fvcore "GFLOPs" measured; FlopCounterMode counts the fused kernel
# through the formula registered in `torch_adapter` (equal to the matmul path, see the tests).
DEFAULT_ATTENTION = {
    "fvcore": "matmul",
    "ptflops-pytorch": "matmul",
    "ptflops-aten": "matmul",
    "torch": "sdpa",
}


def count_model(
    model: nn.Module,
    inputs: Inputs,
    counters: Sequence[str] = COUNTERS,
) -> dict[str, CounterResult]:
    """Run the named counters on one input, each on its `DEFAULT_ATTENTION` path."""
    unknown = [name for name in counters if name not in COUNTERS]
    if unknown:
        raise ValueError(f"unknown counter(s) {unknown}; known: {', '.join(COUNTERS)}")
    out = {}
    for name in counters:
        attention = DEFAULT_ATTENTION[name]
        if name == "fvcore":
            out[name] = count_fvcore(model, inputs, attention=attention)
        elif name == "ptflops-pytorch":
            out[name] = count_ptflops(model, inputs, backend="pytorch", attention=attention)
        elif name == "ptflops-aten":
            out[name] = count_ptflops(model, inputs, backend="aten", attention=attention)
        else:
            out[name] = count_torch(model, inputs, attention=attention)
    return out


def image_input(
    model: nn.Module, img_size: tuple[int, int] = (224, 224), batch: int = 1
) -> torch.Tensor:
    """A fixed random B×C×H×W image batch for `model` (C from its config, else 3)."""
    config = getattr(model, "config", None)
    in_chans = getattr(config, "in_chans", 3)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, in_chans, *img_size, generator=generator)


def count_all(
    model_or_name: nn.Module | str,
    img_size: tuple[int, int] = (224, 224),
    batch: int = 1,
) -> dict[str, CounterResult]:
    """MACs of an eval-mode forward by each of `COUNTERS`, for a model or a registered name."""
    if isinstance(model_or_name, str):
        from edgevit import create_model

        model = create_model(model_or_name)
    else:
        model = model_or_name
    return count_model(model, image_input(model, img_size, batch))
