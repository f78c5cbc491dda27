"""The Fashion-MNIST IDX reader on hand-made files, and on the real files when installed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.accuracy import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_ENV,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    DatasetError,
    gather,
    load_dataset,
    load_fashion_mnist,
    read_idx,
    read_split,
)


def idx_bytes(magic: int, array: np.ndarray, dims: tuple[int, ...] | None = None) -> bytes:
    dims = array.shape if dims is None else dims
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + array.tobytes()


def write_split(root: Path, prefix: str, n: int, *, gz: bool = True, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for stem, data in ((f"{prefix}-images-idx3-ubyte", idx_bytes(IMAGE_MAGIC, images)),
                       (f"{prefix}-labels-idx1-ubyte", idx_bytes(LABEL_MAGIC, labels))):
        if gz:
            (root / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (root / stem).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_a_hand_made_idx_file_reads_back(tmp_path, gz) -> None:
    write_split(tmp_path, "t10k", 30, gz=gz)
    images, labels = read_split(tmp_path, "test", expected_count=30)
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [i % 10 for i in range(30)]
    expected = np.random.default_rng(0).integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(images, expected)


def test_bad_magic_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(0x00000802, np.zeros((2, 28, 28), np.uint8)))
    with pytest.raises(DatasetError, match=r"bad IDX magic number 0x00000802, expected 0x00000803"):
        read_idx(path, magic=IMAGE_MAGIC, shape=(None, 28, 28))
    gz = tmp_path / "x-idx3-ubyte.gz"
    gz.write_bytes(b"not gzip at all, long enough to have a trailer")
    with pytest.raises(DatasetError, match="not a gzip file"):
        read_idx(gz, magic=IMAGE_MAGIC, shape=(None, 28, 28))


def test_wrong_dimensions_are_a_clear_error(tmp_path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(IMAGE_MAGIC, np.zeros((2, 32, 28), np.uint8)))
    with pytest.raises(DatasetError, match=r"dimensions 2×32×28, expected N×28×28"):
        read_idx(path, magic=IMAGE_MAGIC, shape=(None, 28, 28))


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_files_are_clear_errors(tmp_path, gz) -> None:
    data = idx_bytes(IMAGE_MAGIC, np.ones((5, 28, 28), np.uint8))[:-100]
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path, magic=IMAGE_MAGIC, shape=(None, 28, 28))
    if gz:  # a gzip stream cut short: its trailer is gone too
        path.write_bytes(gzip.compress(idx_bytes(IMAGE_MAGIC, np.ones((5, 28, 28),
                                                                      np.uint8)))[:-30])
        with pytest.raises(DatasetError, match="truncated or corrupt"):
            read_idx(path, magic=IMAGE_MAGIC, shape=(None, 28, 28))
    path.write_bytes(b"\x00\x00")
    if not gz:
        with pytest.raises(DatasetError, match="truncated IDX file"):
            read_idx(path, magic=IMAGE_MAGIC, shape=(None, 28, 28))


def test_an_absurd_declared_size_is_refused_before_allocating(tmp_path) -> None:
    path = tmp_path / "x"
    header = struct.pack(">I", IMAGE_MAGIC) + struct.pack(">3I", 4_000_000_000, 28, 28)
    path.write_bytes(header + bytes(784))
    with pytest.raises(DatasetError, match="declares 3,136,000,000,000 bytes"):
        read_idx(path, magic=IMAGE_MAGIC, shape=(None, 28, 28))
    path.write_bytes(struct.pack(">I", IMAGE_MAGIC) + struct.pack(">3I", 1000, 28, 28)
                     + bytes(784))
    with pytest.raises(DatasetError, match=r"declares 784,016 bytes, the file has 800 \(truncated"):
        read_idx(path, magic=IMAGE_MAGIC, shape=(None, 28, 28))
    path.write_bytes(idx_bytes(LABEL_MAGIC, np.zeros(3, np.uint8)) + b"extra")
    with pytest.raises(DatasetError, match="trailing bytes"):
        read_idx(path, magic=LABEL_MAGIC, shape=(None,))


def test_wrong_counts_and_labels_are_clear_errors(tmp_path) -> None:
    write_split(tmp_path, "t10k", 20)
    with pytest.raises(DatasetError, match="the test split has 20 images, expected 10,000"):
        read_split(tmp_path, "test")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(LABEL_MAGIC, np.zeros(19, np.uint8))))
    with pytest.raises(DatasetError, match="the test split has 19 labels, expected 20"):
        read_split(tmp_path, "test", expected_count=20)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(LABEL_MAGIC, np.full(20, 10, np.uint8))))
    with pytest.raises(DatasetError, match="label 10 outside 0..9"):
        read_split(tmp_path, "test", expected_count=20)


def test_a_missing_dataset_names_the_install_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="sudo apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="neither train-images-idx3-ubyte.gz nor"):
        read_split(tmp_path / "empty", "train")


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed "
                           "(sudo apt-get install dataset-fashion-mnist)")
def test_the_real_files(monkeypatch) -> None:
    monkeypatch.delenv(FASHION_MNIST_ENV, raising=False)
    data = load_fashion_mnist(32, max_per_class=30, max_test=200)
    assert data.describe() == dict(name="fashion-mnist", n_train=300, n_test=200,
                                   num_classes=10, in_chans=1, img_size=32)
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    images, labels = gather(data.train, torch.arange(300))
    assert images.shape == (300, 1, 32, 32)
    assert np.bincount(labels.numpy(), minlength=10).tolist() == [30] * 10
    # the official test split starts with an ankle boot, a pullover and two trousers
    assert data.test.labels[:4].tolist() == [9, 2, 1, 1]
    # standardised with the training pixels' statistics (0.2860 / 0.3530)
    assert data.train.mean == pytest.approx(0.2860, abs=1e-3)
    assert data.train.std == pytest.approx(0.3530, abs=1e-3)
    item, label = data.test[0]
    assert item.shape == (1, 32, 32) and int(label) == 9
