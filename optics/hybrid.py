"""Hybrid optical–electronic models: an optical front-end followed by an electronic back-end.

:class:`HybridModel` holds ``frontend`` (any front-end: :class:`~optics.frontend.KernelFrontEnd`
while training, a :class:`~optics.frontend.DeviceFrontEnd` / fabricated instance /
:class:`~optics.design.WaveFrontEnd` after design) and ``backend`` (an ``nn.Module`` taking the
signed feature maps ``(B, K, h, w)`` to logits). ``forward(x) = backend(frontend(x))``;
:meth:`HybridModel.with_frontend` swaps the optics and keeps (or copies) the back-end.

* :class:`HybridMNIST` — the compressed meta-optic: 8 mono 7×7 kernels on 28×28 images,
  back-end ``AvgPool 2 → FC(8·11·11 → 48) → ReLU → FC(48 → 10)`` (≈ 0.047 M parameters);
* :class:`HybridPolychromatic` — 16 RGB 7×7 kernels on 32×32 images, back-end of 3 FC layers
  ``FC(16·26·26 → 148) → ReLU → FC(148 → 64) → ReLU → FC(64 → 10)`` (≈ 1.61 M parameters).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from optics.frontend import KernelFrontEnd
from neurohw.train import accuracy, fit  # accuracy re-exported (one implementation in the hub)

__all__ = ["HybridModel", "HybridMNIST", "HybridPolychromatic", "train_hybrid", "accuracy"]


class HybridModel(nn.Module):
    """``backend(frontend(x))``; see the module docstring."""

    def __init__(self, frontend: nn.Module, backend: nn.Module):
        super().__init__()
        self.frontend = frontend
        self.backend = backend

    def features(self, x: torch.Tensor, **kw) -> torch.Tensor:
        """The optical front-end's (measured) feature maps ``(B, K, h, w)``."""
        return self.frontend(x, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backend(self.frontend(x))

    def with_frontend(self, frontend: nn.Module, copy_backend: bool = False) -> "HybridModel":
        """The same back-end (shared, or a deep copy) behind another front-end."""
        return HybridModel(frontend, copy.deepcopy(self.backend) if copy_backend else self.backend)

    def signed_kernels(self) -> torch.Tensor:
        """The trained signed kernels ``(K, C, k, k)`` (kernel-mode front-end only)."""
        if not isinstance(self.frontend, KernelFrontEnd):
            raise TypeError(f"signed_kernels: front-end is a {type(self.frontend).__name__}, not a KernelFrontEnd")
        return self.frontend.kernels.detach().clone()

    def n_parameters(self) -> dict:
        return {
            "frontend": sum(p.numel() for p in self.frontend.parameters()),
            "backend": sum(p.numel() for p in self.backend.parameters()),
        }


def mnist_backend(n_kernels: int = 8, feature_size: int = 22, hidden: int = 48, pool: int = 2, n_classes: int = 10) -> nn.Sequential:
    """The 2-FC back-end of the compressed meta-optic."""
    s = feature_size // pool
    return nn.Sequential(nn.AvgPool2d(pool), nn.Flatten(), nn.Linear(n_kernels * s * s, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


class HybridMNIST(HybridModel):
    """Compressed meta-optic for MNIST: 8 mono 7×7 kernels + 2 FC (module docstring)."""

    def __init__(self, n_kernels: int = 8, kernel_size: int = 7, image_size: int = 28, hidden: int = 48, pool: int = 2, train_noise: float = 0.01):
        fe = KernelFrontEnd(n_kernels, 1, kernel_size, image_size, train_noise=train_noise)
        super().__init__(fe, mnist_backend(n_kernels, fe.out_size, hidden, pool))
        self.config = dict(n_kernels=n_kernels, kernel_size=kernel_size, image_size=image_size, hidden=hidden, pool=pool, train_noise=train_noise)


class HybridPolychromatic(HybridModel):
    """Polychromatic meta-optic: 16 RGB 7×7 kernels (one radius map, R/G/B PSFs) + 3 FC."""

    def __init__(self, n_kernels: int = 16, kernel_size: int = 7, image_size: int = 32, hidden: tuple = (148, 64), n_classes: int = 10, train_noise: float = 0.01):
        fe = KernelFrontEnd(n_kernels, 3, kernel_size, image_size, train_noise=train_noise)
        s = fe.out_size
        backend = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_kernels * s * s, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], n_classes),
        )
        super().__init__(fe, backend)
        self.config = dict(n_kernels=n_kernels, kernel_size=kernel_size, image_size=image_size, hidden=list(hidden), train_noise=train_noise)


def train_hybrid(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    params=None,
    progress: bool = True,
    loss_fn=None,
) -> list[float]:
    """End-to-end training in kernel mode: a thin wrapper around :func:`neurohw.train.fit`.

    Adam at a constant learning rate on ``loss_fn(logits, y)`` (default cross-entropy), on the
    model's device. ``params``: the parameters to train (default all — pass
    ``model.backend.parameters()`` to fine-tune the back-end behind a frozen front-end).
    Returns the mean training loss per epoch; the model is left in eval mode.
    """
    crit = loss_fn or F.cross_entropy
    res = fit(model, (x, y), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=next(model.parameters()).device,
              params=params, schedule="constant", loss_fn=lambda logits, yb, xb: crit(logits, yb), progress=progress,
              desc="hybrid")
    model.eval()
    return [h["train_loss"] for h in res.history]
