"""Training and evaluation of BWSNNs: BPTT with surrogate gradients, optional ANN-teacher KD.

Loss: ``(1 − λ)·CE(z_s, y) + λ·τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ))`` with student logits
``z_s`` = time-averaged readout (METHODS.md §1). Teacher logits are computed once on the
raw training images (the teacher is frozen). Adam with a cosine learning-rate schedule;
latent binary weights are clipped to [−1, 1] after every step (the clipped STE's support).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from neurohw.runtime import torch_threads  # noqa: F401  (re-exported)
from neurohw.seeding import seed_everything
from snn.layers import Synapse
from snn.model import BWSNN, BWSNNConfig




def kd_loss(student_logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None,
            lam: float, tau: float) -> torch.Tensor:
    """``(1−λ)·CE + λ·τ²·KL(p_teacher^τ ‖ p_student^τ)``; plain CE when no teacher logits."""
    ce = F.cross_entropy(student_logits, targets)
    if teacher_logits is None or lam == 0:
        return ce
    kl = F.kl_div(F.log_softmax(student_logits / tau, 1), F.log_softmax(teacher_logits / tau, 1),
                  reduction="batchmean", log_target=True)
    return (1 - lam) * ce + lam * tau * tau * kl


@torch.no_grad()
def teacher_logits(teacher: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits of a frozen teacher on images (N, C, H, W), computed in eval mode on the teacher's device."""
    teacher.eval()
    dev = next(teacher.parameters()).device
    return torch.cat([teacher(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)])


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image (N, C, H, W) by independent integer offsets in [−max_shift, max_shift], zero fill."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    m = max_shift
    padded = torch.nn.functional.pad(x, (m, m, m, m))
    off = torch.randint(0, 2 * m + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(off)])


@dataclass
class SNNTrainResult:
    model: BWSNN
    history: list = field(default_factory=list)


def _clip_latent(model: BWSNN) -> None:
    for m in model.modules():
        if isinstance(m, Synapse) and m.precision == "binary":
            m.weight.data.clamp_(-1.0, 1.0)


def fit_snn(cfg: BWSNNConfig, x_train: torch.Tensor, y_train: torch.Tensor, teacher: nn.Module | None = None,
            device: str | torch.device = "cpu", progress: bool = True, x_val: torch.Tensor | None = None,
            y_val: torch.Tensor | None = None) -> SNNTrainResult:
    """Train a :class:`BWSNN` from ``cfg`` on images (N, C, H, W) in [0, 1] and labels (N,).

    ``teacher`` is used only when ``cfg.kd``. Returns the trained model (eval mode, on
    ``device``) and a per-epoch history (loss, train accuracy, val accuracy when given).
    """
    if cfg.kd and teacher is None:
        raise ValueError("fit_snn: cfg.kd is set but no teacher was given")
    gen = seed_everything(cfg.seed)
    device = torch.device(device)
    model = BWSNN(cfg, in_shape=tuple(x_train.shape[1:]), num_classes=int(y_train.max()) + 1).to(device)
    if cfg.kd:
        teacher.eval()
        t_dev = next(teacher.parameters()).device
    # Without augmentation the teacher's logits are computed once; with it, per shifted batch.
    t_logits = teacher_logits(teacher, x_train) if (cfg.kd and cfg.augment_shift <= 0) else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = len(x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    history = []
    for epoch in range(cfg.epochs):
        if cfg.hardening_epochs > 0:
            model.set_hardness(min(1.0, (epoch + 1) / cfg.hardening_epochs))
        model.train()
        perm = torch.randperm(n, generator=gen)
        tot_loss, correct = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"snn epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for b in bar:
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb = random_shift(x_train[idx], cfg.augment_shift, gen)
            yb = y_train[idx].to(device)
            if not cfg.kd:
                tb = None
            elif t_logits is not None:
                tb = t_logits[idx].to(device)
            else:
                with torch.no_grad():
                    tb = teacher(xb.to(t_dev)).float().to(device)
            xb = xb.to(device)
            logits = model(xb)
            loss = kd_loss(logits, yb, tb, cfg.kd_lambda if cfg.kd else 0.0, cfg.kd_tau)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            _clip_latent(model)
            tot_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        rec = {"epoch": epoch + 1, "loss": tot_loss / n, "train_accuracy": correct / n}
        if x_val is not None:
            rec["val_accuracy"] = evaluate_snn(model, x_val, y_val, device=device)["accuracy"]
        history.append(rec)
        if progress:
            tqdm.write(f"[snn] epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4f}" for k, v in rec.items() if k != "epoch"))
    model.set_hardness(1.0)
    return SNNTrainResult(model.eval(), history)


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
