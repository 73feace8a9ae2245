"""∂B nets (Wright 2023): gradient-rich soft-bit operators that harden without loss.

Soft bits live in [0, 1]; :func:`harden` is ``x > 1/2``. A soft function ``f`` is
*hard-equivalent* to a boolean ``g`` when ``harden(f(x)) = g(harden(x))`` for every ``x``
with no coordinate exactly 1/2. Every operator here is hard-equivalent to its boolean
counterpart in :mod:`~logic.dbnets` ``hard_*`` functions (proved by the tests: exhaustively
over the sign patterns on small arities, by hypothesis property tests beyond).

Margin packing (neurohw's concrete form; the paper gives the idea, not one formula): an
n-ary operator picks its *representative* bit ``r`` (∂∧: min, ∂∨: max, ∂Maj: lower median),
whose margin ``m = |r − 1/2|`` decides the output side. The output keeps that side and
scales the margin by how much the inputs on average support that side:

    out = 1/2 + s · m · (1 + ā)/2,   s = sign(r − 1/2),   ā = mean(x) if s > 0 else 1 − mean(x)

``m' = m(1 + ā)/2`` satisfies ``0 < m' ≤ 1/2`` whenever ``0 < m ≤ 1/2``, so the side is kept
and the result is a soft bit, while every input gets a gradient ``± m/(2n)`` through the
mean — also when the representative is saturated (m = 1/2), where a plain min/max has
none. The mean is over the operator's inputs (for ∂⇒ over ``(y, 1−x)``).

In floating point the side is kept exactly as long as ``m'`` is not rounded away next to
1/2; train and evaluate in float32 with inputs not within ~1e-7 of 1/2 (float64 in the
property tests).
"""
from __future__ import annotations

import torch
from torch import nn

HALF = 0.5


def harden(x: torch.Tensor) -> torch.Tensor:
    """Soft bits → booleans: ``x > 1/2``."""
    return x > HALF


# ---------------------------------------------------------------------------- soft operators
def soft_not(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """∂¬(w, x) = 1 − w + x(2w − 1): x when w = 1, 1 − x when w = 0. Hardens to ¬(x ⊕ w)."""
    return 1 - w + x * (2 * w - 1)


def _pack(rep: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    m = (rep - HALF).abs()
    side = torch.sign(rep - HALF)
    mean = x.mean(dim)
    support = torch.where(side > 0, mean, 1 - mean)
    return HALF + side * m * (1 + support) / 2


def soft_and(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """∂∧ over ``dim``: representative min, margin-packed. Hardens to AND."""
    return _pack(x.amin(dim), x, dim)


def soft_or(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """∂∨ over ``dim``: representative max, margin-packed. Hardens to OR."""
    return _pack(x.amax(dim), x, dim)


def soft_maj(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """∂Maj over ``dim``: representative the lower median (sorted index ⌊(n−1)/2⌋), margin-packed.

    Hardens to "more than half of the n bits are true" (n even: a tie is false).
    """
    n = x.shape[dim]
    rep = x.sort(dim).values.narrow(dim, (n - 1) // 2, 1).squeeze(dim)
    return _pack(rep, x, dim)


def soft_implies(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂⇒(x, y) = ∂∨(y, 1 − x) (elementwise, broadcasting). Hardens to x ⇒ y."""
    x, y = torch.broadcast_tensors(x, y)
    return soft_or(torch.stack([y, 1 - x], -1), -1)


# ---------------------------------------------------------------------------- hard operators
def hard_not(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return ~(x ^ w)


def hard_and(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x.all(dim)


def hard_or(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x.any(dim)


def hard_maj(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return 2 * x.sum(dim) > x.shape[dim]


def hard_implies(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ~x | y


def straight_through(b: torch.Tensor) -> torch.Tensor:
    """Forward ``harden(b)`` as 0/1 floats, backward the identity (the gradient of ``b``)."""
    return b + (harden(b).to(b.dtype) - b).detach()


# ---------------------------------------------------------------------------- the MNIST net
#: The stages of :class:`DBMnistNet` (:meth:`DBMnistNet.stages`), input to output.
STAGES = ("input", "implies", "maj", "out")


class DBMnistNet(nn.Module):
    """Wright's MNIST ∂B net: bits → ∂⇒ (width W1) → ∂Maj over groups of G → ∂¬ (width W2) → class buckets.

    Input (N, n_in) soft bits (pixels > 0.3). Layer 1: ``z[j, i] = ∂⇒(w1[i, j], x[i])`` for
    every input i and j < W1 (n_in·W1 weights). Layer 2: ∂Maj over consecutive groups of G of
    the layer-1 bits flattened neuron-major (so a group is G neighbouring pixels of one
    neuron j). Layer 3: ``u[k, j] = ∂¬(w2[k, j], maj[k])`` (n_maj·W2 weights).
    Output: the n_maj·W2 bits split into ``num_classes`` contiguous buckets; the logits are
    the bucket sums (integers once hardened). Weights are soft bits, clamped to [0, 1]
    after each optimiser step (:meth:`clamp_`); hardening them is ``w > 1/2``.
    With the defaults (784, 60, 16, 20) there are 47,040 + 58,800 = 105,840 weights.
    """

    def __init__(self, n_in: int = 784, width1: int = 60, group: int = 16, width2: int = 20, num_classes: int = 10,
                 threshold: float = 0.3, seed: int = 0):
        super().__init__()
        if (n_in * width1) % group:
            raise ValueError(f"DBMnistNet: n_in·width1 = {n_in * width1} is not a multiple of group={group}")
        n_maj = n_in * width1 // group
        if (n_maj * width2) % num_classes:
            raise ValueError(f"DBMnistNet: {n_maj * width2} output bits do not split into {num_classes} buckets")
        g = torch.Generator().manual_seed(int(seed))
        self.n_in, self.width1, self.group, self.width2, self.num_classes = n_in, width1, group, width2, num_classes
        self.threshold = threshold
        self.config = dict(n_in=n_in, width1=width1, group=group, width2=width2, num_classes=num_classes,
                           threshold=threshold, seed=seed)
        # Weights drawn away from 1/2 so no weight starts undecided.
        self.w1 = nn.Parameter(self._init((n_in, width1), g))
        self.w2 = nn.Parameter(self._init((n_maj, width2), g))

    @staticmethod
    def _init(shape, g):
        u = torch.rand(shape, generator=g)
        return torch.where(u > HALF, 0.55 + 0.45 * u, 0.45 * u)  # in [0, 0.225] ∪ [0.775, 1]

    def n_weights(self) -> int:
        return self.w1.numel() + self.w2.numel()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, ...) pixels in [0,1] → (N, n_in) hard 0/1 float bits (pixel > threshold)."""
        return (images.flatten(1) > self.threshold).to(images.dtype if images.is_floating_point() else torch.float32)

    def bits(self, x: torch.Tensor, w1: torch.Tensor | None = None, w2: torch.Tensor | None = None) -> torch.Tensor:
        """Soft output bits (N, n_maj·W2) from soft input bits (N, n_in).

        ``w1`` (n_in, W1) / ``w2`` (n_maj, W2): weights to use instead of the parameters (the
        training forward of :func:`logic.train.fit_dbnet` passes sampled, straight-through
        hardened weights); default the soft parameters themselves.
        """
        return self.stages(x, w1, w2)["out"]

    def stages(self, x: torch.Tensor, w1: torch.Tensor | None = None, w2: torch.Tensor | None = None,
               straight: tuple[str, ...] = ()) -> dict:
        """Soft bits of every stage: ``{"input": (N, n_in), "implies": (N, W1·n_in) neuron-major,
        "maj": (N, n_maj), "out": (N, n_maj·W2)}``; ``w1``/``w2`` as in :meth:`bits`.

        ``straight``: stages (of :data:`STAGES` after ``input``) whose bits are hardened in the
        forward with the soft operator's gradient in the backward (:func:`straight_through`);
        with every stage and 0/1 weights the forward is exactly the boolean net.
        """
        unknown = set(straight) - set(STAGES[1:])
        if unknown:
            raise ValueError(f"DBMnistNet.stages: unknown stage(s) {sorted(unknown)}; known: {list(STAGES[1:])}")
        st = lambda name, b: straight_through(b) if name in straight else b  # noqa: E731
        w1 = self.w1 if w1 is None else w1
        w2 = self.w2 if w2 is None else w2
        z = st("implies", soft_implies(w1.T.unsqueeze(0), x.unsqueeze(1)))  # (N, W1, n_in)
        maj = st("maj", soft_maj(z.reshape(x.shape[0], -1, self.group), -1))  # (N, n_maj)
        out = st("out", soft_not(w2.unsqueeze(0), maj.unsqueeze(-1)).flatten(1))
        return {"input": x, "implies": z.flatten(1), "maj": maj, "out": out}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Soft logits (N, classes): bucket sums of the soft output bits."""
        return self.bucket_sums(self.bits(x))

    def bucket_sums(self, bits: torch.Tensor) -> torch.Tensor:
        """(N, n_maj·W2) output bits → (N, classes) sums over each class's contiguous bucket."""
        return bits.view(bits.shape[0], self.num_classes, -1).sum(-1)

    @torch.no_grad()
    def hard_bits(self, x: torch.Tensor) -> torch.Tensor:
        """The hardened net on hardened inputs: (N, n_maj·W2) bool, booleans only."""
        return self.hard_stages(x)["out"]

    @torch.no_grad()
    def hard_stages(self, x: torch.Tensor) -> dict:
        """The boolean counterpart of :meth:`stages` (same keys and shapes, bool)."""
        xb, w1, w2 = harden(x), harden(self.w1), harden(self.w2)
        z = hard_implies(w1.T.unsqueeze(0), xb.unsqueeze(1))
        maj = hard_maj(z.reshape(x.shape[0], -1, self.group), -1)
        out = hard_not(w2.unsqueeze(0), maj.unsqueeze(-1)).flatten(1)
        return {"input": xb, "implies": z.flatten(1), "maj": maj, "out": out}

    @torch.no_grad()
    def hard_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Integer logits of the hardened net: (N, classes) int64."""
        return self.hard_bits(x).view(x.shape[0], self.num_classes, -1).sum(-1, dtype=torch.int64)

    @torch.no_grad()
    def weight_margin(self) -> dict:
        """How saturated the weights are: mean |w − 1/2| (1/2 = all at 0 or 1) and the fraction within 0.05 of 1/2."""
        w = torch.cat([self.w1.flatten(), self.w2.flatten()])
        m = (w - HALF).abs()
        return {"weight_margin": float(m.mean()), "weights_undecided": float((m < 0.05).float().mean())}

    @torch.no_grad()
    def settle_(self, delta: float) -> int:
        """Move every weight within ``delta`` of 1/2 to ``1/2 ± delta`` on its hardened side (1/2 itself
        is false: to ``1/2 − delta``); returns how many moved. The hard net is unchanged; the soft net
        keeps margins float32 rounding cannot erase (a weight at 1/2 gives a soft bit of exactly 1/2,
        which hardens to false where the boolean net may have true)."""
        n = 0
        for w in (self.w1, self.w2):
            near = (w - HALF).abs() < delta
            n += int(near.sum())
            w.copy_(torch.where(near, torch.where(harden(w), HALF + delta, HALF - delta), w))
        return n

    @torch.no_grad()
    def clamp_(self) -> None:
        self.w1.clamp_(0, 1)
        self.w2.clamp_(0, 1)
