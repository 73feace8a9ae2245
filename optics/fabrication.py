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
  ``brightness_mean``;
* ``zernike_defocus``, ``zernike_astigmatism``, ``zernike_coma``, ``zernike_spherical`` —
  lens-like wavefront errors (an imperfect cover glass, a tilted or bowed substrate, the
  relay optics): std of the Zernike coefficients (Noll-normalised, so a coefficient is the
  RMS wavefront error of its term over the pupil), metres of optical path difference. Each
  instance draws defocus Z4, astigmatism Z5/Z6, coma Z7/Z8 and spherical Z11 (both
  orientations of astigmatism and coma independently) from a generator of its own, so
  instances without them are drawn exactly as before; the wavefront ``W`` (:func:`zernike_wavefront`)
  adds the phase ``2π·W/λ`` to the metasurface's at every wavelength.

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

__all__ = ["FabricationParams", "FabricationModel", "FabricatedFrontEnd", "correlated_field", "evaluate_instances",
           "ZERNIKE_NOLL", "zernike", "zernike_wavefront"]

#: The Zernike terms of the fabrication model: name → Noll index j.
ZERNIKE_NOLL = {"defocus": 4, "astigmatism_45": 5, "astigmatism_0": 6, "coma_y": 7, "coma_x": 8, "spherical": 11}


def zernike(j: int, rho: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Noll-normalised Zernike polynomial ``Z_j(ρ, θ)`` (mean of ``Z_j²`` over the unit disk is 1).

    Implemented for the terms of :data:`ZERNIKE_NOLL` (j = 4 … 8, 11): defocus √3(2ρ²−1),
    astigmatism √6ρ²·sin 2θ / cos 2θ, coma √8(3ρ³−2ρ)·sin θ / cos θ, spherical √5(6ρ⁴−6ρ²+1).
    """
    r2 = rho * rho
    if j == 4:
        return math.sqrt(3) * (2 * r2 - 1)
    if j == 5:
        return math.sqrt(6) * r2 * torch.sin(2 * theta)
    if j == 6:
        return math.sqrt(6) * r2 * torch.cos(2 * theta)
    if j == 7:
        return math.sqrt(8) * (3 * r2 - 2) * rho * torch.sin(theta)
    if j == 8:
        return math.sqrt(8) * (3 * r2 - 2) * rho * torch.cos(theta)
    if j == 11:
        return math.sqrt(5) * (6 * r2 * r2 - 6 * r2 + 1)
    raise ValueError(f"zernike: Noll index {j} is not implemented (have {sorted(ZERNIKE_NOLL.values())})")


def zernike_wavefront(coefficients: dict, grid: int) -> torch.Tensor:
    """Wavefront error ``W = Σ c_j·Z_j`` on a ``grid × grid`` metasurface, float64, same unit as the
    coefficients (``{name: c}``, names of :data:`ZERNIKE_NOLL`).

    The pupil is the disk of radius ``grid/2`` cells about the grid centre (the circular
    aperture of :class:`~optics.design.OpticsConfig`; with a square aperture the corners lie at
    ρ up to √2, where the polynomials are continued as they are).
    """
    y = torch.arange(grid, dtype=torch.float64) - (grid - 1) / 2
    yy, xx = y.view(-1, 1).expand(grid, grid), y.view(1, -1).expand(grid, grid)
    rho = torch.sqrt(yy * yy + xx * xx) / (grid / 2)
    theta = torch.atan2(yy, xx)
    w = torch.zeros(grid, grid, dtype=torch.float64)
    for name, c in coefficients.items():
        if name not in ZERNIKE_NOLL:
            raise ValueError(f"zernike_wavefront: unknown term {name!r}; known: {', '.join(ZERNIKE_NOLL)}")
        if c:
            w = w + float(c) * zernike(ZERNIKE_NOLL[name], rho, theta)
    return w


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
    zernike_defocus: float = 0.0
    zernike_astigmatism: float = 0.0
    zernike_coma: float = 0.0
    zernike_spherical: float = 0.0

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

    def zernike_coefficients(self, seed: int) -> dict:
        """The instance's Zernike coefficients (metres, by name), from a generator of their own."""
        p = self.params
        sig = {"defocus": p.zernike_defocus, "astigmatism_45": p.zernike_astigmatism, "astigmatism_0": p.zernike_astigmatism,
               "coma_y": p.zernike_coma, "coma_x": p.zernike_coma, "spherical": p.zernike_spherical}
        if not any(sig.values()):
            return {k: 0.0 for k in sig}
        g = torch.Generator().manual_seed(int(seed) * 104729 + 17)
        z = torch.randn(len(sig), generator=g, dtype=torch.float64)
        return {k: float(z[i]) * s for i, (k, s) in enumerate(sig.items())}

    def draw(self, seed: int) -> FabricatedFrontEnd:
        """Fabricate one instance (deterministic in ``seed``)."""
        d, p = self.design, self.params
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            r, hs = self.fabricated_radii(gen)
            dz = float(torch.randn((), generator=gen, dtype=torch.float64)) * p.focal_sigma
            zc = self.zernike_coefficients(seed)
            extra = None
            if any(zc.values()):
                w = zernike_wavefront(zc, d.config.grid)
                lam = torch.tensor(d.config.wavelengths, dtype=torch.float64).view(-1, 1, 1)
                extra = (2 * math.pi * w / lam).float()
            psf = simulate_psf(r, d.config, d.proxy, height_scale=hs, dz=dz, extra_phase=extra)
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
            "zernike_m": zc,
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
