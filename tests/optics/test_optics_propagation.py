"""Validation of the propagators against analytic solutions and invariants."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.special import j1

from optics.propagation import (
    AliasingError,
    AliasingWarning,
    angular_spectrum,
    check_sampling,
    fraunhofer,
    fresnel_ir,
    fresnel_tf,
    incoherent_psf,
    intensity,
    spatial_grid,
)

WL = 532e-9


def _gaussian(n, dx, w0, dtype=torch.complex128):
    x = spatial_grid(n, dx, dtype=torch.float64)
    r2 = x.view(-1, 1) ** 2 + x.view(1, -1) ** 2
    return torch.exp(-r2 / w0**2).to(dtype)


def _rms_width(I, dx):
    """1/e² intensity radius from the second moment: w = 2 sqrt(<x²>)."""
    n = I.shape[-1]
    x = spatial_grid(n, dx, dtype=torch.float64)
    p = I / I.sum()
    return 2 * math.sqrt(float((p.sum(0) * x**2).sum()))


def _airy(r, a, wl, z):
    v = 2 * math.pi / wl * a * r / z
    out = np.ones_like(v)
    nz = v != 0
    out[nz] = (2 * j1(v[nz]) / v[nz]) ** 2
    return out * (math.pi * a * a / (wl * z)) ** 2


def test_fraunhofer_circular_aperture_is_airy():
    n, dx, a = 512, 2e-6, 40e-6
    z = 0.2  # Fraunhofer number a²/(λz) = 0.015
    x = spatial_grid(n, dx, dtype=torch.float64)
    r = torch.sqrt(x.view(-1, 1) ** 2 + x.view(1, -1) ** 2)
    # antialiased aperture edge: sub-sampled coverage
    sub = 4
    xs = (torch.arange(n * sub, dtype=torch.float64) - n * sub // 2 + 0.5 - sub / 2 + 0.0) * dx / sub
    rs = torch.sqrt(xs.view(-1, 1) ** 2 + xs.view(1, -1) ** 2)
    ap = (rs <= a).double().reshape(n, sub, n, sub).mean(dim=(1, 3)).to(torch.complex128)
    out, dxo = fraunhofer(ap, dx, WL, z, aperture=2 * a)
    I = intensity(out).numpy()
    c = n // 2
    xo = (np.arange(n) - c) * float(dxo[0])
    ref = _airy(np.abs(xo), a, WL, z)
    # compare along a row through the centre out to the third ring
    sel = np.abs(xo) < 3.3 * 0.61 * WL * z / a * 2
    err = np.abs(I[c, sel] - ref[sel]).max() / ref.max()
    assert err < 5e-3, err
    # first zero at 1.22 λ z / D
    prof = I[c, c:]
    first_min = np.argmax(np.diff(prof) > 0)
    assert abs(xo[c + first_min] - 1.22 * WL * z / (2 * a)) <= float(dxo[0])


def test_asm_focal_spot_of_a_lens_is_airy():
    n, dx, f = 256, 1e-6, 400e-6
    a = 60e-6
    x = spatial_grid(n, dx, dtype=torch.float64)
    r2 = x.view(-1, 1) ** 2 + x.view(1, -1) ** 2
    lens = torch.polar((r2 <= a * a).double(), -math.pi * r2 / (WL * f))
    I = intensity(angular_spectrum(lens, dx, WL, f, pad_factor=2)).numpy()
    c = n // 2
    prof = I[c, c:]
    first_min = int(np.argmax(np.diff(prof) > 0))
    # non-paraxial lens (NA 0.15): first zero near 1.22 λ f / D within a pixel
    assert abs(first_min * dx - 0.61 * WL * f / a) <= 1.5 * dx


@pytest.mark.parametrize("method", ["asm", "fresnel_tf"])
def test_gaussian_beam_width_matches_formula(method):
    n, dx, w0 = 256, 2e-6, 40e-6
    zr = math.pi * w0**2 / WL
    u0 = _gaussian(n, dx, w0)
    for z in (0.5 * zr, 1.0 * zr, 1.5 * zr):
        prop = angular_spectrum if method == "asm" else fresnel_tf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AliasingWarning)
            u = prop(u0, dx, WL, z)
        w = _rms_width(intensity(u), dx)
        assert abs(w / (w0 * math.sqrt(1 + (z / zr) ** 2)) - 1) < 5e-3


def test_energy_is_conserved_with_padding():
    n, dx, w0 = 256, 1e-6, 20e-6
    u0 = _gaussian(n, dx, w0)
    u = angular_spectrum(u0, dx, WL, 500e-6)
    assert abs(float(intensity(u).sum() / intensity(u0).sum()) - 1) < 1e-6


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), frac=st.floats(-1.0, 1.0), n=st.sampled_from([16, 32, 48]))
def test_asm_is_unitary_and_invertible_without_padding(seed, frac, n):
    # dx = λ: every grid frequency propagates, and for |z| <= 0.8 L (L = n λ) the band limit
    # 1/(λ sqrt((2z/L)² + 1)) keeps the whole band, so the circular ASM is exactly unitary
    # and +z then -z is the identity.
    z = frac * 0.8 * n * WL
    g = torch.Generator().manual_seed(seed)
    u0 = torch.complex(torch.randn(2, n, n, generator=g, dtype=torch.float64), torch.randn(2, n, n, generator=g, dtype=torch.float64))
    u = angular_spectrum(u0, WL, WL, z, pad_factor=1)
    assert torch.allclose(intensity(u).sum(), intensity(u0).sum(), rtol=1e-10)
    back = angular_spectrum(u, WL, WL, -z, pad_factor=1)
    assert torch.allclose(back, u0, atol=1e-9)


def test_forward_then_back_recovers_field_with_padding():
    n, dx = 128, 1e-6
    u0 = _gaussian(n, dx, 12e-6) * torch.polar(torch.ones(n, n, dtype=torch.float64), torch.linspace(0, 3, n, dtype=torch.float64).view(1, -1))
    u = angular_spectrum(u0, dx, WL, 150e-6)
    back = angular_spectrum(u, dx, WL, -150e-6)
    assert float((back - u0).abs().max() / u0.abs().max()) < 1e-5


def test_asm_and_fresnel_agree_in_the_paraxial_regime():
    n, dx, w0 = 256, 2e-6, 30e-6
    u0 = _gaussian(n, dx, w0)
    z = 3e-3  # dx >= λz/L (TF valid), beam angles ~ λ/(π w0) ≈ 0.006 rad: paraxial
    a = angular_spectrum(u0, dx, WL, z)
    f = fresnel_tf(u0, dx, WL, z)
    err = float((a - f).abs().norm() / a.abs().norm())
    assert err < 1e-3, err


def test_fresnel_ir_and_tf_agree_at_the_critical_distance():
    n, dx, w0 = 256, 2e-6, 60e-6
    L = 2 * n * dx
    z = dx * L / WL  # exactly λz/L = dx: both criteria hold
    u0 = _gaussian(n, dx, w0)
    a = fresnel_tf(u0, dx, WL, z)
    b = fresnel_ir(u0, dx, WL, z)
    assert float((a - b).abs().norm() / a.abs().norm()) < 2e-2


def test_multi_wavelength_batch_equals_separate_calls():
    wls = torch.tensor([635e-9, 532e-9, 450e-9], dtype=torch.float64)
    u0 = torch.stack([_gaussian(64, 1e-6, 8e-6)] * 2)  # (B=2, N, N): no wavelength axis
    out = angular_spectrum(u0.unsqueeze(1), 1e-6, wls, 50e-6)  # (2, 3, N, N)
    assert out.shape == (2, 3, 64, 64)
    for i, wl in enumerate(wls.tolist()):
        assert torch.allclose(out[:, i], angular_spectrum(u0, 1e-6, wl, 50e-6))


def test_asm_gradcheck():
    g = torch.Generator().manual_seed(0)
    u0 = torch.complex(torch.randn(8, 8, generator=g, dtype=torch.float64), torch.randn(8, 8, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda u: angular_spectrum(u, 1e-6, WL, 5e-6, check=False), (u0,))


def test_incoherent_psf_normalised():
    ap = torch.ones(32, 32, dtype=torch.complex128)
    psf = incoherent_psf(ap, 1e-6, [635e-9, 450e-9], 30e-6, normalize=True)
    assert psf.shape == (2, 32, 32)
    assert torch.allclose(psf.sum(dim=(-2, -1)), torch.ones(2, dtype=torch.float64))


def test_sampling_checks_warn_and_raise():
    with pytest.warns(AliasingWarning, match="fresnel_tf"):
        fresnel_tf(_gaussian(64, 1e-6, 8e-6), 1e-6, WL, 10e-3)
    with pytest.raises(AliasingError, match="fresnel_ir"):
        fresnel_ir(_gaussian(64, 1e-6, 8e-6), 1e-6, WL, 1e-6, strict=True)
    with pytest.raises(AliasingError, match="Fraunhofer number"):
        check_sampling("fraunhofer", 64, 1e-6, WL, 1e-3, strict=True)
    assert check_sampling("asm", 64, 1e-6, WL, 1e-6) == []
    with pytest.warns(AliasingWarning, match="band limit"):
        check_sampling("asm", 64, 1e-6, WL, 1.0)
    with pytest.raises(ValueError, match="unknown propagation method"):
        check_sampling("bogus", 64, 1e-6, WL, 1.0)


def test_complex64_round_trip_conserves_energy_at_long_distance():
    """z/λ = 5·10⁴: the transfer function is built in float64 and cast, so a complex64 field keeps
    its energy through z and back as well as complex128 does (before: ~2·10⁻⁴ lost per round trip)."""
    from optics.propagation import asm_transfer_function

    wl, dx, n = 532e-9, 586e-9, 1024
    z = 5e4 * wl
    x = (torch.arange(n, dtype=torch.float64) - n / 2) * dx
    beam = torch.exp(-(x[None] ** 2 + x[:, None] ** 2) / (100e-6) ** 2)  # Rayleigh range 59 mm > z
    losses = {}
    for dt in (torch.complex64, torch.complex128):
        f = beam.to(dt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back = angular_spectrum(angular_spectrum(f, dx, wl, z), dx, wl, -z)
        e0 = float(f.abs().pow(2).sum())
        losses[dt] = 1 - float(back.abs().pow(2).sum()) / e0
    assert abs(losses[torch.complex128]) < 1e-6  # the physics: nothing leaves the window
    assert abs(losses[torch.complex64] - losses[torch.complex128]) < 1e-6
    # the cast keeps |H| = 1 to float32 precision on the propagating band, and the dtype asked for
    H = asm_transfer_function(64, 64, dx, wl, z, band_limit=False)
    assert H.dtype == torch.complex64
    assert float((H.abs() - 1).abs().max()) < 1e-6
    assert asm_transfer_function(8, 8, dx, wl, z, dtype=torch.float64).dtype == torch.complex128
