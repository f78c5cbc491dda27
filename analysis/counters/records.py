"""Records: what a counter reports (`CounterResult`), one torch-level call of a forward (`OpCall`)
with its kind (`API_KINDS`), and the data-movement ops no counter lists as uncounted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Ops without arithmetic (views, layout copies, slicing, padding, allocation, metadata), matched
# on the base name with namespace and overload stripped ("aten::view", "aten.view",
# "Tensor.view" -> "view"). They are never listed as uncounted.
DATA_MOVEMENT_OPS = frozenset({
    "Int", "ScalarImplicit", "__get__", "__getitem__", "_reshape_alias", "_to_copy",
    "_unsafe_view", "alias", "as_strided", "cat", "chunk", "clone", "constant_pad_nd",
    "contiguous", "copy_", "detach", "dim", "empty", "empty_like", "empty_strided", "expand",
    "expand_as", "flatten", "full", "full_like", "is_contiguous", "is_floating_point",
    "lift_fresh", "narrow", "new_empty", "new_empty_strided", "new_zeros", "numel", "ones",
    "ones_like", "pad", "permute", "repeat", "reshape", "scalar_tensor", "select", "size", "slice",
    "split", "split_with_sizes", "squeeze", "stack", "stride", "t", "to", "transpose", "type_as",
    "unbind", "unflatten", "unsqueeze", "view", "zeros", "zeros_like",
})


def base_op_name(name: str) -> str:
    """"aten::layer_norm", "aten.native_layer_norm.default", "Tensor.__getitem__" -> bare name."""
    name = name.split("::")[-1]
    for prefix in ("aten.", "Tensor.", "F.", "torch."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.split(".")[0]


def is_data_movement(name: str) -> bool:
    return base_op_name(name) in DATA_MOVEMENT_OPS


@dataclass(frozen=True)
class CounterResult:
    """What one counter reports for one forward pass, in multiply-adds of the whole batch.

    `by_module`: qualified module name -> MACs of the ops run inside it (descendants included;
    "" is the whole model). `by_op`: the counter's own op key -> MACs. `uncounted_ops`: op ->
    number of calls the counter saw and gave 0 (data movement left out). `attention`: the
    attention path the model ran ("matmul", "sdpa", "mixed", or "none" without attention).
    """

    counter: str
    macs: int
    by_module: dict[str, int]
    by_op: dict[str, int]
    uncounted_ops: dict[str, int]
    attention: str
    notes: tuple[str, ...] = ()

    @property
    def flops(self) -> int:
        """2 × macs (one multiply-add = 2 floating-point operations)."""
        return 2 * self.macs


@dataclass(frozen=True)
class OpCall:
    """One outermost torch-level call made during a forward (the counter-neutral inventory).

    `api`: "F.conv2d", "F.linear", "Tensor.__matmul__" (the `@` operator), "Tensor.matmul" (the
    method), "torch.matmul", "Tensor.softmax", "F.softmax", "Tensor.__getitem__", … .
    `module` / `module_class`: the innermost module whose forward made the call ("" = root) and
    its exact class ("torch.nn.modules.linear.Linear"). `shapes`: shapes of the tensor
    arguments in call order; `out_shape`: shape of the (first) output. `attrs`: what a rule needs
    beyond shapes: `bias`, `affine`, `training`, `contiguous` (of a linear's input), `mode`
    (interpolation), `kernel` (the SDPA kernel that ran: the CPU flash kernel or "math").
    """

    api: str
    module: str
    module_class: str
    shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The op kind in analysis.cost.ops's vocabulary ("conv", "deconv", "matmul", …)."""
        return API_KINDS.get(self.api, "data_movement" if is_data_movement(self.api) else "other")


API_KINDS = {
    "F.conv2d": "conv",
    "F.conv_transpose2d": "deconv",
    "F.linear": "linear",
    "Tensor.__matmul__": "matmul",
    "Tensor.matmul": "matmul",
    "torch.matmul": "matmul",
    "F.scaled_dot_product_attention": "sdpa",
    "Tensor.softmax": "softmax",
    "F.softmax": "softmax",
    "F.gelu": "gelu",
    "F.layer_norm": "layer_norm",
    "F.batch_norm": "batch_norm",
    "F.avg_pool2d": "avg_pool",
    "F.max_pool2d": "max_pool",
    "F.adaptive_avg_pool2d": "mean",
    "Tensor.mean": "mean",
    "F.interpolate": "interpolate",
    "Tensor.__add__": "add",
    "Tensor.add": "add",
    "torch.add": "add",
    "Tensor.__mul__": "scale",
    "Tensor.mul": "scale",
    "torch.mul": "scale",
}


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
