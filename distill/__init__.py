"""distill — teacher→student transfer for any ``torch.nn.Module`` student.

- :mod:`distill.ntk`: empirical NTK (:func:`empirical_ntk`; estimators ``exact``, ``ntvp``,
  ``sketch``, ``perturbation``).
- :mod:`distill.losses`: logit KD, NTK-matching distances, the combined NTKD loss, the
  teacher-kernel cache.
- :mod:`distill.students`, :mod:`distill.compare`: the three-arm comparison (CE / KD / NTKD).

Imports no hardware backend (snn, optics, logic, calibration, neurohw.loihi) at module level.
See docs/distill.md.
"""
from distill import losses as _losses, ntk as _ntk
from distill.losses import *  # noqa: F401,F403 — the names in distill.losses.__all__
from distill.ntk import *  # noqa: F401,F403 — the names in distill.ntk.__all__

__all__ = sorted([*_losses.__all__, *_ntk.__all__])
