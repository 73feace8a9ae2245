"""Differentiable logic-gate layers (train-time face) and their netlist lowering (hardware face).

Every layer takes ``forward(x, hard=False)``: soft bits in, soft bits out (the softmax
gate mixture), or with ``hard=True`` the argmax gate of every neuron — on 0/1 inputs this
is exactly the boolean function the netlist computes. Every layer also has
``to_netlist(builder, signals)``: ``signals`` is an int64 numpy array of signal ids with
the layer's input shape (batch axis dropped); it adds the hardened gates to the
:class:`~logic.netlist.NetlistBuilder` and returns the output signal ids.

Connections and leaf choices are buffers, so they are saved and loaded with the model.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from logic.gates import grad_scale, init_logits, mix

OR_GATE = 7


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(torch.randint(0, 2**62, ()).item()) if seed is None else int(seed))
    return g


def random_connections(in_dim: int, out_dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``random`` wiring: 2·out_dim input slots filled from concatenated random permutations.

    Each input feeds ⌊2·out/in⌋ or ⌈2·out/in⌉ gate inputs (balanced fan-out); the two
    inputs of a neuron are distinct whenever ``in_dim > 1``.
    """
    reps = -(-2 * out_dim // in_dim)
    slots = torch.cat([torch.randperm(in_dim, generator=generator) for _ in range(reps)])[: 2 * out_dim]
    slots = slots[torch.randperm(2 * out_dim, generator=generator)]
    a, b = slots[:out_dim].clone(), slots[out_dim:].clone()
    if in_dim > 1:  # repair a == b by swapping b with another neuron's b (keeps fan-out balanced)
        for i in torch.nonzero(a == b).flatten().tolist():
            for j in torch.randperm(out_dim, generator=generator).tolist():
                if b[j] != a[i] and a[j] != b[i]:
                    b[i], b[j] = b[j].clone(), b[i].clone()
                    break
    return a, b


def unique_connections(in_dim: int, out_dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``unique`` wiring: pairs of neighbours in a random permutation ``p`` of the inputs.

    Round r = 1, 2, … pairs ``(p[i], p[i+r mod n])``; round 1 alone covers every input twice.
    No unordered pair repeats; the neuron order is shuffled. Needs out_dim ≤ n(n−1)/2.
    """
    n = in_dim
    if n < 2 or out_dim > n * (n - 1) // 2:
        raise ValueError(f"unique connections: {out_dim} neurons need at most {n * (n - 1) // 2} distinct pairs of {n} inputs")
    p = torch.randperm(n, generator=generator)
    pairs = []
    r = 1
    while sum(len(x) for x in pairs) < out_dim:
        i = torch.arange(n if 2 * r != n else n // 2)
        pairs.append(torch.stack([p[i], p[(i + r) % n]], 1))
        r += 1
    pairs = torch.cat(pairs)[:out_dim]
    pairs = pairs[torch.randperm(out_dim, generator=generator)]
    return pairs[:, 0].clone(), pairs[:, 1].clone()


class LogicLayer(nn.Module):
    """Dense logic layer: ``out_dim`` neurons, each a learned gate on two fixed inputs.

    Input (N, in_dim) soft bits → output (N, out_dim). ``connections``: ``random`` or
    ``unique``; ``init``: ``gaussian`` or ``residual`` (pass-through logit ``residual_logit``);
    ``grad_factor`` scales the gradient reaching this layer's input; ``naive=True`` uses the
    explicit 16-gate sum (reference).
    """

    def __init__(self, in_dim: int, out_dim: int, connections: str = "random", init: str = "gaussian",
                 grad_factor: float = 1.0, naive: bool = False, seed: int | None = None, residual_logit: float = 5.0):
        super().__init__()
        g = _generator(seed)
        if connections == "random":
            a, b = random_connections(in_dim, out_dim, g)
        elif connections == "unique":
            a, b = unique_connections(in_dim, out_dim, g)
        else:
            raise ValueError(f"LogicLayer: connections must be 'random' or 'unique', got {connections!r}")
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.connections, self.init, self.grad_factor, self.naive = connections, init, float(grad_factor), naive
        self.register_buffer("idx_a", a.long())
        self.register_buffer("idx_b", b.long())
        self.logits = nn.Parameter(init_logits(out_dim, init=init, generator=g, residual_logit=residual_logit))

    def extra_repr(self) -> str:
        return f"{self.in_dim} → {self.out_dim}, connections={self.connections}, init={self.init}"

    def forward(self, x: torch.Tensor, hard: bool = False) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"LogicLayer({self.in_dim}→{self.out_dim}): input must be (N, {self.in_dim}), got {tuple(x.shape)}")
        x = grad_scale(x, self.grad_factor)
        return mix(x[:, self.idx_a], x[:, self.idx_b], self.logits, hard=hard, naive=self.naive)

    def gate_ids(self) -> torch.Tensor:
        """Argmax gate of each neuron: (out_dim,) int64."""
        return self.logits.argmax(-1)

    def to_netlist(self, builder, signals: np.ndarray) -> np.ndarray:
        s = signals.reshape(-1)
        return builder.add(self.gate_ids().cpu().numpy(), s[self.idx_a.cpu().numpy()], s[self.idx_b.cpu().numpy()])


class LogicTreeConv2d(nn.Module):
    """Logic tree convolution: each output channel is a binary tree of gates, shared over positions.

    Input (N, C_in, H, W) → (N, C_out, H', W') with the usual convolution size rule.
    Channel ``o`` picks two input channels and draws ``2**depth`` distinct leaves from the
    ``kernel×kernel`` window over those two channels (``leaf_idx`` buffer, indices into the
    ``unfold`` layout ``c·k² + ky·k + kx``). Level 1 gates read leaf pairs (0,1), (2,3), …;
    each next level reads pairs of the previous level's outputs; ``2**depth − 1`` gates,
    logits ``(C_out, 2**depth − 1, 16)``. Zero padding is constant 0 (false). ``residual_logit``: the
    pass-through gate's initial logit under ``init="residual"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, depth: int = 3, padding: int = 1,
                 stride: int = 1, init: str = "gaussian", grad_factor: float = 1.0, seed: int | None = None,
                 residual_logit: float = 5.0):
        super().__init__()
        g = _generator(seed)
        k2 = kernel_size * kernel_size
        n_leaves = 2**depth
        pool = 2 * k2 if in_channels > 1 else k2
        if n_leaves > pool:
            raise ValueError(f"LogicTreeConv2d: {n_leaves} leaves do not fit in a receptive field of {pool} bits")
        leaves = []
        for _ in range(out_channels):
            chans = torch.randperm(in_channels, generator=g)[: min(2, in_channels)]
            cand = (chans.view(-1, 1) * k2 + torch.arange(k2).view(1, -1)).flatten()
            leaves.append(cand[torch.randperm(cand.numel(), generator=g)[:n_leaves]])
        self.register_buffer("leaf_idx", torch.stack(leaves).long())
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.depth, self.padding, self.stride = kernel_size, depth, padding, stride
        self.init, self.grad_factor = init, float(grad_factor)
        self.logits = nn.Parameter(init_logits(out_channels, (n_leaves - 1,), init=init, generator=g,
                                               residual_logit=residual_logit))

    def extra_repr(self) -> str:
        return (f"{self.in_channels} → {self.out_channels}, kernel={self.kernel_size}, depth={self.depth}, "
                f"padding={self.padding}, stride={self.stride}, init={self.init}")

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        f = lambda n: (n + 2 * self.padding - self.kernel_size) // self.stride + 1  # noqa: E731
        return f(h), f(w)

    def forward(self, x: torch.Tensor, hard: bool = False) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"LogicTreeConv2d: input must be (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        n, _, h, w = x.shape
        ho, wo = self.out_size(h, w)
        x = grad_scale(x, self.grad_factor)
        u = self._unfold(x, ho, wo)  # (N, C·k², L)
        v = u[:, self.leaf_idx]  # (N, C_out, 2^d, L)
        start = 0
        for lvl in range(self.depth):
            n_g = 2 ** (self.depth - lvl - 1)
            logits = self.logits[:, start : start + n_g].unsqueeze(0).unsqueeze(3)  # (1, C_out, n_g, 1, 16)
            v = mix(v[:, :, 0::2], v[:, :, 1::2], logits, hard=hard)
            start += n_g
        return v.view(n, self.out_channels, ho, wo)

    def _unfold(self, x: torch.Tensor, ho: int, wo: int) -> torch.Tensor:
        """``F.unfold``'s layout (N, C·k², Ho·Wo) from k² strided slices (much faster than im2col on CPU)."""
        k, p, s = self.kernel_size, self.padding, self.stride
        xp = F.pad(x, (p, p, p, p)) if p else x
        cols = [xp[:, :, ky : ky + s * (ho - 1) + 1 : s, kx : kx + s * (wo - 1) + 1 : s] for ky in range(k) for kx in range(k)]
        return torch.stack(cols, 2).reshape(x.shape[0], -1, ho * wo)

    def to_netlist(self, builder, signals: np.ndarray) -> np.ndarray:
        c, h, w = signals.shape
        k, p, s = self.kernel_size, self.padding, self.stride
        padded = np.full((c, h + 2 * p, w + 2 * p), -1, dtype=np.int64)
        padded[:, p : p + h, p : p + w] = signals
        if p > 0:
            padded[padded < 0] = builder.const(0)
        ho, wo = self.out_size(h, w)
        # unfold: (C·k², L) in F.unfold's order
        cols = np.empty((c, k, k, ho, wo), dtype=np.int64)
        for ky in range(k):
            for kx in range(k):
                cols[:, ky, kx] = padded[:, ky : ky + s * ho : s, kx : kx + s * wo : s]
        cols = cols.reshape(c * k * k, ho * wo)
        v = cols[self.leaf_idx.cpu().numpy()]  # (C_out, 2^d, L)
        ids = self.logits.argmax(-1).cpu().numpy()  # (C_out, 2^d - 1)
        start = 0
        for lvl in range(self.depth):
            n_g = 2 ** (self.depth - lvl - 1)
            v = builder.add(ids[:, start : start + n_g, None], v[:, 0::2], v[:, 1::2])
            start += n_g
        return v.reshape(self.out_channels, ho, wo)


class OrPool2d(nn.Module):
    """Logic OR pooling, ``kernel×kernel`` windows with stride ``kernel``; relaxed as max (soft and hard)."""

    def __init__(self, kernel_size: int = 2):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor, hard: bool = False) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel_size, self.kernel_size)

    def to_netlist(self, builder, signals: np.ndarray) -> np.ndarray:
        c, h, w = signals.shape
        k = self.kernel_size
        ho, wo = h // k, w // k
        win = signals[:, : ho * k, : wo * k].reshape(c, ho, k, wo, k).transpose(0, 1, 3, 2, 4).reshape(c, ho, wo, k * k)
        terms = [win[..., i] for i in range(k * k)]
        while len(terms) > 1:  # balanced OR tree
            nxt = [builder.add(OR_GATE, terms[i], terms[i + 1]) for i in range(0, len(terms) - 1, 2)]
            if len(terms) % 2:
                nxt.append(terms[-1])
            terms = nxt
        return terms[0]


class Flatten(nn.Module):
    """(N, ...) → (N, prod(...)), C-order (the netlist uses the same order)."""

    def forward(self, x: torch.Tensor, hard: bool = False) -> torch.Tensor:
        return x.flatten(1)

    def to_netlist(self, builder, signals: np.ndarray) -> np.ndarray:
        return signals.reshape(-1)


class GroupSum(nn.Module):
    """(N, k·g) → (N, k): sum of each class's contiguous group of g outputs, divided by ``tau``."""

    def __init__(self, num_classes: int, tau: float = 1.0):
        super().__init__()
        self.num_classes, self.tau = int(num_classes), float(tau)

    def extra_repr(self) -> str:
        return f"classes={self.num_classes}, tau={self.tau}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.num_classes:
            raise ValueError(f"GroupSum: {x.shape[-1]} outputs do not split into {self.num_classes} classes")
        return x.reshape(*x.shape[:-1], self.num_classes, -1).sum(-1) / self.tau


class Thermometer(nn.Module):
    """Thermometer input encoding with ``levels`` thresholds ``(j+1)/(levels+1)``: (N, C, ...) → (N, C·levels, ...) 0/1."""

    def __init__(self, levels: int = 3):
        super().__init__()
        self.levels = int(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from neurohw.data.encoders import thermometer_encode

        return thermometer_encode(x, self.levels)
