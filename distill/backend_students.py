"""Students from the hardware backends, imported only when asked for.

``distill`` never imports a backend at module level; these factories import inside and raise
:class:`~distill.students.StudentUnavailable` when the backend (or the model) is absent, so
the comparison runner can fall back to the built-in students.

- ``optical_student``: ``optics.hybrid.HybridMNIST`` — the compressed meta-optic (8 mono
  7×7 signed kernels as non-negative PSF pairs, 2-FC back-end, ≈ 0.05 M parameters).
- ``bwsnn_student``: ``snn.model.BWSNN`` — the binary-weight spiking network; its logits are
  the time-averaged readout, so it is a plain (N, C, H, W) → (N, 10) module.
"""
from __future__ import annotations

import importlib

from torch import nn

from distill.students import StudentUnavailable


def _import(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise StudentUnavailable(f"{what}: {module} is not available ({exc})") from exc


def optical_student(num_classes: int = 10, input_shape: tuple[int, ...] = (1, 28, 28)) -> nn.Module:
    """The optical MNIST student (``optics.hybrid.HybridMNIST``), 1×28×28 inputs, 10 classes."""
    hybrid = _import("optics.hybrid", "optical student")
    cls = getattr(hybrid, "HybridMNIST", None)
    if cls is None:
        raise StudentUnavailable("optical student: optics.hybrid.HybridMNIST does not exist in this checkout")
    if tuple(input_shape) != (1, 28, 28) or num_classes != 10:
        raise StudentUnavailable(f"optical student: HybridMNIST takes 1×28×28 inputs and 10 classes, not {input_shape}/{num_classes}")
    return cls()


def bwsnn_student(num_classes: int = 10, input_shape: tuple[int, ...] = (1, 28, 28)) -> nn.Module:
    """The binary-weight SNN student (``snn.model.BWSNN`` with its default configuration)."""
    model = _import("snn.model", "BWSNN student")
    cls = getattr(model, "BWSNN", None)
    cfg_cls = getattr(model, "BWSNNConfig", None)
    if cls is None or cfg_cls is None:
        raise StudentUnavailable("BWSNN student: snn.model.BWSNN / BWSNNConfig do not exist in this checkout")
    return cls(cfg_cls(), in_shape=tuple(input_shape), num_classes=num_classes)
