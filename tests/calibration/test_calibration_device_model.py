"""The generic device-correction model recovers known parameters from synthetic measurements.

The measurements are generated independently of the model's own warp: scipy's cubic-spline
``affine_transform`` applies the true shift/rotation, so the refit is not an inverse crime.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from calibration.device_model import DeviceCorrection, RefitConfig, refit_device


def _warp_np(img: np.ndarray, shift_xy, rot: float) -> np.ndarray:
    """Content displaced by ``shift_xy`` (pixels) and rotated by ``rot`` about the centre."""
    h, w = img.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    cr, sr = math.cos(rot), math.sin(rot)
    m = np.array([[cr, -sr], [sr, cr]])  # (y, x) source = m @ (out - c - s) + c
    sx, sy = shift_xy
    off = np.array([cy, cx]) - m @ np.array([cy + sy, cx + sx])
    return ndimage.affine_transform(img, m, offset=off, order=3, mode="nearest")


@pytest.fixture(scope="module")
def synthetic(mnist5k):
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    x = mnist5k.x_test[:96]
    k = torch.rand(6, 1, 7, 7)
    ideal = F.conv2d(x, k)
    c = k.shape[0]
    truth = {
        "gain": rng.uniform(0.7, 1.3, c),
        "offset": rng.uniform(-0.5, 0.5, c),
        "shift": rng.uniform(-1.5, 1.5, (c, 2)),
        "rotation": math.radians(0.8),
    }
    delta = torch.zeros(c, 1, 9, 9)
    d = 0.15 * k.std() * torch.randn(c, 1, 7, 7)
    # gain and a kernel error along k are the same thing (g·(k + a·k)); keep δ ⟂ k so the
    # true gain is identifiable
    d = d - (d * k).sum(dim=(1, 2, 3), keepdim=True) / k.pow(2).sum(dim=(1, 2, 3), keepdim=True) * k
    delta[:, :, 1:8, 1:8] = d
    true_maps = F.conv2d(x, F.pad(k, (1, 1, 1, 1)) + delta, padding=1).numpy()
    meas = np.stack([np.stack([_warp_np(true_maps[n, j], truth["shift"][j], truth["rotation"]) for j in range(c)])
                     for n in range(len(x))])
    meas = truth["gain"][None, :, None, None] * meas + truth["offset"][None, :, None, None]
    sigma = 0.02 * meas.std()
    meas = meas + rng.normal(0, sigma, meas.shape)
    truth.update(delta=delta, sigma=sigma)
    return x, ideal, torch.tensor(meas, dtype=torch.float32), truth


def test_refit_recovers_known_parameters(synthetic):
    x, ideal, meas, truth = synthetic
    res = refit_device(x, ideal, meas, RefitConfig(steps_geometry=100, steps_joint=150, batch_size=48, seed=0))
    p = res.model.params_dict()
    np.testing.assert_allclose(p["gain"], truth["gain"], rtol=0.03)
    np.testing.assert_allclose(p["offset"], truth["offset"], atol=0.06)
    np.testing.assert_allclose(p["shift_px"], truth["shift"], atol=0.15)
    assert abs(p["rotation_deg"] - math.degrees(truth["rotation"])) < 0.3
    cos = F.cosine_similarity(res.model.delta.detach().flatten(1), truth["delta"].flatten(1))
    assert float(cos.mean()) > 0.4, cos
    # the residual is down to the noise, and the fitted noise model says so
    assert res.rmse_after < 1.3 * truth["sigma"] < res.rmse_before
    assert res.noise_rmse == pytest.approx(truth["sigma"], rel=0.3)
    # correcting the measurements brings them close to the ideal maps (up to δ and noise)
    with torch.no_grad():
        corr = res.model.correct(meas)
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    err_before = (meas - ideal)[inner].pow(2).mean()
    err_after = (corr - ideal)[inner].pow(2).mean()
    assert err_after < 0.1 * err_before


def test_identity_device_is_identity(synthetic):
    x, ideal, _, _ = synthetic
    m = DeviceCorrection(ideal.shape[1], 1, (28, 28), (22, 22)).eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x, ideal), ideal)
        torch.testing.assert_close(m.correct(ideal), ideal)


def test_warp_inverse_round_trip():
    torch.manual_seed(0)
    m = DeviceCorrection(3, 1, (28, 28), (40, 40), psf_correction=False).eval()
    with torch.no_grad():
        m.shift.copy_(torch.tensor([[0.4, -0.7], [1.2, 0.3], [-0.5, -0.2]]))
        m.rotation.fill_(math.radians(1.5))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 40), torch.linspace(-1, 1, 40), indexing="ij")
    blob = torch.exp(-((xx - 0.1) ** 2 + (yy + 0.2) ** 2) / 0.1).expand(2, 3, 40, 40)
    with torch.no_grad():
        back = m.warp(m.warp(blob), inverse=True)
    assert (back - blob)[..., 5:-5, 5:-5].abs().max() < 0.02


def test_shift_sign_convention():
    """A positive dx moves content to larger x (to the right)."""
    m = DeviceCorrection(1, 1, (28, 28), (21, 21), psf_correction=False).eval()
    img = torch.zeros(1, 1, 21, 21)
    img[0, 0, 10, 10] = 1.0
    with torch.no_grad():
        m.shift.copy_(torch.tensor([[2.0, -3.0]]))
        out = m.warp(img)
    iy, ix = divmod(int(out.flatten().argmax()), 21)
    assert (ix, iy) == (12, 7)


def test_refit_runs_on_cuda_when_present(synthetic):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, ideal, meas, _ = synthetic
    res = refit_device(x.cuda(), ideal.cuda(), meas.cuda(), RefitConfig(steps_geometry=5, steps_joint=5))
    assert next(res.model.parameters()).is_cuda
