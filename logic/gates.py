"""The 16 two-input logic gates, their real-valued relaxations, and the softmax mixture.

Canonical order (difflogic's): the gate id, written as 4 bits, is the gate's truth table
over the input pairs ``(a, b) = 00, 01, 10, 11`` read from the most significant bit, i.e.
``f(a, b) = (id >> (3 - (2a + b))) & 1``. With product logic every gate is affine-bilinear,
``g(a, b) = c0 + c1·a + c2·b + c3·a·b``, so a softmax mixture of the 16 gates is one
affine-bilinear expression whose 4 coefficients are ``softmax(logits) @ COEFFS`` — the fast
path. :data:`GATES` is the public table (id, name, formula, truth table, coefficients).

Shapes: ``a``, ``b`` are any broadcastable tensors of soft bits in [0, 1]; gate weights /
logits carry the 16 gate alternatives on their last axis.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: Gate names in canonical order (id = index).
GATE_NAMES: tuple[str, ...] = (
    "FALSE", "AND", "A_AND_NOT_B", "A", "NOT_A_AND_B", "B", "XOR", "OR",
    "NOR", "XNOR", "NOT_B", "A_OR_NOT_B", "NOT_A", "NOT_A_OR_B", "NAND", "TRUE",
)  # fmt: skip

#: Product-logic relaxations, as written in METHODS.md §3.
GATE_FORMULAS: tuple[str, ...] = (
    "0", "a*b", "a-a*b", "a", "b-a*b", "b", "a+b-2*a*b", "a+b-a*b",
    "1-(a+b-a*b)", "1-(a+b-2*a*b)", "1-b", "1-b+a*b", "1-a", "1-a+a*b", "1-a*b", "1",
)  # fmt: skip

#: Ids of the gates that ignore one or both inputs.
CONSTANT_GATES = (0, 15)
PASS_THROUGH_GATES = (3, 5)
NOT_GATES = (10, 12)
#: Id of the pass-through gate used by residual initialisation (output = input ``a``).
RESIDUAL_GATE = 3


def truth_value(gate_id: int, a: int, b: int) -> int:
    """Boolean output of gate ``gate_id`` on bits ``a``, ``b`` (canonical order)."""
    return (int(gate_id) >> (3 - (2 * int(a) + int(b)))) & 1


def _truth_table() -> torch.Tensor:
    return torch.tensor([[truth_value(g, p >> 1, p & 1) for p in range(4)] for g in range(16)], dtype=torch.int64)


#: (16, 4) int64: ``TRUTH[g, 2a+b]`` is gate g's output on (a, b).
TRUTH = _truth_table()


def _coeffs() -> torch.Tensor:
    f00, f01, f10, f11 = (TRUTH[:, i].double() for i in range(4))
    return torch.stack([f00, f10 - f00, f01 - f00, f11 - f10 - f01 + f00], dim=1)


#: (16, 4) float64: ``g(a, b) = c0 + c1·a + c2·b + c3·a·b`` (multilinear interpolation of the truth table).
COEFFS = _coeffs()


def _anf() -> torch.Tensor:
    f00, f01, f10, f11 = (TRUTH[:, i] for i in range(4))
    return torch.stack([f00, f10 ^ f00, f01 ^ f00, f11 ^ f10 ^ f01 ^ f00], dim=1)


#: (16, 4) int64 in {0,1}: algebraic normal form over GF(2), ``g = k0 ⊕ k1·a ⊕ k2·b ⊕ k3·a·b``.
#: The packed-bit evaluator uses it (3 XOR + 2 AND per word, no branches).
ANF = _anf()


def swap_inputs(gate_id: int) -> int:
    """The id of the gate ``g'`` with ``g'(a, b) = g(b, a)``."""
    t = [truth_value(gate_id, p >> 1, p & 1) for p in range(4)]
    t[1], t[2] = t[2], t[1]
    return (t[0] << 3) | (t[1] << 2) | (t[2] << 1) | t[3]


@dataclass(frozen=True)
class Gate:
    """One row of the public gate table."""

    id: int
    name: str
    formula: str
    truth: tuple[int, int, int, int]  # outputs on (a,b) = 00, 01, 10, 11
    coeffs: tuple[float, float, float, float]  # c0, c1, c2, c3


#: The public table of the 16 gates in canonical order.
GATES: tuple[Gate, ...] = tuple(
    Gate(g, GATE_NAMES[g], GATE_FORMULAS[g], tuple(int(v) for v in TRUTH[g]), tuple(float(v) for v in COEFFS[g]))
    for g in range(16)
)


def gate_outputs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All 16 relaxed gates evaluated explicitly: returns ``(..., 16)`` (the naive path)."""
    ab = a * b
    one = torch.ones_like(ab)
    zero = torch.zeros_like(ab)
    return torch.stack(
        [
            zero, ab, a - ab, a, b - ab, b, a + b - 2 * ab, a + b - ab,
            one - (a + b - ab), one - (a + b - 2 * ab), one - b, one - b + ab, one - a, one - a + ab, one - ab, one,
        ],
        dim=-1,
    )  # fmt: skip


def bilinear(a: torch.Tensor, b: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """``c0 + c1·a + c2·b + c3·a·b`` with ``coeffs`` of shape ``(..., 4)`` broadcasting against a, b."""
    c0, c1, c2, c3 = coeffs.unbind(-1)
    return c0 + c1 * a + c2 * b + c3 * (a * b)


def mixture_coeffs(weights: torch.Tensor) -> torch.Tensor:
    """Affine-bilinear coefficients of a gate mixture: ``(..., 16) @ (16, 4) → (..., 4)``."""
    return weights @ COEFFS.to(device=weights.device, dtype=weights.dtype)


def hard_coeffs(logits: torch.Tensor) -> torch.Tensor:
    """Coefficients of the argmax gate of each row of ``logits`` (..., 16) → (..., 4)."""
    return COEFFS.to(device=logits.device, dtype=logits.dtype)[logits.argmax(-1)]


def mix(a: torch.Tensor, b: torch.Tensor, logits: torch.Tensor, *, hard: bool = False, naive: bool = False) -> torch.Tensor:
    """Relaxed gate mixture ``Σ_g softmax(logits)_g · g(a, b)``, or the argmax gate when ``hard``.

    ``logits`` has shape ``(..., 16)`` and broadcasts against ``a``/``b`` with its last
    axis removed. ``naive=True`` evaluates all 16 gates explicitly (the reference the fast
    affine-bilinear path is benchmarked and tested against).
    """
    if hard:
        return bilinear(a, b, hard_coeffs(logits))
    w = torch.softmax(logits, dim=-1)
    if naive:
        return (gate_outputs(a, b) * w).sum(-1)
    return bilinear(a, b, mixture_coeffs(w))


def init_logits(n: int, shape: tuple[int, ...] = (), init: str = "gaussian", generator: torch.Generator | None = None,
                residual_logit: float = 5.0) -> torch.Tensor:
    """Initial gate logits of shape ``(n, *shape, 16)``.

    ``gaussian``: N(0, 1) (difflogic). ``residual``: 0 everywhere except the pass-through
    gate ``a`` (id 3) at ``residual_logit`` (5 → P(a) ≈ 0.91; convolutional LGN paper).
    """
    size = (n, *shape, 16)
    if init == "gaussian":
        return torch.randn(size, generator=generator)
    if init == "residual":
        t = torch.zeros(size)
        t[..., RESIDUAL_GATE] = residual_logit
        return t
    raise ValueError(f"init must be 'gaussian' or 'residual', got {init!r}")


class _GradFactor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor, None


def grad_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``factor`` in the backward pass.

    Deep logic nets lose gradient through each layer (the gates' derivatives are ≤ 1);
    a factor > 1 on a layer's input counteracts that (difflogic's ``grad_factor``).
    """
    if factor == 1.0 or not x.requires_grad:
        return x
    return _GradFactor.apply(x, float(factor))
