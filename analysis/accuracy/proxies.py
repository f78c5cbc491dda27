"""Zero-cost accuracy proxies: one score per untrained network from one real mini-batch.

Every proxy has one signature, `(model, images (B, C, H, W), labels (B,)) -> float`, higher
meaning "predicted more accurate", and is registered once in `PROXIES`. The model is the
untrained network adapted to the dataset; proxies work on their own copy, so the caller's
weights and buffers are never changed.

synflow    Tanaka et al. 2020, as used by Abdelfattah et al. 2021 ("Zero-cost proxies"):
           float64 copy, every parameter replaced by its absolute value, BatchNorm in eval
           mode, one all-ones input (1, C, H, W); R = sum of the logits;
           score = log10 Σ |θ ⊙ ∂R/∂θ| over conv / linear / transposed-conv weights. The sum
           grows like a product over layers (≈ 1e3 … 1e16 across the search space at 64×64),
           so its log10 is reported: the same ranking, on a scale a search can normalise.
jacob_cov  Mellor et al. 2021, "NAS without training" (arXiv v1, the Jacobian-covariance score,
           "NASWOT" v1): J = ∂(Σ logits)/∂x per image (eval mode), flattened; C = corrcoef(J);
           score = −Σ_i [log(λ_i + 1e-5) + 1/(λ_i + 1e-5)] over the eigenvalues λ of C.
snip       Lee et al. 2019: Σ |θ ⊙ ∂L/∂θ| over conv / linear weights, L the batch's
           cross-entropy (train mode).
grad_norm  Σ over the same weights of ‖∂L/∂θ‖₂ (per weight tensor), as in Abdelfattah et al.
params     log10 of the parameter count (a trivial baseline).
macs       log10 of the exact multiply-accumulates at the batch's H×W (`analysis.cost.ops`).

A score that comes out NaN or infinite raises ValueError: it is not an accuracy estimate.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.cost import model_cost
from edgevit import EdgeViT, EdgeViTConfig

ProxyFn = Callable[[EdgeViT, torch.Tensor, torch.Tensor], float]
PRUNABLE = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
JACOB_EPS = 1e-5  # added to the eigenvalues before log and reciprocal (as in the reference)

PROXIES: dict[str, ProxyFn] = {}
PROXY_MEANINGS: dict[str, str] = {}  # name -> what its score is, for every output's label


def register_proxy(name: str, meaning: str) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator: add a proxy under `name`, its score described by `meaning` (shown beside
    every score the search reports); a name registered twice is an error."""

    def add(fn: ProxyFn) -> ProxyFn:
        if name in PROXIES:
            raise ValueError(f"proxy {name!r} is already registered")
        PROXIES[name] = fn
        PROXY_MEANINGS[name] = meaning
        return fn

    return add


def prunable_weights(model: nn.Module) -> list[nn.Parameter]:
    """Weights of every convolution, transposed convolution and linear layer, in module order."""
    return [m.weight for m in model.modules() if isinstance(m, PRUNABLE)]


def _loss_gradients(model: EdgeViT, images: torch.Tensor,
                    labels: torch.Tensor) -> tuple[list[nn.Parameter], list[torch.Tensor]]:
    """(prunable weights, ∂CE/∂weight) of a train-mode copy on the batch."""
    net = copy.deepcopy(model).train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(images), labels).backward()
    weights = prunable_weights(net)
    grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in weights]
    return weights, grads


@register_proxy("synflow", "log10 of the synaptic flow Σ|θ·∂R/∂θ|")
def synflow(model: EdgeViT, images: torch.Tensor, labels: torch.Tensor) -> float:
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64)
    net.zero_grad(set_to_none=True)
    net(ones).sum().backward()
    with torch.no_grad():
        flow = float(sum((w * w.grad).abs().sum() for w in prunable_weights(net)
                         if w.grad is not None))
    return math.log10(flow) if flow > 0 else -math.inf  # no flow at all: not a score


@register_proxy("jacob_cov", "the Jacobian-covariance score of NAS without training")
def jacob_cov(model: EdgeViT, images: torch.Tensor, labels: torch.Tensor) -> float:
    net = copy.deepcopy(model).eval()
    x = images.clone().requires_grad_(True)
    net(x).sum().backward()
    jacobians = x.grad.reshape(len(x), -1).double().numpy()  # (B, C·H·W)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jacobians)  # (B, B); a constant row gives NaN
    corr = np.nan_to_num(corr, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    eigenvalues = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
    return float(-np.sum(np.log(eigenvalues + JACOB_EPS) + 1.0 / (eigenvalues + JACOB_EPS)))


@register_proxy("snip", "the SNIP saliency Σ|θ·∂L/∂θ|")
def snip(model: EdgeViT, images: torch.Tensor, labels: torch.Tensor) -> float:
    weights, grads = _loss_gradients(model, images, labels)
    with torch.no_grad():
        return float(sum((w * g).abs().sum() for w, g in zip(weights, grads)))


@register_proxy("grad_norm", "the summed gradient norms Σ‖∂L/∂θ‖")
def grad_norm(model: EdgeViT, images: torch.Tensor, labels: torch.Tensor) -> float:
    _, grads = _loss_gradients(model, images, labels)
    return float(sum(g.norm() for g in grads))


# The trivial baselines need no network: log10 of the cost model's exact counts, (macs, params)
# arrays of any shape -> scores. The search scores the whole enumerated space with them.
COST_BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "params": lambda macs, params: np.log10(np.asarray(params, dtype=np.float64)),
    "macs": lambda macs, params: np.log10(np.asarray(macs, dtype=np.float64)),
}


def cost_baseline(name: str, config: EdgeViTConfig,
                  img_size: tuple[int, int] = (224, 224)) -> float:
    """The cost baseline `name` of one config at an H×W input."""
    cost = model_cost(config, img_size)
    return float(COST_BASELINES[name](cost.macs, cost.params))


def _image_size(images: torch.Tensor) -> tuple[int, int]:
    return int(images.shape[-2]), int(images.shape[-1])


@register_proxy("params", "log10 of the parameter count")
def log_params(model: EdgeViT, images: torch.Tensor, labels: torch.Tensor) -> float:
    return cost_baseline("params", model.config, _image_size(images))


@register_proxy("macs", "log10 of the multiply-accumulates")
def log_macs(model: EdgeViT, images: torch.Tensor, labels: torch.Tensor) -> float:
    return cost_baseline("macs", model.config, _image_size(images))


def compute_proxy(name: str, model: EdgeViT, images: torch.Tensor,
                  labels: torch.Tensor) -> float:
    """The proxy `name` of an untrained `model` on a batch; ValueError if unknown or not finite.

    The global torch generator is left as it was (no proxy draws from it today).
    """
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; known: {', '.join(PROXIES)}")
    with torch.random.fork_rng(devices=[]):
        score = PROXIES[name](model, images, labels)
    if not math.isfinite(score):
        raise ValueError(f"proxy {name} of {model.config.name} is {score}: not finite")
    return score
