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
    artifact_kind = "optical-hardware"  # neurohw.io.save_artifact

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


# ---------------------------------------------------------------- files (one layout for a design, alone or in a bundle)
#: Sidecar ``extra.format`` of a hardware bundle (the file ``neurohw lab capture`` / ``calibrate`` read).
FORMAT = "neurohw-optical-hybrid"
FORMAT_VERSION = 1


def design_state(d) -> tuple[dict[str, torch.Tensor], dict]:
    """A :class:`optics.MetasurfaceDesign` as tensors (``design.*``, ``proxy.*``) and a JSON-able dict."""
    tensors = {f"design.{n}": getattr(d, n).detach() for n in ("radii", "psf", "tiles", "targets")}
    if d.element == "height_map":
        proxy = {"kind": "height_map", "wavelengths": list(d.proxy.wavelengths), "index": d.proxy.index.tolist(),
                 "max_height": d.proxy.max_height, "levels": d.proxy.levels}
    else:
        tensors["proxy.phase_coef"], tensors["proxy.amp_coef"] = d.proxy.phase_coef.detach(), d.proxy.amp_coef.detach()
        proxy = {"kind": "pillars", "wavelengths": list(d.proxy.wavelengths), "r_lo": d.proxy.r_lo, "r_hi": d.proxy.r_hi}
    info = {"config": d.config.to_dict(), "layout": d.layout.to_dict(), "constraints": d.constraints.to_dict(),
            "proxy": proxy, "scale": float(d.scale), "fidelity": d.fidelity, "history": list(d.history)}
    return tensors, info


def design_from_state(t: dict[str, torch.Tensor], info: dict):
    """Inverse of :func:`design_state` (``KeyError`` / ``TypeError`` on a malformed input)."""
    from optics.design import MetasurfaceDesign, OpticsConfig
    from optics.frontend import TileLayout
    from optics.metasurface import FabConstraints, HeightMapDOE, PillarProxy

    cfg = OpticsConfig(**{**info["config"], "wavelengths": tuple(info["config"]["wavelengths"])})
    pr = info["proxy"]
    if pr.get("kind") == "height_map":
        proxy = HeightMapDOE(pr["wavelengths"], index=pr["index"], max_height=pr["max_height"], levels=pr["levels"])
    else:
        proxy = PillarProxy(pr["wavelengths"], pr["r_lo"], pr["r_hi"], t["proxy.phase_coef"].numpy(), t["proxy.amp_coef"].numpy())
    return MetasurfaceDesign(t["design.radii"], cfg, TileLayout(**info["layout"]), proxy, FabConstraints(**info["constraints"]),
                             t["design.psf"], t["design.tiles"], t["design.targets"], float(info["scale"]), info["fidelity"],
                             list(info.get("history", [])))


#: Tensor-name prefixes the bundle owns (extra tensors must not use them).
_OWN = ("backend.", "design.", "proxy.", "frontend.")


def save_hardware(path, hw: OpticalHardware, *, seed: int | None = None, extra: dict | None = None,
                  extra_tensors: dict | None = None, kind: str = "optical-hardware"):
    """Write ``hw`` as a hardware bundle (safetensors + JSON sidecar, atomically): ``backend.*`` (the
    electronic back-end), ``frontend.kernels`` (trained kernels), the design (:func:`design_state`),
    and ``extra_tensors`` (e.g. a calibration's ``device.*``); sidecar ``extra`` holds the hybrid's
    class and config, the design, sensor, fabrication errors and ``meta``."""
    from neurohw.io import save_checkpoint

    tensors = {f"backend.{k}": v for k, v in hw.model.backend.state_dict().items()}
    tensors["frontend.kernels"] = hw.model.frontend.kernels.detach()
    dt, dinfo = design_state(hw.design)
    tensors.update(dt)
    for k, v in (extra_tensors or {}).items():
        if k in tensors or k.startswith(_OWN):
            raise ValueError(f"save_hardware: extra tensor name {k!r} collides with the bundle's own")
        tensors[k] = v.detach()
    info = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "hybrid": {"class": type(hw.model).__name__, "config": getattr(hw.model, "config", {})},
            "design": dinfo, "sensor": hw.sensor.to_dict(), "fabrication": hw.fabrication.to_dict(), "meta": hw.meta}
    info.update(extra or {})
    return save_checkpoint(path, tensors, config=info["hybrid"], seed=seed, extra=info, kind=kind)


def load_hardware(path) -> OpticalHardware:
    """Read a bundle written by :func:`save_hardware` (errors name the file and the field).

    A calibrated bundle (``neurohw calibrate``'s output, sidecar ``extra.calibration`` with an
    optics device model) predicts through its refit device model: the measured device's twin.
    """
    import optics
    from neurohw.io import CheckpointError, load_checkpoint

    tensors, side = load_checkpoint(path)
    info = side.get("extra", {})
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} bundle (sidecar extra.format = {info.get('format')!r})")
    if info.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: bundle version {info.get('format_version')} is not {FORMAT_VERSION}")
    try:
        model = getattr(optics, info["hybrid"]["class"])(**info["hybrid"]["config"])
        model.backend.load_state_dict({k[len("backend."):]: v for k, v in tensors.items() if k.startswith("backend.")})
        with torch.no_grad():
            model.frontend.kernels.copy_(tensors["frontend.kernels"])
        hw = OpticalHardware(model.eval(), design_from_state(tensors, info["design"]), optics.SensorConfig(**info["sensor"]),
                             optics.FabricationParams(**info["fabrication"]), meta=info.get("meta", {}))
        cal = info.get("calibration") or {}
        if cal.get("device_model") == "optics" and cal.get("device_sensor"):
            dev = hw.design.device_frontend(optics.SensorConfig(**cal["device_sensor"]))
            with torch.no_grad():
                for name in ("gain", "offset", "shift", "rotation", "psf_correction"):
                    getattr(dev, name).copy_(tensors[f"device.{name}"])
                if cal.get("twin_terms"):  # the twin's optional terms (optics.device_terms)
                    from optics.device_terms import TileTerms

                    tc = cal["twin_terms"]
                    dev.terms = TileTerms(tc["terms"], dev.centres, tuple(tc["image_hw"]), gain_degree=tc["gain_degree"])
                    pre = "device.terms."
                    dev.terms.load_state_dict({k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)})
            hw._frontend = dev
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed hardware bundle ({type(exc).__name__}: {exc})") from exc
    return hw
