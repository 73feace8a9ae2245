"""Distillation losses: logit KD, NTK matching (three distances), and their combination.

The combined objective (NTKD, arXiv 2508.08421) is ``α·CE + β·D(Θ_T, Θ_S) (+ γ·KD)``:

* ``Θ_T``: the teacher's empirical NTK on its inputs, computed without gradient and cached
  per batch (:class:`TeacherKernelCache`), or passed in precomputed;
* ``Θ_S``: the student's empirical NTK on its inputs (which may differ from the teacher's —
  e.g. measured feature maps for a calibrated back-end), differentiable with respect to the
  chosen student parameters (``params=``);
* ``D``: ``"mse"`` — ``mean((Θ_T − Θ_S)²)``, the paper's form; ``"normalised"`` —
  ``‖Θ_S/‖Θ_S‖_F − Θ_T/‖Θ_T‖_F‖²_F`` (scale-free, in [0, 4]); ``"cka"`` — ``1 − CKA``
  (centred kernel alignment, in [0, 1]).

Shapes: kernels are (N, N) (logit-traced), or (N,) / () for the trace-only estimator
(``"cka"`` needs (N, N)). Logits are (N, O).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from distill.ntk import NTKError, ParamSpec, empirical_ntk

#: The public losses (re-exported by the ``distill`` package).
__all__ = ["KERNEL_LOSSES", "NTKDLossConfig", "NTKDistiller", "TeacherKernelCache", "cka", "kd_loss", "kernel_loss",
           "ntk_mse", "ntk_normalised_distance", "ntkd_loss", "student_kernel_loss", "teacher_kernel"]

KERNEL_LOSSES = ("mse", "normalised", "cka")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Hinton KD: ``τ² · KL(softmax(z_T/τ) ‖ softmax(z_S/τ))``, averaged over the batch."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"kd_loss: student logits {tuple(student_logits.shape)} != teacher {tuple(teacher_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"kd_loss: temperature must be > 0, got {temperature}")
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().to(student_logits.dtype) / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


def _check_pair(k_s: torch.Tensor, k_t: torch.Tensor, name: str) -> torch.Tensor:
    if k_s.shape != k_t.shape:
        raise ValueError(f"{name}: student kernel {tuple(k_s.shape)} and teacher kernel {tuple(k_t.shape)} differ")
    return k_t.detach().to(device=k_s.device, dtype=k_s.dtype)


def ntk_mse(k_student: torch.Tensor, k_teacher: torch.Tensor) -> torch.Tensor:
    """``mean((Θ_T − Θ_S)²)`` over all kernel entries (the paper's ‖Θ_T − Θ_S‖², per entry)."""
    k_t = _check_pair(k_student, k_teacher, "ntk_mse")
    return ((k_t - k_student) ** 2).mean()


def _safe(norm: torch.Tensor) -> torch.Tensor:
    """A norm kept away from 0 (a zero kernel stays zero instead of becoming NaN)."""
    return norm.clamp_min(torch.finfo(norm.dtype).tiny)


def ntk_normalised_distance(k_student: torch.Tensor, k_teacher: torch.Tensor) -> torch.Tensor:
    """``‖Θ_S/‖Θ_S‖_F − Θ_T/‖Θ_T‖_F‖²_F`` — invariant to each kernel's scale; in [0, 4]."""
    k_t = _check_pair(k_student, k_teacher, "ntk_normalised_distance")
    a = k_student / _safe(k_student.norm())
    b = k_t / _safe(k_t.norm())
    return ((a - b) ** 2).sum()


def _centre(k: torch.Tensor) -> torch.Tensor:
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def cka(k_student: torch.Tensor, k_teacher: torch.Tensor) -> torch.Tensor:
    """Centred kernel alignment ``⟨HK_SH, HK_TH⟩ / (‖HK_SH‖ ‖HK_TH‖)`` of two (N, N) kernels."""
    k_t = _check_pair(k_student, k_teacher, "cka")
    if k_t.ndim != 2 or k_t.shape[0] != k_t.shape[1]:
        raise ValueError(f"cka: needs square (N, N) kernels, got {tuple(k_t.shape)}")
    a, b = _centre(k_student), _centre(k_t)
    return (a * b).sum() / (_safe(a.norm()) * _safe(b.norm()))


def kernel_loss(k_student: torch.Tensor, k_teacher: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """The NTK-matching distance ``kind`` ∈ {"mse", "normalised", "cka"} (``"cka"`` → ``1 − CKA``)."""
    if kind == "mse":
        return ntk_mse(k_student, k_teacher)
    if kind == "normalised":
        return ntk_normalised_distance(k_student, k_teacher)
    if kind == "cka":
        return 1.0 - cka(k_student, k_teacher)
    raise ValueError(f"kernel loss {kind!r}: use one of {KERNEL_LOSSES}")


def batch_fingerprint(x: torch.Tensor) -> str:
    """A content hash of a batch (shape, dtype and bytes) used as a cache key."""
    h = hashlib.sha1()
    h.update(f"{tuple(x.shape)}|{x.dtype}".encode())
    h.update(x.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


class TeacherKernelCache:
    """The teacher's NTK per batch, computed once without gradient and kept (LRU).

    ``cache(x)`` returns the kernel of ``teacher`` on ``x`` (keyed by ``key`` or by the
    batch's content hash). Keyword arguments go to :func:`distill.ntk.empirical_ntk`
    (default ``method="exact"``: the teacher needs no gradient, so the exact kernel is cheap
    enough and noise-free). Kernels are stored detached, on the teacher's device.
    """

    def __init__(self, teacher: nn.Module, *, method: str = "exact", output: str = "kernel", max_entries: int = 4096, **ntk_kwargs: Any):
        self.teacher = teacher
        self.method = method
        self.output = output
        self.max_entries = int(max_entries)
        self.ntk_kwargs = ntk_kwargs
        self._store: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def __call__(self, x: torch.Tensor, key: str | None = None) -> torch.Tensor:
        key = key if key is not None else batch_fingerprint(x)
        if key in self._store:
            self.hits += 1
            self._store.move_to_end(key)
            return self._store[key]
        self.misses += 1
        k = teacher_kernel(self.teacher, x, method=self.method, output=self.output, **self.ntk_kwargs)
        self._store[key] = k
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return k


def teacher_kernel(teacher: nn.Module, x: torch.Tensor, *, method: str = "exact", output: str = "kernel", **ntk_kwargs: Any) -> torch.Tensor:
    """The teacher's NTK on ``x``, detached (no graph is kept).

    Unless ``params=`` is given, the kernel is taken with respect to *all* the teacher's
    parameters, also when they are frozen (``requires_grad=False``).
    """
    ntk_kwargs.setdefault("params", [n for n, _ in teacher.named_parameters()])
    with torch.no_grad():  # torch.func transforms still differentiate inside; no outer graph is kept
        k = empirical_ntk(teacher, x, method, output, **ntk_kwargs)
    return k.detach()


@dataclass
class NTKDLossConfig:
    """Weights and estimator of ``α·CE + β·D(Θ_T, Θ_S) + γ·KD``.

    ``ntk_method``: estimator of the student's kernel (``"sketch"`` default — R jvps);
    ``ntk_loss``: ``"mse"`` (paper), ``"normalised"`` or ``"cka"``; ``debias``: with the
    sketch and ``"mse"``, split the R projections into two independent halves and use
    ``mean((Θ_T − Θ̂_1)(Θ_T − Θ̂_2))``, whose expectation is exactly the MSE (the plain
    sketch adds the sketch's variance, which itself pulls the student's kernel down).
    ``structured``: factor a recognised linear front-end out of the student's kernel
    (:mod:`distill.frontend_ntk`; the same estimate up to float rounding, far cheaper).
    """

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 0.0
    temperature: float = 4.0
    ntk_method: str = "sketch"
    ntk_output: str = "kernel"
    ntk_loss: str = "mse"
    n_projections: int = 8
    projection: str = "gaussian"
    chunk_size: int | None = None
    sigma: float = 1e-3
    debias: bool = False
    structured: bool = True

    def ntk_kwargs(self) -> dict:
        return dict(
            n_projections=self.n_projections, projection=self.projection, chunk_size=self.chunk_size, sigma=self.sigma,
            structured=self.structured,
        )


def student_kernel_loss(
    student: nn.Module,
    x: torch.Tensor,
    k_teacher: torch.Tensor,
    config: NTKDLossConfig | None = None,
    *,
    params: ParamSpec = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``D(Θ_T, Θ_S)`` for the student's kernel on ``x``; returns (loss, student kernel, detached)."""
    cfg = config or NTKDLossConfig()
    if x.shape[0] != (k_teacher.shape[0] if k_teacher.ndim else x.shape[0]):
        raise ValueError(f"student NTK batch has {x.shape[0]} inputs but the teacher kernel is {tuple(k_teacher.shape)}")
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    kw = cfg.ntk_kwargs()
    if cfg.debias and cfg.ntk_method in ("sketch", "perturbation") and cfg.ntk_loss == "mse":
        if cfg.n_projections < 2:
            raise NTKError("debias needs n_projections >= 2 (two independent halves)")
        kw["n_projections"] = cfg.n_projections // 2
        k1 = empirical_ntk(student, x, cfg.ntk_method, cfg.ntk_output, params=params, generator=generator, **kw)
        k2 = empirical_ntk(student, x, cfg.ntk_method, cfg.ntk_output, params=params, generator=generator, **kw)
        k_t = _check_pair(k1, k_teacher, "student_kernel_loss")
        loss = ((k_t - k1) * (k_t - k2)).mean()
        return loss, (0.5 * (k1 + k2)).detach()
    k_s = empirical_ntk(student, x, cfg.ntk_method, cfg.ntk_output, params=params, generator=generator, **kw)
    return kernel_loss(k_s, k_teacher, cfg.ntk_loss), k_s.detach()


def ntkd_loss(
    student: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    teacher_kernel: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    ntk_x: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
    config: NTKDLossConfig | None = None,
    params: ParamSpec = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``α·CE(student(x), y) + β·D(Θ_T, Θ_S(ntk_x)) + γ·KD(student(x), teacher_logits)``.

    Args:
        student: the module being trained (any ``nn.Module`` returning (N, O) logits).
        x, y: the CE minibatch (N, ...) and integer labels (N,).
        teacher_kernel: precomputed teacher NTK (e.g. from :class:`TeacherKernelCache`) on
            the teacher's view of the NTK batch; needed when ``β ≠ 0``.
        teacher_logits: (N, O) teacher logits on ``x``; needed when ``γ ≠ 0``.
        ntk_x: the student's inputs for its NTK (default ``x``); must have as many samples as
            ``teacher_kernel`` has rows.
        logits: the student's logits on ``x`` if already computed.
        params: restrict the student's NTK to these parameters (e.g. a back-end).

    Returns:
        (loss, parts) with ``parts`` = {"ce", "ntk", "kd", "total"} as floats.
    """
    cfg = config or NTKDLossConfig()
    if logits is None:
        logits = student(x)
    ce = F.cross_entropy(logits, y)
    total = cfg.alpha * ce
    parts = {"ce": float(ce.detach())}
    if cfg.beta:
        if teacher_kernel is None:
            raise ValueError("ntkd_loss: beta != 0 needs teacher_kernel")
        ntk_in = x if ntk_x is None else ntk_x
        d, _ = student_kernel_loss(student, ntk_in, teacher_kernel, cfg, params=params, generator=generator, seed=seed)
        total = total + cfg.beta * d
        parts["ntk"] = float(d.detach())
    if cfg.gamma:
        if teacher_logits is None:
            raise ValueError("ntkd_loss: gamma != 0 needs teacher_logits")
        kd = kd_loss(logits, teacher_logits, cfg.temperature)
        total = total + cfg.gamma * kd
        parts["kd"] = float(kd.detach())
    parts["total"] = float(total.detach())
    return total, parts


@dataclass
class NTKDistiller:
    """Stateful helper for training loops: teacher, cached teacher kernels, loss config, RNG.

    ``distiller(student, x, y, ntk_x=..., teacher_ntk_x=...)`` computes the teacher's logits
    (when ``γ ≠ 0``) and its cached kernel on ``teacher_ntk_x`` (default ``ntk_x``, default
    ``x``), then :func:`ntkd_loss`. The generator advances every call, so successive steps
    use fresh projections; seeding it makes a run repeatable.
    """

    teacher: nn.Module
    config: NTKDLossConfig = field(default_factory=NTKDLossConfig)
    teacher_method: str = "exact"
    teacher_chunk_size: int | None = None
    params: ParamSpec = None
    seed: int = 0
    cache: TeacherKernelCache | None = None
    generator: torch.Generator | None = None

    def __post_init__(self):
        if self.cache is None:
            self.cache = TeacherKernelCache(
                self.teacher, method=self.teacher_method, output=self.config.ntk_output, chunk_size=self.teacher_chunk_size
            )
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(int(self.seed))

    def __call__(
        self,
        student: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        ntk_x: torch.Tensor | None = None,
        teacher_ntk_x: torch.Tensor | None = None,
        key: str | None = None,
        logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        k_t = None
        if cfg.beta:
            s_in = x if ntk_x is None else ntk_x
            t_in = s_in if teacher_ntk_x is None else teacher_ntk_x
            k_t = self.cache(t_in, key=key)
            ntk_x = s_in
        t_logits = None
        if cfg.gamma:
            with torch.no_grad(), _eval(self.teacher):
                t_logits = self.teacher(x)
        return ntkd_loss(
            student, x, y, teacher_kernel=k_t, teacher_logits=t_logits, ntk_x=ntk_x, logits=logits,
            config=cfg, params=self.params, generator=self.generator,
        )


def _eval(model: nn.Module):
    from distill.ntk import eval_mode

    return eval_mode(model)
