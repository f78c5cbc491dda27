"""A weight-sharing supernet over the search space (Once-for-All / AutoFormer style).

One set of weights (`SuperNet`) serves every point of a `SearchSpace`; a subnet is an ordinary
`EdgeViTConfig` of that space and runs as a plain `EdgeViT` whose tensors are slices of the
shared ones (`SuperNet.subnet_state`). How the weights are shared:

- widths: the supernet holds, per stage, the largest width of the space, W = max(head_dim ×
  width_mult) (48 × mult for the default space). A subnet of width w takes the first w
  channels of every tensor: rows and columns of linear and 1×1 weights, channels of stems,
  depthwise kernels, norms and the classifier's first w inputs.
- heads: the first w channels are split into w // head_dim heads of head_dim channels, as
  `EdgeViTConfig.num_heads` says; so head_dim = 32 and 48 subnets of one width read the same
  channels grouped differently (and scale by their own head_dim^-½). The fused qkv projection
  (3W × W) is sliced per chunk: rows [0, w), [W, W + w), [2W, 2W + w) — q, k and v keep
  their own first channels.
- depth: the first `depths[i]` blocks of stage i.
- MLP: the first int(w × mlp_ratio) hidden units of fc1's rows and fc2's columns (the
  supernet's hidden width is int(W × max mlp_ratio)).
- sample rate r: the sampler and the attention have no r-dependent weights, and r = 1 simply
  skips LocalAgg and the post-propagation LayerNorm (those are shared by every r > 1). LocalProp
  is a depthwise ConvTranspose2d(kernel = stride = r): its r×r kernel is the pattern each
  delegate paints on its own window. Patterns of different r are not nested — the top-left 2×2
  of an 8×8 pattern paints a quarter of the window — so the supernet keeps ONE KERNEL (and
  bias) PER r VALUE a stage may take (`attn.local_props[str(r)]`, W·(r² + 1) parameters each),
  trained only by the subnets that use that r.

Training (`train_supernet`): the sandwich rule with in-place distillation (Yu & Huang 2019,
BigNAS, NASViT): every step runs the largest subnet on the labels (cross-entropy with label
smoothing), then the smallest and `random_subnets` uniformly random ones against the largest's
detached soft predictions (KL divergence at temperature T, × T²), accumulating all gradients
before one AdamW step. Largest = every maximum (head_dim, widths, depths, mlp_ratio) and the
smallest r > 1 of each stage (LocalAgg present, densest delegates); smallest = every minimum
and the largest r. Neither takes r = 1, so the full-attention path (no LocalAgg, every token a
delegate) learns only when a random subnet draws it; `full_attention_subnet` adds, each step,
the largest widths with r = 1 wherever the stage allows it, distilled like the others. The
learning rate follows `analysis.accuracy.training.lr_factor` (linear warm-up, cosine to 0) as
a pure function of the step.

Randomness is counter-based, so resuming needs no generator state beyond the step: the data
order of epoch e is a permutation drawn from `default_rng([seed, e])`, and the random subnets of
step s come from `default_rng([seed, s, 1])`. A checkpoint (`supernet.pt`, every `save_every`
steps and at the end) holds the weights, AdamW's state, the step, the loss curve, the recipe,
the space, the data and the seed, and loads with `torch.load(weights_only=True)`;
`supernet.json` beside it records the same in JSON (plus wall time and machine). N steps in one
run and N/2 + resume + N/2 give the same weights bit for bit on one machine and thread count.

Distributed (`torchrun --nproc-per-node N edgevit supernet train ...`): every rank draws the
same subnets and takes its contiguous share of each global batch (global batch B, B % N == 0);
BatchNorm statistics are all-reduced across ranks during training (`CrossRankBatchNorm2d`), so
every rank normalises with the global batch's statistics exactly as one process would; the
gradients are summed over ranks by one all-reduce per step and divided by N (the data-parallel
all-reduce of DistributedDataParallel, done by hand because a sandwich step runs 2 + k
forward/backward passes and leaves the per-r kernels of unsampled r without gradients, which DDP
handles only with `find_unused_parameters` and `no_sync`). gloo on CPUs, NCCL where CUDA exists
(one GPU per rank, `LOCAL_RANK`). Only rank 0 writes files.

Evaluation (`evaluate_subnet`): the subnet is extracted (`extract_subnet`: a plain `EdgeViT`
with copied weights), its BatchNorm statistics are recalibrated on `calib_images` training
images (running averages reset, then a cumulative average over the batches in train mode), and
top-1 is measured on the first `eval_images` held-out images by the fused subnet.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from analysis.cost import DEFAULT_SPACE, SearchSpace
from edgevit.config import EdgeViTConfig
from edgevit.fuse import fold_batchnorms
from edgevit.layers import DeconvProp
from edgevit.model import EdgeViT

from .datasets import ImageDataset, gather, load_dataset
from .training import DEFAULT_THREADS, lr_factor, torch_threads

SUPERNET_FORMAT = "edgevit-supernet/1"
CHECKPOINT_NAME = "supernet.pt"
RECORD_NAME = "supernet.json"
SKELETON_CACHE = 16  # subnet modules kept (their structure only is used)
# Evaluation defaults, sized for seconds per subnet on one core: XXS at 64×64 on this shared
# 2-core machine took 0.15 s to extract, 1 s to recalibrate on 256 images, 2.7 s (fused) to
# score 1,000 held-out images. The study scores the whole held-out split (eval_images=None).
CALIB_IMAGES = 256
EVAL_IMAGES = 1000


# ---- the space, serialised -------------------------------------------------------------------

def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """JSON-ready description of a search space (inverse: `space_from_dict`)."""
    return dict(head_dims=list(space.head_dims),
                width_mults=[list(v) for v in space.width_mults],
                depths=[list(v) for v in space.depths], rates=[list(v) for v in space.rates],
                mlp_ratios=list(space.mlp_ratios), base=space.base.to_dict())


def space_from_dict(data: dict[str, Any]) -> SearchSpace:
    return SearchSpace(head_dims=tuple(data["head_dims"]),
                       width_mults=tuple(tuple(v) for v in data["width_mults"]),
                       depths=tuple(tuple(v) for v in data["depths"]),
                       rates=tuple(tuple(v) for v in data["rates"]),
                       mlp_ratios=tuple(float(v) for v in data["mlp_ratios"]),
                       base=EdgeViTConfig.from_dict(data["base"]))


def _extreme_params(space: SearchSpace, largest: bool) -> dict[str, Any]:
    pick = max if largest else min
    params: dict[str, Any] = {"head_dim": pick(space.head_dims),
                              "mlp_ratio": pick(space.mlp_ratios)}
    for i in range(4):
        params[f"width_mult_{i}"] = pick(space.width_mults[i])
        params[f"depth_{i}"] = pick(space.depths[i])
        above_one = [r for r in space.rates[i] if r > 1]
        params[f"rate_{i}"] = (min(above_one) if above_one else 1) if largest else max(
            space.rates[i])
    return params


def largest_config(space: SearchSpace = DEFAULT_SPACE) -> EdgeViTConfig:
    """The sandwich's teacher: every maximum, and the smallest r > 1 of each stage."""
    return space.decode(_extreme_params(space, True)).replace(name="supernet_largest")


def smallest_config(space: SearchSpace = DEFAULT_SPACE) -> EdgeViTConfig:
    """Every minimum and the largest r of each stage."""
    return space.decode(_extreme_params(space, False)).replace(name="supernet_smallest")


def full_attention_config(space: SearchSpace = DEFAULT_SPACE) -> EdgeViTConfig:
    """Every maximum, and r = 1 (full attention, no LocalAgg) in each stage that allows it;
    a stage without r = 1 keeps the largest config's r."""
    params = _extreme_params(space, True)
    for i in range(4):
        if 1 in space.rates[i]:
            params[f"rate_{i}"] = 1
    return space.decode(params).replace(name="supernet_full_attention")


# ---- BatchNorm across ranks --------------------------------------------------------------------

def _world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _SumOverRanks(torch.autograd.Function):
    """y = Σ_ranks x on every rank; the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        torch.distributed.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of `x` over the ranks of the process group."""
    return _SumOverRanks.apply(x)


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the batch over every rank.

    Sums and sums of squares per channel and the pixel count are summed over ranks (with
    autograd, `all_reduce`), so N ranks with B/N images each normalise as one process with B
    images would (up to float rounding: E[x²] − E[x]² here). Running statistics are not
    updated: the supernet recalibrates them per subnet.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        c = x.shape[1]
        count = x.new_full((1,), x.numel() // c)
        stats = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count])  # (2C+1,)
        stats = all_reduce(stats)
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean  # biased, as BatchNorm normalises
        scale = torch.rsqrt(var + self.eps) * self.weight
        shift = self.bias - mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def _cross_rank_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm2d replaced by a CrossRankBatchNorm2d (same shapes)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, CrossRankBatchNorm2d(child.num_features, eps=child.eps))
        else:
            _cross_rank_batchnorm(child)
    return module


# ---- the supernet ------------------------------------------------------------------------------

class SuperNet(nn.Module):
    """Shared weights of every subnet of `space` (see the module doc for the sharing rules).

    `body` is an EdgeViT of the largest widths, depths and MLP, with r = 2 wherever the stage
    allows an r > 1 (so LocalAgg and the LayerNorm after propagation exist); its LocalProp is
    replaced by `attn.local_props`, one DeconvProp per r > 1 of the stage. `forward(x,
    config)` runs one subnet on the shared weights; gradients flow into them.
    """

    def __init__(self, space: SearchSpace = DEFAULT_SPACE, *, num_classes: int,
                 in_chans: int) -> None:
        super().__init__()
        base = space.base
        if (base.global_attn, base.local_prop, base.local_agg) != ("sparse", "deconv", "conv"):
            raise ValueError("the supernet supports the release's blocks only (global_attn "
                             "sparse, local_prop deconv, local_agg conv)")
        self.space, self.num_classes, self.in_chans = space, num_classes, in_chans
        self.largest = self.subnet_config(largest_config(space))
        self.smallest = self.subnet_config(smallest_config(space))
        self.full_attention = self.subnet_config(full_attention_config(space))
        has_prop = [any(r > 1 for r in space.rates[i]) for i in range(4)]
        super_config = self.largest.replace(
            sample_rates=tuple(2 if p else 1 for p in has_prop), name="supernet")
        self.body = EdgeViT(super_config)
        for i, stage in enumerate(self.body.stages):
            for block in stage.blocks:
                if not has_prop[i]:
                    continue
                attn = block.global_block.attn
                del attn.local_prop
                attn.local_props = nn.ModuleDict({
                    str(r): DeconvProp(dim=super_config.widths[i], rate=r)
                    for r in space.rates[i] if r > 1})
        self._skeletons: OrderedDict[tuple[str, bool], EdgeViT] = OrderedDict()

    # configs

    def subnet_config(self, config: EdgeViTConfig) -> EdgeViTConfig:
        """`config` with this supernet's classes and channels; ValueError when it is not a
        point of the space (any num_classes/in_chans are accepted and replaced)."""
        base = self.space.base
        self.space.encode(config.replace(num_classes=base.num_classes, in_chans=base.in_chans))
        return config.replace(num_classes=self.num_classes, in_chans=self.in_chans)

    def sample(self, rng: np.random.Generator) -> EdgeViTConfig:
        """A uniformly random subnet."""
        return self.subnet_config(self.space.decode(self.space.sample(rng)).replace(
            name="supernet_random"))

    # weights

    def _source_name(self, name: str, config: EdgeViTConfig) -> str:
        """The supernet tensor a subnet tensor is sliced from."""
        if ".attn.local_prop." in name:
            stage = int(name.split(".")[1])
            return "body." + name.replace(".attn.local_prop.",
                                          f".attn.local_props.{config.sample_rates[stage]}.")
        return "body." + name

    def subnet_state(self, config: EdgeViTConfig, *, buffers: bool = True,
                     skeleton: EdgeViT | None = None) -> dict[str, torch.Tensor]:
        """The subnet's state dict as slices of the shared tensors (differentiable views);
        `buffers=False` leaves the BatchNorm statistics out."""
        config = self.subnet_config(config)
        shared = dict(self.named_parameters())
        if buffers:
            shared.update(self.named_buffers())
        skeleton = skeleton or self._skeleton(config, cross_rank=False)
        out = {}
        for name, target in skeleton.state_dict(keep_vars=True).items():
            source = self._source_name(name, config)
            if source not in shared:
                continue  # a buffer left out
            out[name] = _first_slice(shared[source], tuple(target.shape),
                                     qkv=name.endswith("attn.qkv.weight")
                                     or name.endswith("attn.qkv.bias"))
        return out

    def _skeleton(self, config: EdgeViTConfig, cross_rank: bool) -> EdgeViT:
        """A module of the subnet's structure (its own tensors are never used), cached."""
        key = (config.to_json(), cross_rank)
        if key in self._skeletons:
            self._skeletons.move_to_end(key)
            return self._skeletons[key]
        with torch.random.fork_rng(devices=[]):  # building draws weights: keep the generator
            skeleton = EdgeViT(config)
        if cross_rank:
            _cross_rank_batchnorm(skeleton)
        self._skeletons[key] = skeleton
        while len(self._skeletons) > SKELETON_CACHE:
            self._skeletons.popitem(last=False)
        return skeleton

    def forward(self, x: torch.Tensor, config: EdgeViTConfig) -> torch.Tensor:
        """Logits of subnet `config` on the shared weights.

        Training: batch statistics (across ranks when a process group of > 1 ranks is up),
        running statistics untouched. Eval: the supernet's BatchNorm buffers, sliced — which
        training leaves at their initial values (statistics belong to a subnet: score through
        `evaluate_subnet`, which recalibrates them).
        """
        config = self.subnet_config(config)
        cross_rank = self.training and _world()[1] > 1
        skeleton = self._skeleton(config, cross_rank).train(self.training)
        state = self.subnet_state(config, buffers=not self.training, skeleton=skeleton)
        if self.training:  # BatchNorm updates running stats in place: give it scratch copies
            state.update({name: buf.to(x.device, copy=True)
                          for name, buf in skeleton.named_buffers()})
        return functional_call(skeleton, state, (x,), strict=True)


def _first_slice(tensor: torch.Tensor, shape: tuple[int, ...], *, qkv: bool) -> torch.Tensor:
    """The leading `shape` block of `tensor`; a fused qkv tensor per q, k and v chunk."""
    if tensor.shape == shape:
        return tensor
    if len(shape) != tensor.dim():
        raise ValueError(f"cannot slice {tuple(tensor.shape)} to {shape}")
    if qkv:
        chunks = tensor.reshape(3, tensor.shape[0] // 3, *tensor.shape[1:])  # (3, W, ...)
        inner = (shape[0] // 3, *shape[1:])
        return chunks[(slice(None), *(slice(0, n) for n in inner))].reshape(shape)
    return tensor[tuple(slice(0, n) for n in shape)]


def extract_subnet(supernet: SuperNet, config: EdgeViTConfig) -> EdgeViT:
    """A standalone `EdgeViT` of `config` with the supernet's weights (and BatchNorm buffers)
    copied; in eval mode its outputs equal `supernet.eval()(x, config)`."""
    config = supernet.subnet_config(config)
    with torch.device("meta"):  # shapes only: no initial weights drawn, every tensor assigned
        model = EdgeViT(config)
    state = {k: v.detach().clone()
             for k, v in supernet.subnet_state(config, skeleton=model).items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Sequence[torch.Tensor]) -> nn.Module:
    """Reset every BatchNorm's running statistics, then set them to the exact average over
    `batches` (momentum None: a cumulative average), running the model with its BatchNorms
    alone in train mode (so a model fused with `fold_batchnorm=False` recalibrates too);
    returns `model` in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for images in batches:
        model(images)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


# ---- evaluation --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SubnetScore:
    """A subnet's held-out top-1 with inherited weights."""

    top1: float
    correct: int
    n_test: int
    calib_images: int
    seconds: float  # extraction, recalibration and evaluation
    prefix_correct: dict[int, int] = field(default_factory=dict)  # M -> correct of the first M

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recalibrated_subnet(supernet: SuperNet, config: EdgeViTConfig, dataset: ImageDataset, *,
                        calib_images: int = CALIB_IMAGES, batch_size: int = 256, seed: int = 0,
                        fuse: bool = True) -> EdgeViT:
    """The subnet of `config` (`extract_subnet`) in eval mode, its BatchNorm statistics
    recalibrated on `calib_images` training images drawn by a shuffle seeded with `seed` (in
    batches of `batch_size`); fused for inference (`EdgeViT.fuse`) unless `fuse` is False."""
    model = extract_subnet(supernet, config)
    n_calib = min(calib_images, len(dataset.train))
    order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed))
    calib = [gather(dataset.train, order[i:i + batch_size])[0]
             for i in range(0, n_calib, batch_size)]
    calib[-1] = calib[-1][:n_calib - batch_size * (len(calib) - 1)]
    if fuse:  # recalibrate on the fast form, then fold the fresh statistics
        model.fuse(fold_batchnorm=False)
        return fold_batchnorms(recalibrate_batchnorm(model, calib))
    return recalibrate_batchnorm(model, calib)


def evaluate_subnet(supernet: SuperNet, config: EdgeViTConfig, dataset: ImageDataset, *,
                    calib_images: int = CALIB_IMAGES, eval_images: int | None = EVAL_IMAGES,
                    batch_size: int = 256, seed: int = 0, fuse: bool = True,
                    prefixes: Sequence[int] = ()) -> SubnetScore:
    """Extract, recalibrate BatchNorm on `calib_images` training images (a seeded draw), and
    measure top-1 on the first `eval_images` held-out images (all when None) — with the
    subnet in its fused inference form (`EdgeViT.fuse`, outputs equal to float32 rounding;
    measured 1.35× faster on the XXS preset at 64×64) unless `fuse` is False. `prefixes`
    also counts the correct among the first M held-out images for each M ≤ n_test (what a
    smaller `eval_images` would have scored, from the same pass)."""
    start = time.perf_counter()
    model = recalibrated_subnet(supernet, config, dataset, calib_images=calib_images,
                                batch_size=batch_size, seed=seed, fuse=fuse)
    n_calib = min(calib_images, len(dataset.train))
    n_test = len(dataset.test) if eval_images is None else min(eval_images, len(dataset.test))
    correct, prefix_correct = 0, {}
    marks = sorted({int(m) for m in prefixes if 0 < m <= n_test})
    with torch.inference_mode():
        for i in range(0, n_test, batch_size):
            images, labels = gather(dataset.test, torch.arange(i, min(i + batch_size, n_test)))
            hits = model(images).argmax(dim=1) == labels  # (B,)
            for m in marks:
                if i < m <= i + len(labels):
                    prefix_correct[m] = correct + int(hits[:m - i].sum())
            correct += int(hits.sum())
    return SubnetScore(top1=correct / n_test, correct=correct, n_test=n_test,
                       calib_images=n_calib, seconds=time.perf_counter() - start,
                       prefix_correct=prefix_correct)


# ---- training ----------------------------------------------------------------------------------

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
    _, world = _world()
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


def _checkpoint_path(path: str | Path) -> Path:
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() or not path.suffix else path


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(obj, (dict, list)) and path.suffix == ".json":
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def _process_group() -> Iterator[tuple[int, int, torch.device]]:
    """(rank, world, device): under torchrun (WORLD_SIZE > 1) a process group is started —
    NCCL and this rank's GPU where CUDA exists, else gloo on the CPU — and closed after."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world <= 1 or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        rank, world = _world()
        yield rank, world, device
        return
    torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield torch.distributed.get_rank(), torch.distributed.get_world_size(), device
    finally:
        torch.distributed.destroy_process_group()


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
    with _process_group() as (rank, world, device), torch_threads(
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
                _save_atomic(dict(record, model=supernet.state_dict(),
                                  optimizer=optimizer.state_dict()), ckpt_path)
                _save_atomic(dict(record, world_size=world, backend=(
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


# ---- loading -----------------------------------------------------------------------------------

_LOADED: dict[tuple[str, int], tuple[SuperNet, dict[str, Any]]] = {}


def load_supernet(path: str | Path) -> tuple[SuperNet, dict[str, Any]]:
    """(supernet in eval mode, its record) from a checkpoint file or its folder; cached by path
    and modification time. ValueError naming the problem when it is missing or not ours."""
    ckpt_path = _checkpoint_path(path)
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
    src_path, dst = _checkpoint_path(src), Path(dst)
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
    _save_atomic(dict(record, model=model), dst)
    return record


def supernet_dataset(record: dict[str, Any]) -> ImageDataset:
    """The dataset a supernet was trained on, at its resolution (held-out split for scores)."""
    data = record["data"]
    return load_dataset(data["source"], data["img_size"], max_per_class=data["max_per_class"])
