"""Training and three-way evaluation (float soft / float hard / packed netlist) for logic nets and ∂B nets.

:func:`fit_logic` and :func:`fit_dbnet` are thin wrappers around the project's one training loop,
:func:`neurohw.train.fit`: they choose the optimiser, the training forward (soft gates; ∂B
encoding and the optional straight-through estimator) and, for ∂B nets, the per-step weight clamp.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from logic.dbnets import DBMnistNet, harden
from logic.models import LogicNet
from logic.packed import PackedEvaluator
from neurohw.train import fit


@dataclass
class TrainResult:
    """Per-epoch history of :func:`neurohw.train.fit` and the wall time of training (s)."""

    history: list[dict] = field(default_factory=list)
    train_s: float = 0.0


def fit_logic(model: LogicNet, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 10, batch_size: int = 128,
              lr: float = 0.02, weight_decay: float = 0.002, seed: int = 0, device: str | torch.device = "cpu",
              progress: bool = True) -> TrainResult:
    """Train a :class:`LogicNet` (soft gates) with AdamW and cross-entropy on GroupSum/τ scores.

    ``x``: (N, *input_shape) images in [0, 1]; ``y``: (N,) int64. Defaults follow the
    convolutional LGN paper (AdamW lr 0.02, weight decay 0.002, batch 128, constant learning
    rate). History rows: ``train_loss``, ``train_accuracy`` (of the soft model).
    """
    t0 = time.perf_counter()
    res = fit(model, (x, y), epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
              device=device, optimizer="adamw", schedule="constant", forward=lambda m, xb: m(xb, hard=False),
              progress=progress, desc="logic")
    model.eval()
    return TrainResult(res.history, time.perf_counter() - t0)


@torch.no_grad()
def evaluate_logic(model: LogicNet, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 500,
                   device: str | torch.device = "cpu") -> dict:
    """Accuracy of the soft float model, the hardened float model and the packed netlist, plus gate counts.

    ``counts_equal`` is True when the packed evaluator's integer class counts equal the
    hardened float model's on every sample.
    """
    device = torch.device(device)
    model.to(device).eval()
    soft_pred, hard_counts, bits = [], [], []
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size].to(device)
        soft_pred.append(model(xb, hard=False).argmax(-1).cpu())
        hard_counts.append(model.hard_counts(xb).cpu())
        bits.append(model.encode_bits(xb).cpu())
    soft_pred, hard_counts, bits = torch.cat(soft_pred), torch.cat(hard_counts), torch.cat(bits)
    raw = model.to_netlist(simplified=False)
    net = model.to_netlist(simplified=True)
    t0 = time.perf_counter()
    packed_counts = PackedEvaluator(net, device=device).class_counts(bits.to(device)).cpu()
    packed_s = time.perf_counter() - t0
    y = y.cpu()
    return {
        "acc_float": float((soft_pred == y).float().mean()),
        "acc_hard": float((hard_counts.argmax(-1) == y).float().mean()),
        "acc_packed": float((packed_counts.argmax(-1) == y).float().mean()),
        "counts_equal": bool(torch.equal(hard_counts, packed_counts)),
        "gates_raw": raw.n_gates,
        "gates": net.gate_count(),
        "gates_by_kind": net.counts_by_kind(),
        "packed_eval_s": packed_s,
        "n_test": int(len(y)),
    }


def fit_dbnet(model: DBMnistNet, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 5, batch_size: int = 64,
              lr: float = 0.01, tau: float | None = None, seed: int = 0, device: str | torch.device = "cpu",
              progress: bool = True, ste: bool = False) -> TrainResult:
    """Train a ∂B net with Adam on cross-entropy of ``bucket sums / τ``; weights clamped to [0, 1] after each step.

    ``x``: (N, ...) images in [0, 1] (encoded with ``model.encode``). ``τ`` defaults to
    ``sqrt(bucket size)`` (logits are sums of thousands of soft bits). ``ste``: the loss sees
    the *hardened* output bits (forward ``harden(soft)``, gradient of the soft bits — a
    straight-through estimator), so it trains the bucket counts that the deployed net computes
    instead of the real-valued soft sums. Constant learning rate. History rows: ``train_loss``,
    ``train_accuracy`` (argmax of the trained bucket sums).
    """
    bucket = model.w2.numel() // model.num_classes
    tau = float(tau or bucket**0.5)

    def forward(m: DBMnistNet, xb: torch.Tensor) -> torch.Tensor:
        xb = m.encode(xb)
        if not ste:
            return m(xb)
        sb = m.bits(xb)
        sb = sb + (harden(sb).to(sb.dtype) - sb).detach()
        return sb.view(len(xb), m.num_classes, -1).sum(-1)

    t0 = time.perf_counter()
    res = fit(model, (x, y), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, schedule="constant",
              forward=forward, loss_fn=lambda logits, yb, xb: F.cross_entropy(logits / tau, yb),
              step_hook=lambda m: m.clamp_(), progress=progress, desc="∂B")
    model.eval()
    return TrainResult(res.history, time.perf_counter() - t0)


@torch.no_grad()
def evaluate_dbnet(model: DBMnistNet, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 250,
                   device: str | torch.device = "cpu") -> dict:
    """Soft vs hard ∂B net: bit-level agreement ``harden(soft) == hard`` and the accuracies.

    ``acc_soft_hardened``: argmax of the bucket counts of the hardened soft bits;
    ``acc_hard``: the boolean net; ``acc_soft_logits``: argmax of the real-valued soft sums.
    """
    device = torch.device(device)
    model.to(device).eval()
    mism, total, soft_pred, hsoft_pred, hard_pred = 0, 0, [], [], []
    for s in range(0, len(x), batch_size):
        xb = model.encode(x[s : s + batch_size].to(device))
        sb = model.bits(xb)
        hb = model.hard_bits(xb)
        hs = harden(sb)
        mism += int((hs != hb).sum())
        total += hb.numel()
        n = len(xb)
        soft_pred.append(sb.view(n, model.num_classes, -1).sum(-1).argmax(-1).cpu())
        hsoft_pred.append(hs.view(n, model.num_classes, -1).sum(-1).argmax(-1).cpu())
        hard_pred.append(model.hard_logits(xb).argmax(-1).cpu())
    y = y.cpu()
    acc = lambda p: float((torch.cat(p) == y).float().mean())  # noqa: E731
    return {
        "acc_soft_logits": acc(soft_pred),
        "acc_soft_hardened": acc(hsoft_pred),
        "acc_hard": acc(hard_pred),
        "bit_mismatches": mism,
        "bits_compared": total,
        "soft_equals_hard": mism == 0,
        "n_weights": model.n_weights(),
        "weight_bytes": model.n_weights() // 8,
        "n_test": int(len(y)),
    }
