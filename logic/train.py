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

from logic.dbnets import STAGES, DBMnistNet, harden
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
              progress: bool = True, schedule: str = "constant", augment_shift: int = 0) -> TrainResult:
    """Train a :class:`LogicNet` (soft gates) with AdamW and cross-entropy on GroupSum/τ scores.

    ``x``: (N, *input_shape) images in [0, 1]; ``y``: (N,) int64. Defaults follow the
    convolutional LGN paper (AdamW lr 0.02, weight decay 0.002, batch 128, constant learning
    rate); ``schedule`` is :func:`neurohw.train.lr_factor`'s (``"constant"``, ``"cosine"``,
    ``"cosine_step"``); ``augment_shift``: training images translated by up to that many pixels
    (:func:`neurohw.train.random_shift`). History rows: ``train_loss``, ``train_accuracy`` (of the soft model).
    """
    t0 = time.perf_counter()
    res = fit(model, (x, y), epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
              device=device, optimizer="adamw", schedule=schedule, augment_shift=augment_shift,
              forward=lambda m, xb: m(xb, hard=False),
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


#: ``fit_dbnet(weights=...)``: the weights the training forward uses.
DB_WEIGHTS = ("soft", "hard", "gumbel")


def sampled_weights(w: torch.Tensor, mode: str, noise: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The weights of one training forward: ``w`` itself, or 0/1 weights with a straight-through gradient.

    ``"soft"``: ``w``. ``"hard"``: ``harden(w)`` in the forward, the gradient of ``w`` in the
    backward (straight-through). ``"gumbel"``: ``harden`` of a noisy weight — logistic noise
    (the difference of two Gumbel(0, 1) samples) of scale ``noise`` added to ``logit(w)``, i.e.
    bit ``1`` with probability ``sigmoid(logit(w)/noise)`` — straight-through likewise. The
    deployed net is always ``harden(w)``; the noise only acts in training.
    """
    if mode == "soft":
        return w
    if mode not in DB_WEIGHTS:
        raise ValueError(f"fit_dbnet: weights must be one of {DB_WEIGHTS}, got {mode!r}")
    if mode == "hard":
        hard = harden(w)
    else:
        u = torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype).clamp(1e-6, 1 - 1e-6)
        logistic = torch.log(u) - torch.log1p(-u)
        wc = w.detach().clamp(1e-6, 1 - 1e-6)
        hard = (torch.log(wc) - torch.log1p(-wc) + noise * logistic) > 0
    return hard.to(w.dtype) + (w - w.detach())


def fit_dbnet(model: DBMnistNet, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 5, batch_size: int = 64,
              lr: float = 0.01, tau: float | None = None, seed: int = 0, device: str | torch.device = "cpu",
              progress: bool = True, ste: bool = False, schedule: str = "constant", tau_end: float | None = None,
              saturate: float = 0.0, weights: str = "soft", noise: float = 1.0, straight: str = "",
              settle: float = 0.0, augment_shift: int = 0, max_steps: int | None = None) -> TrainResult:
    """Train a ∂B net with Adam on cross-entropy of ``bucket sums / τ``; weights clamped to [0, 1] after each step.

    ``x``: (N, ...) images in [0, 1] (encoded with ``model.encode``). ``τ`` defaults to
    ``sqrt(bucket size)`` (logits are sums of thousands of soft bits).

    Switches (defaults reproduce the plain published training):

    - ``ste``: the loss sees the *hardened* output bits (forward ``harden(soft)``, gradient of
      the soft bits — a straight-through estimator), so it trains the bucket counts that the
      deployed net computes instead of the real-valued soft sums.
    - ``schedule``: the learning-rate schedule of :func:`neurohw.train.lr_factor`
      (``"constant"``, ``"cosine"`` per epoch, ``"cosine_step"`` per step).
    - ``tau_end``: anneal τ geometrically from ``tau`` to ``tau_end`` over the training steps.
    - ``saturate`` (λ ≥ 0): add ``λ·(t/T)·mean(4·w·(1 − w))`` over all weights to the loss, ramped
      linearly with the step ``t`` of ``T``: it is 1 for a weight at 1/2 and 0 at 0 or 1. The
      input bits are hard (pixels > threshold), so the weights are the only source of soft
      bits: saturated weights give saturated soft bits, and soft sums that equal the counts.
    - ``weights``: what the training forward uses — ``"soft"`` (the parameters), ``"hard"``
      (``harden(w)`` with a straight-through gradient) or ``"gumbel"`` (hardened
      logistic-noised weights of scale ``noise``, straight-through; :func:`sampled_weights`).
      Evaluation always uses the parameters as they are (hardened for the hard net).
    - ``straight``: comma-separated stages (``"implies"``, ``"maj"``, ``"out"``) hardened in the
      training forward with the soft operators' gradients in the backward
      (:meth:`DBMnistNet.stages`); ``"out"`` is ``ste``. With ``"implies,maj,out"`` and
      ``weights="hard"`` the training forward is exactly the deployed boolean net and the
      backward is the ∂B operators' (margin-packed) gradient at those hard points.
    - ``settle`` (δ ≥ 0): after training, move weights within δ of 1/2 to 1/2 ± δ on their
      hardened side (:meth:`DBMnistNet.settle_`): the hard net is unchanged and no soft bit is
      left where float32 rounding can flip its side (harden(soft) = hard then holds exactly).
    - ``augment_shift``: training images translated by up to that many pixels
      (:func:`neurohw.train.random_shift`) before the encoding.
    - ``max_steps``: stop after that many optimiser steps (the schedules still span ``epochs``).

    History rows: ``train_loss``, ``train_accuracy`` (argmax of the trained bucket sums),
    ``train_saturation`` (the penalty's mean, before λ) and :meth:`DBMnistNet.weight_margin`.
    """
    if saturate < 0:
        raise ValueError(f"fit_dbnet: saturate must be >= 0, got {saturate}")
    if weights not in DB_WEIGHTS:
        raise ValueError(f"fit_dbnet: weights must be one of {DB_WEIGHTS}, got {weights!r}")
    if not 0 <= settle < 0.5:
        raise ValueError(f"fit_dbnet: settle must be in [0, 1/2), got {settle}")
    stages = tuple(t for t in (p.strip() for p in straight.split(",")) if t) + (("out",) if ste else ())
    unknown = set(stages) - set(STAGES[1:])
    if unknown:
        raise ValueError(f"fit_dbnet: straight has unknown stage(s) {sorted(unknown)}; known: {list(STAGES[1:])}")
    bucket = model.w2.numel() // model.num_classes
    tau0 = float(tau or bucket**0.5)
    steps_per_epoch = -(-len(x) // batch_size)
    total = max(1, min(epochs * steps_per_epoch, max_steps or epochs * steps_per_epoch))
    state = {"step": 0}
    gen = torch.Generator(device=device).manual_seed(int(seed) + 7919)

    def progress_frac() -> float:
        return min(state["step"] / max(total - 1, 1), 1.0)

    def forward(m: DBMnistNet, xb: torch.Tensor) -> torch.Tensor:
        xb = m.encode(xb)
        w1 = sampled_weights(m.w1, weights, noise, gen)
        w2 = sampled_weights(m.w2, weights, noise, gen)
        return m.bucket_sums(m.stages(xb, w1, w2, straight=stages)["out"])

    def loss_fn(logits, yb, xb):
        frac = progress_frac()
        t = tau0 if tau_end is None else tau0 * (float(tau_end) / tau0) ** frac
        loss = F.cross_entropy(logits / t, yb)
        sat = torch.cat([model.w1.flatten(), model.w2.flatten()])
        sat = (4 * sat * (1 - sat)).mean()
        if saturate:
            loss = loss + saturate * frac * sat
        return loss, {"saturation": float(sat.detach()), "tau": t}

    def step_hook(m: DBMnistNet) -> None:
        m.clamp_()
        state["step"] += 1

    t0 = time.perf_counter()
    res = fit(model, (x, y), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, schedule=schedule,
              augment_shift=augment_shift, forward=forward, loss_fn=loss_fn, step_hook=step_hook, epoch_metrics=lambda m: m.weight_margin(),
              max_steps=max_steps, progress=progress, desc="∂B")
    if settle:
        model.settle_(settle)
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
        **model.weight_margin(),
        "n_weights": model.n_weights(),
        "weight_bytes": model.n_weights() // 8,
        "n_test": int(len(y)),
    }
