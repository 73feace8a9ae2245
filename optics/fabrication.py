"""Fabrication error model: draw fabricated instances of a designed metasurface (seeded).

Errors modelled physically (pillar geometry → phase → PSF, then the assembly):

* ``width_bias`` — systematic pillar width (diameter) bias, metres (radius bias = half);
* ``width_sigma`` / ``height_sigma`` — random width and height errors (std, metres), each a
  Gaussian random field with a Gaussian spatial correlation of length ``corr_length``
  (metres; 0 = independent per cell); a height error scales the pillar's phase delay by
  ``h/h0`` (first-order effective-index model);
* ``levels`` — quantisation of the fabricated radii to a library of ``levels`` sizes
  evenly spaced over the fab's radius limits;
* ``misalign_sigma`` — lateral misalignment of optic and sensor (std per axis, metres);
* ``rotation_sigma`` — rotation of the optic about the axis (std, radians);
* ``focal_sigma`` — error of the metasurface→sensor distance (std, metres);
* ``brightness_sigma`` — brightness (illumination × efficiency) scale, relative std around
  ``brightness_mean``.

:meth:`FabricationModel.draw` returns a :class:`FabricatedFrontEnd`: a
:class:`~optics.frontend.DeviceFrontEnd` whose tiles come from the wave simulation of the
fabricated radius map (at the perturbed distance and heights) scaled by the *nominal*
design's scale, whose ``shift``/``rotation``/``gain`` hold the drawn assembly errors, and
whose sensor noise stream is seeded by the draw. The drawn values are kept in ``truth``
(for checking a calibration; a calibration must not read them).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
import numpy as np
import torch

from optics.design import MetasurfaceDesign, extract_tiles, simulate_psf
from optics.frontend import DeviceFrontEnd
from optics.sensor import SensorConfig
from neurohw.stats import mean_std

__all__ = ["FabricationParams", "FabricationModel", "FabricatedFrontEnd", "correlated_field", "evaluate_instances"]


@dataclass
class FabricationParams:
    """Fabrication and assembly error magnitudes (SI units; see the module docstring)."""

    width_bias: float = 4e-9
    width_sigma: float = 3e-9
    height_sigma: float = 10e-9
    corr_length: float = 3e-6
    levels: int | None = None
    misalign_sigma: float = 0.3e-6
    rotation_sigma: float = math.radians(0.2)
    focal_sigma: float = 1e-6
    brightness_mean: float = 1.0
    brightness_sigma: float = 0.05

    def __post_init__(self):
        for k, v in asdict(self).items():
            if k not in ("width_bias", "levels") and v is not None and v < 0:
                raise ValueError(f"FabricationParams.{k} must be >= 0, got {v}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def ideal(cls) -> "FabricationParams":
        """No error at all (an instance then equals the nominal design)."""
        return cls(0.0, 0.0, 0.0, 0.0, None, 0.0, 0.0, 0.0, 1.0, 0.0)


def correlated_field(shape: tuple[int, int], dx: float, corr_length: float, gen: torch.Generator) -> torch.Tensor:
    """Zero-mean, unit-variance Gaussian random field on a grid of pitch ``dx`` with a Gaussian
    autocorrelation ``exp(-r²/corr_length²)`` (white noise if ``corr_length`` is 0)."""
    white = torch.randn(shape, generator=gen, dtype=torch.float64)
    if corr_length <= 0:
        return white.float()
    ny, nx = shape
    fy = torch.fft.fftfreq(ny, d=dx, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(nx, d=dx, dtype=torch.float64).view(1, -1)
    # filter = sqrt of the target power spectrum (Gaussian with the same correlation length)
    filt = torch.exp(-((math.pi * corr_length) ** 2) * (fx**2 + fy**2) / 2)
    f = torch.fft.ifft2(torch.fft.fft2(white) * filt).real
    return (f / f.std().clamp_min(1e-30)).float()


class FabricatedFrontEnd(DeviceFrontEnd):
    """One fabricated instance (a :class:`DeviceFrontEnd`) with its hidden ``truth`` and ``seed``."""

    truth: dict
    seed: int


class FabricationModel:
    """Draws fabricated instances of ``design`` with errors ``params``; ``sensor`` for their camera."""

    def __init__(self, design: MetasurfaceDesign, params: FabricationParams | None = None, sensor: SensorConfig | None = None):
        self.design = design
        self.params = params or FabricationParams()
        self.sensor = sensor or SensorConfig()

    def fabricated_radii(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(radius map, height scale map) of one fabricated metasurface.

        For a height-map DOE design (``design.element == "height_map"``) the map holds heights:
        ``height_sigma`` is an additive height error (m), width errors do not apply, ``levels``
        quantises to that many etch depths in ``[0, max_height]``; the height scale is 1.
        """
        d, p = self.design, self.params
        cfg = d.config
        shape = tuple(d.radii.shape)
        if d.element == "height_map":
            h = d.radii.clone()
            if p.height_sigma > 0:
                h = h + p.height_sigma * correlated_field(shape, cfg.dx, p.corr_length, gen)
            h = h.clamp(0.0, d.proxy.max_height)
            if p.levels:
                step = d.proxy.max_height / (int(p.levels) - 1)
                h = torch.round(h / step) * step
            return h, torch.ones(shape)
        r = d.radii + p.width_bias / 2
        if p.width_sigma > 0:
            r = r + (p.width_sigma / 2) * correlated_field(shape, cfg.dx, p.corr_length, gen)
        hs = torch.ones(shape)
        if p.height_sigma > 0:
            hs = 1 + p.height_sigma / d.constraints.height * correlated_field(shape, cfg.dx, p.corr_length, gen)
        # the fab cannot go below its minimum feature; quantise to its size library if any
        r = r.clamp(d.constraints.r_min * 0.5, d.constraints.r_max + (d.constraints.period / 2 - d.constraints.r_max) * 0.5)
        if p.levels:
            lv = torch.linspace(d.constraints.r_min, d.constraints.r_max, int(p.levels), dtype=r.dtype)
            r = lv[(r.unsqueeze(-1) - lv).abs().argmin(-1)]
        return r, hs

    def draw(self, seed: int) -> FabricatedFrontEnd:
        """Fabricate one instance (deterministic in ``seed``)."""
        d, p = self.design, self.params
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            r, hs = self.fabricated_radii(gen)
            dz = float(torch.randn((), generator=gen, dtype=torch.float64)) * p.focal_sigma
            psf = simulate_psf(r, d.config, d.proxy, height_scale=hs, dz=dz)
            tiles = extract_tiles(psf, d.layout) * d.scale
        shift_m = torch.randn(2, generator=gen, dtype=torch.float64) * p.misalign_sigma
        rot = float(torch.randn((), generator=gen, dtype=torch.float64)) * p.rotation_sigma
        bright = p.brightness_mean * (1 + p.brightness_sigma * float(torch.randn((), generator=gen, dtype=torch.float64)))
        fe = FabricatedFrontEnd(tiles, d.layout, sensor=SensorConfig(**self.sensor.to_dict()), image_size=d.layout.image_size)
        with torch.no_grad():
            fe.shift.copy_((shift_m / d.config.pixel_pitch).float())
            fe.rotation.fill_(rot)
            fe.gain.fill_(bright)
        fe.generator = torch.Generator().manual_seed(int(seed) * 7919 + 1)
        fe.seed = int(seed)
        fe.truth = {
            "seed": int(seed),
            "shift_px": fe.shift.detach().tolist(),
            "rotation_rad": rot,
            "brightness": bright,
            "focal_error_m": dz,
            "radius_error_rms_m": float((r - d.radii).pow(2).mean().sqrt()),
            "tile_error_rel": float((tiles - d.tiles).norm() / d.tiles.norm().clamp_min(1e-30)),
            "params": p.to_dict(),
        }
        return fe

    def draw_many(self, n: int, seed: int = 0) -> list[FabricatedFrontEnd]:
        """``n`` instances with seeds ``seed, seed+1, …``."""
        return [self.draw(seed + i) for i in range(n)]


@torch.no_grad()
def evaluate_instances(
    backend: torch.nn.Module,
    fab: FabricationModel,
    x: torch.Tensor,
    y: torch.Tensor,
    n: int,
    seed: int = 0,
    batch_size: int = 500,
    noise: bool = True,
    progress: bool = True,
    exposure_from: torch.Tensor | None = None,
) -> dict:
    """Accuracy of ``backend`` on the measured features of ``n`` fabricated instances.

    Each instance's exposure is set once by auto-exposure on ``exposure_from`` (default the
    first 200 images of ``x``) — as a camera would be set up. Returns accuracies, mean, std,
    min, and the instances' truth records.
    """
    from tqdm.auto import tqdm

    backend.eval()
    accs, truths = [], []
    ref = exposure_from if exposure_from is not None else x[:200]
    for i in tqdm(range(n), desc="fabricated instances", disable=not progress, leave=False):
        fe = fab.draw(seed + i)
        fe.auto_expose(ref)
        correct = 0
        for s in range(0, len(x), batch_size):
            logits = backend(fe(x[s : s + batch_size], noise=noise))
            correct += int((logits.argmax(1) == y[s : s + batch_size]).sum())
        accs.append(correct / len(x))
        truths.append(fe.truth)
    a = np.array(accs)
    return {"accuracies": accs, "mean": float(a.mean()), "std": mean_std(a)[1], "min": float(a.min()), "max": float(a.max()), "truth": truths}
