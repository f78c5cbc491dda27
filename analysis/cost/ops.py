"""Exact closed-form cost of EdgeViT in sympy: multiply-accumulates (`macs`) and parameters.

Convention (`macs`, one multiply-add = 1): convolutions (grouped and transposed too), linear
layers and attention matmuls, nothing else. Everything else an op does (norms, softmax, GELU,
pooling, interpolation, residual adds, bias adds) is an *elementwise* term, kept per op kind as
the number of elements it produces (`numel_out`) and reads (`numel_in`), so a counter's own rules
can be applied to the same inventory (see `analysis.counters`).

Every block is a list of `Op` records whose fields are sympy expressions in the symbols below;
a whole model is the blocks evaluated at each stage's map size. Symbols (one block, one stage):

  h, w   map height and width at the block (tokens N = h·w)
  c      channels;  n  attention heads (head dim c/n);  m  MLP ratio (hidden = ⌊m·c⌋)
  k      LocalAgg depthwise kernel (also the LSA window);  r  sample rate
  K      classes;  C_in input channels of a stem;  s  stem stride

A map whose side is not a multiple of r (or of the LSA window k) is zero-padded to the next
multiple: ⌈h/r⌉·r. The stems floor: ⌊H/s⌋.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import sympy as sp

from edgevit.config import EdgeViTConfig, stage_sizes

h, w, c, n, k, r = sp.symbols("h w c n k r", positive=True, integer=True)
m = sp.Symbol("m", positive=True)  # the MLP ratio is a real number (4.0, 3.5, ...)
K, C_in, s = sp.symbols("K C_in s", positive=True, integer=True)

MAC_KINDS = ("conv", "deconv", "linear", "matmul")
ELEMENTWISE_KINDS = (
    "layer_norm", "batch_norm", "softmax", "gelu", "add", "bias", "scale",
    "avg_pool", "max_pool", "interpolate", "mean",
)


@dataclass(frozen=True)
class Op:
    """One operation of a block, with its cost as sympy expressions.

    `module`: the submodule path relative to the block (as in `named_modules`).
    `kind`: one of MAC_KINDS or ELEMENTWISE_KINDS ("bias" = the bias add of a conv/linear).
    `macs`: multiply-adds (0 for elementwise kinds); `params`: learnable parameters it owns.
    `numel_in` / `numel_out`: elements read / written (batch 1).
    `detail`: shape facts a counter's rule may need, e.g. the kernel area of a pooling.
    """

    module: str
    kind: str
    macs: sp.Expr = sp.Integer(0)
    params: sp.Expr = sp.Integer(0)
    numel_in: sp.Expr = sp.Integer(0)
    numel_out: sp.Expr = sp.Integer(0)
    detail: tuple[tuple[str, sp.Expr], ...] = ()


def hidden(channels: sp.Expr = c, ratio: sp.Expr = m) -> sp.Expr:
    """FFN hidden width ⌊ratio·c⌋ (the release's int(dim * mlp_ratio))."""
    return sp.floor(ratio * channels)


def padded(size: sp.Expr, multiple: sp.Expr) -> sp.Expr:
    """⌈size / multiple⌉ · multiple."""
    return sp.ceiling(size / multiple) * multiple


# ---- primitive ops --------------------------------------------------------------------------

def conv_ops(
    module: str, *, c_in: sp.Expr, c_out: sp.Expr, kernel_area: sp.Expr, groups: sp.Expr,
    out_pixels: sp.Expr, in_pixels: sp.Expr, bias: bool = True,
) -> list[Op]:
    """Conv2d: out_pixels · c_out · (c_in/groups) · kernel_area multiply-adds (+ bias add)."""
    ops = [Op(module, "conv",
              macs=out_pixels * c_out * (c_in / groups) * kernel_area,
              params=c_out * (c_in / groups) * kernel_area + (c_out if bias else 0),
              numel_in=in_pixels * c_in, numel_out=out_pixels * c_out,
              detail=(("kernel_area", kernel_area), ("groups", groups)))]
    if bias:
        ops.append(Op(module, "bias", numel_in=out_pixels * c_out, numel_out=out_pixels * c_out))
    return ops


def depthwise_deconv_ops(module: str, *, channels: sp.Expr, in_pixels: sp.Expr,
                         stride: sp.Expr) -> list[Op]:
    """Depthwise ConvTranspose2d(kernel=stride, stride=stride): each input pixel writes a
    stride×stride patch once, so in_pixels · stride² · c = out_pixels · c multiply-adds."""
    out_pixels = in_pixels * stride**2
    return [
        Op(module, "deconv", macs=in_pixels * stride**2 * channels,
           params=stride**2 * channels + channels,
           numel_in=in_pixels * channels, numel_out=out_pixels * channels,
           detail=(("kernel_area", stride**2), ("groups", channels))),
        Op(module, "bias", numel_in=out_pixels * channels, numel_out=out_pixels * channels),
    ]


def linear_ops(module: str, *, tokens: sp.Expr, c_in: sp.Expr, c_out: sp.Expr,
               bias: bool = True) -> list[Op]:
    """Linear on `tokens` rows: tokens · c_in · c_out multiply-adds (+ bias add)."""
    ops = [Op(module, "linear", macs=tokens * c_in * c_out,
              params=c_in * c_out + (c_out if bias else 0),
              numel_in=tokens * c_in, numel_out=tokens * c_out)]
    if bias:
        ops.append(Op(module, "bias", numel_in=tokens * c_out, numel_out=tokens * c_out))
    return ops


def attention_ops(module: str, *, queries: sp.Expr, keys: sp.Expr, channels: sp.Expr,
                  heads: sp.Expr, groups: sp.Expr = sp.Integer(1)) -> list[Op]:
    """softmax(q·kᵀ)·v for `groups` independent groups (LSA windows), summed over heads:
    q·kᵀ and attn·v each cost queries · keys · c per group (heads · d = c)."""
    scores = groups * heads * queries * keys
    return [
        Op(f"{module}@qk", "matmul", macs=groups * queries * keys * channels,
           numel_in=2 * groups * queries * channels, numel_out=scores),
        Op(f"{module}@scale", "scale", numel_in=scores, numel_out=scores),
        Op(f"{module}@softmax", "softmax", numel_in=scores, numel_out=scores),
        Op(f"{module}@av", "matmul", macs=groups * queries * keys * channels,
           numel_in=scores + groups * keys * channels, numel_out=groups * queries * channels),
    ]


def norm_op(module: str, kind: str, *, numel: sp.Expr, channels: sp.Expr) -> Op:
    """LayerNorm or BatchNorm over `numel` elements with an affine weight and bias per channel."""
    return Op(module, kind, params=2 * channels, numel_in=numel, numel_out=numel)


def add_op(module: str, numel: sp.Expr) -> Op:
    return Op(module, "add", numel_in=2 * numel, numel_out=numel)


# ---- blocks ---------------------------------------------------------------------------------

def ffn_ops(prefix: str, *, tokens: sp.Expr, conv: bool) -> list[Op]:
    """FFN fc1 -> GELU -> fc2 at hidden ⌊m·c⌋ (1×1 convs in LocalAgg, linears elsewhere)."""
    e = hidden()
    if conv:
        fc1 = conv_ops(f"{prefix}.fc1", c_in=c, c_out=e, kernel_area=1, groups=1,
                       out_pixels=tokens, in_pixels=tokens)
        fc2 = conv_ops(f"{prefix}.fc2", c_in=e, c_out=c, kernel_area=1, groups=1,
                       out_pixels=tokens, in_pixels=tokens)
    else:
        fc1 = linear_ops(f"{prefix}.fc1", tokens=tokens, c_in=c, c_out=e)
        fc2 = linear_ops(f"{prefix}.fc2", tokens=tokens, c_in=e, c_out=c)
    return fc1 + [Op(f"{prefix}.act", "gelu", numel_in=tokens * e, numel_out=tokens * e)] + fc2


def position_encoding_ops(prefix: str) -> list[Op]:
    """x + dw3×3(x) (conditional position encoding)."""
    conv = conv_ops(f"{prefix}.pos_embed", c_in=c, c_out=c, kernel_area=9, groups=c,
                    out_pixels=h * w, in_pixels=h * w)
    return conv + [add_op(f"{prefix}.pos_embed@add", h * w * c)]


def lsa_mixer_ops(prefix: str, qkv_bias: bool = True) -> list[Op]:
    """Twins' locally-grouped attention in k×k windows of the map zero-padded to k multiples."""
    hp, wp = padded(h, k), padded(w, k)
    windows = (hp / k) * (wp / k)
    tokens = hp * wp
    return (
        linear_ops(f"{prefix}.qkv", tokens=tokens, c_in=c, c_out=3 * c, bias=qkv_bias)
        + attention_ops(prefix, queries=k**2, keys=k**2, channels=c, heads=n, groups=windows)
        + linear_ops(f"{prefix}.proj", tokens=tokens, c_in=c, c_out=c)
    )


def conv_mixer_ops(prefix: str) -> list[Op]:
    """LocalAgg's pw -> dw k×k -> pw."""
    hw = h * w
    return (
        conv_ops(f"{prefix}.conv1", c_in=c, c_out=c, kernel_area=1, groups=1,
                 out_pixels=hw, in_pixels=hw)
        + conv_ops(f"{prefix}.dwconv", c_in=c, c_out=c, kernel_area=k**2, groups=c,
                   out_pixels=hw, in_pixels=hw)
        + conv_ops(f"{prefix}.conv2", c_in=c, c_out=c, kernel_area=1, groups=1,
                   out_pixels=hw, in_pixels=hw)
    )


def local_agg_ops(local_agg: str, prefix: str = "local_agg", qkv_bias: bool = True) -> list[Op]:
    """The first L: x + dw3×3(x); x + mixer(BN(x)); x + ConvFFN(BN(x))."""
    if local_agg == "none":
        return []
    hwc = h * w * c
    mixer = (conv_mixer_ops(f"{prefix}.mixer") if local_agg == "conv"
             else lsa_mixer_ops(f"{prefix}.mixer", qkv_bias))
    return (
        position_encoding_ops(prefix)
        + [norm_op(f"{prefix}.norm1", "batch_norm", numel=hwc, channels=c)]
        + mixer
        + [add_op(f"{prefix}.mixer@add", hwc),
           norm_op(f"{prefix}.norm2", "batch_norm", numel=hwc, channels=c)]
        + ffn_ops(f"{prefix}.mlp", tokens=h * w, conv=True)
        + [add_op(f"{prefix}.mlp@add", hwc)]
    )


def sampled_size() -> tuple[sp.Expr, sp.Expr]:
    """Delegate grid ⌈h/r⌉ × ⌈w/r⌉."""
    return sp.ceiling(h / r), sp.ceiling(w / r)


def sampler_ops(prefix: str, sampler: str) -> list[Op]:
    """One delegate per r×r window of the padded map: a strided pick (no work) or a pooling."""
    hs, ws = sampled_size()
    if sampler in ("top_left", "center"):
        return []
    kind = "avg_pool" if sampler == "avg" else "max_pool"
    return [Op(f"{prefix}.sampler", kind, numel_in=hs * ws * r**2 * c, numel_out=hs * ws * c,
               detail=(("kernel_area", r**2),))]


def sparse_attn_ops(prefix: str, *, rate_is_one: bool, sampler: str, local_prop: str,
                    qkv_bias: bool = True) -> list[Op]:
    """GlobalSparseAttn: sample, q/k/v + attention on the delegates, LocalProp, norm, proj."""
    hw = h * w
    if rate_is_one:
        return (
            linear_ops(f"{prefix}.qkv", tokens=hw, c_in=c, c_out=3 * c, bias=qkv_bias)
            + attention_ops(prefix, queries=hw, keys=hw, channels=c, heads=n)
            + linear_ops(f"{prefix}.proj", tokens=hw, c_in=c, c_out=c)
        )
    hs, ws = sampled_size()
    delegates = hs * ws
    if local_prop == "deconv":
        prop = depthwise_deconv_ops(f"{prefix}.local_prop", channels=c, in_pixels=delegates,
                                    stride=r)
    else:
        prop = [Op(f"{prefix}.local_prop", "interpolate", numel_in=delegates * c,
                   numel_out=delegates * r**2 * c)]
    return (
        sampler_ops(prefix, sampler)
        + linear_ops(f"{prefix}.qkv", tokens=delegates, c_in=c, c_out=3 * c, bias=qkv_bias)
        + attention_ops(prefix, queries=delegates, keys=delegates, channels=c, heads=n)
        + prop
        + [norm_op(f"{prefix}.norm", "layer_norm", numel=hw * c, channels=c)]
        + linear_ops(f"{prefix}.proj", tokens=hw, c_in=c, c_out=c)
    )


def sra_ops(prefix: str, *, rate_is_one: bool, qkv_bias: bool = True) -> list[Op]:
    """PVT-v2 spatial-reduction attention: q on all tokens, k/v on an r-strided conv + LN."""
    hw = h * w
    ops = linear_ops(f"{prefix}.q", tokens=hw, c_in=c, c_out=c, bias=qkv_bias)
    if rate_is_one:
        reduced = hw
    else:
        hs, ws = sampled_size()
        reduced = hs * ws
        ops += conv_ops(f"{prefix}.sr", c_in=c, c_out=c, kernel_area=r**2, groups=1,
                        out_pixels=reduced, in_pixels=reduced * r**2)
        ops.append(norm_op(f"{prefix}.norm", "layer_norm", numel=reduced * c, channels=c))
    return (
        ops
        + linear_ops(f"{prefix}.kv", tokens=reduced, c_in=c, c_out=2 * c, bias=qkv_bias)
        + attention_ops(prefix, queries=hw, keys=reduced, channels=c, heads=n)
        + linear_ops(f"{prefix}.proj", tokens=hw, c_in=c, c_out=c)
    )


def global_block_ops(*, global_attn: str, rate_is_one: bool, sampler: str, local_prop: str,
                     qkv_bias: bool = True, prefix: str = "global_block") -> list[Op]:
    """The G(L) half: x + dw3×3(x); x + attn(LN(x)); x + Mlp(LN(x))."""
    hw, hwc = h * w, h * w * c
    if global_attn == "sparse":
        attn = sparse_attn_ops(f"{prefix}.attn", rate_is_one=rate_is_one, sampler=sampler,
                               local_prop=local_prop, qkv_bias=qkv_bias)
    else:
        attn = sra_ops(f"{prefix}.attn", rate_is_one=rate_is_one, qkv_bias=qkv_bias)
    return (
        position_encoding_ops(prefix)
        + [norm_op(f"{prefix}.norm1", "layer_norm", numel=hwc, channels=c)]
        + attn
        + [add_op(f"{prefix}.attn@add", hwc),
           norm_op(f"{prefix}.norm2", "layer_norm", numel=hwc, channels=c)]
        + ffn_ops(f"{prefix}.mlp", tokens=hw, conv=False)
        + [add_op(f"{prefix}.mlp@add", hwc)]
    )


@cache
def lgl_block_ops(*, local_agg: str = "conv", global_attn: str = "sparse",
                  sampler: str = "top_left", local_prop: str = "deconv",
                  rate_is_one: bool = False, qkv_bias: bool = True) -> tuple[Op, ...]:
    """One LGL block at (h, w, c, n, m, k, r). With r = 1 there is no LocalAgg (the release).
    qkv_bias: whether the attention's q/k/v projections carry a bias."""
    local = [] if rate_is_one else local_agg_ops(local_agg, qkv_bias=qkv_bias)
    return tuple(local + global_block_ops(global_attn=global_attn, rate_is_one=rate_is_one,
                                          sampler=sampler, local_prop=local_prop,
                                          qkv_bias=qkv_bias))


@cache
def stem_ops() -> tuple[Op, ...]:
    """Stem: s×s stride-s conv from C_in to c channels on an (h·s)×(w·s) input, then LayerNorm;
    h, w here are the stem's *output* size ⌊H/s⌋, ⌊W/s⌋."""
    return tuple(
        conv_ops("downsample.proj", c_in=C_in, c_out=c, kernel_area=s**2, groups=1,
                 out_pixels=h * w, in_pixels=h * w * s**2)
        + [norm_op("downsample.norm", "layer_norm", numel=h * w * c, channels=c)]
    )


@cache
def head_ops(with_classifier: bool = True) -> tuple[Op, ...]:
    """Final BatchNorm on the h×w×c map, global mean, linear classifier to K classes."""
    ops = [norm_op("norm", "batch_norm", numel=h * w * c, channels=c),
           Op("pool", "mean", numel_in=h * w * c, numel_out=c)]
    if with_classifier:
        ops += linear_ops("head", tokens=1, c_in=c, c_out=K)
    return tuple(ops)


def total(ops: Iterable[Op], field: str = "macs") -> sp.Expr:
    """Sum of one field over ops."""
    return sp.Add(*(getattr(op, field) for op in ops))


# ---- a whole model --------------------------------------------------------------------------

BLOCK_ARGS = (h, w, c, n, m, k, r)
STEM_ARGS = (h, w, c, C_in, s)
HEAD_ARGS = (h, w, c, K)


@dataclass(frozen=True)
class OpCost:
    """One op of a concrete model, evaluated: `module` is its full module path."""

    module: str
    kind: str
    macs: int
    params: int
    numel_in: int
    numel_out: int
    detail: dict


@dataclass(frozen=True)
class ModelCost:
    """Exact cost of one model at one input size (batch 1)."""

    config: EdgeViTConfig
    img_size: tuple[int, int]
    ops: tuple[OpCost, ...]

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def flops(self) -> int:
        """2 × macs (the torch FlopCounterMode convention)."""
        return 2 * self.macs

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    @property
    def largest_tensor_numel(self) -> int:
        """Elements of the largest tensor any op writes (batch 1): activation memory's scale."""
        return max(max(op.numel_out, op.numel_in) for op in self.ops)

    def _per_kind(self, kinds: tuple[str, ...], field: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.ops:
            if op.kind in kinds:
                out[op.kind] = out.get(op.kind, 0) + getattr(op, field)
        return out

    @property
    def elementwise(self) -> dict[str, int]:
        """Elements written per elementwise kind (outside the `macs` convention)."""
        return self._per_kind(ELEMENTWISE_KINDS, "numel_out")

    def by_kind(self) -> dict[str, int]:
        """macs per MAC kind (conv, deconv, linear, matmul)."""
        return self._per_kind(MAC_KINDS, "macs")

    def by_module(self, depth: int | None = None) -> dict[str, int]:
        """macs per module path, truncated to `depth` dotted components when given."""
        out: dict[str, int] = {}
        for op in self.ops:
            name = op.module.split("@")[0]
            if depth is not None:
                name = ".".join(name.split(".")[:depth])
            out[name] = out.get(name, 0) + op.macs
        return out

    def by_stage(self) -> list[int]:
        """macs of each of the four stages (stem + blocks); the head is left out."""
        return [sum(v for key, v in self.by_module(2).items() if key == f"stages.{i}")
                for i in range(4)]


@cache
def _op_evaluator(ops: tuple[Op, ...], args: tuple[sp.Symbol, ...]):
    """A numpy function of `args` returning, per op, (macs, params, numel_in, numel_out)."""
    rows = [[op.macs, op.params, op.numel_in, op.numel_out] for op in ops]
    return sp.lambdify(args, rows, modules="numpy")


def _evaluate(ops: tuple[Op, ...], args: tuple[sp.Symbol, ...], values: tuple,
              prefix: str) -> list[OpCost]:
    rows = _op_evaluator(ops, args)(*values)
    substitutions = dict(zip(args, values))
    out = []
    for op, (macs, params, numel_in, numel_out) in zip(ops, rows):
        detail = {name: int(sp.sympify(expr).subs(substitutions)) for name, expr in op.detail}
        out.append(OpCost(f"{prefix}{op.module}", op.kind, _to_int(macs), _to_int(params),
                          _to_int(numel_in), _to_int(numel_out), detail))
    return out


def _to_int(value: float) -> int:
    rounded = round(float(value))
    if abs(float(value) - rounded) > 1e-6:
        raise ArithmeticError(f"non-integer cost {value!r}: a formula is wrong")
    return int(rounded)


def model_cost(config: EdgeViTConfig, img_size: tuple[int, int] = (224, 224)) -> ModelCost:
    """Every op of `config` at an H×W input, evaluated exactly (batch 1)."""
    ops: list[OpCost] = []
    for i, (sh, sw) in enumerate(stage_sizes(img_size)):
        stem, block = config.stem_config(i), config.block_config(i)
        ops += _evaluate(stem_ops(), STEM_ARGS, (sh, sw, stem.out_chans, stem.in_chans,
                                                 stem.stride), f"stages.{i}.")
        block_ops = lgl_block_ops(rate_is_one=block.rate == 1, **block.switches)
        values = (sh, sw, block.dim, block.num_heads, config.mlp_ratio, block.kernel, block.rate)
        for j in range(config.depths[i]):
            ops += _evaluate(block_ops, BLOCK_ARGS, values, f"stages.{i}.blocks.{j}.")
    (fh, fw), head = stage_sizes(img_size)[-1], config.head_config()
    ops += _evaluate(head_ops(head.num_classes > 0), HEAD_ARGS,
                     (fh, fw, head.dim, head.num_classes), "")
    return ModelCost(config, tuple(img_size), tuple(ops))
