"""Students for the distillation comparison, behind one factory.

``build_student(name, num_classes, input_shape, seed)`` returns an ``nn.Module`` mapping
(N, C, H, W) images to (N, num_classes) logits. Built-in students need only torch:

- ``"cnn"`` — a generic small CNN (one 5×5 conv with 4 channels, max pool, one FC layer);
- ``"linear_constrained"`` — an optical-like student: a *linear* front-end of signed 7×7
  kernels, each the difference of two non-negative kernels (the PSF pair an incoherent
  meta-optic can realise), sensor-style 2×2 average pooling, then 2 FC layers (≈ 0.05 M
  parameters, as NTKD's MNIST meta-optic student).

Backend students (``"bwsnn"`` from the Loihi backend, ``"optical"`` from the optics backend)
come from the backend registry (:mod:`neurohw.backend`, each backend's ``students`` and
``build_student``), looked up only when asked for, so that ``distill`` never imports a backend
at module level. A registered backend that cannot build the student for the given shape
raises :class:`StudentUnavailable`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class StudentUnavailable(RuntimeError):
    """The student's backend package is not part of this checkout (or lacks the model)."""


class SmallCNN(nn.Module):
    """conv5×5(C→width) → ReLU → maxpool 2 → FC(classes). Input (N, C, H, W) with H, W ≥ 6."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 5)
        side = (image_size - 4) // 2
        self.fc = nn.Linear(width * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))


class NonNegativePairConv(nn.Module):
    """Linear convolution with signed kernels ``k = softplus(a) − softplus(b)``.

    Each output channel is the difference of two convolutions with non-negative kernels
    (what two incoherent PSFs can implement, subtracted digitally). No bias, no nonlinearity:
    the optical layer is linear in the image intensity. Kernels (out, in, k, k).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7):
        super().__init__()
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.pos = nn.Parameter(torch.randn(shape) * 0.5 - 2.0)
        self.neg = nn.Parameter(torch.randn(shape) * 0.5 - 2.0)
        self.padding = kernel_size // 2

    def kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The two non-negative kernel banks (positive part, negative part)."""
        return F.softplus(self.pos), F.softplus(self.neg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kp, kn = self.kernels()
        return F.conv2d(x, kp - kn, padding=self.padding)


class LinearConstrainedStudent(nn.Module):
    """Optical-like student: non-negative-pair 7×7 conv (linear) → 2×2 average pool → FC → ReLU → FC."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, kernels: int = 8, hidden: int = 32):
        super().__init__()
        self.optical = NonNegativePairConv(in_channels, kernels, 7)
        side = image_size // 2
        self.fc1 = nn.Linear(kernels * side * side, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.avg_pool2d(self.optical(x), 2).flatten(1)
        return self.fc2(F.relu(self.fc1(z)))


def _cnn(num_classes: int, input_shape: tuple[int, ...], kernels: int | None = None) -> nn.Module:
    return SmallCNN(num_classes, input_shape[0], input_shape[-1], **({} if kernels is None else {"width": kernels}))


def _linear_constrained(num_classes: int, input_shape: tuple[int, ...], kernels: int | None = None,
                        hidden: int | None = None) -> nn.Module:
    opts = {k: v for k, v in (("kernels", kernels), ("hidden", hidden)) if v is not None}
    return LinearConstrainedStudent(num_classes, input_shape[0], input_shape[-1], **opts)


#: name → factory(num_classes, input_shape, **capacity) -> nn.Module (logits (N, num_classes)); backend-free
#: students. Capacity keywords (see :func:`build_student`) a factory does not take are refused.
STUDENTS: dict[str, Callable[[int, tuple[int, ...]], nn.Module]] = {
    "cnn": _cnn,
    "linear_constrained": _linear_constrained,
}

def student_names() -> list[str]:
    """Every student name: the built-in ones, then those the registered backends build."""
    from neurohw.backend import backends

    return list(STUDENTS) + [s for b in backends().values() for s in b.students if s not in STUDENTS]


def _check_options(name: str, factory: Callable, options: dict) -> None:
    """Refuse capacity options that ``factory`` (a student factory or a backend's ``build_student``) does not take."""
    import inspect

    bad = sorted(set(options) - set(inspect.signature(factory).parameters))
    if bad:
        raise ValueError(f"student {name!r} takes no capacity option(s) {bad}")
    neg = {k: v for k, v in options.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
    if neg:
        raise ValueError(f"student {name!r}: capacity options {neg} must be positive integers")


def _backend_student(name: str, num_classes: int, input_shape: tuple[int, ...], options: dict) -> nn.Module:
    from neurohw.backend import BackendError, backends

    for b in backends().values():
        if name in b.students:
            _check_options(name, b.build_student, options)
            try:
                return b.build_student(name, num_classes, input_shape, **options)
            except BackendError as exc:
                raise StudentUnavailable(str(exc)) from exc
    raise StudentUnavailable(f"student {name!r}: no registered backend builds it")


def build_student(name: str, num_classes: int = 10, input_shape: tuple[int, ...] = (1, 28, 28), seed: int = 0,
                  **capacity: int) -> nn.Module:
    """A freshly initialised student (weights seeded by ``seed``).

    ``capacity``: ``kernels`` (front-end kernels / conv channels) and ``hidden`` (back-end hidden
    width) for the students that take them (``optical``: both; ``linear_constrained``: both;
    ``cnn``: ``kernels``); any other, or one the student does not take, is a ``ValueError``.
    """
    known = student_names()
    if name not in known:
        raise ValueError(f"unknown student {name!r}; known in this checkout: {sorted(known)}")
    capacity = {k: v for k, v in capacity.items() if v is not None}
    if name in STUDENTS:
        _check_options(name, STUDENTS[name], capacity)
    torch.manual_seed(seed)
    if name in STUDENTS:
        return STUDENTS[name](num_classes, tuple(input_shape), **capacity)
    return _backend_student(name, num_classes, tuple(input_shape), capacity)
