"""optics — the optical backend: wave propagation, metasurface proxies, PSF design, sensor and
fabrication models, the optical convolution layer, hybrid optical–electronic models, layout export.

Stable public API (documented in docs/optics.md):

* :class:`optics.hybrid.HybridMNIST`, :class:`optics.hybrid.HybridPolychromatic`,
  :class:`optics.hybrid.HybridModel` (``.frontend``, ``.backend``, ``.with_frontend``);
* :class:`optics.frontend.KernelFrontEnd`, :class:`optics.frontend.DeviceFrontEnd`,
  :class:`optics.frontend.TileLayout`;
* :class:`optics.sensor.SensorConfig`, :class:`optics.sensor.SensorModel`;
* :class:`optics.design.OpticsConfig`, :func:`optics.design.design_metasurface`,
  :class:`optics.design.MetasurfaceDesign`, :class:`optics.design.WaveFrontEnd`;
* :class:`optics.fabrication.FabricationParams`, :class:`optics.fabrication.FabricationModel`
  (``draw(seed)`` → :class:`optics.fabrication.FabricatedFrontEnd`),
  :func:`optics.fabrication.evaluate_instances`.
"""
from optics.design import MetasurfaceDesign, OpticsConfig, WaveFrontEnd, design_metasurface
from optics.fabrication import FabricatedFrontEnd, FabricationModel, FabricationParams, evaluate_instances
from optics.frontend import DeviceFrontEnd, KernelFrontEnd, TileLayout
from optics.hybrid import HybridMNIST, HybridModel, HybridPolychromatic, accuracy, train_hybrid
from optics.sensor import SensorConfig, SensorModel

__all__ = [
    "DeviceFrontEnd",
    "FabricatedFrontEnd",
    "FabricationModel",
    "FabricationParams",
    "HybridMNIST",
    "HybridModel",
    "HybridPolychromatic",
    "KernelFrontEnd",
    "MetasurfaceDesign",
    "OpticsConfig",
    "SensorConfig",
    "SensorModel",
    "TileLayout",
    "WaveFrontEnd",
    "accuracy",
    "design_metasurface",
    "evaluate_instances",
    "train_hybrid",
]
