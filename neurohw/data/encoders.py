"""Input encoders: images/features → spike trains or currents over T time steps.

All take ``x`` of shape (N, ...) with values in [0, 1] and return (N, T, ...) — time is
axis 1, the layout neurohw's simulators and SNN layers use.
"""
from __future__ import annotations

import torch


def _check_unit(x: torch.Tensor, name: str) -> None:
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: input must lie in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]")


def rate_encode(x: torch.Tensor, steps: int, generator: torch.Generator | None = None, gain: float = 1.0) -> torch.Tensor:
    """Bernoulli rate code: each step spikes with probability ``gain·x``. Returns float 0/1, (N, T, ...)."""
    _check_unit(x, "rate_encode")
    p = (x * gain).clamp(0, 1).unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:])
    return torch.bernoulli(p, generator=generator)


def if_encode(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Deterministic integrate-and-fire code (the BWSNN's default input encoding).

    ``x`` (N, ...) in [0, 1] is rounded to 8 bits ``X``; step ``t`` spikes when
    ``floor((t·X + 127) / 255)`` increases. Returns float 0/1, (N, T, ...).
    """
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("if_encode: input must lie in [0, 1]")
    X = torch.round(x * 255).long()
    t = torch.arange(steps + 1, device=x.device).view(1, steps + 1, *([1] * (x.dim() - 1)))
    cum = torch.div(t * X.unsqueeze(1) + 127, 255, rounding_mode="floor")
    return (cum[:, 1:] - cum[:, :-1]).to(torch.float32)


def direct_encode(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Graded 8-bit input: the payload ``round(255·x)`` (0..255) at every step.

    What a Loihi network with ``input_message_bits = 8`` receives as integer messages. Returns
    float32 integers, (N, T, ...).
    """
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("direct_encode: input must lie in [0, 1]")
    p = torch.round(x * 255).to(torch.float32)
    return p.unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:]).contiguous()


def direct_current(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Direct (analogue) input: the same value injected at every step. Returns (N, T, ...)."""
    return x.unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:]).clone()


def latency_encode(x: torch.Tensor, steps: int, threshold: float = 0.01) -> torch.Tensor:
    """Time-to-first-spike: one spike at step ``round((1 - x)·(T - 1))``; values ≤ threshold never spike."""
    _check_unit(x, "latency_encode")
    t_spike = torch.round((1 - x) * (steps - 1)).long()
    t = torch.arange(steps, device=x.device).view(1, steps, *([1] * (x.dim() - 1)))
    out = (t == t_spike.unsqueeze(1)) & (x > threshold).unsqueeze(1)
    return out.to(x.dtype if x.is_floating_point() else torch.float32)


def thermometer_encode(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Thermometer code with ``levels`` thresholds ``(k+1)/(levels+1)``, k = 0..levels-1.

    Input (N, C, ...) → output (N, C·levels, ...) of 0/1 floats, channel-major
    (channel c's bits are ``out[:, c*levels:(c+1)*levels]``).
    """
    _check_unit(x, "thermometer_encode")
    thr = torch.arange(1, levels + 1, device=x.device, dtype=x.dtype) / (levels + 1)
    bits = (x.unsqueeze(2) > thr.view(1, 1, levels, *([1] * (x.dim() - 2)))).to(x.dtype)
    return bits.flatten(1, 2)
