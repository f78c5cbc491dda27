"""Image-classification data for the accuracy evaluators: the bundled digits, or an ImageFolder.

Both give an `ImageDataset`: a train and a held-out split of (image, label) items, every image a
float32 tensor of shape (in_chans, S, S) already normalised, labels in [0, num_classes).

digits   scikit-learn's bundled handwritten digits (`load_digits`: 1,797 real 8×8 grey images,
         10 classes, no download). Pixel values 0..16 are scaled to [0, 1], upsampled bilinearly
         to S×S, then standardised with the training split's mean and std. One channel
         (`in_chans = 1`). Split: stratified, `test_fraction` (0.2: 1,437 train / 360 test)
         drawn with `split_seed`, independent of the training seed.
fashion-mnist  Zalando's Fashion-MNIST from Debian's `dataset-fashion-mnist` (70,000 real 28×28
         grey images, official 60,000 / 10,000 split): see `analysis.accuracy.fashion_mnist`.
folder   torchvision `ImageFolder` layout, PATH/CLASS/IMAGE. When PATH holds `train/` and
         `val/` (or `test/`) class folders (Imagenette, ImageNet) those are the splits;
         otherwise one folder is split stratified as above. Images are decoded as RGB
         (`in_chans = 3`), the short side resized to S, centre-cropped to S×S and normalised
         with the ImageNet mean/std. No augmentation: the recipe stays deterministic.
         A file that is not a regular file (a FIFO, a device), not an image, or larger than
         `MAX_IMAGE_PIXELS` (read from its header, before decoding: a decompression bomb) is a
         `DatasetError` naming it.

`max_per_class` keeps only the first k training images of each class (after a seeded shuffle),
for tiny slices in tests and quick looks; the held-out split is never cut.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from analysis.runtime import regular_file

DIGITS = "digits"
FASHION_MNIST = "fashion-mnist"  # served by analysis.accuracy.fashion_mnist
DIGITS_IMG_SIZE = 32  # default input side for digits: the smallest EdgeViT accepts (H, W ≥ 32)
FOLDER_IMG_SIZE = 224  # default input side for user data: the architecture's design resolution
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# An image above 8192 × 8192 pixels is refused from its header: decoded as RGB it would take
# 200 MB or more before the resize to S×S (Pillow's own guard warns only above 89 Mpx).
MAX_IMAGE_PIXELS = 8192 * 8192


class DatasetError(ValueError):
    """A dataset that cannot be used: missing folder, no images, bad split."""


@dataclass(frozen=True)
class ImageDataset:
    """A train and a held-out split; items are (image (in_chans, S, S) float32, label int)."""

    name: str
    train: Dataset
    test: Dataset
    classes: tuple[str, ...]
    in_chans: int
    img_size: int  # S, pixels

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, object]:
        """JSON-ready summary: name, sizes of both splits, classes, input shape."""
        return dict(name=self.name, n_train=len(self.train), n_test=len(self.test),
                    num_classes=self.num_classes, in_chans=self.in_chans,
                    img_size=self.img_size)


def stratified_split(labels: Sequence[int], test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), each class split in the same proportion; sorted."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction {test_fraction}: must lie in (0, 1)")
    labels = np.asarray(labels)
    try:
        train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                       stratify=labels, random_state=seed)
    except ValueError as err:  # too few images per class for a stratified split
        raise DatasetError(f"cannot split {len(labels)} images stratified: {err}") from None
    return np.sort(train), np.sort(test)


def first_per_class(labels: Sequence[int], indices: np.ndarray, k: int,
                    seed: int) -> np.ndarray:
    """At most `k` of `indices` per class, chosen by a seeded shuffle; sorted."""
    if k < 1:
        raise DatasetError(f"max_per_class {k}: must be ≥ 1")
    labels = np.asarray(labels)
    shuffled = np.random.default_rng(seed).permutation(indices)
    kept: list[int] = []
    counts: dict[int, int] = {}
    for i in shuffled:
        label = int(labels[i])
        if counts.get(label, 0) < k:
            counts[label] = counts.get(label, 0) + 1
            kept.append(int(i))
    return np.sort(np.asarray(kept, dtype=np.int64))


@lru_cache(maxsize=4)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int64)


def load_digits_dataset(img_size: int = DIGITS_IMG_SIZE, *, test_fraction: float = 0.2,
                        split_seed: int = 0, max_per_class: int | None = None) -> ImageDataset:
    """scikit-learn's digits upsampled to img_size×img_size, one channel (see module doc)."""
    import torch.nn.functional as F

    _check_size(img_size)
    images, labels = _digits_arrays()
    train_idx, test_idx = stratified_split(labels, test_fraction, split_seed)
    if max_per_class is not None:
        train_idx = first_per_class(labels, train_idx, max_per_class, split_seed)
    x = torch.from_numpy(images)[:, None]  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std  # (N, 1, S, S), standardised with the training split's statistics
    y = torch.from_numpy(labels)
    return ImageDataset(
        name=DIGITS,
        train=TensorDataset(x[train_idx], y[train_idx]),
        test=TensorDataset(x[test_idx], y[test_idx]),
        classes=tuple(str(c) for c in range(10)),
        in_chans=1,
        img_size=img_size,
    )


def _check_size(img_size: int) -> None:
    from edgevit.config import MIN_IMG_SIZE

    if not isinstance(img_size, int) or img_size < MIN_IMG_SIZE:
        raise DatasetError(f"image size {img_size!r}: EdgeViT needs H, W ≥ {MIN_IMG_SIZE}")


def _class_dirs(root: Path) -> list[Path]:
    """Class folders of `root` that hold at least one image file (searched recursively)."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.rglob("*") if f.is_file()):
            out.append(d)
    return out


def load_rgb(path: str) -> object:
    """The image file `path` decoded as an RGB PIL image; DatasetError naming the file when it
    is not a regular file, not an image Pillow reads, or above `MAX_IMAGE_PIXELS`."""
    from PIL import Image

    try:
        regular_file(path, "image")
    except ValueError as err:
        raise DatasetError(str(err)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as file, Image.open(file) as image:
                pixels = image.width * image.height
                if pixels > MAX_IMAGE_PIXELS:
                    raise DatasetError(f"image {path} is {image.width}×{image.height} pixels, "
                                       f"above the limit of {MAX_IMAGE_PIXELS:,}")
                return image.convert("RGB")
    except DatasetError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DatasetError(f"image {path} is above the limit of {MAX_IMAGE_PIXELS:,} pixels "
                           f"({err})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise DatasetError(f"image {path} cannot be read: {err}") from None


def check_image_folder(path: str | Path) -> Path:
    """`path` as a folder that holds images in ≥ 2 class folders (at either layout of the module
    doc), found without reading them; DatasetError naming what is missing otherwise."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found (or not a folder): {root}")
    split = root / "train" if (root / "train").is_dir() else root
    if len(_class_dirs(split)) < 2:
        raise DatasetError(f"{split}: classification needs ≥ 2 class folders holding images "
                           f"({split}/CLASS/IMAGE, {', '.join(IMAGE_SUFFIXES)})")
    return root


def _image_folder(root: Path, img_size: int) -> Dataset:
    from torchvision import datasets, transforms

    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if not _class_dirs(root):
        raise DatasetError(f"no images in {root}: expected {root}/CLASS/IMAGE "
                           f"({', '.join(IMAGE_SUFFIXES)})")
    transform = transforms.Compose([
        transforms.Resize(img_size),
        transforms.CenterCrop(img_size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    # allow_empty: class folders without images are tolerated; we checked some exist
    return datasets.ImageFolder(str(root), transform=transform, loader=load_rgb,
                                allow_empty=True)


def load_image_folder(path: str | Path, img_size: int = FOLDER_IMG_SIZE, *,
                      test_fraction: float = 0.2, split_seed: int = 0,
                      max_per_class: int | None = None) -> ImageDataset:
    """An ImageFolder tree as RGB img_size×img_size images (see module doc for the layout)."""
    _check_size(img_size)
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"dataset path is not a folder: {root}")
    held_out = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and held_out is not None:
        train_set, test_set = _image_folder(root / "train", img_size), _image_folder(
            held_out, img_size)
        if train_set.classes != test_set.classes:
            raise DatasetError(f"{root}: train/ and {held_out.name}/ have different classes")
        train_idx = np.arange(len(train_set))
        if max_per_class is not None:
            train_idx = first_per_class(train_set.targets, train_idx, max_per_class, split_seed)
        train: Dataset = Subset(train_set, train_idx.tolist())
        test: Dataset = test_set
        classes = tuple(train_set.classes)
    else:
        full = _image_folder(root, img_size)
        train_idx, test_idx = stratified_split(full.targets, test_fraction, split_seed)
        if max_per_class is not None:
            train_idx = first_per_class(full.targets, train_idx, max_per_class, split_seed)
        train, test = Subset(full, train_idx.tolist()), Subset(full, test_idx.tolist())
        classes = tuple(full.classes)
    if len(classes) < 2:
        raise DatasetError(f"{root}: classification needs ≥ 2 class folders, found {len(classes)}")
    return ImageDataset(name=str(root), train=train, test=test, classes=classes, in_chans=3,
                        img_size=img_size)


def default_img_size(source: str) -> int:
    """The input side `load_dataset` uses for `source` when none is given (pixels)."""
    from .fashion_mnist import FASHION_MNIST_IMG_SIZE

    return {DIGITS: DIGITS_IMG_SIZE, FASHION_MNIST: FASHION_MNIST_IMG_SIZE}.get(
        source, FOLDER_IMG_SIZE)


def load_dataset(source: str, img_size: int | None = None, *, test_fraction: float = 0.2,
                 split_seed: int = 0, max_per_class: int | None = None) -> ImageDataset:
    """`digits` (the bundled digits), `fashion-mnist` (Debian's dataset-fashion-mnist, the
    official split; `analysis.accuracy.fashion_mnist`) or the path of an ImageFolder tree;
    default sizes 32 / 32 / 224.

    A folder literally named `digits` or `fashion-mnist` is reached as `./digits`.
    """
    if source == FASHION_MNIST:
        from .fashion_mnist import FASHION_MNIST_IMG_SIZE, load_fashion_mnist

        return load_fashion_mnist(img_size or FASHION_MNIST_IMG_SIZE, split_seed=split_seed,
                                  max_per_class=max_per_class)
    if source == DIGITS:
        return load_digits_dataset(img_size or DIGITS_IMG_SIZE, test_fraction=test_fraction,
                                   split_seed=split_seed, max_per_class=max_per_class)
    return load_image_folder(source, img_size or FOLDER_IMG_SIZE, test_fraction=test_fraction,
                             split_seed=split_seed, max_per_class=max_per_class)


def first_batch(dataset: Dataset, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` items drawn without replacement by a seeded shuffle: images (B, C, S, S),
    labels (B,). The one real mini-batch the zero-cost proxies see."""
    if len(dataset) == 0:
        raise DatasetError("the training split is empty")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    items = [dataset[int(i)] for i in order[:batch_size]]
    images = torch.stack([img for img, _ in items])
    labels = torch.as_tensor([int(label) for _, label in items], dtype=torch.int64)
    return images, labels


def gather(dataset: Dataset, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (B, C, S, S), labels (B,)) of `indices` from any split, in one call where the
    split allows it: a dataset with a `batch(indices)` method (Fashion-MNIST's, which resizes the
    whole batch at once), a `TensorDataset`, or a `Subset` of either; else stacked items."""
    indices = torch.as_tensor(indices, dtype=torch.int64)
    if isinstance(dataset, Subset):
        return gather(dataset.dataset, torch.as_tensor(dataset.indices)[indices])
    if hasattr(dataset, "batch"):
        return dataset.batch(indices)
    if isinstance(dataset, TensorDataset):
        images, labels = dataset.tensors
        return images[indices], labels[indices]
    items = [dataset[int(i)] for i in indices]
    return (torch.stack([img for img, _ in items]),
            torch.as_tensor([int(label) for _, label in items], dtype=torch.int64))
