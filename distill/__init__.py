"""distill — teacher→student transfer for any ``torch.nn.Module`` student.

- :mod:`distill.ntk`: empirical NTK (:func:`empirical_ntk`; estimators ``exact``, ``ntvp``,
  ``sketch``, ``perturbation``).
- :mod:`distill.losses`: logit KD, NTK-matching distances, the combined NTKD loss, the
  teacher-kernel cache.
- :mod:`distill.students`, :mod:`distill.compare`: the three-arm comparison (CE / KD / NTKD).

Imports no hardware backend (snn, optics, logic, calibration, neurohw.loihi) at module level.
See docs/distill.md.
"""
from distill.losses import (
    KERNEL_LOSSES,
    NTKDistiller,
    NTKDLossConfig,
    TeacherKernelCache,
    cka,
    kd_loss,
    kernel_loss,
    ntk_mse,
    ntk_normalised_distance,
    ntkd_loss,
    student_kernel_loss,
    teacher_kernel,
)
from distill.ntk import METHODS, OUTPUTS, NTKError, empirical_ntk, explicit_ntk, n_parameters, resolve_params

__all__ = [
    "KERNEL_LOSSES",
    "METHODS",
    "NTKDLossConfig",
    "NTKDistiller",
    "NTKError",
    "OUTPUTS",
    "TeacherKernelCache",
    "cka",
    "empirical_ntk",
    "explicit_ntk",
    "kd_loss",
    "kernel_loss",
    "n_parameters",
    "ntk_mse",
    "ntk_normalised_distance",
    "ntkd_loss",
    "resolve_params",
    "student_kernel_loss",
    "teacher_kernel",
]
