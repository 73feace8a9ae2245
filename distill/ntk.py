"""Empirical neural tangent kernels of any ``torch.nn.Module`` with ``torch.func``.

For a model ``f(θ, x) ∈ R^O`` and a minibatch ``x`` of N inputs, the per-sample Jacobian is
``J_i = ∂f(θ, x_i)/∂θ`` (shape O×P). The empirical NTK is

* ``"full"``:   ``Θ[i, j, a, b] = Σ_p J_i[a, p] J_j[b, p]``         shape (N, N, O, O)
* ``"kernel"``: ``Θ[i, j] = Σ_c Θ[i, j, c, c]`` (logit axis traced)    shape (N, N)   — default
* ``"diag"``:   ``Θ[i, i]`` of the traced kernel                       shape (N,)
* ``"trace"``:  ``Σ_i Θ[i, i]``                                        shape ()

Estimators (``method=``):

``"exact"``
    Per-sample Jacobians (``vmap(jacrev)``), contracted over parameters.
    Cost ``N·O·[FP] + N²·O²·P``; memory ``N·O·P`` for the Jacobians.
``"ntvp"``
    NTK-vector products ``Θ u = J (Jᵀ u)`` (one vjp and one jvp of the whole batch) for
    every basis vector ``u`` of R^{N·O}. Cost ``N²·O·[FP]``; no Jacobian is stored.
``"sketch"``
    Unbiased random projection ``Θ̂ = (1/R) Σ_r (J v_r)(J v_r)ᵀ`` with ``v_r ∈ R^P``,
    ``E[v vᵀ] = I`` (Gaussian or Rademacher), computed with R jvps.
    ``E[Θ̂] = Θ``; relative error ∝ 1/√R. Cost ``R·N·[FP]``.
``"perturbation"``
    The trace-only estimator NTKD cites (NTK-SAP style): with ``ε = σ v``,
    ``E‖f(θ+ε) − f(θ)‖² ≈ σ² tr Θ``. Only ``output="diag"`` (per sample) or ``"trace"``.
    Finite differences: bias O(σ²), plus float rounding ~ eps/σ.

All four are differentiable with respect to the parameters (``torch.func`` composes with
ordinary autograd), so they can serve a student's loss; the sketch is the cheap one.

Parameters and buffers
    ``params=None`` differentiates with respect to every parameter with
    ``requires_grad=True``; pass names, parameter tensors or a ``{name: tensor}`` dict to
    restrict (e.g. only a back-end). Everything else (other parameters, buffers such as
    batch-norm running statistics) is held fixed. By default the model is switched to
    ``eval()`` for the computation (batch norm uses running statistics, dropout is off) and
    its modes are restored afterwards.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Iterable, Iterator, Mapping

import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from distill.frontend_ntk import factorise

#: The public estimators (re-exported by the ``distill`` package).
__all__ = ["METHODS", "OUTPUTS", "NTKError", "empirical_ntk", "explicit_ntk", "n_parameters", "resolve_params"]

METHODS = ("exact", "ntvp", "sketch", "perturbation")
OUTPUTS = ("kernel", "full", "diag", "trace")
ENGINES = ("auto", "func", "autograd")

ParamSpec = None | Mapping[str, torch.Tensor] | Iterable[str] | Iterable[torch.Tensor]


class NTKError(ValueError):
    """Bad arguments to an NTK computation (unknown method/output, bad params, bad model output)."""


@contextlib.contextmanager
def eval_mode(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the block and restore each one's flag after."""
    if not enabled:
        yield model
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def resolve_params(model: nn.Module, params: ParamSpec = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split the model's tensors into (differentiated parameters, fixed tensors).

    ``params``: None (all parameters with ``requires_grad``), a ``{name: tensor}`` mapping
    (the tensors replace the model's own in the computation), an iterable of parameter
    names, or an iterable of the model's parameter tensors. The fixed dict holds all other
    parameters and all buffers.
    """
    named = dict(model.named_parameters())
    if params is None:
        chosen = {k: v for k, v in named.items() if v.requires_grad}
    elif isinstance(params, Mapping):
        unknown = [k for k in params if k not in named]
        if unknown:
            raise NTKError(f"params: {unknown} are not parameters of {type(model).__name__} (known: {list(named)[:8]}...)")
        chosen = dict(params)
    else:
        items = list(params)
        chosen = {}
        by_id = {id(v): k for k, v in named.items()}
        for it in items:
            if isinstance(it, str):
                if it not in named:
                    raise NTKError(f"params: {it!r} is not a parameter of {type(model).__name__} (known: {list(named)[:8]}...)")
                chosen[it] = named[it]
            elif isinstance(it, torch.Tensor):
                if id(it) not in by_id:
                    raise NTKError(f"params: a tensor of shape {tuple(it.shape)} is not a parameter of {type(model).__name__}")
                chosen[by_id[id(it)]] = it
            else:
                raise NTKError(f"params: expected names or tensors, got {type(it).__name__}")
    if not chosen:
        raise NTKError(f"{type(model).__name__}: no parameters to differentiate (none requires grad / empty params=)")
    fixed = {k: v for k, v in named.items() if k not in chosen}
    fixed.update(dict(model.named_buffers()))
    return chosen, fixed


def _batch_fn(model: nn.Module, fixed: Mapping[str, torch.Tensor]):
    """``f(params, x) -> (N, O)`` logits of a batch via ``functional_call``."""

    def f(params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**fixed, **params}, (x,))
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2:
            raise NTKError(
                f"{type(model).__name__} returned shape {tuple(out.shape)}; the NTK needs (N, O) logits "
                "(wrap the model so it returns one logit vector per sample)"
            )
        return out

    return f


def _draw_tangents(
    params: Mapping[str, torch.Tensor], n: int, kind: str, generator: torch.Generator | None
) -> dict[str, torch.Tensor]:
    """``n`` random directions per parameter, ``E[v vᵀ] = I``; drawn on CPU so CPU and CUDA agree.

    Gaussian directions are drawn in float64 for float64 parameters, else in float32 (the
    float64 sampler is ~10× slower; both are standard normal to the parameters' precision)."""
    out = {}
    for k, p in params.items():
        shape = (n, *p.shape)
        if kind == "gaussian":
            v = torch.randn(shape, generator=generator, dtype=torch.float64 if p.dtype == torch.float64 else torch.float32)
        elif kind == "rademacher":
            v = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64).to(torch.float64) * 2 - 1
        else:
            raise NTKError(f"projection={kind!r}: use 'gaussian' or 'rademacher'")
        out[k] = v.to(device=p.device, dtype=p.dtype)
    return out


def _reduce_full(full: torch.Tensor, output: str) -> torch.Tensor:
    """The requested output from the full kernel ``full`` (N, N, O, O): itself, the logit trace
    (N, N), its diagonal (N,) or its trace (scalar)."""
    if output == "full":
        return full
    k = torch.einsum("ijcc->ij", full)
    if output == "kernel":
        return k
    d = torch.diagonal(k)
    return d if output == "diag" else d.sum()


#: einsum operands of :func:`_factor_kernel` by layout: (sample i, sample j with logit a, with logit b).
_FACTOR_LAYOUTS = {"nop": ("iap", "jap", "jbp"), "rno": ("ria", "rja", "rjb")}


def _factor_kernel(j: torch.Tensor, output: str, layout: str) -> torch.Tensor:
    """``output`` of the kernel ``K[i, j, a, b] = Σ_p J[i, a, p]·J[j, b, p]`` from factors ``j``:
    layout ``"nop"`` — Jacobian rows (N, O, P); ``"rno"`` — R sketched products (R, N, O), summed
    over R. ``kernel`` (N, N) sums a = b; ``diag`` (N,); ``trace`` (scalar)."""
    left, right, right_b = _FACTOR_LAYOUTS[layout]
    if output == "kernel":
        return torch.einsum(f"{left},{right}->ij", j, j)
    if output == "full":
        return torch.einsum(f"{left},{right_b}->ijab", j, j)
    d = torch.einsum(f"{left},{left}->i", j, j)
    return d if output == "diag" else d.sum()


def _from_jv(jv: torch.Tensor, output: str) -> torch.Tensor:
    """Kernel from R sketched products ``jv`` (R, N, O), averaged over R."""
    r = jv.shape[0]
    if output == "trace":
        return (_factor_kernel(jv, "diag", "rno") / r).sum()
    return _factor_kernel(jv, output, "rno") / r


def empirical_ntk(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "exact",
    output: str = "kernel",
    *,
    params: ParamSpec = None,
    chunk_size: int | None = None,
    n_projections: int = 32,
    projection: str = "gaussian",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    sigma: float = 1e-3,
    keep_mode: bool = False,
    engine: str = "auto",
    structured: bool = True,
) -> torch.Tensor:
    """Empirical NTK of ``model`` on the batch ``x`` (N, ...).

    Args:
        model: any module mapping (N, ...) inputs to (N, O) logits.
        x: the inputs; cast to the differentiated parameters' dtype and device.
        method: ``"exact"``, ``"ntvp"``, ``"sketch"`` or ``"perturbation"`` (module docstring).
        output: ``"kernel"`` (N, N) logit-traced (default), ``"full"`` (N, N, O, O),
            ``"diag"`` (N,), ``"trace"`` (scalar).
        params: which parameters to differentiate (see :func:`resolve_params`).
        chunk_size: vectorised chunk size — samples (exact), basis vectors (ntvp),
            projections (sketch, perturbation). Bounds peak memory; None = all at once.
        n_projections: R for ``sketch`` and ``perturbation``.
        projection: ``"gaussian"`` or ``"rademacher"`` random directions.
        generator / seed: randomness for the directions (a seed makes calls repeatable).
        sigma: perturbation size for ``"perturbation"`` (in parameter units).
        engine: ``"func"`` (torch.func: vmap, jacrev, jvp), ``"autograd"`` (plain
            ``torch.autograd.grad`` loops — for models whose custom ``autograd.Function``s,
            e.g. surrogate spikes, support neither vmap nor forward-mode AD; ``ntvp`` has no
            loop form), or ``"auto"`` (func, falling back to autograd when a transform is
            unsupported by the model, with a warning).
        keep_mode: evaluate in the model's current mode instead of ``eval()`` (default: eval —
            batch norm uses running statistics, dropout is off).
        structured: for the students with a linear front-end that
            :mod:`distill.frontend_ntk` recognises (the optical students), compute the
            front-end once per batch as pooled patches and push the estimator's tangents
            through one matrix product instead of the convolution and pool (the same kernel up
            to float rounding; False: the model as it is).

    Returns:
        The kernel in the parameters' dtype, on their device; differentiable with respect to
        the parameters when they require grad.
    """
    if method not in METHODS:
        raise NTKError(f"method={method!r}: use one of {METHODS}")
    if engine not in ENGINES:
        raise NTKError(f"engine={engine!r}: use one of {ENGINES}")
    if output not in OUTPUTS:
        raise NTKError(f"output={output!r}: use one of {OUTPUTS}")
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
        raise NTKError("x must be a non-empty tensor with the batch on axis 0")
    chosen, fixed = resolve_params(model, params)
    ref = next(iter(chosen.values()))
    if x.is_floating_point():
        x = x.to(device=ref.device, dtype=ref.dtype)
    else:
        x = x.to(device=ref.device)
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    f = _batch_fn(model, fixed)
    if method == "perturbation" and output not in ("diag", "trace"):
        raise NTKError(
            f"method='perturbation' estimates only the trace (output='diag' or 'trace'), not {output!r}; "
            "use method='sketch' for an unbiased (N, N) estimate from random directions"
        )
    if method == "perturbation" and not sigma > 0:
        raise NTKError(f"sigma={sigma}: must be > 0")
    tangents = None
    if method in ("sketch", "perturbation"):
        if n_projections < 1:
            raise NTKError(f"n_projections={n_projections}: need at least 1")
        tangents = _draw_tangents(chosen, n_projections, projection, generator)
    with eval_mode(model, not keep_mode):
        if structured:
            fac = factorise(model, f, chosen, fixed, x)
            if fac is not None:
                f, x = fac
        if engine != "autograd":
            try:
                if method == "exact":
                    return _exact(f, chosen, x, output, chunk_size)
                if method == "ntvp":
                    return _ntvp(f, chosen, x, output, chunk_size)
                if method == "sketch":
                    return _sketch(f, chosen, x, output, chunk_size, tangents)
                return _perturbation(f, chosen, x, output, chunk_size, tangents, sigma)
            except (RuntimeError, NotImplementedError) as exc:
                if engine == "func" or not _is_transform_error(exc):
                    raise
                if method == "ntvp":
                    raise NTKError(
                        f"method='ntvp' needs torch.func, which cannot transform {type(model).__name__}, and has no "
                        "autograd engine; use 'exact' or 'sketch'"
                    ) from exc
                warnings.warn(
                    f"empirical_ntk: torch.func cannot transform {type(model).__name__} ({str(exc).splitlines()[0][:160]}); "
                    "using the autograd engine (loops)", RuntimeWarning, stacklevel=2,
                )
        if method == "ntvp":
            raise NTKError("method='ntvp' has no autograd engine; use 'exact' or 'sketch' with engine='autograd'")
        return _autograd_engine(f, chosen, x, output, method, tangents, sigma)


_TRANSFORM_HINTS = ("vmap", "jvp", "forward ad", "forward-mode", "forward mode", "functorch", "torch.func", "setup_context", "batching rule")


def _is_transform_error(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return any(h in msg for h in _TRANSFORM_HINTS)


def _autograd_engine(f, params, x, output, method, tangents, sigma):
    """The same estimators with plain ``torch.autograd.grad`` (no vmap, no forward AD).

    ``exact``: one backward per (sample, logit); ``sketch``: ``J v`` by the double-backward
    identity ``J v = ∂/∂u ⟨Jᵀu, v⟩`` (one backward + one double backward per projection);
    ``perturbation``: a loop of forward passes. Differentiable (``create_graph``) when grad
    mode is on.
    """
    outer = torch.is_grad_enabled()
    names = list(params)
    with torch.enable_grad():
        leaves = {k: (p if p.requires_grad else p.detach().requires_grad_(True)) for k, p in params.items()}
        tensors = [leaves[k] for k in names]
        if method == "perturbation":
            base = f(leaves, x)
            delta = torch.stack([f({k: leaves[k] + sigma * tangents[k][r] for k in names}, x) - base
                                 for r in range(next(iter(tangents.values())).shape[0])])
            res = _from_jv(delta, output) / (sigma * sigma)
        elif method == "sketch":
            out = f(leaves, x)
            jvs = []
            for r in range(next(iter(tangents.values())).shape[0]):
                u = torch.zeros_like(out, requires_grad=True)
                g = torch.autograd.grad(out, tensors, grad_outputs=u, create_graph=True, allow_unused=True)
                s = sum((gk * tangents[k][r]).sum() for gk, k in zip(g, names) if gk is not None)
                (jv,) = torch.autograd.grad(s, u, create_graph=outer)
                jvs.append(jv)
            res = _from_jv(torch.stack(jvs), output)
        else:  # exact
            rows = []
            for i in range(x.shape[0]):
                out = f(leaves, x[i : i + 1]).reshape(-1)
                grads = []
                for a in range(out.numel()):
                    g = torch.autograd.grad(out[a], tensors, retain_graph=True, create_graph=outer, allow_unused=True)
                    grads.append(torch.cat([(gk if gk is not None else torch.zeros_like(t)).reshape(-1) for gk, t in zip(g, tensors)]))
                rows.append(torch.stack(grads))
            res = _factor_kernel(torch.stack(rows), output, "nop")  # rows: (N, O, P)
    return res if outer else res.detach()


def _exact(f, params, x, output, chunk_size):
    def f1(p, xi):
        return f(p, xi.unsqueeze(0)).squeeze(0)

    jac = vmap(jacrev(f1), (None, 0), chunk_size=chunk_size)(params, x)
    total = None
    for j in jac.values():
        part = _factor_kernel(j.reshape(j.shape[0], j.shape[1], -1), "diag" if output == "trace" else output, "nop")  # (N, O, P_k)
        total = part if total is None else total + part
    return total.sum() if output == "trace" else total


def _ntvp(f, params, x, output, chunk_size):
    out, vjp_fn = vjp(lambda p: f(p, x), params)
    n, o = out.shape
    basis = torch.eye(n * o, dtype=out.dtype, device=out.device).reshape(n * o, n, o)

    def column(u):
        (ct,) = vjp_fn(u)
        return jvp(lambda p: f(p, x), (params,), (ct,))[1]

    cols = vmap(column, chunk_size=chunk_size)(basis)  # (N·O, N, O): cols[(j,b), i, a] = Θ[i,j,a,b]
    full = cols.reshape(n, o, n, o).permute(2, 0, 3, 1)  # [j, b, i, a] -> [i, j, a, b]
    return _reduce_full(full, output)


def _sketch(f, params, x, output, chunk_size, tangents):
    def one(t):
        return jvp(lambda p: f(p, x), (params,), (t,))[1]

    jv = vmap(one, chunk_size=chunk_size)(tangents)  # (R, N, O)
    return _from_jv(jv, output)


def _perturbation(f, params, x, output, chunk_size, tangents, sigma):
    base = f(params, x)

    def one(t):
        moved = {k: p + sigma * t[k] for k, p in params.items()}
        return f(moved, x) - base

    delta = vmap(one, chunk_size=chunk_size)(tangents)  # (R, N, O)
    return _from_jv(delta, output) / (sigma * sigma)


def explicit_ntk(model: nn.Module, x: torch.Tensor, *, params: ParamSpec = None, output: str = "kernel") -> torch.Tensor:
    """Reference NTK by plain per-sample, per-logit ``torch.autograd.grad`` loops (slow; for tests).

    Independent of ``torch.func``: one backward pass per (sample, logit).
    """
    chosen, _ = resolve_params(model, params)
    tensors = list(chosen.values())
    ref = tensors[0]
    x = x.to(device=ref.device, dtype=ref.dtype) if x.is_floating_point() else x.to(ref.device)
    rows = []
    with eval_mode(model):
        for i in range(x.shape[0]):
            out = model(x[i : i + 1]).reshape(-1)
            grads = []
            for a in range(out.numel()):
                g = torch.autograd.grad(out[a], tensors, retain_graph=True, allow_unused=True)
                grads.append(torch.cat([(gk if gk is not None else torch.zeros_like(t)).reshape(-1) for gk, t in zip(g, tensors)]))
            rows.append(torch.stack(grads))  # (O, P)
    jac = torch.stack(rows)  # (N, O, P)
    full = torch.einsum("iap,jbp->ijab", jac, jac)
    return _reduce_full(full, output)


def n_parameters(model: nn.Module, params: ParamSpec = None) -> int:
    """Number of scalar parameters the NTK differentiates (P)."""
    chosen, _ = resolve_params(model, params)
    return int(sum(math.prod(v.shape) for v in chosen.values()))
