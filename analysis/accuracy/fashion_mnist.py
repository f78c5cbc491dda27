"""Fashion-MNIST (Zalando): 60,000 + 10,000 real 28×28 grey images of 10 clothing classes.

Read offline from the IDX files of Debian's package `dataset-fashion-mnist`
(`/usr/share/datasets/fashion-mnist/`; `EDGEVIT_FASHION_MNIST` names another folder), plain or
gzipped. No download, ever.

IDX format (LeCun's): a big-endian header — two zero bytes, a type byte (0x08 = uint8), the
number of dimensions — then one big-endian uint32 per dimension, then the values in C order.
Images are magic 0x00000803 (N, 28, 28), labels 0x00000801 (N,). The reader checks the magic,
the dimensions, the declared size against the file (before allocating anything: a corrupt
header cannot make it allocate an absurd buffer), truncation, trailing bytes and the official
counts (60,000 train / 10,000 test), and raises `DatasetError` naming the file and what is wrong.

As a suite dataset (`load_fashion_mnist`): the official train/test split (no re-splitting),
one channel, pixels scaled to [0, 1], resized bilinearly to S×S, then standardised with the
training split's mean and std (of the 28×28 pixels: 0.2860 / 0.3530). Images are kept as
uint8 28×28 (55 MB for all 70,000) and resized when read, so S = 64 costs no more memory than
S = 32; `ResizedImages.batch(indices)` resizes a whole mini-batch at once.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .datasets import (
    FASHION_MNIST,
    DatasetError,
    ImageDataset,
    _check_size,
    first_per_class,
)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "EDGEVIT_FASHION_MNIST"  # overrides FASHION_MNIST_DIR
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_IMG_SIZE = 32  # default input side: the smallest EdgeViT accepts
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
SPLIT_COUNTS = {"train": 60_000, "test": 10_000}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
IMAGE_MAGIC = 0x00000803  # uint8, 3 dimensions
LABEL_MAGIC = 0x00000801  # uint8, 1 dimension
IMAGE_SIDE = 28
MAX_IDX_BYTES = 1 << 30  # no IDX file of this suite declares more than 1 GiB of values


def fashion_mnist_dir() -> Path:
    """The folder read: $EDGEVIT_FASHION_MNIST when set, else the Debian package's."""
    override = os.environ.get(FASHION_MNIST_ENV)
    return Path(override).expanduser() if override else FASHION_MNIST_DIR


def _gzip_size(path: Path) -> int:
    """Uncompressed size from a gzip file's ISIZE trailer (exact below 4 GiB)."""
    with path.open("rb") as f:
        if f.read(2) != b"\x1f\x8b":
            raise DatasetError(f"{path}: not a gzip file (no gzip magic bytes)")
        f.seek(0, os.SEEK_END)
        if f.tell() < 18:
            raise DatasetError(f"{path}: truncated gzip file ({f.tell()} bytes)")
        f.seek(-4, os.SEEK_END)
        return struct.unpack("<I", f.read(4))[0]


def read_idx(path: str | Path, *, magic: int, shape: tuple[int | None, ...]) -> np.ndarray:
    """The uint8 array of one IDX file (gzipped when the name ends in .gz).

    `magic`: the expected 4-byte magic number; `shape`: the expected dimensions, None where any
    value goes (the count). DatasetError on a bad magic, wrong dimensions, a declared size that
    the file does not hold, truncation or trailing bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"IDX file not found: {path}")
    gz = path.suffix == ".gz"
    available = _gzip_size(path) if gz else path.stat().st_size  # bytes once decompressed
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            header = f.read(4)
            if len(header) < 4:
                raise DatasetError(f"{path}: truncated IDX file (no 4-byte magic number)")
            found = struct.unpack(">I", header)[0]
            if found != magic:
                raise DatasetError(f"{path}: bad IDX magic number 0x{found:08x}, expected "
                                   f"0x{magic:08x} (not an IDX file of this kind)")
            ndim = magic & 0xFF
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DatasetError(f"{path}: truncated IDX header ({ndim} dimensions declared)")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            if len(dims) != len(shape) or any(e is not None and d != e
                                               for d, e in zip(dims, shape)):
                want = "×".join("N" if e is None else str(e) for e in shape)
                raise DatasetError(f"{path}: dimensions {'×'.join(map(str, dims))}, "
                                   f"expected {want}")
            n_bytes = int(np.prod(dims, dtype=np.int64))
            header_bytes = 4 + 4 * ndim
            declared = header_bytes + n_bytes
            if n_bytes > MAX_IDX_BYTES:
                raise DatasetError(f"{path}: declares {n_bytes:,} bytes of values "
                                   f"(above the {MAX_IDX_BYTES:,} this reader accepts)")
            if gz and declared % (1 << 32) != available:
                raise DatasetError(f"{path}: header declares {declared:,} bytes but the gzip "
                                   f"stream holds {available:,} (truncated or corrupt file)")
            if not gz and declared != available:
                kind = "truncated" if declared > available else "trailing bytes after the values"
                raise DatasetError(f"{path}: header declares {declared:,} bytes, the file has "
                                   f"{available:,} ({kind})")
            data = bytearray(n_bytes)  # writable, so torch can share it without a copy
            view, got = memoryview(data), 0
            while got < n_bytes:
                chunk = f.readinto(view[got:])
                if not chunk:
                    raise DatasetError(f"{path}: truncated: {got:,} of {n_bytes:,} value bytes")
                got += chunk
            if f.read(1):
                raise DatasetError(f"{path}: trailing bytes after the {n_bytes:,} values")
    except (EOFError, OSError, zlib.error) as err:
        raise DatasetError(f"{path}: truncated or corrupt file ({err})") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _idx_path(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: neither {stem}.gz nor {stem} found")


def missing_message(root: Path) -> str:
    return (f"Fashion-MNIST not found in {root}: install Debian's package with "
            f"`sudo apt-get install {FASHION_MNIST_PACKAGE}`, or set {FASHION_MNIST_ENV} to a "
            "folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
            "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)")


def read_split(root: str | Path, split: str, *,
               expected_count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of `split` ('train' or 'test') in `root`.

    `expected_count` defaults to the official count of the split; images and labels must agree
    and every label lie in 0..9.
    """
    if split not in SPLIT_COUNTS:
        raise DatasetError(f"split {split!r}: expected one of {list(SPLIT_COUNTS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(missing_message(root))
    prefix = SPLIT_PREFIX[split]
    images = read_idx(_idx_path(root, f"{prefix}-images-idx3-ubyte"), magic=IMAGE_MAGIC,
                      shape=(None, IMAGE_SIDE, IMAGE_SIDE))
    labels = read_idx(_idx_path(root, f"{prefix}-labels-idx1-ubyte"), magic=LABEL_MAGIC,
                      shape=(None,))
    count = SPLIT_COUNTS[split] if expected_count is None else expected_count
    for what, n in (("images", len(images)), ("labels", len(labels))):
        if n != count:
            raise DatasetError(f"{root}: the {split} split has {n:,} {what}, expected {count:,}")
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise DatasetError(f"{root}: {split} label {int(labels.max())} outside 0..9")
    return images, labels.astype(np.int64)


@lru_cache(maxsize=2)
def _cached_arrays(root: str, stamp: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    del stamp  # part of the cache key only: a changed file is read again
    return (*read_split(root, "train"), *read_split(root, "test"))


def fashion_mnist_arrays(root: str | Path | None = None) -> tuple[np.ndarray, ...]:
    """(train images, train labels, test images, test labels) of the official split, cached."""
    root = Path(root) if root is not None else fashion_mnist_dir()
    if not root.is_dir():
        raise DatasetError(missing_message(root))
    stamp = tuple(p.stat().st_mtime_ns for p in sorted(root.iterdir()) if p.is_file())
    return _cached_arrays(str(root), stamp)


class ResizedImages(Dataset):
    """uint8 (N, h, w) images resized to (1, S, S) float32 and standardised when read."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, img_size: int, mean: float,
                 std: float) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))  # (N, h, w) uint8
        self.labels = torch.from_numpy(np.ascontiguousarray(labels))  # (N,) int64
        self.img_size, self.mean, self.std = img_size, float(mean), float(std)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, 1, S, S), labels (B,)) of `indices` — one resize for the whole batch."""
        x = self.images[indices].float()[:, None] / 255.0  # (B, 1, h, w) in [0, 1]
        if x.shape[-1] != self.img_size or x.shape[-2] != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear",
                              align_corners=False)
        return (x - self.mean) / self.std, self.labels[indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.batch(torch.as_tensor([int(index)]))
        return images[0], labels[0]


def load_fashion_mnist(img_size: int = FASHION_MNIST_IMG_SIZE, *, root: str | Path | None = None,
                       max_per_class: int | None = None, split_seed: int = 0,
                       max_test: int | None = None) -> ImageDataset:
    """Fashion-MNIST at img_size×img_size, one channel, the official split (see module doc).

    `max_per_class` keeps k training images per class (seeded by `split_seed`); `max_test`
    keeps the first n held-out images (the official test order is already class-mixed).
    """
    _check_size(img_size)
    train_x, train_y, test_x, test_y = fashion_mnist_arrays(root)
    pixels = train_x.astype(np.float64) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    train: Dataset = ResizedImages(train_x, train_y, img_size, mean, std)
    if max_per_class is not None:
        kept = first_per_class(train_y, np.arange(len(train_y)), max_per_class, split_seed)
        train = ResizedImages(train_x[kept], train_y[kept], img_size, mean, std)
    if max_test is not None:
        if max_test < 1:
            raise DatasetError(f"max_test {max_test}: must be ≥ 1")
        test_x, test_y = test_x[:max_test], test_y[:max_test]
    return ImageDataset(name=FASHION_MNIST, train=train,
                        test=ResizedImages(test_x, test_y, img_size, mean, std),
                        classes=CLASSES, in_chans=1, img_size=img_size)

