"""Linear front-ends factored out of an NTK computation (same kernel, far fewer operations).

Students whose first stage is a bias-free convolution followed by a linear spatial map —
the optical students: ``rest(pool(conv2d(x, W(θ))))`` with a fixed pool (average pooling) —
are linear in the conv weight ``W`` for a fixed batch ``x``. With the pooled patches of the
batch ::

    Q = pool(unfold(x))            (N, C·k·k, h, w), computed once per batch, no parameters

the front-end is one matrix product, ``pool(conv2d(x, W)) = W.reshape(O, C·k·k) @ Q``
(unfold's (C, kh, kw) order is the conv weight's; pooling is per channel and linear, so it
commutes with the sum over the C·k·k patch entries). When the pool is a plain s×s average
(stride s), ``Q``'s entries are those of the s×s box-filtered image ``B`` at stride s, so the
front-end is the stride-s convolution ``conv2d(B, W, stride=s)`` — the same sums, evaluated
only at the pooled positions (and in the (N, O, h, w) layout the back-end reads). The NTK
estimators then push their R·N tangents (sketch), N per-sample Jacobians (exact) or moved
parameters (perturbation) through that operation instead of through a full-resolution
convolution and a pool: the function of the parameters is the same, only the order of the
sums differs (float rounding).

:func:`factorise` returns ``(g, q)`` (``q``: ``B`` or ``Q``) with ``g(params, q) == f(params, x)`` for the students it
recognises (exact types, so a subclass with another ``forward`` is not mistaken for one), and
checks that equality on the first samples before it is used; anything else gets ``None`` and
the estimators use the model as it is. Recognised:

* :class:`distill.students.LinearConstrainedStudent` — ``W = softplus(pos) − softplus(neg)``,
  padding ``k // 2``, 2×2 average pool, ``fc2(relu(fc1(·)))``;
* an optics :class:`~optics.hybrid.HybridModel` (e.g. ``HybridMNIST``, the ``"optical"``
  student) with a :class:`~optics.frontend.KernelFrontEnd` (``W = relu(K) − relu(−K)``, the
  PSF pair difference, valid conv) and an ``nn.Sequential`` back-end; a leading
  ``nn.AvgPool2d`` of the back-end becomes ``pool``. Not while the front-end adds its training
  noise (training mode with ``train_noise > 0``: that output is random, not linear).

``optics`` is only looked at when it is already imported (a model of it exists only then), so
``distill`` still imports no backend.
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Params = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class LinearFrontEnd:
    """``model(x) = rest(params, pool(conv2d(x, weight(params), padding=padding)))``.

    ``weight(params)``: the (O, C, k, k) conv weight from the model's full parameter-and-buffer
    dict; ``pool``: a linear, per-channel spatial map of (N, ·, H, W) tensors (identity
    allowed); ``rest(params, z)``: logits (N, classes) from the pooled features z (N, O, h, w).
    ``box``: s when ``pool`` is a plain s×s average with stride s (no padding, floor mode);
    then the front-end is one stride-s convolution of the s×s box-filtered image (the same
    sums, at the pooled positions only).
    """

    weight: Callable[[Params], torch.Tensor]
    kernel_size: int
    padding: int
    pool: Callable[[torch.Tensor], torch.Tensor]
    rest: Callable[[Params, torch.Tensor], torch.Tensor]
    box: int | None = None

    def operand(self, x: torch.Tensor) -> torch.Tensor:
        """The batch's fixed operand, computed once per batch (no parameters involved).

        Plain s×s average (``box``): ``B``, the padded image averaged over s×s windows at
        stride 1 (N, C, H + 2p − s + 1, W + 2p − s + 1) — then
        ``pool(conv2d(x, W)) = conv2d(B, W, stride=s)``, because
        ``pool_ij(conv(x, W)) = Σ_(c,u,v) W[·, c, u, v] · B[c, s·i + u, s·j + v]``.
        Otherwise the pooled patches ``Q = pool(unfold(x))`` (N, C·k·k, h, w), with
        ``Q[n, (c, u, v), i, j] = pool_ij(x_pad[n, c, · + u, · + v])``.
        """
        n, _, hi, wi = x.shape
        k, p = self.kernel_size, self.padding
        if self.box:
            return F.avg_pool2d(F.pad(x, (p, p, p, p)) if p else x, self.box, stride=1)
        cols = F.unfold(x, k, padding=p)  # (N, C·k·k, H'·W')
        ho, wo = hi + 2 * p - k + 1, wi + 2 * p - k + 1
        return self.pool(cols.reshape(n, cols.shape[1], ho, wo))

    def features(self, params: Params, q: torch.Tensor) -> torch.Tensor:
        """``pool(conv2d(x, W))`` (N, O, h, w) from the operand ``q``: one strided convolution
        of the box-filtered image (``box``), else one matrix product ``W @ Q``."""
        w = self.weight(params)
        if self.box:
            return F.conv2d(q, w, stride=self.box)
        o = w.shape[0]
        n, ckk, h, wd = q.shape
        qf = q.permute(1, 0, 2, 3).reshape(ckk, n * h * wd)
        z = w.reshape(o, ckk) @ qf  # (O, N·h·w)
        return z.reshape(o, n, h, wd).permute(1, 0, 2, 3)

    def logits(self, params: Params, q: torch.Tensor) -> torch.Tensor:
        return self.rest(params, self.features(params, q))


def _sub(params: Params, prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``params`` below ``prefix.``, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in params.items() if k.startswith(prefix + ".")}


def _linear_constrained(model: nn.Module) -> LinearFrontEnd | None:
    from distill.students import LinearConstrainedStudent

    if type(model) is not LinearConstrainedStudent:
        return None
    conv = model.optical

    def weight(p: Params) -> torch.Tensor:
        return F.softplus(p["optical.pos"]) - F.softplus(p["optical.neg"])

    def rest(p: Params, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(F.linear(z.flatten(1), p["fc1.weight"], p["fc1.bias"]))
        return F.linear(h, p["fc2.weight"], p["fc2.bias"])

    return LinearFrontEnd(weight, conv.pos.shape[-1], conv.padding, lambda q: F.avg_pool2d(q, 2), rest, box=2)


def _optics_hybrid(model: nn.Module) -> LinearFrontEnd | None:
    hybrid, frontend = sys.modules.get("optics.hybrid"), sys.modules.get("optics.frontend")
    if hybrid is None or frontend is None or not isinstance(model, hybrid.HybridModel):
        return None
    fe, be = model.frontend, model.backend
    if type(model).forward is not hybrid.HybridModel.forward or type(fe) is not frontend.KernelFrontEnd:
        return None
    if (fe.training and fe.train_noise > 0) or type(be) is not nn.Sequential or len(be) == 0:
        return None
    children = list(be.named_children())
    pool: Callable[[torch.Tensor], torch.Tensor] = lambda q: q  # noqa: E731
    box = None
    if isinstance(children[0][1], nn.AvgPool2d):
        pool = children[0][1]
        box = _plain_average(pool)
        children = children[1:]

    def weight(p: Params) -> torch.Tensor:
        k = p["frontend.kernels"]
        return F.relu(k) - F.relu(-k)  # merge_pairs(conv(x, split_signed(k))) = conv(x, relu(k) − relu(−k))

    def rest(p: Params, z: torch.Tensor) -> torch.Tensor:
        for name, child in children:
            z = functional_call(child, _sub(p, f"backend.{name}"), (z,))
        return z

    return LinearFrontEnd(weight, fe.kernel_size, 0, pool, rest, box=box)


def _plain_average(pool: nn.AvgPool2d) -> int | None:
    """s when ``pool`` averages non-overlapping s×s windows (stride s, no padding, floor mode)."""
    k, st = pool.kernel_size, pool.stride
    k = k if isinstance(k, int) else (k[0] if len(set(k)) == 1 else None)
    st = st if isinstance(st, int) else (st[0] if len(set(st)) == 1 else None)
    pad = pool.padding if isinstance(pool.padding, int) else max(pool.padding)
    if k is None or st != k or pad or pool.ceil_mode or pool.divisor_override is not None:
        return None
    return int(k)


#: Recognisers tried in order; each returns a :class:`LinearFrontEnd` or None.
RECOGNISERS: list[Callable[[nn.Module], LinearFrontEnd | None]] = [_linear_constrained, _optics_hybrid]


def linear_frontend(model: nn.Module) -> LinearFrontEnd | None:
    """The model's linear front-end when it is one of the recognised students, else None."""
    for rec in RECOGNISERS:
        fe = rec(model)
        if fe is not None:
            return fe
    return None


def factorise(
    model: nn.Module, f: Callable[[Params, torch.Tensor], torch.Tensor], params: Params, fixed: Params, x: torch.Tensor,
    *, check: int = 2,
) -> tuple[Callable[[Params, torch.Tensor], torch.Tensor], torch.Tensor] | None:
    """``(g, q)`` with ``g(params, q) = f(params, x)`` (module docstring; ``q``: B or Q), or None.

    ``f(params, x)`` is the estimators' batch function (logits (N, O)) over the
    differentiated ``params``, ``fixed`` the other parameters and buffers. The equality is
    checked on the first ``check`` samples (float tolerance) before ``g`` is returned; a
    mismatch (a recognised student whose forward has changed) returns None.
    """
    fe = linear_frontend(model)
    if fe is None or x.ndim != 4 or not x.is_floating_point():
        return None

    def g(p: Params, q: torch.Tensor) -> torch.Tensor:
        return fe.logits({**fixed, **p}, q)

    q = fe.operand(x)  # outside no_grad: a kernel differentiated with respect to x still is
    if check:
        with torch.no_grad():
            a, b = f(params, x[:check]), g(params, q[:check])
            if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(a.abs().max().clamp_min(1.0))):
                warnings.warn(f"distill.frontend_ntk: the factored form of {type(model).__name__} does not reproduce its "
                              "forward; computing its NTK without it", RuntimeWarning, stacklevel=3)
                return None
    return g, q
