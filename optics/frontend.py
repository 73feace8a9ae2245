"""Optical front-ends: the incoherent convolution layer in its two kernel-level forms.

Every front-end maps intensity images ``x`` of shape ``(B, C, H, W)`` (C colour channels,
values ≥ 0) to signed feature maps ``(B, K, H-k+1, W-k+1)`` (one per designed kernel), the
electronic subtraction of a positive and a negative PSF tile.

PSF tiles are ordered **interleaved**: tile ``2j`` is the positive part of kernel ``j``,
tile ``2j+1`` its negative part; a tile tensor has shape ``(2K, C, k, k)`` and is used as
``torch.nn.functional.conv2d`` weights (cross-correlation). The physical PSF on the sensor is
the tile rotated by 180° (the camera inverts the image); :mod:`optics.design` handles the flip.

* :class:`KernelFrontEnd` — the train-time module (face 1): learnable signed kernels,
  split into non-negative pairs, optional Gaussian noise during training.
* :class:`DeviceFrontEnd` — the measured device at kernel level (face 2): fixed PSF tiles
  (from a wave simulation of a designed or fabricated metasurface) plus the device
  parameters a calibration refits — per-tile ``gain`` and ``offset``, sub-pixel ``shift``
  and ``rotation`` of the optic against the sensor, an additive ``psf_correction`` per tile
  — followed by the :class:`~optics.sensor.SensorModel`. Its forward is differentiable with
  respect to all of them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from optics.sensor import SensorConfig, SensorModel

__all__ = ["TileLayout", "KernelFrontEnd", "DeviceFrontEnd", "split_signed", "merge_pairs"]


@dataclass
class TileLayout:
    """Where the 2K PSF tiles sit on the sensor (units: sensor pixels).

    Tiles fill a ``rows × cols`` grid (row-major, interleaved pos/neg order) with centre
    spacing ``spacing``; the grid is centred on the optical axis (the sensor centre).
    ``spacing`` defaults to ``image_size + kernel_size - 1`` so that the sub-images of
    neighbouring tiles never overlap on the sensor.
    """

    n_tiles: int
    kernel_size: int
    image_size: int
    spacing: int | None = None
    cols: int | None = None

    def __post_init__(self):
        if self.spacing is None:
            self.spacing = self.image_size + self.kernel_size - 1
        if self.cols is None:
            self.cols = int(math.ceil(math.sqrt(self.n_tiles)))

    @property
    def rows(self) -> int:
        return int(math.ceil(self.n_tiles / self.cols))

    def centres(self) -> torch.Tensor:
        """Tile centres (y, x) relative to the optical axis, sensor pixels, shape (n_tiles, 2)."""
        idx = torch.arange(self.n_tiles)
        r = (idx // self.cols).double() - (self.rows - 1) / 2
        c = (idx % self.cols).double() - (self.cols - 1) / 2
        return torch.stack([r, c], dim=1) * self.spacing

    def extent(self) -> int:
        """Sensor pixels needed per side to hold every tile window (and its sub-image)."""
        return max(self.rows, self.cols) * self.spacing

    def to_dict(self) -> dict:
        return asdict(self)


def split_signed(kernels: torch.Tensor) -> torch.Tensor:
    """Signed kernels ``(K, C, k, k)`` → interleaved non-negative pairs ``(2K, C, k, k)``."""
    pos, neg = F.relu(kernels), F.relu(-kernels)
    return torch.stack([pos, neg], dim=1).reshape(-1, *kernels.shape[1:])


def merge_pairs(tiles: torch.Tensor) -> torch.Tensor:
    """Interleaved pairs ``(..., 2K, ...)`` on axis 1 → signed ``pos - neg`` ``(..., K, ...)``."""
    return tiles[:, 0::2] - tiles[:, 1::2]


class KernelFrontEnd(nn.Module):
    """Train-time optical convolution: learnable signed kernels realised as PSF pairs.

    ``kernels``: parameter ``(K, C, k, k)``. ``train_noise``: std of Gaussian noise added to
    each tile's image while training (relative to the batch's peak tile signal), a cheap
    stand-in for the sensor that makes the back-end noise-tolerant.
    """

    def __init__(self, n_kernels: int = 8, in_channels: int = 1, kernel_size: int = 7, image_size: int = 28, train_noise: float = 0.0, init_scale: float = 0.3):
        super().__init__()
        self.n_kernels, self.in_channels, self.kernel_size, self.image_size = n_kernels, in_channels, kernel_size, image_size
        self.train_noise = float(train_noise)
        fan_in = in_channels * kernel_size * kernel_size
        self.kernels = nn.Parameter(torch.randn(n_kernels, in_channels, kernel_size, kernel_size) * init_scale / math.sqrt(fan_in) * 3)

    @property
    def out_size(self) -> int:
        return self.image_size - self.kernel_size + 1

    def psf_tiles(self) -> torch.Tensor:
        """The non-negative PSF tile pairs ``(2K, C, k, k)`` (conv weights, interleaved)."""
        return split_signed(self.kernels)

    def layout(self, spacing: int | None = None) -> TileLayout:
        return TileLayout(2 * self.n_kernels, self.kernel_size, self.image_size, spacing=spacing)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, self.image_size, type(self).__name__)
        y = F.conv2d(x, self.psf_tiles())
        if self.training and self.train_noise > 0:
            y = y + self.train_noise * y.detach().amax() * torch.randn_like(y)
        return merge_pairs(y)

    def to_device(self, sensor: SensorConfig | None = None, spacing: int | None = None) -> "DeviceFrontEnd":
        """The ideal device (tiles exactly the trained kernels) with a sensor."""
        return DeviceFrontEnd(self.psf_tiles().detach().clone(), self.layout(spacing), sensor=sensor, image_size=self.image_size)


def _check_input(x: torch.Tensor, channels: int, size: int, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels or x.shape[-1] != size or x.shape[-2] != size:
        raise ValueError(f"{who}: expected images (B, {channels}, {size}, {size}), got {tuple(x.shape)}")


class DeviceFrontEnd(nn.Module):
    """A (designed or fabricated) optical front-end as the sensor measures it.

    Parameters (``nn.Parameter``, refittable by a calibration; their nominal values give the
    ideal device):

    * ``gain`` (2K,) — multiplicative brightness per tile (brightness scale, vignetting);
    * ``offset`` (2K,) — additive stray light per tile, feature units;
    * ``shift`` (2,) — lateral (y, x) displacement of the optic against the sensor, sensor pixels;
    * ``rotation`` () — rotation of the optic about the optical axis, radians;
    * ``psf_correction`` (2K, C, k, k) — additive correction to each tile.

    Buffers: ``tiles`` (2K, C, k, k), the PSF tiles in conv-weight form, ``centres`` (2K, 2).
    ``terms``: None (the default) or a :class:`~optics.device_terms.TileTerms` applied to the tile
    irradiance before the sensor (a calibrated twin's optional blur, cross-talk, vignetting, …).
    ``sensor``: a :class:`SensorModel`. ``generator``: optional seeded CPU generator used for
    the noise when ``forward`` gets none (a fabricated instance's hidden noise stream).
    """

    def __init__(
        self,
        tiles: torch.Tensor,
        layout: TileLayout,
        sensor: SensorConfig | SensorModel | None = None,
        image_size: int | None = None,
        noise: bool = True,
    ):
        super().__init__()
        if tiles.ndim != 4 or tiles.shape[0] % 2 or tiles.shape[-1] != tiles.shape[-2]:
            raise ValueError(f"DeviceFrontEnd: tiles must be (2K, C, k, k), got {tuple(tiles.shape)}")
        n, c, k, _ = tiles.shape
        if layout.n_tiles != n or layout.kernel_size != k:
            raise ValueError(f"DeviceFrontEnd: layout ({layout.n_tiles} tiles of {layout.kernel_size}) does not match tiles {tuple(tiles.shape)}")
        self.layout = layout
        self.image_size = int(image_size or layout.image_size)
        self.in_channels, self.kernel_size, self.n_kernels = c, k, n // 2
        self.register_buffer("tiles", tiles.detach().clone().float())
        self.register_buffer("centres", layout.centres().float())
        self.gain = nn.Parameter(torch.ones(n))
        self.offset = nn.Parameter(torch.zeros(n))
        self.shift = nn.Parameter(torch.zeros(2))
        self.rotation = nn.Parameter(torch.zeros(()))
        self.psf_correction = nn.Parameter(torch.zeros_like(self.tiles))
        self.sensor = sensor if isinstance(sensor, SensorModel) else SensorModel(sensor)
        self.noise = bool(noise)
        self.generator: torch.Generator | None = None
        self.terms = None  # optional optics.device_terms.TileTerms (a submodule once set)

    @property
    def out_size(self) -> int:
        return self.image_size - self.kernel_size + 1

    def device_parameters(self) -> dict[str, torch.Tensor]:
        """The refittable device parameters by name (detached copies)."""
        return {n: getattr(self, n).detach().clone() for n in ("gain", "offset", "shift", "rotation", "psf_correction")}

    def effective_tiles(self) -> torch.Tensor:
        """Tiles after the PSF correction, clamped non-negative (light intensity)."""
        return F.relu(self.tiles + self.psf_correction)

    def tile_images(self, x: torch.Tensor) -> torch.Tensor:
        """Noiseless sensor irradiance per tile ``(B, 2K, H', W')`` (conv, misalignment, gain, offset,
        then the optional ``terms``)."""
        _check_input(x, self.in_channels, self.image_size, type(self).__name__)
        y = F.conv2d(x, self.effective_tiles())
        y = self._misalign(y)
        y = y * self.gain.view(1, -1, 1, 1) + self.offset.view(1, -1, 1, 1)
        return y if self.terms is None else self.terms(y)

    def _misalign(self, y: torch.Tensor) -> torch.Tensor:
        """Resample each tile's image for a shift/rotation of the optic about the sensor centre.

        A sensor pixel at ``p = c_t + q`` sees the nominal image at ``R⁻¹(p − s)``; in tile
        coordinates ``q0 = R⁻¹ q + R⁻¹(c_t − s) − c_t``. Bilinear (grid_sample, zero outside).
        """
        b, n, h, w = y.shape
        th = self.rotation
        cos, sin = torch.cos(th), torch.sin(th)
        # R^-1 acting on (x, y) column vectors; our centres/shift are (y, x).
        rinv = torch.stack([torch.stack([cos, sin]), torch.stack([-sin, cos])])  # maps (x,y)
        cxy = self.centres.flip(-1).to(y.dtype)  # (n, 2) as (x, y)
        sxy = self.shift.flip(-1).to(y.dtype)
        trans = (cxy - sxy) @ rinv.T - cxy  # (n, 2) pixels
        sx, sy = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
        scale = torch.tensor([sx, sy], dtype=y.dtype, device=y.device)
        a = rinv * scale.view(2, 1) / scale.view(1, 2)
        theta = torch.cat([a.unsqueeze(0).expand(n, 2, 2), (trans * scale).unsqueeze(-1)], dim=2)
        grid = F.affine_grid(theta, (n, b, h, w), align_corners=True)
        out = F.grid_sample(y.transpose(0, 1), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.transpose(0, 1)

    def forward(self, x: torch.Tensor, *, noise: bool | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Measured signed feature maps ``(B, K, H-k+1, W-k+1)`` in feature units."""
        noise = self.noise if noise is None else noise
        gen = generator if generator is not None else self.generator
        y = self.sensor(self.tile_images(x), noise=noise, generator=gen)
        return merge_pairs(y)

    def auto_expose(self, x: torch.Tensor, fill: float = 0.8, quantile: float = 0.999) -> float:
        """Set the sensor exposure so that the ``quantile`` of tile irradiance over ``x`` fills ``fill`` of the well."""
        with torch.no_grad():
            y = self.tile_images(x)
            peak = float(torch.quantile(y.flatten()[:: max(1, y.numel() // 1_000_000)].float(), quantile))
        self.sensor.set_exposure(peak, fill)
        return self.sensor.config.electrons_per_unit
