"""Virtual devices with errors *outside* the twin's family, for testing the calibration.

Written independently of :mod:`optics.fabrication` (which draws errors the twin can model:
per-tile gain/offset, shift, rotation, pillar errors). :class:`OutOfFamilyDevice` wraps a
fabricated instance (``DeviceFrontEnd``) and distorts its per-tile sensor irradiance before
the sensor with any of (all switchable, magnitudes in :class:`OutOfFamilyErrors`):

* ``field_blur_px`` — Gaussian blur whose σ grows linearly with the tile's distance from the
  axis (σ = field_blur_px at the outermost tile): field-dependent blur;
* ``crosstalk`` — each tile receives this fraction of its right-hand neighbour's image,
  shifted by ``ghost_shift_px`` (a ghost);
* ``vignetting`` — irradiance × (1 − vignetting·(r/r_max)²), r the sensor distance from the axis;
* ``gamma`` — sensor response ``irr_max·(irr/irr_max)^gamma``, ``irr_max`` the sensor's saturation
  irradiance (0.9: a response that lifts low signals, compressive towards saturation);
* ``gain_nonuniformity`` — per-pixel gain map 1 + σ·n (fixed per device seed);
* ``magnification`` — each tile image scaled about its own centre by ``1 + magnification``
  along x and ``1 + magnification·(1 − anisotropy)`` along y (bilinear): a lens whose image
  scale differs from the design, anisotropically;
* ``black_level`` — a fixed per-pixel offset pattern (irradiance units, std ``black_level``,
  smooth over ``black_level_corr_px``), present in dark frames too.

``forward(x, noise=True)`` returns signed feature maps like the wrapped instance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class OutOfFamilyErrors:
    field_blur_px: float = 0.0
    crosstalk: float = 0.0
    ghost_shift_px: int = 3
    vignetting: float = 0.0
    gamma: float = 1.0
    gain_nonuniformity: float = 0.0
    magnification: float = 0.0
    anisotropy: float = 0.0
    black_level: float = 0.0
    black_level_corr_px: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def strong(cls) -> "OutOfFamilyErrors":
        """All kinds at once, at magnitudes a poorly characterised bench could show."""
        return cls(field_blur_px=1.2, crosstalk=0.04, vignetting=0.15, gamma=0.9, gain_nonuniformity=0.03)


def _gauss_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 1e-3:
        return img
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=img.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    b = img.reshape(-1, 1, *img.shape[-2:])
    b = F.conv2d(F.pad(b, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    b = F.conv2d(F.pad(b, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return b.reshape(img.shape)


class OutOfFamilyDevice(torch.nn.Module):
    """A fabricated instance ``inst`` with the out-of-family ``errors`` (module docstring)."""

    def __init__(self, inst: torch.nn.Module, errors: OutOfFamilyErrors, seed: int = 0):
        super().__init__()
        self.inst, self.errors = inst, errors
        self.generator = torch.Generator().manual_seed(seed + 1)
        self._seed = seed
        self._gain_map = None
        self._irr_max = None
        self._black = None

    @property
    def sensor(self):
        return self.inst.sensor

    @property
    def centres(self) -> torch.Tensor:
        return self.inst.centres

    @property
    def image_size(self) -> int:
        return self.inst.image_size

    @property
    def in_channels(self) -> int:
        return self.inst.in_channels

    def _fixed_map(self, shape, offset: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self._seed * 1009 + offset)
        return torch.randn(shape, generator=g, dtype=torch.float64).float()

    @torch.no_grad()
    def tile_images(self, x: torch.Tensor) -> torch.Tensor:
        e = self.errors
        y = self.inst.tile_images(x)  # (B, 2K, H, W)
        _, n, h, w = y.shape
        c = self.inst.centres.to(y.dtype)  # (2K, 2) tile centres, px
        rc = c.norm(dim=1)
        if e.field_blur_px > 0:
            sig = e.field_blur_px * rc / rc.max().clamp_min(1e-9)
            y = torch.stack([_gauss_blur(y[:, t], float(sig[t])) for t in range(n)], 1)
        if e.crosstalk > 0:
            # neighbour = the tile with the nearest centre to the right (same row), else none
            src = y.clone()
            for t in range(n):
                right = [(float(c[u, 1] - c[t, 1]), u) for u in range(n)
                         if u != t and abs(float(c[u, 0] - c[t, 0])) < 0.5 and float(c[u, 1] - c[t, 1]) > 0]
                if right:
                    u = min(right)[1]
                    y[:, t] = y[:, t] + e.crosstalk * torch.roll(src[:, u], shifts=e.ghost_shift_px, dims=-1)
        if e.magnification:
            sy = 1.0 / (1 + e.magnification * (1 - e.anisotropy))
            sx = 1.0 / (1 + e.magnification)
            theta = torch.tensor([[sx, 0.0, 0.0], [0.0, sy, 0.0]], dtype=y.dtype).expand(n, 2, 3)
            grid = F.affine_grid(theta, (n, y.shape[0], h, w), align_corners=True)
            y = F.grid_sample(y.transpose(0, 1), grid, mode="bilinear", padding_mode="border",
                              align_corners=True).transpose(0, 1)
        if e.vignetting > 0:
            yy = torch.arange(h, dtype=y.dtype) - (h - 1) / 2
            xx = torch.arange(w, dtype=y.dtype) - (w - 1) / 2
            py = c[:, 0].view(n, 1, 1) + yy.view(1, h, 1)
            px = c[:, 1].view(n, 1, 1) + xx.view(1, 1, w)
            r2 = py**2 + px**2
            y = y * (1 - e.vignetting * r2 / r2.max()).unsqueeze(0)
        if e.gamma != 1.0:
            if self._irr_max is None:  # the response is normalised at the sensor's saturation irradiance
                self._irr_max = float(self.inst.sensor.saturation_level())
            y = self._irr_max * (y.clamp_min(0) / self._irr_max) ** e.gamma
        if e.gain_nonuniformity > 0:
            if self._gain_map is None:
                g = torch.Generator().manual_seed(self._seed)
                self._gain_map = 1 + e.gain_nonuniformity * torch.randn((n, h, w), generator=g, dtype=y.dtype)
            y = y * self._gain_map.unsqueeze(0)
        if e.black_level > 0:
            if self._black is None:
                m = _gauss_blur(self._fixed_map((n, h, w), 2), e.black_level_corr_px)
                self._black = e.black_level * m / m.std().clamp_min(1e-12)
            y = y + self._black.unsqueeze(0)
        return y

    @torch.no_grad()
    def forward(self, x: torch.Tensor, *, noise: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        from optics.frontend import merge_pairs

        irr = self.tile_images(x)
        return merge_pairs(self.sensor(irr, noise=noise, generator=generator or self.generator))
