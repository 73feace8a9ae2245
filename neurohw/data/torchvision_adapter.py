"""Use torchvision datasets (when torchvision is installed) as neurohw splits.

torchvision is optional; nothing here downloads unless asked (``download=True``), and data
already on disk in torchvision's layout (e.g. ``root/MNIST/raw``) is read as is.
"""
from __future__ import annotations

import numpy as np
import torch

from neurohw.data.builtin import DatasetSplit


def tensors_from_dataset(ds, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a torchvision-style dataset of (PIL image or tensor, label) into float tensors.

    Images become float32 (N, C, H, W) in [0, 1]; labels int64 (N,).
    """
    n = len(ds) if limit is None else min(limit, len(ds))
    xs, ys = [], []
    for i in range(n):
        img, label = ds[i]
        if not torch.is_tensor(img):
            arr = np.asarray(img, dtype=np.float32)
            arr = arr / 255.0 if arr.max(initial=0) > 1 else arr
            img = torch.from_numpy(arr[None] if arr.ndim == 2 else np.transpose(arr, (2, 0, 1)).copy())
        xs.append(img.float())
        ys.append(int(label))
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


def load_torchvision(name: str, root: str, download: bool = False, limit: int | None = None) -> DatasetSplit:
    """A torchvision dataset (``MNIST``, ``FashionMNIST``, ``CIFAR10``, …) as a :class:`DatasetSplit`."""
    try:
        import torchvision.datasets as tvd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("torchvision is not installed; use neurohw.data.readers for IDX/CIFAR files") from exc
    if not hasattr(tvd, name):
        raise ValueError(f"torchvision has no dataset {name!r}")
    cls = getattr(tvd, name)
    train = cls(root, train=True, download=download)
    test = cls(root, train=False, download=download)
    xtr, ytr = tensors_from_dataset(train, limit)
    xte, yte = tensors_from_dataset(test, limit)
    return DatasetSplit(name.lower(), xtr, ytr, xte, yte, int(max(ytr.max(), yte.max())) + 1)
