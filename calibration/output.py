"""The calibrated checkpoint: a new model bundle with the calibrated back-end and the refit device.

:func:`save_calibrated` writes a model bundle (:mod:`calibration.bundle`) whose back-end is
the chosen arm's (default ``refit_ntk``), plus the refit device parameters as ``device.*``
tensors and, in the sidecar, the calibration's accuracies, configuration, the refit summary
and the paths of the source model and captures. The source model file is only read.
:func:`load_calibrated_device` rebuilds the refit device model from such a checkpoint.
"""
from __future__ import annotations

import copy
from pathlib import Path

from calibration.bundle import OpticalModel, load_optical_model, save_optical_model
from neurohw.io import CheckpointError, load_checkpoint


def save_calibrated(path, om: OpticalModel, result, config, *, source=None) -> Path:
    """Write the calibrated bundle to ``path`` (atomically); returns ``path``."""
    arm = config.save_arm
    if arm not in result.backends:
        raise ValueError(f"save_arm {arm!r} was not run; available: {sorted(result.backends)}")
    model = copy.deepcopy(om.model)
    model.backend.load_state_dict(result.backends[arm].state_dict())
    cal = OpticalModel(model, om.design, om.sensor, om.fabrication, meta={**om.meta, "calibrated": True})
    twin = result.twin
    tensors = twin.state_tensors() if twin is not None else {}
    sensor = getattr(getattr(twin, "device", None), "sensor", None)
    extra = {
        "calibration": {
            "arm": arm,
            "accuracies": result.accuracies,
            "recovery": result.recovery,
            "split": result.split,
            "refit": result.refit,
            "config": result.config,
            "device_model": config.device_model,
            "device_sensor": sensor.config.to_dict() if sensor is not None else None,
            "twin_terms": twin.terms_config() if hasattr(twin, "terms_config") else None,
            "source_model": str(source) if source else None,
            "captures": result.capture.get("path"),
        }
    }
    return save_optical_model(path, cal, seed=config.seed, extra=extra, extra_tensors=tensors)


def load_calibrated_device(path):
    """The bundle and the refit optics ``DeviceFrontEnd`` of a calibrated checkpoint (optics device model only)."""
    tensors, side = load_checkpoint(path)
    info = side.get("extra", {}).get("calibration")
    if not info or info.get("device_model") != "optics":
        raise CheckpointError(f"{path}: not a calibrated checkpoint with an optics device model")
    om = load_optical_model(path)  # restores the refit device as the bundle's front-end
    return om, om.frontend()
