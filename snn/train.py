"""Training and evaluation of BWSNNs: BPTT with surrogate gradients, optional ANN-teacher KD.

:func:`fit_snn` is a thin wrapper around the project's one training loop,
:func:`neurohw.train.fit`: it builds the :class:`~snn.model.BWSNN` from its config and chooses

* the loss ``(1 − λ)·CE(z_s, y) + λ·KD`` with KD = :func:`distill.losses.kd_loss`
  (``τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ))``), student logits ``z_s`` = time-averaged readout
  (METHODS.md §1) and teacher logits computed, without gradient, on each (shifted) batch;
* Adam with a cosine learning-rate schedule stepped every batch (``schedule="cosine_step"``);
* a per-step hook that clips latent binary weights to [−1, 1] (the clipped STE's support) and a
  per-epoch hook for the optional soft→hard weight schedule (``cfg.hardening_epochs``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from distill.losses import kd_loss
from neurohw.runtime import torch_threads  # noqa: F401  (re-exported)
from neurohw.seeding import seed_everything
from neurohw.train import fit
from snn.layers import Synapse
from snn.model import BWSNN, BWSNNConfig


@dataclass
class SNNTrainResult:
    model: BWSNN
    history: list = field(default_factory=list)


def _clip_latent(model: BWSNN) -> None:
    for m in model.modules():
        if isinstance(m, Synapse) and m.precision == "binary":
            m.weight.data.clamp_(-1.0, 1.0)


def _kd_objective(teacher: nn.Module, lam: float, tau: float):
    """``loss_fn(logits, y, x)`` for :func:`neurohw.train.fit`: ``(1 − λ)·CE + λ·KD`` and its parts."""
    teacher.eval()
    t_dev = next(teacher.parameters()).device

    def loss_fn(logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor):
        with torch.no_grad():
            t = teacher(x.to(t_dev)).float().to(logits.device)
        ce = F.cross_entropy(logits, y)
        kd = kd_loss(logits, t, tau)
        return (1 - lam) * ce + lam * kd, {"ce": float(ce.detach()), "kd": float(kd.detach())}

    return loss_fn


def fit_snn(cfg: BWSNNConfig, x_train: torch.Tensor, y_train: torch.Tensor, teacher: nn.Module | None = None,
            device: str | torch.device = "cpu", progress: bool = True, x_val: torch.Tensor | None = None,
            y_val: torch.Tensor | None = None) -> SNNTrainResult:
    """Train a :class:`BWSNN` from ``cfg`` on images (N, C, H, W) in [0, 1] and labels (N,).

    ``teacher`` is used only when ``cfg.kd``. Returns the trained model (eval mode, on
    ``device``) and the per-epoch history of :func:`neurohw.train.fit` (``train_loss``,
    ``train_accuracy``, with KD ``train_ce``/``train_kd``, and ``val_accuracy``/``val_loss``
    when ``x_val``, ``y_val`` are given).
    """
    if cfg.kd and teacher is None:
        raise ValueError("fit_snn: cfg.kd is set but no teacher was given")
    seed_everything(cfg.seed)
    device = torch.device(device)
    model = BWSNN(cfg, in_shape=tuple(x_train.shape[1:]), num_classes=int(y_train.max()) + 1).to(device)
    loss_fn = _kd_objective(teacher, cfg.kd_lambda, cfg.kd_tau) if cfg.kd and cfg.kd_lambda > 0 else None
    hardening = None
    if cfg.hardening_epochs > 0:
        def hardening(m: BWSNN, epoch: int) -> None:
            m.set_hardness(min(1.0, (epoch + 1) / cfg.hardening_epochs))
    res = fit(model, (x_train, y_train), (x_val, y_val) if x_val is not None else None, epochs=cfg.epochs,
              batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, device=device, schedule="cosine_step",
              augment_shift=cfg.augment_shift, loss_fn=loss_fn, step_hook=_clip_latent, epoch_hook=hardening,
              progress=progress, desc="snn")
    model.set_hardness(1.0)
    return SNNTrainResult(model.eval(), res.history)


@torch.no_grad()
def predict_snn(model: BWSNN, x: torch.Tensor, batch_size: int = 250, device: str | torch.device | None = None):
    """Training-mode (float) forward: predictions (N,), logits (N, classes), spikes per layer (N, L)."""
    model.eval()
    device = torch.device(device) if device else next(model.parameters()).device
    preds, logits, spikes = [], [], []
    for i in range(0, len(x), batch_size):
        z = model(x[i:i + batch_size].to(device))
        logits.append(z.cpu())
        preds.append(z.argmax(1).cpu())
        spikes.append(model.last_spikes.cpu())
    return torch.cat(preds), torch.cat(logits), torch.cat(spikes)


def evaluate_snn(model: BWSNN, x: torch.Tensor, y: torch.Tensor, device=None) -> dict:
    """Accuracy and spikes per inference (all spiking layers, summed) of the float forward."""
    preds, _, spikes = predict_snn(model, x, device=device)
    return {"accuracy": float((preds == y.cpu()).float().mean()),
            "spikes_per_inference": float(spikes.sum(1).float().mean()),
            "predictions": preds}
