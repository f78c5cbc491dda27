"""Sandwich training of a supernet, resumable and data-parallel.

The sandwich rule with in-place distillation (Yu & Huang 2019, BigNAS, NASViT): every step runs
the largest subnet on the labels (cross-entropy with label smoothing), then the smallest and
`random_subnets` uniformly random ones against the largest's detached soft predictions (KL
divergence at temperature T, × T²), accumulating all gradients before one AdamW step. Largest =
every maximum (head_dim, widths, depths, mlp_ratio) and the smallest r > 1 of each stage
(LocalAgg present, densest delegates); smallest = every minimum and the largest r. Neither takes
r = 1, so the full-attention path (no LocalAgg, every token a delegate) learns only when a
random subnet draws it; `full_attention_subnet` adds, each step, the largest widths with r = 1
wherever the stage allows it, distilled like the others. The learning rate follows
`analysis.accuracy.training.lr_factor` (linear warm-up, cosine to 0) as a pure function of the
step.

Randomness is counter-based, so resuming needs no generator state beyond the step: the data
order of epoch e is a permutation drawn from `default_rng([seed, e])`, and the random subnets of
step s come from `default_rng([seed, s, 1])`. A checkpoint (`supernet.pt`, every `save_every`
steps and at the end) holds the weights, AdamW's state, the step, the loss curve, the recipe,
the space, the data and the seed, and loads with `torch.load(weights_only=True)`;
`supernet.json` beside it records the same in JSON (plus wall time and machine). N steps in one
run and N/2 + resume + N/2 give the same weights bit for bit on one machine and thread count.

Under torchrun (`torchrun --nproc-per-node N edgevit supernet train ...`) every rank calls
`train_supernet`; see `distributed` for how the ranks share a step. Only rank 0 writes files.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from analysis.cost import DEFAULT_SPACE, SearchSpace
from edgevit.config import EdgeViTConfig

from ..datasets import gather, load_dataset
from ..training import DEFAULT_THREADS, lr_factor, torch_threads
from .checkpoint import (
    CHECKPOINT_NAME,
    RECORD_NAME,
    SUPERNET_FORMAT,
    load_supernet,
    save_atomic,
    supernet_fingerprint,
)
from .distributed import process_group, rank_and_world
from .model import SuperNet
from .recipe import SupernetRecipe
from .space import space_to_dict


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training-set order of `epoch`: a permutation drawn from default_rng([seed, epoch])."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def global_batch(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of the global batch of `step` (incomplete last batches of an epoch dropped)."""
    per_epoch = n // batch_size
    if per_epoch < 1:
        raise ValueError(f"the training split has {n} images, fewer than one batch of "
                         f"{batch_size}")
    epoch, k = divmod(step, per_epoch)
    return epoch_order(n, seed, epoch)[k * batch_size:(k + 1) * batch_size]


def rank_share(indices: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank `rank`'s contiguous share of a global batch (its size must divide evenly)."""
    if len(indices) % world:
        raise ValueError(f"global batch {len(indices)} does not split evenly over {world} ranks")
    share = len(indices) // world
    return indices[rank * share:(rank + 1) * share]


def step_subnets(supernet: SuperNet, seed: int, step: int, k: int, *,
                 full_attention: bool = False) -> list[EdgeViTConfig]:
    """The sandwich of `step`: largest, smallest, the full-attention one when asked, then k
    random subnets (the same on every rank)."""
    rng = np.random.default_rng([seed, step, 1])
    fixed = [supernet.largest, supernet.smallest]
    if full_attention and supernet.full_attention != supernet.largest:
        fixed.append(supernet.full_attention)
    return fixed + [supernet.sample(rng) for _ in range(k)]


def sandwich_step(supernet: SuperNet, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                  labels: torch.Tensor, subnets: Sequence[EdgeViTConfig],
                  recipe: SupernetRecipe) -> tuple[float, float]:
    """One optimiser step: subnets[0] on the labels, the others distilled from its soft
    predictions; gradients averaged over ranks. Returns (CE of the largest, mean KD of the
    others), both averaged over ranks: the global batch's values."""
    _, world = rank_and_world()
    supernet.train()
    optimizer.zero_grad(set_to_none=True)
    logits = supernet(images, subnets[0])
    ce = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
    ce.backward()
    t = recipe.temperature
    soft = F.softmax(logits.detach() / t, dim=1)
    kd_sum = 0.0
    for config in subnets[1:]:
        student = F.log_softmax(supernet(images, config) / t, dim=1)
        kd = F.kl_div(student, soft, reduction="batchmean") * t * t
        kd.backward()
        kd_sum += kd.item()
    params = [p for p in supernet.parameters() if p.grad is not None]  # the same on every rank
    losses = torch.tensor([ce.item(), kd_sum / max(1, len(subnets) - 1)], dtype=torch.float64)
    if world > 1:
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        torch.distributed.all_reduce(flat)
        flat /= world
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()
        losses = losses.to(images.device)
        torch.distributed.all_reduce(losses)
        losses = losses.cpu() / world
    if recipe.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
    optimizer.step()
    return float(losses[0]), float(losses[1])


def make_optimizer(supernet: SuperNet, recipe: SupernetRecipe) -> torch.optim.AdamW:
    return torch.optim.AdamW(supernet.parameters(), lr=recipe.lr,
                             weight_decay=recipe.weight_decay)


def _warm_start(path: str | Path, *, space: SearchSpace, data: dict[str, Any]
                ) -> tuple[SuperNet, dict[str, Any]]:
    """(the supernet at `path`, its fingerprint) after checking it was trained over `space` on
    `data` (source, resolution and slice); ValueError naming what differs."""
    try:
        init, record = load_supernet(path)
    except ValueError as err:
        raise ValueError(f"--init-from: {err}") from None
    differ = [name for name, mine, theirs in (("space", space_to_dict(space), record["space"]),
                                              ("data", data, record["data"]))
              if mine != theirs]
    if differ:
        raise ValueError(f"--init-from {path} was trained with another {' and '.join(differ)} "
                         f"({record['data']}); a warm start needs the same")
    return init, supernet_fingerprint(record)


def train_supernet(out: str | Path, *, data: str = "fashion-mnist", img_size: int = 32,
                   recipe: SupernetRecipe = SupernetRecipe(), seed: int = 0,
                   space: SearchSpace = DEFAULT_SPACE, max_per_class: int | None = None,
                   resume: bool = False, stop_after: int | None = None,
                   init_from: str | Path | None = None,
                   threads: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a supernet into folder `out`; returns the record
    written to `out/supernet.json`. `stop_after` ends this run after that many steps (a
    checkpoint is written; resume later). `init_from` starts from the weights of a trained
    supernet (a training checkpoint or an export; same space, data and resolution) instead of
    random ones, with a fresh optimizer and schedule: a warm start, recorded (its fingerprint)
    in the record and the new checkpoint's fingerprint. Under torchrun, every rank calls
    this."""
    out = Path(out)
    ckpt_path = out / CHECKPOINT_NAME
    data_record = dict(source=data, img_size=img_size, max_per_class=max_per_class)
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after {stop_after}: must be ≥ 1")
    if ckpt_path.exists() and not resume:
        raise ValueError(f"{out} already holds a supernet checkpoint: pass --resume to "
                         "continue it, or choose another --out")
    init, init_record = (None, None) if init_from is None else _warm_start(
        init_from, space=space, data=data_record)
    with process_group() as (rank, world, device), torch_threads(
            DEFAULT_THREADS if threads is None else threads):
        dataset = load_dataset(data, img_size, max_per_class=max_per_class)
        rank_share(np.arange(recipe.batch_size), 0, world)  # checks the split early
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            supernet = SuperNet(space, num_classes=dataset.num_classes,
                                in_chans=dataset.in_chans)
        if init is not None:
            if (init.num_classes, init.in_chans) != (dataset.num_classes, dataset.in_chans):
                raise ValueError(f"--init-from {init_from}: {init.num_classes} classes, "
                                 f"{init.in_chans} channels; the data has "
                                 f"{dataset.num_classes}, {dataset.in_chans}")
        resuming = resume and ckpt_path.exists()
        if init is not None and not resuming:  # a resumed run loads its own checkpoint
            supernet.load_state_dict(init.state_dict())
        supernet.to(device)
        optimizer = make_optimizer(supernet, recipe)
        step, losses, seconds = 0, [], 0.0
        if resuming:
            ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
            expected = dict(recipe=recipe.identity(), seed=seed, data=data_record,
                            space=space_to_dict(space), init_from=init_record)
            found = dict(recipe=SupernetRecipe.from_dict(ckpt["recipe"]).identity(),
                         seed=ckpt["seed"], data=ckpt["data"], space=ckpt["space"],
                         init_from=(ckpt.get("init_from") or {}).get("fingerprint"))
            differ = sorted(k for k in expected if expected[k] != found[k])
            if differ:
                raise ValueError(f"{ckpt_path} was trained with another {', '.join(differ)}: "
                                 "resume with the same settings, or choose another --out")
            if "optimizer" not in ckpt:
                raise ValueError(f"{ckpt_path} is an inference export (weights "
                                 f"{ckpt.get('weights_dtype')}, no optimizer state): it cannot "
                                 "be resumed; resume the training checkpoint it came from")
            supernet.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            step, losses, seconds = ckpt["step"], list(ckpt["losses"]), ckpt["seconds"]
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
        last = recipe.steps if stop_after is None else min(recipe.steps, step + stop_after)
        start = time.perf_counter()

        def save() -> dict[str, Any]:
            record = dict(format=SUPERNET_FORMAT, recipe=recipe.to_dict(), seed=seed,
                          data=data_record, dataset=dataset.describe(),
                          space=space_to_dict(space), num_classes=dataset.num_classes,
                          in_chans=dataset.in_chans, step=step, losses=losses,
                          seconds=seconds + time.perf_counter() - start)
            if init_record is not None:
                record["init_from"] = dict(path=str(init_from), fingerprint=init_record)
            if rank == 0:
                save_atomic(dict(record, model=supernet.state_dict(),
                                  optimizer=optimizer.state_dict()), ckpt_path)
                save_atomic(dict(record, world_size=world, backend=(
                    torch.distributed.get_backend() if world > 1 else None),
                    device=str(device), threads=torch.get_num_threads(),
                    torch=torch.__version__, machine=platform.machine(),
                    complete=step >= recipe.steps), out / RECORD_NAME)
            return record

        from tqdm import tqdm

        bar = tqdm(total=last - step, desc="supernet", unit="step",
                   disable=not progress or rank != 0, leave=False)
        while step < last:
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * lr_factor(step, recipe.steps, recipe.warmup_fraction)
            indices = rank_share(global_batch(len(dataset.train), recipe.batch_size, seed, step),
                                 rank, world)
            images, labels = gather(dataset.train, torch.as_tensor(indices))
            ce, kd = sandwich_step(supernet, optimizer, images.to(device), labels.to(device),
                                   step_subnets(supernet, seed, step, recipe.random_subnets,
                                                full_attention=recipe.full_attention_subnet),
                                   recipe)
            if not (np.isfinite(ce) and np.isfinite(kd)):
                raise ValueError(f"supernet training diverged at step {step}: loss {ce}, kd {kd}")
            losses.append(dict(step=step, loss=ce, kd=kd,
                               lr=optimizer.param_groups[0]["lr"]))
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{ce:.3f}", kd=f"{kd:.3f}")
            if step % recipe.save_every == 0 and step < last:
                save()
        bar.close()
        return save()
