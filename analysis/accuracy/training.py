"""Short training: one fixed, seeded recipe, then top-1 on the held-out split.

Recipe (`TrainRecipe`): 3 epochs of AdamW (lr 1e-3, weight decay 0.05, betas 0.9/0.999),
batch 64, linear warm-up over the first 10 % of the steps then cosine decay to 0 (per step),
cross-entropy with label smoothing 0.1, no augmentation, no stochastic depth beyond the
config's. The model is the config with `num_classes` and `in_chans` set from the dataset,
initialised under `seed`; the batch order is drawn from a generator seeded by `seed`. On one
machine with one thread count the same seed gives the same accuracy bit for bit.

Threads: training and proxies run under `torch.set_num_threads(threads)`, default 1, at most
`cpu_threads()` (the cores this process may use), and the previous setting is restored
afterwards. One thread is the default because results then do not depend on the machine's core
count, because a search runs its trials side by side (one core each), and because on a shared
2-core machine two intra-op threads were measured 5-15× slower per training step than one
(threads waiting on each other while other processes hold the cores).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from analysis.runtime import torch_threads
from edgevit.config import EdgeViTConfig
from edgevit.model import EdgeViT

from .datasets import ImageDataset

DEFAULT_THREADS = 1


@dataclass(frozen=True)
class TrainRecipe:
    """The short-training recipe; every field is part of a result's identity."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3  # peak learning rate of AdamW (3e-3 left edgevit_s near chance)
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.1  # share of all steps spent warming up linearly from 0
    eval_batch_size: int = 256
    # NHWC tensors for model and images: the same arithmetic, 1.35× (XXS) and 1.1× (the
    # space's largest config) faster per training step at 64×64 on this CPU (one thread)
    channels_last: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs {self.epochs!r}: must be an integer ≥ 1")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size {self.batch_size!r}: must be an integer ≥ 1")
        if not (self.lr > 0 and 0 <= self.label_smoothing < 1 and 0 <= self.warmup_fraction < 1):
            raise ValueError("lr must be > 0; label_smoothing and warmup_fraction in [0, 1)")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """Held-out top-1 (fraction in [0, 1]) and what produced it."""

    top1: float
    correct: int
    n_test: int
    n_train: int
    steps: int
    final_loss: float  # mean training loss over the last epoch
    seconds: float  # wall time of training and evaluation
    threads: int
    curve: tuple[float, ...] = ()  # top-1 on the first `curve_images` held out, every epoch

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def build_model(config: EdgeViTConfig, dataset: ImageDataset, seed: int) -> EdgeViT:
    """The config adapted to the dataset (classes, channels), weights drawn under `seed`.

    The global torch generator is left as it was.
    """
    adapted = config.replace(num_classes=dataset.num_classes, in_chans=dataset.in_chans)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EdgeViT(adapted)


def lr_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Multiplier of the peak lr at `step` (0-based): linear warm-up, then cosine to 0."""
    warmup = max(1, round(warmup_fraction * total_steps)) if warmup_fraction > 0 else 0
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


@torch.no_grad()
def evaluate_top1(model: torch.nn.Module, dataset: ImageDataset, batch_size: int = 256,
                  channels_last: bool = False, limit: int | None = None) -> tuple[int, int]:
    """(correct, total) of argmax predictions on the held-out split (its first `limit`
    images when given), eval mode."""
    model.eval()
    correct = total = 0
    test = dataset.test
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit {limit}: must be ≥ 1")
        test = torch.utils.data.Subset(test, range(min(limit, len(test))))
    for images, labels in DataLoader(test, batch_size=batch_size, shuffle=False):
        images = images.contiguous(memory_format=memory_format(channels_last))
        correct += int((model(images).argmax(dim=1) == labels).sum())
        total += int(labels.numel())
    if total == 0:
        raise ValueError("the held-out split is empty")
    return correct, total


def train_and_evaluate(config: EdgeViTConfig, dataset: ImageDataset,
                       recipe: TrainRecipe = TrainRecipe(), *, seed: int = 0,
                       threads: int = DEFAULT_THREADS, progress: bool = True,
                       curve_images: int | None = None) -> TrainResult:
    """Train `config` on `dataset.train` with `recipe`, report top-1 on `dataset.test`.

    With `curve_images` = K, top-1 on the first K held-out images is also measured after every
    epoch: the learning curve a study reads to see whether a ranking has settled (K below the
    whole split keeps its cost small: scoring an image costs about a third of training on it).
    A tqdm bar
    counts optimiser steps (stderr) unless `progress` is False.
    """
    from tqdm import tqdm

    if len(dataset.train) == 0:
        raise ValueError("the training split is empty")
    start = time.perf_counter()
    with torch_threads(threads) as n_threads:
        layout = memory_format(recipe.channels_last)
        model = build_model(config, dataset, seed).to(memory_format=layout)
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr,
                                      weight_decay=recipe.weight_decay)
        loader = DataLoader(dataset.train, batch_size=recipe.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        total_steps = recipe.epochs * len(loader)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total_steps, recipe.warmup_fraction))
        epoch_loss = float("nan")
        top1_after: list[float] = []
        with tqdm(total=total_steps, desc=f"train {config.name}", unit="step",
                  disable=not progress, leave=False) as bar:
            for epoch in range(recipe.epochs):
                model.train()
                loss_sum, seen = 0.0, 0
                for images, labels in loader:
                    images = images.contiguous(memory_format=layout)
                    loss = F.cross_entropy(model(images), labels,
                                           label_smoothing=recipe.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    loss_sum += loss.item() * len(labels)
                    seen += len(labels)
                    bar.update()
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
                epoch_loss = loss_sum / seen
                if not math.isfinite(epoch_loss):
                    raise ValueError(f"training {config.name} diverged in epoch {epoch + 1}: "
                                     f"loss {epoch_loss}")
                if curve_images is not None:
                    correct, n_test = evaluate_top1(model, dataset, recipe.eval_batch_size,
                                                    recipe.channels_last, limit=curve_images)
                    top1_after.append(correct / n_test)
        correct, n_test = evaluate_top1(model, dataset, recipe.eval_batch_size,
                                        recipe.channels_last)
    return TrainResult(top1=correct / n_test, correct=correct, n_test=n_test,
                       n_train=len(dataset.train), steps=total_steps, final_loss=epoch_loss,
                       seconds=time.perf_counter() - start, threads=n_threads,
                       curve=tuple(top1_after))
