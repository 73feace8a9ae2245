"""Plot helpers shared by reports and notebooks (matplotlib, saved as PNG).

Each function draws into a new figure, saves it when ``path`` is given (atomically) and
returns the figure so notebooks can show it.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY") and "ipykernel" not in os.environ.get("JPY_PARENT_PID", "") and matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline",):
    try:
        import IPython  # noqa: F401

        _in_notebook = IPython.get_ipython() is not None  # type: ignore[attr-defined]
    except Exception:
        _in_notebook = False
    if not _in_notebook:
        matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neurohw.io import atomic_path  # noqa: E402


def save(fig, path: str | os.PathLike | None, dpi: int = 120):
    """Save ``fig`` as PNG at ``path`` (atomic); returns the figure."""
    if path is not None:
        with atomic_path(Path(path), suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return fig


def learning_curves(histories: dict[str, list[dict]], path=None):
    """Train loss and validation accuracy per epoch for several runs (``{label: fit history}``)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, hist in histories.items():
        ep = [h["epoch"] for h in hist]  # epochs completed
        ax1.plot(ep, [h["train_loss"] for h in hist], marker="o", ms=3, label=label)
        if hist and "val_accuracy" in hist[0]:
            ax2.plot(ep, [100 * h["val_accuracy"] for h in hist], marker="o", ms=3, label=label)
    ax1.set(xlabel="epoch", ylabel="train loss", yscale="log", title="training loss")
    ax2.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save(fig, path)


def confusion_matrix(conf: np.ndarray, path=None, title: str = "confusion matrix"):
    """Confusion matrix (rows: true class, columns: predicted), counts annotated."""
    conf = np.asarray(conf)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    im = ax.imshow(conf, cmap="Blues")
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if conf[i, j] > conf.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title, xticks=range(conf.shape[1]), yticks=range(conf.shape[0]))
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save(fig, path)


def sample_grid(x, labels=None, preds=None, path=None, n: int = 32, cols: int = 8, title: str | None = None):
    """A grid of images (N, C, H, W) with true/predicted labels; wrong predictions in red."""
    x = np.asarray(x[:n])
    rows = int(np.ceil(len(x) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.25))
    for k, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if k >= len(x):
            continue
        img = x[k]
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        if labels is not None:
            txt = f"{int(labels[k])}"
            color = "black"
            if preds is not None:
                txt += f"→{int(preds[k])}"
                color = "red" if int(preds[k]) != int(labels[k]) else "green"
            ax.set_title(txt, fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
