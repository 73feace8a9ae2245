"""Zernike aberrations in the fabrication model, checked against analytic results."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from optics.fabrication import ZERNIKE_NOLL, FabricationModel, FabricationParams, zernike, zernike_wavefront
from optics.propagation import angular_spectrum


def _disk(n: int):
    y = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    yy, xx = y.view(-1, 1).expand(n, n), y.view(1, -1).expand(n, n)
    rho = torch.sqrt(yy * yy + xx * xx) / (n / 2)
    return rho, torch.atan2(yy, xx), rho <= 1


def test_zernike_terms_are_orthonormal_on_the_unit_disk():
    """Noll normalisation: mean over the disk of Z_i·Z_j = δ_ij (numerical quadrature, 801² points)."""
    rho, theta, inside = _disk(801)
    z = {j: zernike(j, rho, theta)[inside] for j in ZERNIKE_NOLL.values()}
    for i in z:
        for j in z:
            m = float((z[i] * z[j]).mean())
            assert m == pytest.approx(1.0 if i == j else 0.0, abs=5e-3), (i, j, m)
    # the analytic forms at sample points: defocus at the rim √3, spherical at the centre √5
    assert float(zernike(4, torch.tensor(1.0), torch.tensor(0.0))) == pytest.approx(math.sqrt(3))
    assert float(zernike(11, torch.tensor(0.0), torch.tensor(0.0))) == pytest.approx(math.sqrt(5))
    with pytest.raises(ValueError, match="Noll index 9"):
        zernike(9, rho, theta)


@pytest.mark.parametrize("term,c_waves", [("spherical", 0.05), ("defocus", 0.04), ("astigmatism_0", 0.05), ("coma_x", 0.05)])
def test_strehl_ratio_of_a_focusing_lens_matches_the_marechal_approximation(term, c_waves):
    """An ideal lens focused at z with a small wavefront error of RMS σ (a Noll coefficient IS the
    RMS error): the on-axis focal intensity drops by |⟨exp(2πiW/λ)⟩_pupil|² ≈ exp(−(2πσ/λ)²)."""
    n, dx, lam, z = 128, 586e-9, 532e-9, 600e-6  # NA ≈ 0.06: the pupil is weighted almost uniformly
    y = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * dx
    r2 = y.view(-1, 1) ** 2 + y.view(1, -1) ** 2
    _, _, inside = _disk(n)
    k = 2 * math.pi / lam
    lens = torch.polar(inside.double(), -k * (torch.sqrt(r2 + z * z) - z))
    w = zernike_wavefront({term: c_waves * lam}, n)
    assert float(w[inside].pow(2).mean().sqrt()) == pytest.approx(c_waves * lam, rel=0.02)  # RMS over the pupil
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        focus = lambda u: float(angular_spectrum(u, dx, lam, z, pad_factor=2.0).abs().pow(2)[n // 2 - 1:n // 2 + 1,
                                                                                              n // 2 - 1:n // 2 + 1].mean())
        strehl = focus(lens * torch.exp(1j * 2 * math.pi * w / lam)) / focus(lens)
    exact = float(torch.exp(1j * 2 * math.pi * w[inside] / lam).mean().abs() ** 2)
    assert strehl == pytest.approx(exact, abs=0.004)
    assert strehl == pytest.approx(math.exp(-(2 * math.pi * c_waves) ** 2), abs=0.01)
    assert strehl < 0.97


def test_fabrication_draws_zernike_errors_without_disturbing_other_draws(small_design):
    base = FabricationParams()
    plain = FabricationModel(small_design, base).draw(5)
    assert all(v == 0.0 for v in plain.truth["zernike_m"].values())
    lens = FabricationModel(small_design, FabricationParams(zernike_defocus=40e-9, zernike_astigmatism=20e-9,
                                                            zernike_coma=20e-9, zernike_spherical=20e-9))
    a, b = lens.draw(5), lens.draw(5)
    torch.testing.assert_close(a.tiles, b.tiles)  # deterministic in the seed
    assert a.truth["zernike_m"] == b.truth["zernike_m"] and set(a.truth["zernike_m"]) == set(ZERNIKE_NOLL)
    assert any(abs(v) > 1e-9 for v in a.truth["zernike_m"].values())
    # the assembly draws are unchanged (the Zernike coefficients have their own generator) …
    assert a.truth["shift_px"] == plain.truth["shift_px"] and a.truth["rotation_rad"] == plain.truth["rotation_rad"]
    # … and the PSF tiles differ by the aberration
    assert float((a.tiles - plain.tiles).norm() / plain.tiles.norm()) > 1e-3
