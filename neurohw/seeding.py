"""One helper to seed every random number generator the project uses."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) with ``seed``.

    Returns a ``torch.Generator`` seeded with the same value, for code that wants its own
    stream (data shuffling) without touching the global one. With ``deterministic=True``
    PyTorch is asked for deterministic kernels and TF32 is switched off.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def default_device() -> torch.device:
    """CUDA when present (and not disabled with NEUROHW_DEVICE=cpu), else CPU."""
    want = os.environ.get("NEUROHW_DEVICE")
    if want:
        return torch.device(want)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
