"""Plots of the optical workflow (matplotlib; every function returns the Figure, and saves a
PNG atomically when ``path`` is given)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["plot_psf", "plot_kernels", "plot_accuracy_distribution", "plot_radius"]


def _save(fig, path):
    if path is not None:
        from neurohw.io import atomic_path

        with atomic_path(Path(path), suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    return fig


def plot_psf(psf: torch.Tensor, path=None, title: str = "sensor PSF", log: bool = False, pixel_pitch: float | None = None):
    """The sensor-pixel PSF ``(L, M, M)``, one panel per wavelength."""
    import matplotlib.pyplot as plt

    p = psf.detach().cpu().numpy()
    fig, axes = plt.subplots(1, p.shape[0], figsize=(4 * p.shape[0], 3.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        img = np.log10(p[i] + p[i].max() * 1e-4) if log else p[i]
        im = ax.imshow(img, cmap="inferno")
        ax.set_title(f"{title} [{i}]" + (" (log10)" if log else ""))
        ax.set_xlabel("sensor pixel")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)


def plot_kernels(target: torch.Tensor, realised: torch.Tensor | None = None, fidelity: list | None = None, path=None, title: str = "kernels"):
    """Signed kernels ``(K, C, k, k)`` (channel 0 or RGB sum): targets, and realised below."""
    import matplotlib.pyplot as plt

    rows = 1 if realised is None else 2
    t = target.detach().cpu().sum(1).numpy()
    k = t.shape[0]
    fig, axes = plt.subplots(rows, k, figsize=(1.4 * k, 1.5 * rows + 0.4), squeeze=False)
    for j in range(k):
        v = np.abs(t[j]).max() or 1.0
        axes[0, j].imshow(t[j], cmap="RdBu_r", vmin=-v, vmax=v)
        axes[0, j].set_title(f"target {j}", fontsize=7)
        if realised is not None:
            r = realised.detach().cpu().sum(1).numpy()
            axes[1, j].imshow(r[j], cmap="RdBu_r", vmin=-v, vmax=v)
            axes[1, j].set_title(f"ncc {fidelity[j]:.3f}" if fidelity else f"realised {j}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_distribution(accs, path=None, reference: dict | None = None, title: str = "accuracy over fabricated instances"):
    """Histogram of accuracies with vertical lines for ``reference`` values (e.g. kernel / wave mode)."""
    import matplotlib.pyplot as plt

    a = np.asarray(accs, dtype=float) * 100
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(a, bins=max(5, min(20, len(a))), color="tab:blue", alpha=0.8)
    for (name, v), c in zip((reference or {}).items(), ("k", "tab:red", "tab:green", "tab:orange")):
        ax.axvline(100 * v, color=c, ls="--", label=f"{name} {100 * v:.1f}%")
    ax.set_xlabel("test accuracy (%)")
    ax.set_ylabel("instances")
    ax.set_title(f"{title} (n={len(a)}, mean {a.mean():.1f}%)", fontsize=9)
    if reference:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_radius(radii: torch.Tensor, dx: float, path=None, title: str = "pillar radius"):
    """The radius map in nm."""
    import matplotlib.pyplot as plt

    r = radii.detach().cpu().numpy() * 1e9
    ext = r.shape[0] * dx * 1e6 / 2
    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(r, extent=(-ext, ext, -ext, ext), cmap="viridis")
    fig.colorbar(im, ax=ax, label="radius (nm)")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)
