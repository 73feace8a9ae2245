"""PSF inverse design: a metasurface whose PSF reproduces target kernels tiled side by side.

Geometry (see :class:`OpticsConfig`): a square metasurface of ``grid × grid`` cells of pitch
``dx`` (each cell holds ``(dx/period)²`` identical pillars), lit by an on-axis plane wave
(object at infinity), propagated by the band-limited angular spectrum method over ``z`` to
the sensor, whose pixels are ``pixel_cells × pixel_cells`` grid cells. The sensor-plane
intensity, normalised by the incident power and integrated over pixels, is the PSF in
*sensor pixels* ``(L, M, M)``, ``M = grid / pixel_cells``; the optical axis is pixel ``M//2``.

Tiles: :class:`~optics.frontend.TileLayout` places the 2K tiles; tile ``t`` occupies the
``k × k`` window whose centre is ``M//2 + centre_t``. A window's contents rotated by 180°
are the conv weights (the camera inverts the image). Colour channel ``c`` is imaged at
wavelength ``c`` (so a C-channel kernel needs L = C wavelengths; one radius map gives all).

Design loss (per iteration): with ``R`` the realised windows and ``T`` the target tiles, the
best global scale ``s = <R,T>/<R,R>`` (the one brightness calibration of the nominal device)
and ``loss = ‖sR − T‖²/‖T‖² + background_weight · (1 − light in windows / light on sensor)``.
The second term limits the stray light that becomes crosstalk in wave mode.
Initialisation: Gerchberg–Saxton phase retrieval of the target pattern at the middle
wavelength, inverted through the pillar proxy; then Adam on a sigmoid-bounded radius map.

Fidelity: per kernel the normalised correlation (Pearson, i.e. zero-mean NCC) between the
realised signed kernel ``s(R+ − R−)`` and the target, and the cosine similarity.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from optics.frontend import DeviceFrontEnd, TileLayout, merge_pairs
from optics.metasurface import FabConstraints, HeightMapDOE, PillarProxy
from optics.propagation import angular_spectrum, intensity
from optics.sensor import SensorConfig, pixel_integrate

__all__ = ["OpticsConfig", "MetasurfaceDesign", "design_metasurface", "simulate_psf", "extract_tiles", "kernel_fidelity"]


@dataclass
class OpticsConfig:
    """The optical system. Lengths in metres.

    ``small()`` (default values) is the test/demo configuration; ``paper()`` the one of the
    public design code of this line of work (1600² cells of 586 nm, 2.4 mm, R/G/B).
    """

    grid: int = 160
    dx: float = 586e-9
    z: float = 60e-6
    pixel_cells: int = 1
    wavelengths: tuple = (532e-9,)
    pad_factor: float = 2.0
    aperture: str = "square"  # or "circle"

    def __post_init__(self):
        self.wavelengths = tuple(float(w) for w in self.wavelengths)
        if self.grid % self.pixel_cells:
            raise ValueError(f"OpticsConfig: grid {self.grid} is not a multiple of pixel_cells {self.pixel_cells}")
        if self.aperture not in ("square", "circle"):
            raise ValueError(f"OpticsConfig.aperture={self.aperture!r}; known: square, circle")

    @classmethod
    def small(cls, **kw) -> "OpticsConfig":
        return cls(**kw)

    @classmethod
    def paper(cls, **kw) -> "OpticsConfig":
        base = dict(grid=1600, dx=586e-9, z=2.4e-3, pixel_cells=8, wavelengths=(635e-9, 532e-9, 450e-9))
        base.update(kw)
        return cls(**base)

    @property
    def sensor_pixels(self) -> int:
        return self.grid // self.pixel_cells

    @property
    def pixel_pitch(self) -> float:
        return self.dx * self.pixel_cells

    def aperture_mask(self, device=None) -> torch.Tensor:
        n = self.grid
        if self.aperture == "square":
            return torch.ones(n, n, device=device)
        y = torch.arange(n, device=device) - (n - 1) / 2
        r2 = y.view(-1, 1) ** 2 + y.view(1, -1) ** 2
        return (r2 <= (n / 2) ** 2).float()

    def to_dict(self) -> dict:
        return asdict(self)


def simulate_psf(
    radii: torch.Tensor,
    config: OpticsConfig,
    proxy: PillarProxy,
    *,
    height_scale: torch.Tensor | float = 1.0,
    dz: float | torch.Tensor = 0.0,
    check: bool = False,
    extra_phase: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sensor-pixel PSF ``(L, M, M)`` of a radius map ``(grid, grid)`` (fraction of incident power per pixel).

    ``extra_phase``: ``(L, grid, grid)`` or ``(grid, grid)`` radians added to the metasurface's
    phase (a wavefront error, e.g. ``optics.fabrication.zernike_wavefront``)."""
    if radii.shape[-2:] != (config.grid, config.grid):
        raise ValueError(f"simulate_psf: radius map {tuple(radii.shape)} does not match grid {config.grid}")
    phase, amp = proxy(radii, height_scale)
    if extra_phase is not None:
        phase = phase + extra_phase.to(phase.dtype)
    ap = config.aperture_mask(radii.device)
    field = torch.polar(amp.float() * ap, phase.float())
    out = angular_spectrum(field, config.dx, torch.tensor(config.wavelengths), config.z + dz, pad_factor=config.pad_factor, check=check)
    psf = intensity(out) / ap.sum()
    return pixel_integrate(psf, config.pixel_cells)


def _windows(layout: TileLayout, m: int) -> torch.Tensor:
    """Top-left (row, col) of every tile window in an M×M sensor PSF, (2K, 2) int64."""
    c = torch.round(layout.centres()).long()
    tl = m // 2 + c - layout.kernel_size // 2
    if (tl < 0).any() or (tl + layout.kernel_size > m).any():
        raise ValueError(f"tile layout (extent {layout.extent()} px) does not fit a {m}x{m} sensor; use a larger grid or smaller spacing")
    return tl


def check_layout_fits(layout: TileLayout, config: OpticsConfig) -> None:
    """Raise ``ValueError`` now if the tile layout does not fit the sensor of ``config``
    (``grid`` cells / ``pixel_cells`` per pixel): call it before training, not after."""
    _windows(layout, config.sensor_pixels)


def extract_tiles(psf: torch.Tensor, layout: TileLayout) -> torch.Tensor:
    """Tile windows of a sensor PSF ``(L, M, M)`` as conv weights ``(2K, L, k, k)`` (rotated 180°)."""
    k = layout.kernel_size
    tl = _windows(layout, psf.shape[-1])
    wins = [psf[:, r : r + k, c : c + k] for r, c in tl.tolist()]
    return torch.stack(wins).flip(-1, -2)


def place_tiles(tiles: torch.Tensor, layout: TileLayout, m: int) -> torch.Tensor:
    """Inverse of :func:`extract_tiles`: conv-weight tiles ``(2K, L, k, k)`` → sensor pattern ``(L, M, M)``."""
    k = layout.kernel_size
    tl = _windows(layout, m)
    out = torch.zeros(tiles.shape[1], m, m, dtype=tiles.dtype, device=tiles.device)
    for t, (r, c) in enumerate(tl.tolist()):
        out[:, r : r + k, c : c + k] += tiles[t].flip(-1, -2)
    return out


def kernel_fidelity(realised: torch.Tensor, target: torch.Tensor) -> dict[str, list[float]]:
    """Per-kernel fidelity of signed kernels ``(K, C, k, k)``: Pearson NCC and cosine similarity."""
    a = realised.detach().double().flatten(1)
    b = target.detach().double().flatten(1)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
    a0, b0 = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    ncc = (a0 * b0).sum(1) / (a0.norm(dim=1) * b0.norm(dim=1)).clamp_min(1e-30)
    return {"ncc": ncc.tolist(), "cosine": cos.tolist()}


@dataclass
class MetasurfaceDesign:
    """A designed metasurface and what its simulated PSF realises.

    ``radii`` (grid, grid) metres; ``psf`` (L, M, M) sensor-pixel PSF; ``tiles`` (2K, C, k, k)
    realised conv-weight tiles *in kernel units* (``scale ×`` PSF windows); ``scale`` the
    global PSF→kernel factor; ``targets`` the target tiles; ``fidelity`` per kernel.
    """

    artifact_kind = "optics-design"  # neurohw.io.save_artifact (a class attribute, not a field)

    radii: torch.Tensor
    config: OpticsConfig
    layout: TileLayout
    proxy: PillarProxy
    constraints: FabConstraints
    psf: torch.Tensor
    tiles: torch.Tensor
    targets: torch.Tensor
    scale: float
    fidelity: dict
    history: list = field(default_factory=list)

    @property
    def element(self) -> str:
        """``"pillars"`` (``radii`` are pillar radii) or ``"height_map"`` (``radii`` are DOE heights)."""
        return "height_map" if isinstance(self.proxy, HeightMapDOE) else "pillars"

    @property
    def signed_kernels(self) -> torch.Tensor:
        return merge_pairs(self.tiles.unsqueeze(0)).squeeze(0)

    @property
    def target_kernels(self) -> torch.Tensor:
        return merge_pairs(self.targets.unsqueeze(0)).squeeze(0)

    def window_efficiency(self) -> float:
        """Fraction of the light on the sensor that falls inside the tile windows."""
        inside = extract_tiles(self.psf, self.layout).sum()
        return float(inside / self.psf.sum().clamp_min(1e-30))

    def device_frontend(self, sensor: SensorConfig | None = None, image_size: int | None = None) -> DeviceFrontEnd:
        """The nominal device at kernel level (tiles = realised tiles)."""
        return DeviceFrontEnd(self.tiles, self.layout, sensor=sensor, image_size=image_size or self.layout.image_size)

    def wave_frontend(self, sensor: SensorConfig | None = None, image_size: int | None = None) -> "WaveFrontEnd":
        """The nominal device at wave level (full-field convolution: crosstalk included)."""
        return WaveFrontEnd(self.psf * self.scale, self.layout, sensor=sensor, image_size=image_size or self.layout.image_size)

    def summary(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "layout": self.layout.to_dict(),
            "element": self.element,
            "constraints": self.constraints.to_dict(),
            "scale": self.scale,
            "fidelity": self.fidelity,
            "mean_ncc": float(np.mean(self.fidelity["ncc"])),
            "window_efficiency": self.window_efficiency(),
            "final_loss": self.history[-1] if self.history else None,
        }


def _gerchberg_saxton(target_amp: torch.Tensor, config: OpticsConfig, wl: float, ap: torch.Tensor, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Phase of a phase-only pupil whose intensity at ``z`` approximates ``target_amp²`` (grid cells)."""
    phase = (torch.rand(target_amp.shape, generator=gen) * 2 * math.pi).to(target_amp.device)
    sensor = torch.polar(target_amp, phase)
    pupil_phase = torch.zeros_like(target_amp)
    for _ in range(iters):
        back = angular_spectrum(sensor, config.dx, wl, -config.z, pad_factor=config.pad_factor, check=False)
        pupil_phase = torch.angle(back)
        fwd = angular_spectrum(torch.polar(ap, pupil_phase), config.dx, wl, config.z, pad_factor=config.pad_factor, check=False)
        sensor = torch.polar(target_amp, torch.angle(fwd))
    return pupil_phase


def _bounds(element, constraints: FabConstraints):
    """(lower, upper, projection) of the design variable: pillar radius or DOE height."""
    if isinstance(element, HeightMapDOE):
        return 0.0, element.max_height, element.constrain
    return constraints.r_min, constraints.r_max, constraints.apply


def design_metasurface(
    target_tiles: torch.Tensor,
    layout: TileLayout,
    config: OpticsConfig | None = None,
    *,
    proxy: PillarProxy | HeightMapDOE | None = None,
    constraints: FabConstraints | None = None,
    iterations: int = 300,
    lr: float = 0.05,
    background_weight: float = 0.2,
    gs_iterations: int = 20,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> MetasurfaceDesign:
    """Inverse-design a radius map whose PSF tiles reproduce ``target_tiles`` ``(2K, C, k, k)``.

    ``target_tiles`` are non-negative conv-weight tiles (e.g. ``KernelFrontEnd.psf_tiles()``).
    Channel c is designed at wavelength ``config.wavelengths[c]``. ``proxy``: the unit-cell
    model — a :class:`PillarProxy` (design variable: pillar radius, limits from ``constraints``)
    or a :class:`HeightMapDOE` (design variable: height in ``[0, max_height]``, its ``levels``;
    the design's ``radii`` field then holds heights). ``device``: where the
    optimisation runs (default: the targets' device); the returned design lives on the CPU.
    """
    device = torch.device(device) if device is not None else target_tiles.device
    config = config or OpticsConfig()
    constraints = constraints or FabConstraints()
    proxy = proxy or PillarProxy.default(config.wavelengths, constraints)
    T = target_tiles.detach().float().clamp_min(0).to(device)
    if T.shape[1] != len(config.wavelengths):
        raise ValueError(f"design_metasurface: {T.shape[1]} input channels need as many wavelengths, config has {len(config.wavelengths)}")
    if tuple(proxy.wavelengths) != tuple(config.wavelengths):
        raise ValueError("design_metasurface: the proxy's wavelengths differ from the config's")
    m = config.sensor_pixels
    _windows(layout, m)  # fits?
    gen = torch.Generator().manual_seed(int(seed))
    ap = config.aperture_mask(device)
    proxy = proxy.to(device)
    # -- initialisation: GS on the target pattern (grid cells) at the middle wavelength --
    mid = len(config.wavelengths) // 2
    pattern = place_tiles(T, layout, m)[mid]
    pattern = pattern.repeat_interleave(config.pixel_cells, 0).repeat_interleave(config.pixel_cells, 1)
    amp = torch.sqrt(pattern / pattern.sum().clamp_min(1e-30))
    with torch.no_grad():
        ph0 = _gerchberg_saxton(amp, config, config.wavelengths[mid], ap, gs_iterations, gen)
        r0 = proxy.radius_for_phase(ph0, mid)
    lo, hi, apply = _bounds(proxy, constraints)
    u0 = ((r0 - lo) / (hi - lo)).clamp(0.02, 0.98)
    theta = nn.Parameter(torch.log(u0 / (1 - u0)))
    opt = torch.optim.Adam([theta], lr=lr)
    tn = T.pow(2).sum()

    def radii_of(th):
        return apply(lo + (hi - lo) * torch.sigmoid(th))

    history: list[float] = []
    it = tqdm(range(iterations), desc="design metasurface", disable=not progress, leave=False)
    for _ in it:
        opt.zero_grad()
        psf = simulate_psf(radii_of(theta), config, proxy)
        R = extract_tiles(psf, layout)
        s = (R * T).sum() / R.pow(2).sum().clamp_min(1e-30)
        fit = (s * R - T).pow(2).sum() / tn
        bg = 1 - R.sum() / psf.sum().clamp_min(1e-30)
        loss = fit + background_weight * bg
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        it.set_postfix(loss=f"{history[-1]:.4f}")
    with torch.no_grad():
        radii = radii_of(theta).detach()
        psf = simulate_psf(radii, config, proxy)
        R = extract_tiles(psf, layout)
        s = float((R * T).sum() / R.pow(2).sum().clamp_min(1e-30))
    tiles = (R * s).cpu()
    T = T.cpu()
    fid = kernel_fidelity(merge_pairs(tiles.unsqueeze(0))[0], merge_pairs(T.unsqueeze(0))[0])
    return MetasurfaceDesign(radii.cpu(), config, layout, proxy.cpu(), constraints, psf.cpu(), tiles, T, s, fid, history)


class WaveFrontEnd(nn.Module):
    """Wave-level front-end: images convolved with the *whole* sensor PSF (all tiles plus the
    stray light between them), sub-images cropped at each tile, sensor, pos − neg.

    ``psf``: (C, M, M) sensor-pixel PSF already in kernel units (``design.psf × scale``).
    The object is displayed at sensor-pixel resolution (one image pixel ↦ one sensor pixel).
    With a PSF that is zero outside the tile windows this equals a :class:`DeviceFrontEnd`
    built from the extracted tiles (tested); the difference is the crosstalk.
    """

    def __init__(self, psf: torch.Tensor, layout: TileLayout, sensor: SensorConfig | None = None, image_size: int | None = None, noise: bool = True):
        super().__init__()
        from optics.sensor import SensorModel

        self.layout = layout
        self.image_size = int(image_size or layout.image_size)
        self.register_buffer("psf", psf.detach().float())
        self.register_buffer("windows", _windows(layout, psf.shape[-1]))
        self.sensor = SensorModel(sensor)
        self.noise = noise
        self.generator: torch.Generator | None = None
        self.in_channels = psf.shape[0]
        self.kernel_size = layout.kernel_size

    @property
    def out_size(self) -> int:
        return self.image_size - self.kernel_size + 1

    def tile_images(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if c != self.in_channels or h != self.image_size or w != self.image_size:
            raise ValueError(f"WaveFrontEnd: expected images (B, {self.in_channels}, {self.image_size}, {self.image_size}), got {tuple(x.shape)}")
        m = self.psf.shape[-1]
        n = h + m - 1
        spec = torch.fft.rfft2(x, s=(n, n)) * torch.fft.rfft2(self.psf, s=(n, n)).unsqueeze(0)
        full = torch.fft.irfft2(spec.sum(1), s=(n, n))  # (B, n, n) full linear convolution
        k = self.kernel_size
        ho = h - k + 1
        subs = [full[:, r + k - 1 : r + k - 1 + ho, cc + k - 1 : cc + k - 1 + ho] for r, cc in self.windows.tolist()]
        return torch.stack(subs, dim=1)

    def forward(self, x: torch.Tensor, *, noise: bool | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = self.noise if noise is None else noise
        gen = generator if generator is not None else self.generator
        return merge_pairs(self.sensor(self.tile_images(x), noise=noise, generator=gen))


__all__ += ["WaveFrontEnd", "place_tiles"]
