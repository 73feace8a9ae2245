"""The optical hardware model: a trained hybrid, its designed metasurface, a sensor and fabrication errors.

:class:`OpticalHardware` is what :meth:`optics.backend.OpticsBackend.harden` returns and what
``neurohw lab capture`` / ``neurohw calibrate`` read (the *model bundle*,
:mod:`calibration.bundle`). Its exact face, :meth:`OpticalHardware.predict`, runs the
electronic back-end behind a physical front-end: the fabricated instance ``instance_seed``
(drawn from :attr:`fabrication`) or, when that is None, the nominal device (designed tiles,
nominal sensor). The camera is auto-exposed once, on ``exposure_images`` when set, else on
the first 200 images predicted; sensor noise is seeded (``noise_seed``), so a prediction is
reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class OpticalHardware:
    """``model``: an :class:`optics.HybridModel` (kernel front-end + back-end); ``design``: its
    :class:`optics.MetasurfaceDesign`; ``sensor``: nominal :class:`optics.SensorConfig` (before
    exposure); ``fabrication``: :class:`optics.FabricationParams`; ``meta``: provenance notes."""

    model: Any
    design: Any
    sensor: Any
    fabrication: Any
    meta: dict = field(default_factory=dict)
    instance_seed: int | None = None
    exposure_images: torch.Tensor | None = None
    noise_seed: int = 0
    _frontend: Any = field(default=None, repr=False, compare=False)

    backend = "optics"  # registry name (a class attribute, not a field)

    def device_frontend(self):
        """The nominal device model (designed tiles, identity device parameters, nominal sensor)."""
        from optics.sensor import SensorConfig

        return self.design.device_frontend(SensorConfig(**self.sensor.to_dict()))

    def fabrication_model(self):
        """The fabrication error model of this design (draws instances)."""
        from optics.fabrication import FabricationModel
        from optics.sensor import SensorConfig

        return FabricationModel(self.design, self.fabrication, sensor=SensorConfig(**self.sensor.to_dict()))

    def frontend(self, x: torch.Tensor | None = None):
        """The physical front-end ``predict`` uses (built and exposed on first use)."""
        if self._frontend is None:
            fe = self.device_frontend() if self.instance_seed is None else self.fabrication_model().draw(self.instance_seed)
            ref = self.exposure_images if self.exposure_images is not None else x
            if ref is None:
                raise ValueError("OpticalHardware: no images to expose the camera on (set exposure_images)")
            fe.auto_expose(ref[:200])
            self._frontend = fe
        return self._frontend

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of the back-end on the physical front-end's measured features of ``x`` (N, C, H, W)."""
        fe = self.frontend(x)
        fe.generator = torch.Generator().manual_seed(self.noise_seed)
        self.model.eval()
        return self.model.with_frontend(fe)(x)
