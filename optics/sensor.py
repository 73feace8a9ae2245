"""Image-sensor model: pixel integration, photon/read/dark noise, full-well saturation, gain, ADC.

Units. The optical layer outputs *irradiance in feature units* (the value the ideal kernel
convolution produces). The sensor turns it into photo-electrons with ``electrons_per_unit``
(exposure), adds dark current, draws shot noise (Poisson), read noise (Gaussian, electrons
rms), clips at the full well, converts to digital numbers (``conversion_gain`` DN/e⁻, ADC of
``adc_bits`` bits, ``black_level_dn`` offset) and finally maps DN back to feature units
(subtracting the black level and the mean dark signal), which is what the electronic back-end sees.

Noise models (``noise_model``):

* ``"physical"`` — the chain above (default);
* ``"poisson_gaussian"`` — in feature units, ``y + sqrt(a·y + b)·n`` (a = 4e-5, b = 1e-5 as in
  the related work), followed by the same ADC/clipping;
* ``"gaussian"`` — ``y + sigma·n``;
* ``"none"`` — only saturation and quantisation.

Differentiability: while autograd records, shot noise uses the Gaussian approximation
``e + sqrt(e)·n`` (reparameterised), rounding uses a straight-through estimator and clipping
passes gradients inside the range. Without autograd (evaluation) the shot noise is exact
Poisson. All randomness takes an optional ``torch.Generator``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SensorConfig", "SensorModel", "pixel_integrate"]


@dataclass
class SensorConfig:
    """Sensor parameters (see the module docstring for units)."""

    electrons_per_unit: float = 2000.0
    full_well_e: float = 10000.0
    read_noise_e: float = 2.0
    dark_current_e: float = 1.0
    conversion_gain: float | None = None  # DN per electron; None → full well maps to the ADC range
    adc_bits: int = 12
    black_level_dn: float = 64.0
    noise_model: str = "physical"
    pg_a: float = 4e-5
    pg_b: float = 1e-5
    gaussian_sigma: float = 1e-3

    def __post_init__(self):
        if self.noise_model not in ("physical", "poisson_gaussian", "gaussian", "none"):
            raise ValueError(f"SensorConfig.noise_model={self.noise_model!r}; known: physical, poisson_gaussian, gaussian, none")
        for name in ("electrons_per_unit", "full_well_e"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SensorConfig.{name} must be > 0")
        for name in ("read_noise_e", "dark_current_e", "pg_a", "pg_b", "gaussian_sigma", "black_level_dn"):
            if getattr(self, name) < 0:
                raise ValueError(f"SensorConfig.{name} must be >= 0")
        if not 1 <= int(self.adc_bits) <= 24:
            raise ValueError("SensorConfig.adc_bits must be in 1..24")

    @property
    def gain_dn_per_e(self) -> float:
        if self.conversion_gain is not None:
            return float(self.conversion_gain)
        return (2 ** int(self.adc_bits) - 1 - self.black_level_dn) / self.full_well_e

    def to_dict(self) -> dict:
        return asdict(self)


def pixel_integrate(irradiance: torch.Tensor, factor: int) -> torch.Tensor:
    """Sum ``factor×factor`` blocks of grid cells into one sensor pixel (``(..., H, W)`` →
    ``(..., H//factor, W//factor)``); the energy collected by each pixel. H, W must divide."""
    if factor == 1:
        return irradiance
    h, w = irradiance.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"pixel_integrate: grid {h}x{w} is not a multiple of the pixel size {factor}")
    lead = irradiance.shape[:-2]
    x = irradiance.reshape(-1, 1, h, w)
    x = F.avg_pool2d(x, factor) * (factor * factor)
    return x.reshape(*lead, h // factor, w // factor)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class SensorModel(nn.Module):
    """Differentiable sensor. ``forward(irradiance)`` → measured values in feature units.

    Parameters live in :attr:`config` (a :class:`SensorConfig`). ``noise=False`` gives the
    noiseless, unquantised-free reading (still saturating and quantising unless
    ``quantize=False``).
    """

    def __init__(self, config: SensorConfig | None = None):
        super().__init__()
        self.config = config or SensorConfig()

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())

    # -- the chain, step by step -----------------------------------------------------------
    def electrons(self, irradiance: torch.Tensor, *, noise: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """Photo-electrons (after shot, dark and read noise; before clipping)."""
        c = self.config
        if c.noise_model == "physical":
            mean = irradiance.clamp_min(0) * c.electrons_per_unit + c.dark_current_e
            if not noise:
                return mean
            if torch.is_grad_enabled() and mean.requires_grad:
                shot = mean + torch.sqrt(mean.clamp_min(1e-12)) * _randn_like(mean, generator)
            else:
                m = mean.detach()
                if generator is not None:
                    m = m.to(generator.device)
                shot = torch.poisson(m, generator=generator).to(device=mean.device, dtype=mean.dtype)
            return shot + c.read_noise_e * _randn_like(mean, generator)
        y = irradiance
        if noise and c.noise_model == "poisson_gaussian":
            y = y + torch.sqrt((c.pg_a * y.clamp_min(0) + c.pg_b).clamp_min(1e-20)) * _randn_like(y, generator)
        elif noise and c.noise_model == "gaussian":
            y = y + c.gaussian_sigma * _randn_like(y, generator)
        return y * c.electrons_per_unit

    def digitize(self, electrons: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
        """Full-well clipping, conversion gain, black level, ADC rounding and range → DN (float)."""
        c = self.config
        e = electrons.clamp(0.0, c.full_well_e)
        dn = e * c.gain_dn_per_e + c.black_level_dn
        if quantize:
            dn = _RoundSTE.apply(dn)
        return dn.clamp(0.0, float(2 ** int(c.adc_bits) - 1))

    def to_units(self, dn: torch.Tensor) -> torch.Tensor:
        """DN → feature units (black level and mean dark signal removed)."""
        c = self.config
        dark = c.dark_current_e if c.noise_model == "physical" else 0.0
        return ((dn - c.black_level_dn) / c.gain_dn_per_e - dark) / c.electrons_per_unit

    def forward(
        self, irradiance: torch.Tensor, *, noise: bool = True, quantize: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.to_units(self.digitize(self.electrons(irradiance, noise=noise, generator=generator), quantize=quantize))

    def saturation_level(self) -> float:
        """The irradiance (feature units) at which the pixel saturates."""
        c = self.config
        dark = c.dark_current_e if c.noise_model == "physical" else 0.0
        top = min(c.full_well_e, (2 ** int(c.adc_bits) - 1 - c.black_level_dn) / c.gain_dn_per_e)
        return (top - dark) / c.electrons_per_unit

    def set_exposure(self, peak_irradiance: float, fill: float = 0.8) -> None:
        """Auto-exposure: choose ``electrons_per_unit`` so that ``peak_irradiance`` fills ``fill`` of the full well."""
        if peak_irradiance <= 0:
            raise ValueError("set_exposure: peak irradiance must be > 0")
        self.config.electrons_per_unit = fill * self.config.full_well_e / float(peak_irradiance)


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
