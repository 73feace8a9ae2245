"""The optical hybrid model file that ``neurohw lab capture`` and ``neurohw calibrate`` take.

A *model bundle* is one safetensors checkpoint (with the usual JSON sidecar, see
:mod:`neurohw.io`) holding everything needed to simulate and fabricate the device and to
run the network:

* ``backend.*`` — the electronic back-end's state dict;
* ``frontend.kernels`` — the trained signed kernels (the simulation face);
* ``design.radii / psf / tiles / targets`` and ``proxy.phase_coef / amp_coef`` — the
  designed metasurface (``optics.MetasurfaceDesign``), so fabricated instances can be drawn;
* sidecar ``extra``: ``format = "neurohw-optical-hybrid"``, ``format_version``, the hybrid
  model's constructor config, the design's optics config, layout, constraints, proxy
  metadata, scale and fidelity, the nominal sensor config and fabrication error magnitudes.

``optics`` does not (yet) define a file format for a designed hybrid model; this one uses
only its public classes. Loading never unpickles anything.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from neurohw.io import CheckpointError, load_checkpoint, save_checkpoint
from optics.hardware import OpticalHardware

FORMAT = "neurohw-optical-hybrid"
FORMAT_VERSION = 1


def fabrication_preset(name: str = "prototype"):
    """Fabrication error magnitudes by name.

    ``"optics-default"`` — ``optics.FabricationParams()``; ``"prototype"`` — a bench-assembled
    prototype: twice the default lateral misalignment (0.6 µm) and brightness spread (10 %),
    0.5° rotation; pillar errors as the default. On the demo's MNIST model the default costs
    ~2 points on average over instances, the prototype ~10 (the NTKD paper's fabricated
    MNIST device lost 8).
    """
    import math

    import optics

    if name == "optics-default":
        return optics.FabricationParams()
    if name == "prototype":
        return optics.FabricationParams(misalign_sigma=0.6e-6, rotation_sigma=math.radians(0.5), brightness_sigma=0.1)
    raise ValueError(f"unknown fabrication preset {name!r}: optics-default, prototype")


#: The bundle's in-memory form is the optics backend's hardware model (``optics.hardware``).
OpticalModel = OpticalHardware


def save_optical_model(path: str | os.PathLike, om: OpticalModel, *, seed: int | None = None, extra: dict | None = None,
                       extra_tensors: dict | None = None) -> Path:
    """Write ``om`` as a model bundle (atomically). ``extra_tensors`` (e.g. ``device.*`` of a
    calibration) are stored alongside and ignored by :func:`load_optical_model`."""
    d = om.design
    tensors = {f"backend.{k}": v for k, v in om.model.backend.state_dict().items()}
    tensors["frontend.kernels"] = om.model.frontend.kernels.detach()
    for name in ("radii", "psf", "tiles", "targets"):
        tensors[f"design.{name}"] = getattr(d, name).detach()
    tensors["proxy.phase_coef"] = d.proxy.phase_coef.detach()
    tensors["proxy.amp_coef"] = d.proxy.amp_coef.detach()
    for k, v in (extra_tensors or {}).items():
        if k in tensors or k.startswith(("backend.", "design.", "proxy.", "frontend.")):
            raise ValueError(f"save_optical_model: extra tensor name {k!r} collides with the bundle's own")
        tensors[k] = v.detach()
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hybrid": {"class": type(om.model).__name__, "config": getattr(om.model, "config", {})},
        "design": {
            "config": d.config.to_dict(),
            "layout": d.layout.to_dict(),
            "constraints": d.constraints.to_dict(),
            "proxy": {"wavelengths": list(d.proxy.wavelengths), "r_lo": d.proxy.r_lo, "r_hi": d.proxy.r_hi},
            "scale": float(d.scale),
            "fidelity": d.fidelity,
        },
        "sensor": om.sensor.to_dict(),
        "fabrication": om.fabrication.to_dict(),
        "meta": om.meta,
    }
    info.update(extra or {})
    return save_checkpoint(path, tensors, config=info["hybrid"], seed=seed, extra=info)


def load_optical_model(path: str | os.PathLike) -> OpticalModel:
    """Read a model bundle written by :func:`save_optical_model` (errors name the file and the field)."""
    import optics
    from optics.design import MetasurfaceDesign
    from optics.metasurface import FabConstraints, PillarProxy

    tensors, side = load_checkpoint(path)
    info = side.get("extra", {})
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} model bundle (sidecar extra.format = {info.get('format')!r})")
    if info.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: model bundle version {info.get('format_version')} is not {FORMAT_VERSION}")
    try:
        cls = getattr(optics, info["hybrid"]["class"])
        model = cls(**info["hybrid"]["config"])
        backend = {k[len("backend."):]: v for k, v in tensors.items() if k.startswith("backend.")}
        model.backend.load_state_dict(backend)
        with torch.no_grad():
            model.frontend.kernels.copy_(tensors["frontend.kernels"])
        dj = info["design"]
        cfg = optics.OpticsConfig(**{**dj["config"], "wavelengths": tuple(dj["config"]["wavelengths"])})
        layout = optics.TileLayout(**dj["layout"])
        constraints = FabConstraints(**dj["constraints"])
        pj = dj["proxy"]
        proxy = PillarProxy(pj["wavelengths"], pj["r_lo"], pj["r_hi"], tensors["proxy.phase_coef"].numpy(), tensors["proxy.amp_coef"].numpy())
        design = MetasurfaceDesign(tensors["design.radii"], cfg, layout, proxy, constraints, tensors["design.psf"],
                                   tensors["design.tiles"], tensors["design.targets"], float(dj["scale"]), dj["fidelity"])
        sensor = optics.SensorConfig(**info["sensor"])
        fab = optics.FabricationParams(**info["fabrication"])
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed model bundle ({type(exc).__name__}: {exc})") from exc
    model.eval()
    return OpticalModel(model, design, sensor, fab, meta=info.get("meta", {}))


def build_optical_model(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    epochs: int = 4,
    seed: int = 0,
    grid: int = 144,
    design_iterations: int = 100,
    fabrication=None,
    progress: bool = False,
    model=None,
) -> OpticalModel:
    """Train a :class:`optics.HybridMNIST` (unless ``model`` is given) and design its metasurface.

    This is the small, fast recipe the demo and tests use (the optics backend's documented
    workflow with ``OpticsConfig(grid=144)``); the nominal sensor is ``SensorConfig()``; the
    fabrication errors default to :func:`fabrication_preset` ``"prototype"``.
    """
    import optics
    from neurohw.backend import get_backend

    from optics.design import check_layout_fits

    torch.manual_seed(seed)
    if model is None:
        model = optics.HybridMNIST()
        check_layout_fits(model.frontend.layout(), optics.OpticsConfig(grid=grid))  # --grid too small: fail before training
        optics.train_hybrid(model, x_train, y_train, epochs=epochs, seed=seed, progress=progress)
    return get_backend("optics").harden(model, optics=optics.OpticsConfig(grid=grid), iterations=design_iterations,
                                        seed=seed, fabrication=fabrication or fabrication_preset("prototype"),
                                        progress=progress, meta={"epochs": epochs, "grid": grid})
