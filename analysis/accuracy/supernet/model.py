"""The supernet module: one set of weights for every point of a `SearchSpace`, and the plain
`EdgeViT` a subnet is extracted as.

A subnet is an ordinary `EdgeViTConfig` of the space and runs as a plain `EdgeViT` whose
tensors are slices of the shared ones (`SuperNet.subnet_state`). How the weights are shared:

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
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from analysis.cost import DEFAULT_SPACE, SearchSpace
from edgevit.config import EdgeViTConfig
from edgevit.layers import DeconvProp
from edgevit.model import EdgeViT

from .distributed import rank_and_world, with_cross_rank_batchnorm
from .space import full_attention_config, largest_config, smallest_config

SKELETON_CACHE = 16  # subnet modules kept (their structure only is used)


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
            with_cross_rank_batchnorm(skeleton)
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
        cross_rank = self.training and rank_and_world()[1] > 1
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
