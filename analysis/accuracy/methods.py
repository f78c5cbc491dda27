"""The search's accuracy axis: one interface over zero-cost proxies, short training and a
weight-sharing supernet.

A method is a string:

  proxy:NAME    a zero-cost proxy of the untrained network on one real mini-batch (64 training
                images of the bundled digits unless `data` names another dataset), in seconds on
                a CPU; NAME in `analysis.accuracy.proxies.PROXIES` (synflow, jacob_cov, snip,
                grad_norm, params, macs). The result is the proxy's score (higher = predicted
                more accurate; `AccuracyMethod.scale` says what it is).
  train:digits  short training (`analysis.accuracy.training.TrainRecipe`) on scikit-learn's
                bundled digits at 32×32, one channel; the result is held-out top-1 in [0, 1].
  train:fashion-mnist  the same on Fashion-MNIST (Debian's dataset-fashion-mnist; 32×32 unless
                `img_size` says otherwise; `analysis.accuracy.fashion_mnist`).
  train:PATH    the same on an ImageFolder tree (`analysis.accuracy.datasets`), RGB at 224×224
                unless `img_size` says otherwise.
  supernet:CKPT the subnet of a trained weight-sharing supernet (`analysis.accuracy.supernet`,
                checkpoint file CKPT or its folder): weights inherited, BatchNorm statistics
                recalibrated, held-out top-1 on the supernet's own dataset and resolution.

Where a method runs is part of its name, because a method's trust is measured on one dataset
at one resolution (`analysis.accuracy.trust`): a proxy takes `@DATA/SIZE`, `@DATA` or `@SIZE`
(proxy:synflow@fashion-mnist/64: synflow on a Fashion-MNIST batch at 64×64), short training
`@SIZE` (train:fashion-mnist@64); a supernet's checkpoint fixes both. The canonical string
(`str(AccuracyMethod)`) leaves out what is the default (digits for proxies, each dataset's
default side: 32 for digits and Fashion-MNIST, 224 for a folder), so proxy:jacob_cov and
proxy:jacob_cov@digits/32 are one method.

Given a seed, every method is deterministic on one machine and thread count (default one
thread; see `analysis.accuracy.training`). The committed study (`benchmarks/accuracy_proxies.py`
-> `analysis/accuracy/data/accuracy_proxy_study.json`) measures how far each proxy ranks configs
like short training does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.runtime import torch_threads
from edgevit.config import MAX_IMG_SIZE, MIN_IMG_SIZE, EdgeViTConfig

from .datasets import (
    DIGITS,
    FASHION_MNIST,
    DatasetError,
    ImageDataset,
    check_image_folder,
    default_img_size,
    first_batch,
    load_dataset,
)
from .proxies import PROXIES, PROXY_MEANINGS, compute_proxy
from .training import (
    DEFAULT_THREADS,
    TrainRecipe,
    build_model,
    train_and_evaluate,
)

METHOD_KINDS = ("proxy", "train", "supernet")
PROXY_BATCH_SIZE = 64
TOP1_SCALE = "held-out top-1 in [0, 1]"
STUDY_JSON = Path(__file__).resolve().parent / "data" / "accuracy_proxy_study.json"


@dataclass(frozen=True)
class AccuracyMethod:
    """A parsed method string: kind `proxy`, `train` or `supernet`; the proxy name, the dataset
    source or the checkpoint path; where it runs (`data`: a proxy's dataset, None for the
    digits; `img_size`: input side in pixels, None for the dataset's default)."""

    kind: str
    name: str
    data: str | None = None
    img_size: int | None = None

    @classmethod
    def parse(cls, method: str) -> AccuracyMethod:
        """`proxy:NAME[@DATA/SIZE|@DATA|@SIZE] | train:digits|fashion-mnist|PATH[@SIZE] |
        supernet:CKPT`; ValueError naming what is wrong."""
        kind, sep, name = str(method).partition(":")
        if kind not in METHOD_KINDS or not sep or not name:
            raise ValueError(f"accuracy method {method!r}: expected proxy:NAME, train:digits, "
                             "train:fashion-mnist, train:PATH or supernet:CKPT (a proxy may "
                             "add @DATA/SIZE, training @SIZE)")
        data = size = None
        if kind == "proxy" and "@" in name:
            name, _, where = name.partition("@")
            data, slash, side = where.rpartition("/")
            if not slash:
                data, side = (None, where) if where.isdigit() else (where, "")
            if data == "" or (side and not side.isdigit()) or not (data or side) or (
                    slash and not side):
                raise ValueError(f"accuracy method {method!r}: after @ a proxy takes DATA/SIZE, "
                                 "DATA or SIZE (proxy:synflow@fashion-mnist/64)")
            size = int(side) if side else None
        elif kind == "train" and "@" in name:
            base, _, side = name.rpartition("@")
            if side.isdigit():
                name, size = base, int(side)
            elif base in (DIGITS, FASHION_MNIST):
                raise ValueError(f"accuracy method {method!r}: training takes @SIZE (its data "
                                 f"is its name): train:{base}@64")
        if kind == "proxy" and name not in PROXIES:
            raise ValueError(f"accuracy method {method!r}: unknown proxy; known: "
                             f"{', '.join(PROXIES)}")
        if size is not None and size < MIN_IMG_SIZE:
            raise ValueError(f"accuracy method {method!r}: input side {size} is below the "
                             f"{MIN_IMG_SIZE} pixels EdgeViT needs")
        if size is not None and size > MAX_IMG_SIZE:
            raise ValueError(f"accuracy method {method!r}: input sides above {MAX_IMG_SIZE} "
                             "pixels are not supported")
        return cls(kind, name, data, size)

    @property
    def source(self) -> str | None:
        """The dataset it scores on (None for a supernet: its checkpoint says)."""
        if self.kind == "supernet":
            return None
        return self.name if self.kind == "train" else self.data or DIGITS

    @property
    def scale(self) -> str:
        """What a value of this method is: a proxy's registered meaning, else top-1 (for a
        supernet, of which trained supernet: `supernet_digest` and step, read from the
        checkpoint; ValueError when it does not load). Trials report it beside each value,
        so values of two scales (a proxy redefined by an upgrade, a checkpoint retrained in
        place between a search and its resume) are never put on one front."""
        if self.kind == "proxy":
            return PROXY_MEANINGS[self.name]
        if self.kind == "supernet":
            from .supernet import load_supernet, supernet_digest

            record = load_supernet(self.name)[1]
            return f"{TOP1_SCALE} by supernet {supernet_digest(record)} (step {record['step']})"
        return TOP1_SCALE

    def check_source(self) -> None:
        """ValueError when what the method reads cannot serve it: a train:PATH that is not a
        folder, a supernet:CKPT that does not load as a supernet. A search checks this before
        its first trial, instead of every trial failing. Fashion-MNIST is checked for its
        folder (the install command named when it is missing)."""
        if self.source == FASHION_MNIST:
            from .fashion_mnist import fashion_mnist_dir, missing_message

            if not fashion_mnist_dir().is_dir():
                raise DatasetError(f"accuracy method {self}: "
                                   f"{missing_message(fashion_mnist_dir())}")
        elif self.source not in (None, DIGITS):
            try:
                check_image_folder(self.source)
            except DatasetError as err:
                raise DatasetError(f"accuracy method {self}: {err}") from None
        if self.kind == "supernet":
            from .supernet import load_supernet

            load_supernet(self.name)

    def __str__(self) -> str:
        """The canonical string: defaults left out (see the module doc)."""
        if self.kind == "supernet":
            return f"supernet:{self.name}"
        size = self.img_size if self.img_size != default_img_size(self.source) else None
        if self.kind == "train":
            return f"train:{self.name}" + (f"@{size}" if size else "")
        data = self.data if self.data not in (None, DIGITS) else None
        where = "/".join(filter(None, (data, str(size) if size else None)))
        return f"proxy:{self.name}" + (f"@{where}" if where else "")


@dataclass(frozen=True)
class AccuracyResult:
    """One evaluation. `accuracy`: held-out top-1 in [0, 1] (train) or the raw proxy score."""

    method: str
    accuracy: float
    model: str
    seconds: float  # wall time of the evaluation, data loading excluded
    seed: int
    dataset: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)  # recipe and training outcome

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AccuracyEvaluator:
    """Scores configs with one method; the dataset is loaded once, on first use.

    `epochs` overrides the recipe's (train only); `max_per_class` trains on a tiny slice;
    `data` is where proxies take their mini-batch and `img_size` the input side, when the
    method string does not say (default: the digits at the dataset's side; a method string
    and an argument that disagree are a ValueError). A supernet method
    scores on the supernet's own dataset and resolution (`img_size`, `data`, `epochs` and
    `max_per_class` do not apply); `calib_images` and `eval_images` set its BatchNorm
    recalibration and held-out sizes (`analysis.accuracy.supernet.evaluate_subnet`).
    """

    def __init__(self, method: str, *, img_size: int | None = None, epochs: int | None = None,
                 seed: int = 0, recipe: TrainRecipe | None = None,
                 max_per_class: int | None = None, data: str | None = None,
                 proxy_batch_size: int = PROXY_BATCH_SIZE, threads: int = DEFAULT_THREADS,
                 progress: bool = False, calib_images: int = 256,
                 eval_images: int | None = 1000) -> None:
        parsed = AccuracyMethod.parse(method)
        for what, named, given in (("dataset", parsed.data, data),
                                   ("input side", parsed.img_size, img_size)):
            if named is not None and given is not None and named != given:
                raise ValueError(f"accuracy method {method}: its {what} {named} disagrees with "
                                 f"the {given} asked for")
        if parsed.kind == "proxy":
            parsed = replace(parsed, data=parsed.data or data)
        if parsed.kind != "supernet":
            parsed = replace(parsed, img_size=parsed.img_size or img_size)
        self.method = parsed
        recipe = recipe or TrainRecipe()
        if epochs is not None:
            recipe = TrainRecipe(**{**recipe.to_dict(), "epochs": epochs})
        self.recipe = recipe
        self.img_size, self.seed, self.threads = parsed.img_size, seed, threads
        self.progress = progress
        self.max_per_class, self.proxy_batch_size = max_per_class, proxy_batch_size
        self.calib_images, self.eval_images = calib_images, eval_images
        self.source = parsed.source
        self._dataset: ImageDataset | None = None

    @property
    def dataset(self) -> ImageDataset:
        if self._dataset is None:
            if self.method.kind == "supernet":
                from .supernet import load_supernet, supernet_dataset

                self._dataset = supernet_dataset(load_supernet(self.method.name)[1])
            else:
                self._dataset = load_dataset(self.source, self.img_size,
                                             max_per_class=self.max_per_class)
        return self._dataset

    def evaluate(self, config: EdgeViTConfig) -> AccuracyResult:
        """Score one config (see the module doc for what `accuracy` means per method)."""
        dataset = self.dataset
        if self.method.kind == "proxy":
            start = time.perf_counter()
            with torch_threads(self.threads):
                images, labels = first_batch(dataset.train, self.proxy_batch_size, self.seed)
                model = build_model(config, dataset, self.seed)
                score = compute_proxy(self.method.name, model, images, labels)
            details: dict[str, Any] = dict(batch_size=len(labels))
            seconds = time.perf_counter() - start
        elif self.method.kind == "supernet":
            from .supernet import evaluate_subnet, load_supernet

            supernet, record = load_supernet(self.method.name)
            with torch_threads(self.threads):
                scored = evaluate_subnet(supernet, config, dataset, seed=self.seed,
                                         calib_images=self.calib_images,
                                         eval_images=self.eval_images)
            score, seconds = scored.top1, scored.seconds
            details = dict(supernet_step=record["step"], supernet_recipe=record["recipe"],
                           **scored.to_dict())
        else:
            trained = train_and_evaluate(config, dataset, self.recipe, seed=self.seed,
                                         threads=self.threads, progress=self.progress)
            score, seconds = trained.top1, trained.seconds
            details = dict(recipe=self.recipe.to_dict(), **trained.to_dict())
        return AccuracyResult(method=str(self.method), accuracy=float(score), model=config.name,
                              seconds=seconds, seed=self.seed, dataset=dataset.describe(),
                              details=details)

    def __call__(self, config: EdgeViTConfig) -> float:
        return self.evaluate(config).accuracy


def make_evaluator(method: str, *, img_size: int | None = None, epochs: int | None = None,
                   seed: int = 0, progress: bool = False) -> Callable[[EdgeViTConfig], float]:
    """config -> accuracy score for `method` (what `analysis.nas.objectives` calls)."""
    return AccuracyEvaluator(method, img_size=img_size, epochs=epochs, seed=seed,
                             progress=progress)


def proxy_scores(config: EdgeViTConfig, dataset: ImageDataset,
                 names: tuple[str, ...] = tuple(PROXIES), *, seed: int = 0,
                 batch_size: int = PROXY_BATCH_SIZE,
                 threads: int = DEFAULT_THREADS) -> dict[str, tuple[float, float]]:
    """Every proxy of one untrained config: name -> (score, seconds of that proxy alone).

    The model is built once under `seed` (its time is not in any proxy's seconds).
    """
    out = {}
    with torch_threads(threads):
        images, labels = first_batch(dataset.train, batch_size, seed)
        model = build_model(config, dataset, seed)
        for name in names:
            start = time.perf_counter()
            score = compute_proxy(name, model, images, labels)
            out[name] = (score, time.perf_counter() - start)
    return out


# ---- the committed study --------------------------------------------------------------------

def load_study(path: str | Path = STUDY_JSON) -> dict[str, Any]:
    """The study's JSON (see `benchmarks/accuracy_proxies.py` for its fields)."""
    return json.loads(Path(path).read_text())


def study_arrays(study: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                 dict[str, float]]:
    """(accuracy (N,), proxy name -> scores (N,), proxy name -> mean seconds per config).

    The training itself appears in the seconds as "train".
    """
    rows = study["configs"]
    accuracy = np.array([r["accuracy"] for r in rows], dtype=np.float64)
    names = list(study["proxies"])
    scores = {n: np.array([r["proxies"][n] for r in rows], dtype=np.float64) for n in names}
    seconds = {n: float(np.mean([r["proxy_seconds"][n] for r in rows])) for n in names}
    seconds["train"] = float(np.mean([r["train_seconds"] for r in rows]))
    return accuracy, scores, seconds


def cheapest_comparable(table: list[dict[str, Any]]) -> dict[str, Any]:
    """The row to use by default: the cheapest method (fewest seconds per config) whose τ is
    positive and not below the lower end of the best method's τ interval (the best itself
    when none is). `table` rows need `tau`, `tau_ci` and `seconds`, as
    `rank_stats.correlation_table` gives them when passed seconds."""
    finite = [r for r in table if np.isfinite(r["tau"])]
    if not finite:
        raise ValueError("no method has a finite τ")
    best = max(finite, key=lambda r: r["tau"])
    comparable = [r for r in finite if r["tau"] >= best["tau_ci"][0] and r["tau"] > 0] or [best]
    return min(comparable, key=lambda r: (r["seconds"], -r["tau"]))
