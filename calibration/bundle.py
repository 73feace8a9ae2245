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

The format itself lives in the optics backend (:mod:`optics.hardware`, artifact kind
``optical-hardware``); this module names the calibration workflow's defaults (fabrication
presets, the small build recipe). Loading never unpickles anything.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from optics.hardware import FORMAT, FORMAT_VERSION, OpticalHardware, save_hardware  # noqa: F401 (re-exported)


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
    """Write ``om`` as a model bundle (atomically; :func:`optics.hardware.save_hardware`).
    ``extra_tensors`` (e.g. ``device.*`` of a calibration) are stored alongside."""
    return save_hardware(path, om, seed=seed, extra=extra, extra_tensors=extra_tensors)


def load_optical_model(path: str | os.PathLike) -> OpticalModel:
    """Read a model bundle (a file, or a folder written by ``neurohw optics design``); errors name the file and field."""
    from neurohw.io import load_artifact

    return load_artifact(path, kinds=("optical-hardware",))


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
