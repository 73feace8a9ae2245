"""The optical backend's four faces (see :mod:`neurohw.backend`).

* ``harden(student)``: a kernel-mode :class:`optics.HybridModel` → inverse-design its
  metasurface → :class:`optics.hardware.OpticalHardware` (nominal device, or the fabricated
  instance ``instance_seed``).
* ``predict(x)``: logits (N, classes) of the back-end on the physical front-end's features.
* ``export(hw, path, "gds" | "radius_map")``: GDSII pillars, or the HDF5 radius map.
* ``report(hw, x)``: pillars, area, light efficiency per tile, kernel fidelity, energy per
  image (each constant with its source); with ``x``, the measured feature gap between the
  trained kernels and the physical device.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from neurohw.backend import Backend, BackendError, Constant, Report, register
from optics.hardware import OpticalHardware

HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014 (45 nm, 0.9 V)"

#: Energy constants of the report. The optics itself is passive; the camera is not modelled.
ENERGY: dict[str, Constant] = {
    "fp32_mult": Constant(3.7e-12, "J per 32-bit float multiply", HOROWITZ),
    "fp32_add": Constant(0.9e-12, "J per 32-bit float add", HOROWITZ),
    "metasurface": Constant(0.0, "J per image", "passive element: the convolution is done by light propagation"),
    "sensor_readout": Constant(None, "J per pixel", "not modelled (camera-specific); add pixels read × energy per pixel"),
}


def mac_counts(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of the Linear and Conv2d layers of ``module`` on one sample of ``x``."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Linear):
            total[0] += m.in_features * m.out_features
        else:
            total[0] += out[0].numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

    hs = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    try:
        with torch.no_grad():
            module(x[:1])
    finally:
        for h in hs:
            h.remove()
    return total[0]


class OpticsBackend(Backend):
    name = "optics"
    formats = ("gds", "radius_map")
    student = "optics.HybridModel with a KernelFrontEnd (kernel-mode trained hybrid)"
    cli_modules = ("optics.cli",)
    demo_stages = (("optics", "optics.demo_stage:run"),)
    students = ("optical",)

    def build_student(self, name: str, num_classes: int = 10, input_shape=(1, 28, 28), *, kernels: int | None = None,
                      hidden: int | None = None):
        """``"optical"``: :class:`optics.HybridMNIST`, the compressed meta-optic (8 mono 7×7 signed
        kernels as non-negative PSF pairs, 2-FC back-end, ≈ 0.05 M parameters); 1×28×28, 10 classes.
        ``kernels``: number of 7×7 kernels (default 8); ``hidden``: width of the back-end's hidden
        FC layer (default 48) — the capacity knobs of the distillation sweep."""
        if name != "optical":
            return super().build_student(name, num_classes, input_shape)
        if tuple(input_shape) != (1, 28, 28) or num_classes != 10:
            raise BackendError(f"optical student: HybridMNIST takes 1×28×28 inputs and 10 classes, not {input_shape}/{num_classes}")
        from optics.hybrid import HybridMNIST

        opts = {k: v for k, v in (("n_kernels", kernels), ("hidden", hidden)) if v is not None}
        bad = {k: v for k, v in opts.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise BackendError(f"optical student: {bad} must be positive integers")
        return HybridMNIST(**opts)

    def harden(self, student, *, optics=None, iterations: int = 100, seed: int = 0, sensor=None, fabrication=None,
               instance_seed: int | None = None, spacing: int | None = None, progress: bool = False,
               exposure_images: torch.Tensor | None = None, meta: dict | None = None) -> OpticalHardware:
        """Design the metasurface of ``student``'s trained kernels (``optics``: an
        :class:`optics.OpticsConfig`, default ``grid=144``; ``iterations`` design steps)."""
        from optics.design import OpticsConfig, design_metasurface
        from optics.fabrication import FabricationParams
        from optics.sensor import SensorConfig

        fe = getattr(student, "frontend", None)
        if fe is None or not hasattr(fe, "psf_tiles"):
            raise BackendError(f"optics.harden: {type(student).__name__} has no kernel-mode front-end (psf_tiles)")
        student.eval()
        design = design_metasurface(fe.psf_tiles().detach(), fe.layout(spacing), optics or OpticsConfig(grid=144),
                                    iterations=iterations, seed=seed, progress=progress)
        return OpticalHardware(student, design, sensor or SensorConfig(), fabrication or FabricationParams(),
                               meta=dict(meta or {}, design_iterations=iterations, seed=seed),
                               instance_seed=instance_seed, exposure_images=exposure_images)

    def export(self, hw: OpticalHardware, path, format: str) -> Path:
        self.check_format(format)
        d = hw.design
        c = d.constraints
        if format == "gds":
            from optics.layout import export_gds

            if d.element != "pillars":
                raise BackendError(f"optics.export: a {d.element} design has no pillars to write as GDS")
            export_gds(path, d.radii, d.config.dx, c.period, min_radius=c.r_min - 1e-12)
            return Path(path)
        from optics.layout import save_radius_map

        return save_radius_map(path, d.radii, d.config.dx, c.period, c.height, d.config.wavelengths,
                               config=d.config.to_dict())

    def report(self, hw: OpticalHardware, x: torch.Tensor | None = None) -> Report:
        from optics.design import extract_tiles

        d = hw.design
        cfg, layout = d.config, d.layout
        side = cfg.grid * cfg.dx
        tiles = extract_tiles(d.psf, layout)  # (2K, L, k, k) light in each tile window
        total = float(d.psf.sum())
        eff = (tiles.flatten(1).sum(1) / max(total, 1e-30)).tolist()
        pillars = None
        if d.element == "pillars":
            from optics.layout import pillar_positions

            pillars = int(len(pillar_positions(d.radii, cfg.dx, d.constraints.period, d.constraints.r_min - 1e-12)[1]))
        kern = hw.model.frontend.kernels  # (K, C, k, k)
        image = x[:1] if x is not None else torch.zeros(1, kern.shape[1], layout.image_size, layout.image_size)
        macs_backend = mac_counts(hw.model.backend, hw.model.frontend(image))
        out = hw.model.frontend.out_size
        macs_optical = int(kern.shape[0] * kern.shape[1] * kern.shape[2] * kern.shape[3] * out * out)
        e_mac = ENERGY["fp32_mult"].value + ENERGY["fp32_add"].value
        energy = {"metasurface_J": 0.0, "backend_J": macs_backend * e_mac, "sensor_J": None,
                  "replaced_conv_J": macs_optical * e_mac}
        ncc = d.fidelity["ncc"]
        tiles_rows = [{"tile": i, "kernel": i // 2, "sign": "+" if i % 2 == 0 else "−", "light_fraction": e}
                      for i, e in enumerate(eff)]
        figures = {"element": d.element, "pillars": pillars, "grid": cfg.grid, "cell_pitch_m": cfg.dx,
                   "area_mm2": side * side * 1e6, "distance_m": cfg.z, "wavelengths_m": list(cfg.wavelengths),
                   "tile_light_fraction": eff, "window_efficiency": sum(eff), "kernel_fidelity": d.fidelity,
                   "mean_ncc": sum(ncc) / len(ncc), "sensor_pixels_read": int(tiles.shape[0] * out * out * tiles.shape[1]),
                   "backend_macs": macs_backend, "replaced_conv_macs": macs_optical, "energy_per_image": energy,
                   "instance_seed": hw.instance_seed}
        summary = [("element", d.element), ("pillars", "—" if pillars is None else f"{pillars:,}"),
                   ("area", f"{side * 1e6:.1f} × {side * 1e6:.1f} µm ({figures['area_mm2']:.4f} mm²)"),
                   ("light in tile windows", f"{100 * sum(eff):.1f} % (per tile {min(eff) * 100:.2f}–{max(eff) * 100:.2f} %)"),
                   ("kernel fidelity (mean NCC)", f"{figures['mean_ncc']:.4f}"),
                   ("energy per image: metasurface", "0 J (passive)"),
                   ("energy per image: electronic back-end", f"{energy['backend_J'] * 1e9:.3f} nJ ({macs_backend:,} FP32 MACs)"),
                   ("electronic conv replaced by the optics", f"{energy['replaced_conv_J'] * 1e9:.3f} nJ ({macs_optical:,} MACs)"),
                   ("energy per image: sensor", "not modelled")]
        if x is not None:
            with torch.no_grad():
                fk = hw.model.frontend(x)
                fd = hw.frontend(x)(x, noise=False)
            gap = float((fd - fk).norm() / fk.norm().clamp_min(1e-30))
            figures["feature_gap_rel"] = gap
            summary.append(("feature gap, device vs trained kernels (relative RMS, noiseless)", f"{gap:.4f} on {len(x)} images"))
        notes = ["light fractions are of the light reaching the simulated sensor plane",
                 "energy counts the electronic back-end's multiply-accumulates only; light source and camera excluded"]

        def plot_psf(path):
            import matplotlib.pyplot as plt

            from optics.plots import plot_psf as _plot

            plt.close(_plot(d.psf, path, title="designed PSF"))

        def plot_kernels(path):
            import matplotlib.pyplot as plt

            from optics.plots import plot_kernels as _plot

            plt.close(_plot(d.target_kernels, d.signed_kernels, ncc, path, title="trained (top) vs realised (bottom)"))

        return Report("optics", "Optics report: metasurface front-end", summary, figures=figures, constants=dict(ENERGY),
                      notes=notes, tables={"tiles": tiles_rows}, plots={"optics_psf": plot_psf, "optics_kernels": plot_kernels})


register(OpticsBackend())
