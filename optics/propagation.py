"""Scalar wave propagation: band-limited angular spectrum, Fresnel (TF and IR), Fraunhofer.

Conventions (all functions):

* ``field``: complex tensor ``(..., L, Ny, Nx)`` or ``(..., Ny, Nx)``; the last two axes are
  y and x on a square grid of pitch ``dx`` (metres). When several wavelengths are given
  (``wavelength`` a 1-D tensor/sequence of length L) they broadcast against axis ``-3``:
  a field without a wavelength axis is propagated at every wavelength (output gains it).
* ``wavelength`` and ``z`` are in metres; ``z`` may be negative (back-propagation).
* Time convention ``exp(-i omega t)``: a plane wave travelling to +z is ``exp(+i k z)``.
* Every function is differentiable (plain torch ops) and runs on whatever device the field
  lives on. Use complex128 when you need double precision.

Sampling is checked by :func:`check_sampling` (warns with :class:`AliasingWarning`, or
raises :class:`AliasingError` with ``strict=True``); every propagator calls it unless
``check=False``.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import torch

__all__ = [
    "AliasingError",
    "AliasingWarning",
    "angular_spectrum",
    "asm_transfer_function",
    "check_sampling",
    "fraunhofer",
    "fresnel_ir",
    "fresnel_tf",
    "freq_grid",
    "propagate",
    "spatial_grid",
]


class AliasingWarning(UserWarning):
    """The sampling of a propagation is insufficient; the result is (partly) aliased."""


class AliasingError(ValueError):
    """Raised instead of :class:`AliasingWarning` when ``strict=True``."""


# --------------------------------------------------------------------------------------------
# grids and helpers


def _as_wavelengths(wavelength, device, dtype) -> torch.Tensor:
    """Wavelengths as a real tensor of shape (L, 1, 1) (L = 1 for a scalar)."""
    wl = torch.as_tensor(wavelength, dtype=dtype, device=device)
    if wl.ndim == 0:
        wl = wl.reshape(1)
    if wl.ndim != 1:
        raise ValueError(f"wavelength must be a scalar or 1-D, got shape {tuple(wl.shape)}")
    if torch.any(wl <= 0):
        raise ValueError("wavelength must be positive (metres)")
    return wl.reshape(-1, 1, 1)


def _zf(z) -> float:
    """``z`` as a Python float (tensors detached; no float32 round trip for floats)."""
    return float(z.detach()) if isinstance(z, torch.Tensor) else float(z)


def _real_dtype(field: torch.Tensor) -> torch.dtype:
    return torch.float64 if field.dtype == torch.complex128 else torch.float32


def _scalar_wl(wavelength) -> bool:
    return torch.as_tensor(wavelength).ndim == 0


def _squeeze_wl(out: torch.Tensor, field: torch.Tensor, wavelength) -> torch.Tensor:
    """Drop the broadcast wavelength axis again when a scalar wavelength was given to a 2-D-axis field."""
    if _scalar_wl(wavelength) and out.ndim == field.ndim + 1:
        return out.squeeze(-3)
    return out


def spatial_grid(n: int, dx: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Centred sample coordinates ``(i - n//2) * dx`` (metres), shape (n,)."""
    return (torch.arange(n, device=device, dtype=dtype) - n // 2) * dx


def freq_grid(n: int, dx: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """FFT-ordered spatial frequencies (cycles/metre), shape (n,)."""
    return torch.fft.fftfreq(n, d=dx, device=device, dtype=dtype)


def _pad(field: torch.Tensor, pad_factor: float) -> tuple[torch.Tensor, int, int]:
    ny, nx = field.shape[-2:]
    py = int(round(ny * (pad_factor - 1) / 2))
    px = int(round(nx * (pad_factor - 1) / 2))
    if py == 0 and px == 0:
        return field, 0, 0
    return torch.nn.functional.pad(field, (px, px, py, py)), py, px


def _crop(field: torch.Tensor, py: int, px: int) -> torch.Tensor:
    if py == 0 and px == 0:
        return field
    return field[..., py : field.shape[-2] - py, px : field.shape[-1] - px]


# --------------------------------------------------------------------------------------------
# sampling checks


def check_sampling(
    method: str,
    n: int,
    dx: float,
    wavelength,
    z: float,
    *,
    pad_factor: float = 2.0,
    aperture: float | None = None,
    strict: bool = False,
) -> list[str]:
    """Check the grid against the sampling criteria of ``method``; warn (or raise) on aliasing.

    ``n``: samples per side (before padding); ``dx``: pitch (m); ``aperture``: the diameter of
    the illuminated region (m, default the grid width) used by the Fraunhofer check.

    Criteria (L = padded grid width, λ the largest wavelength for ``fresnel_tf`` and the
    smallest for the others):

    * ``asm``: the band limit of Matsushima & Shimobaba, ``f_lim = 1/(λ sqrt((2 z Δf)^2 + 1))``,
      must keep at least half of the grid's Nyquist band ``1/(2 dx)``; below that most of the
      spectrum is cut and the result is too smooth (warning, not aliasing). A grid too coarse
      for the wavelength (``dx > λ``... never aliasing for ASM) is fine.
    * ``fresnel_tf``: the transfer function's chirp is sampled without aliasing when
      ``dx >= λ |z| / L`` (Voelz: TF for long distances).
    * ``fresnel_ir``: the impulse response is sampled without aliasing when ``dx <= λ |z| / L``.
    * ``fraunhofer``: the Fraunhofer number ``a^2/(λ |z|)`` (a the aperture half-width) should
      be ≤ 0.1 for the far-field approximation to hold.

    Returns the list of problems found (empty when the sampling is fine).
    """
    wls = torch.as_tensor(wavelength, dtype=torch.float64).reshape(-1)
    lmin, lmax = float(wls.min()), float(wls.max())
    L = n * pad_factor * dx
    problems: list[str] = []
    az = abs(float(z))
    if method == "asm":
        df = 1.0 / L
        f_lim = 1.0 / (lmax * math.sqrt((2 * az * df) ** 2 + 1))
        nyq = 1.0 / (2 * dx)
        if f_lim < 0.5 * nyq:
            problems.append(
                f"asm: band limit {f_lim:.3g}/m keeps {f_lim / nyq:.0%} of the Nyquist band {nyq:.3g}/m "
                f"(z={z:.3g} m is long for a {L:.3g} m window; increase pad_factor or use fresnel_tf)"
            )
    elif method == "fresnel_tf":
        crit = lmax * az / L
        if dx < crit * (1 - 1e-9):
            problems.append(
                f"fresnel_tf: transfer-function chirp aliased: dx={dx:.3g} m < λz/L={crit:.3g} m "
                f"(use fresnel_ir or asm at this short distance)"
            )
    elif method == "fresnel_ir":
        crit = lmin * az / L
        if dx > crit * (1 + 1e-9):
            problems.append(
                f"fresnel_ir: impulse-response chirp aliased: dx={dx:.3g} m > λz/L={crit:.3g} m "
                f"(use fresnel_tf at this long distance)"
            )
    elif method == "fraunhofer":
        a = (aperture if aperture is not None else n * dx) / 2
        nf = a * a / (lmin * az) if az > 0 else math.inf
        if nf > 0.1:
            problems.append(f"fraunhofer: Fraunhofer number a^2/(λz)={nf:.3g} > 0.1; the far-field approximation does not hold")
    else:
        raise ValueError(f"unknown propagation method {method!r}; known: asm, fresnel_tf, fresnel_ir, fraunhofer")
    for p in problems:
        if strict:
            raise AliasingError(p)
        warnings.warn(p, AliasingWarning, stacklevel=3)
    return problems


# --------------------------------------------------------------------------------------------
# band-limited angular spectrum (Matsushima & Shimobaba 2009)


def asm_transfer_function(
    ny: int, nx: int, dx: float, wavelength, z, *, device=None, dtype=torch.float32, band_limit: bool = True
) -> torch.Tensor:
    """Band-limited angular-spectrum transfer function ``H(fy, fx)``, shape (L, ny, nx), FFT order.

    ``H = exp(i 2π z sqrt(1/λ² − fx² − fy²))`` for propagating waves, 0 for evanescent ones,
    and 0 outside the band limit ``|f| < 1/(λ sqrt((2 z Δf)² + 1))`` per axis (Δf = 1/(n dx)),
    which removes the aliasing of the transfer function's phase at long distances.
    ``z`` may be a tensor (differentiable, e.g. a focal-distance error).
    """
    # built in float64 and cast: the phase kz·z reaches ~2π·z/λ (3·10⁵ rad at z/λ = 5·10⁴), where
    # float32 rounding (~0.03 rad) and the float32 band-limit/sqrt arithmetic cost ~10⁻⁴ of the
    # energy per pass; the cast to ``dtype`` happens once, on the finished H.
    f64 = torch.float64
    wl = _as_wavelengths(wavelength, device, f64)
    fy = freq_grid(ny, dx, device, f64).reshape(1, ny, 1)
    fx = freq_grid(nx, dx, device, f64).reshape(1, 1, nx)
    z = torch.as_tensor(z, device=device).to(f64)
    arg = 1.0 / wl**2 - fx**2 - fy**2
    prop = arg > 0
    kz = 2 * math.pi * torch.sqrt(torch.clamp(arg, min=0.0))
    H = torch.polar(prop.to(f64), kz * z)
    if band_limit:
        zabs = torch.abs(z).detach()
        fx_lim = 1.0 / (wl * torch.sqrt((2 * zabs / (nx * dx)) ** 2 + 1))
        fy_lim = 1.0 / (wl * torch.sqrt((2 * zabs / (ny * dx)) ** 2 + 1))
        mask = (fx.abs() < fx_lim) & (fy.abs() < fy_lim)
        H = H * mask
    return H.to(torch.complex128 if dtype == torch.float64 else torch.complex64)
    return H


_TF_CACHE: dict = {}
_TF_CACHE_MAX = 16


def _cached_asm_tf(ny, nx, dx, wavelength, z, device, dtype, band_limit) -> torch.Tensor:
    """:func:`asm_transfer_function`, memoised when nothing in it needs a gradient."""
    if (isinstance(z, torch.Tensor) and z.requires_grad) or (isinstance(wavelength, torch.Tensor) and wavelength.requires_grad):
        return asm_transfer_function(ny, nx, dx, wavelength, z, device=device, dtype=dtype, band_limit=band_limit)
    wt = wavelength.detach().double().reshape(-1).tolist() if isinstance(wavelength, torch.Tensor) else np.atleast_1d(np.asarray(wavelength, dtype=float)).tolist()
    key = (ny, nx, float(dx), tuple(wt), _zf(z), str(device), dtype, band_limit)
    H = _TF_CACHE.get(key)
    if H is None:
        H = asm_transfer_function(ny, nx, dx, wavelength, z, device=device, dtype=dtype, band_limit=band_limit)
        if len(_TF_CACHE) >= _TF_CACHE_MAX:
            _TF_CACHE.pop(next(iter(_TF_CACHE)))
        _TF_CACHE[key] = H
    return H


def _as_complex(field: torch.Tensor) -> torch.Tensor:
    """``field`` as a complex tensor (complex128 from float64, else complex64)."""
    if torch.is_complex(field):
        return field
    return field.to(torch.complex128 if field.dtype == torch.float64 else torch.complex64)


def _padded_product(name: str, field: torch.Tensor, dx: float, wavelength, z, pad_factor: float, check: bool,
                    strict: bool, transfer: Callable[[int, int, torch.dtype], torch.Tensor]) -> torch.Tensor:
    """The frame every same-grid propagator shares: cast to complex, check the sampling
    (:func:`check_sampling` under ``name``), zero-pad by ``pad_factor``, multiply the spectrum by
    ``transfer(ny, nx, real_dtype)`` (the padded grid's transfer function, FFT order, shape
    (L, ny, nx)) and crop back to the input grid."""
    field = _as_complex(field)
    if check:
        check_sampling(name, field.shape[-1], dx, wavelength, _zf(z), pad_factor=pad_factor, strict=strict)
    padded, py, px = _pad(field, pad_factor)
    H = transfer(padded.shape[-2], padded.shape[-1], _real_dtype(field))
    out = torch.fft.ifft2(torch.fft.fft2(padded) * H)
    return _squeeze_wl(_crop(out, py, px), field, wavelength)


def _paraxial_grids(ny: int, nx: int, grid: Callable, dx: float, wavelength, z, device, rdt: torch.dtype):
    """``(wl, y, x, z)`` for the Fresnel kernels: wavelengths (L, 1, 1), ``grid(n, dx, device, dtype)``
    along y (1, ny, 1) and x (1, 1, nx) — frequencies or positions — and ``z`` as a tensor."""
    wl = _as_wavelengths(wavelength, device, rdt)
    y = grid(ny, dx, device, rdt).reshape(1, ny, 1)
    x = grid(nx, dx, device, rdt).reshape(1, 1, nx)
    return wl, y, x, torch.as_tensor(z, dtype=rdt, device=device)


def angular_spectrum(
    field: torch.Tensor,
    dx: float,
    wavelength,
    z,
    *,
    pad_factor: float = 2.0,
    band_limit: bool = True,
    check: bool = True,
    strict: bool = False,
) -> torch.Tensor:
    """Propagate ``field`` by ``z`` with the band-limited angular spectrum method.

    The field is zero-padded by ``pad_factor`` (2 = twice the width, the usual choice that
    avoids the circular wrap-around of the FFT convolution) and cropped back, so the output
    has the input's grid. Exact for any z (no paraxial approximation) within the band limit;
    energy is conserved up to what leaves the window or is cut by the band limit.
    """
    def transfer(ny: int, nx: int, rdt: torch.dtype) -> torch.Tensor:
        return _cached_asm_tf(ny, nx, dx, wavelength, z, field.device, rdt, band_limit)

    return _padded_product("asm", field, dx, wavelength, z, pad_factor, check, strict, transfer)


# --------------------------------------------------------------------------------------------
# Fresnel


def fresnel_tf(
    field: torch.Tensor, dx: float, wavelength, z, *, pad_factor: float = 2.0, check: bool = True, strict: bool = False
) -> torch.Tensor:
    """Fresnel propagation with the transfer function ``exp(ikz) exp(−iπλz(fx²+fy²))`` (same grid out)."""

    def transfer(ny: int, nx: int, rdt: torch.dtype) -> torch.Tensor:
        wl, fy, fx, zt = _paraxial_grids(ny, nx, freq_grid, dx, wavelength, z, field.device, rdt)
        phase = 2 * math.pi / wl * zt - math.pi * wl * zt * (fx**2 + fy**2)
        return torch.polar(torch.ones_like(phase), phase)

    return _padded_product("fresnel_tf", field, dx, wavelength, z, pad_factor, check, strict, transfer)


def fresnel_ir(
    field: torch.Tensor, dx: float, wavelength, z, *, pad_factor: float = 2.0, check: bool = True, strict: bool = False
) -> torch.Tensor:
    """Fresnel propagation by convolution with the sampled impulse response (same grid out).

    ``h(x, y) = exp(ikz)/(iλz) · exp(iπ(x²+y²)/(λz))``; the convolution is an FFT product
    with ``FFT(h)·dx²``. Accurate at short distances (``dx <= λz/L``).
    """

    def transfer(ny: int, nx: int, rdt: torch.dtype) -> torch.Tensor:
        wl, y, x, zt = _paraxial_grids(ny, nx, spatial_grid, dx, wavelength, z, field.device, rdt)
        phase = 2 * math.pi / wl * zt + math.pi * (x**2 + y**2) / (wl * zt)
        h = torch.polar(torch.ones_like(phase), phase) / (1j * wl * zt)
        return torch.fft.fft2(torch.fft.ifftshift(h, dim=(-2, -1))) * dx * dx

    return _padded_product("fresnel_ir", field, dx, wavelength, z, pad_factor, check, strict, transfer)


# --------------------------------------------------------------------------------------------
# Fraunhofer


def fraunhofer(
    field: torch.Tensor, dx: float, wavelength, z, *, aperture: float | None = None, check: bool = True, strict: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Far-field (Fraunhofer) pattern at distance ``z``.

    Returns ``(out, dx_out)``: the field on the output grid, whose pitch ``dx_out = λz/(N dx)``
    depends on the wavelength (tensor of shape (L,)); ``out`` is
    ``exp(ikz) exp(ik r²/2z)/(iλz) · FFT(field)·dx²`` (centred). ``aperture``: diameter of the
    illuminated region (m) for the Fraunhofer-number check (default the grid width).
    """
    field = _as_complex(field)
    if check:
        check_sampling("fraunhofer", field.shape[-1], dx, wavelength, float(z), aperture=aperture, strict=strict)
    rdt = _real_dtype(field)
    ny, nx = field.shape[-2:]
    wl = _as_wavelengths(wavelength, field.device, rdt)
    dxo = wl * z / (nx * dx)
    dyo = wl * z / (ny * dx)
    x2 = (torch.arange(nx, device=field.device, dtype=rdt) - nx // 2).reshape(1, 1, nx) * dxo
    y2 = (torch.arange(ny, device=field.device, dtype=rdt) - ny // 2).reshape(1, ny, 1) * dyo
    spec = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(field, dim=(-2, -1))), dim=(-2, -1)) * dx * dx
    phase = 2 * math.pi / wl * z + math.pi * (x2**2 + y2**2) / (wl * z)
    out = torch.polar(torch.ones_like(phase), phase) / (1j * wl * z) * spec
    return _squeeze_wl(out, field, wavelength), dxo.reshape(-1)


# --------------------------------------------------------------------------------------------
# dispatcher and PSFs


def propagate(field: torch.Tensor, dx: float, wavelength, z, method: str = "asm", **kw) -> torch.Tensor:
    """Propagate with ``method`` in {asm, fresnel_tf, fresnel_ir} (same grid out)."""
    if method == "asm":
        return angular_spectrum(field, dx, wavelength, z, **kw)
    if method == "fresnel_tf":
        return fresnel_tf(field, dx, wavelength, z, **kw)
    if method == "fresnel_ir":
        return fresnel_ir(field, dx, wavelength, z, **kw)
    raise ValueError(f"unknown propagation method {method!r}; known: asm, fresnel_tf, fresnel_ir (fraunhofer: call fraunhofer())")


def intensity(field: torch.Tensor) -> torch.Tensor:
    """|field|² (real)."""
    return field.real**2 + field.imag**2


def coherent_psf(pupil: torch.Tensor, dx: float, wavelength, z, method: str = "asm", **kw) -> torch.Tensor:
    """Coherent (amplitude) PSF: the field at distance ``z`` behind ``pupil`` lit by an on-axis plane wave."""
    return propagate(pupil, dx, wavelength, z, method=method, **kw)


def incoherent_psf(pupil: torch.Tensor, dx: float, wavelength, z, method: str = "asm", normalize: bool = False, **kw) -> torch.Tensor:
    """Intensity PSF ``|coherent_psf|²``. With ``normalize`` each wavelength's PSF sums to 1;
    otherwise it is in units of the incident power per grid cell (sums to the transmitted
    power that reaches the window)."""
    psf = intensity(coherent_psf(pupil, dx, wavelength, z, method=method, **kw))
    if normalize:
        psf = psf / psf.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
    return psf


__all__ += ["coherent_psf", "incoherent_psf", "intensity"]
