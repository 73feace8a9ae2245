"""Front-ends, sensor and fabricated instances: the public API the calibration relies on."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from optics.frontend import DeviceFrontEnd, KernelFrontEnd, TileLayout, merge_pairs, split_signed
from optics.sensor import SensorConfig, SensorModel


def _images(n=4, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g)


def test_split_merge_roundtrip():
    k = torch.randn(8, 1, 7, 7)
    pairs = split_signed(k)
    assert pairs.shape == (16, 1, 7, 7) and (pairs >= 0).all()
    assert torch.equal(merge_pairs(pairs.unsqueeze(0))[0], k)


def test_kernel_frontend_equals_signed_convolution():
    fe = KernelFrontEnd(8).eval()
    x = _images()
    assert torch.allclose(fe(x), F.conv2d(x, fe.kernels), atol=1e-5)


def test_ideal_device_without_noise_matches_kernel_mode():
    fe = KernelFrontEnd(8).eval()
    dev = fe.to_device(SensorConfig(noise_model="none"))
    x = _images()
    dev.auto_expose(x)
    ref = fe(x)
    out = dev(x, noise=False)
    # only ADC quantisation separates them: one LSB in feature units
    lsb = 1 / (dev.sensor.config.gain_dn_per_e * dev.sensor.config.electrons_per_unit)
    assert (out - ref).abs().max() <= lsb + 1e-6


def test_integer_shift_moves_feature_maps():
    fe = KernelFrontEnd(2).eval()
    dev = fe.to_device(SensorConfig(noise_model="none", adc_bits=24))
    x = _images(2)
    with torch.no_grad():
        base = dev.tile_images(x)
        dev.shift.copy_(torch.tensor([1.0, -2.0]))
        moved = dev.tile_images(x)
    # content moves down by 1 and left by 2: moved[y, x] = base[y-1, x+2]
    assert torch.allclose(moved[..., 1:, :-2], base[..., :-1, 2:], atol=1e-5)


def test_rotation_about_axis_translates_tiles():
    lay = TileLayout(4, 3, 10, spacing=20)
    tiles = torch.zeros(4, 1, 3, 3)
    tiles[:, :, 1, 1] = 1.0  # identity kernels: tile image = cropped input
    dev = DeviceFrontEnd(tiles, lay, SensorConfig(noise_model="none"))
    x = torch.zeros(1, 1, 10, 10)
    x[0, 0, 4, 4] = 1.0
    with torch.no_grad():
        dev.rotation.fill_(math.radians(3.0))
        y = dev.tile_images(x)[0]
    # a tile centred at c moves by (R - I) c: for a 3° rotation and |c| = 14 px about 0.73 px
    c = dev.centres
    for t in range(4):
        m = y[t]
        ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
        cy, cx = float((m * ys).sum() / m.sum()), float((m * xs).sum() / m.sum())
        th = math.radians(3.0)
        # expected displacement in (x, y): R c - c with c = (cx, cy)
        ex = math.cos(th) * float(c[t, 1]) - math.sin(th) * float(c[t, 0]) - float(c[t, 1])
        ey = math.sin(th) * float(c[t, 1]) + math.cos(th) * float(c[t, 0]) - float(c[t, 0])
        assert abs(cx - (3 + ex)) < 0.05 and abs(cy - (3 + ey)) < 0.05


def test_device_forward_is_differentiable_in_device_parameters():
    fe = KernelFrontEnd(4).eval()
    dev = fe.to_device(SensorConfig())
    x = _images(2)
    dev.auto_expose(x)
    out = dev(x, noise=True, generator=torch.Generator().manual_seed(0))
    out.pow(2).mean().backward()
    for name in ("gain", "offset", "shift", "rotation", "psf_correction"):
        g = getattr(dev, name).grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name


def test_sensor_noise_statistics_match_physics():
    cfg = SensorConfig(electrons_per_unit=1000, read_noise_e=3.0, dark_current_e=5.0, adc_bits=20, black_level_dn=0)
    s = SensorModel(cfg)
    irr = torch.full((200_000,), 2.0)
    with torch.no_grad():
        e = s.electrons(irr, generator=torch.Generator().manual_seed(1))
    mean, var = 2.0 * 1000 + 5.0, 2.0 * 1000 + 5.0 + 9.0
    assert abs(float(e.mean()) - mean) < 4 * math.sqrt(var / irr.numel())
    assert abs(float(e.var()) / var - 1) < 0.02


def test_sensor_saturates_and_quantises():
    s = SensorModel(SensorConfig(noise_model="none", adc_bits=8))
    irr = torch.linspace(0, 20, 1000)
    out = s(irr, noise=False)
    assert float(out.max()) <= s.saturation_level() + 1e-6
    assert len(torch.unique(s.digitize(s.electrons(irr, noise=False)))) <= 256


def test_sensor_rejects_bad_config():
    with pytest.raises(ValueError, match="noise_model"):
        SensorConfig(noise_model="bogus")
    with pytest.raises(ValueError, match="full_well_e"):
        SensorConfig(full_well_e=0)


def test_frontend_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        KernelFrontEnd(8)(torch.rand(2, 3, 28, 28))


from hypothesis import given, settings, strategies as st


@settings(max_examples=30, deadline=None)
@given(level=st.floats(0.0, 0.95), e_per_unit=st.floats(10.0, 5000.0), bits=st.integers(8, 16))
def test_noiseless_sensor_is_identity_below_saturation_up_to_one_lsb(level, e_per_unit, bits):
    s = SensorModel(SensorConfig(electrons_per_unit=e_per_unit, adc_bits=bits))
    irr = torch.tensor([level * s.saturation_level()], dtype=torch.float64)
    exact = s(irr, noise=False, quantize=False)
    assert torch.allclose(exact, irr, rtol=1e-9, atol=1e-12)
    lsb = 1 / (s.config.gain_dn_per_e * s.config.electrons_per_unit)
    assert float((s(irr, noise=False) - irr).abs()) <= lsb / 2 + 1e-12


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), a=st.floats(0.0, 3.0), b=st.floats(0.0, 3.0))
def test_incoherent_optical_layer_is_linear_in_intensity(seed, a, b):
    g = torch.Generator().manual_seed(seed)
    fe = KernelFrontEnd(3).eval()
    dev = fe.to_device(SensorConfig(noise_model="none"))
    with torch.no_grad():
        dev.shift.copy_(torch.rand(2, generator=g) - 0.5)
        dev.rotation.fill_(0.01)
        x1, x2 = torch.rand(2, 1, 28, 28, generator=g).double(), torch.rand(2, 1, 28, 28, generator=g).double()
        dev = dev.double()
        lhs = dev.tile_images(a * x1 + b * x2)
        rhs = a * dev.tile_images(x1) + b * dev.tile_images(x2)
    assert torch.allclose(lhs, rhs, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([32, 64]), ell=st.floats(0.0, 4.0))
def test_correlated_field_is_standardised_and_seeded(seed, n, ell):
    from optics.fabrication import correlated_field

    f1 = correlated_field((n, n), 1.0, ell, torch.Generator().manual_seed(seed))
    f2 = correlated_field((n, n), 1.0, ell, torch.Generator().manual_seed(seed))
    assert torch.equal(f1, f2) and torch.isfinite(f1).all()
    if ell > 0:
        assert abs(float(f1.double().std()) - 1) < 1e-5
