"""Pillar proxy, PSF design, wave front-end, fabrication model and layout export."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optics.design import OpticsConfig, WaveFrontEnd, design_metasurface, extract_tiles, kernel_fidelity, place_tiles
from optics.fabrication import FabricationModel, FabricationParams, correlated_field
from optics.frontend import DeviceFrontEnd, TileLayout, split_signed
from optics.layout import export_gds, load_radius_map, pillar_positions, read_gds_pillars, save_radius_map
from optics.metasurface import FabConstraints, HeightMapDOE, PillarProxy, effective_index_table
from optics.sensor import SensorConfig

SMALL = dict(grid=48, dx=586e-9, z=20e-6, wavelengths=(532e-9,))


@pytest.fixture(scope="module")
def small_design():
    g = torch.Generator().manual_seed(3)
    kernels = torch.randn(2, 1, 3, 3, generator=g)
    lay = TileLayout(4, 3, 8, spacing=10)
    d = design_metasurface(split_signed(kernels), lay, OpticsConfig(**SMALL), iterations=80, lr=0.08, progress=False, seed=0)
    return d


# -- pillar proxy ---------------------------------------------------------------------------


def test_default_proxy_fits_its_table_and_matches_the_effective_index_model():
    r, ph, amp = effective_index_table()
    proxy = PillarProxy.default()
    p, a = proxy(torch.tensor(r, dtype=torch.float64))
    assert np.abs(p.numpy() - ph).max() < 1e-3
    assert np.abs(a.numpy() - amp).max() < 1e-3
    assert (torch.diff(p, dim=-1) > 0).all()  # phase grows with the radius
    fc = FabConstraints()
    neff = lambda rad: math.sqrt(math.pi * rad**2 / fc.period**2 * (2.02**2 - 1) + 1)
    want = [2 * math.pi * fc.height * (neff(fc.r_max) - neff(fc.r_min)) / wl for wl in (635e-9, 532e-9, 450e-9)]
    assert np.allclose(proxy.phase_range().numpy(), want, rtol=1e-3)


def test_proxy_shapes_and_height_scaling():
    proxy = PillarProxy.default()
    r = torch.full((2, 5, 5), 80e-9)
    ph, amp = proxy(r)
    assert ph.shape == (2, 3, 5, 5) and amp.shape == (2, 3, 5, 5)
    ph2, _ = proxy(r, torch.full((5, 5), 1.1))
    assert torch.allclose(ph2, ph * 1.1)


def test_proxy_csv_and_hdf5_roundtrip(tmp_path):
    import h5py

    proxy = PillarProxy.default()
    path = proxy.to_csv(tmp_path / "lut.csv")
    back = PillarProxy.from_csv(path)
    r = torch.linspace(proxy.r_lo, proxy.r_hi, 33, dtype=torch.float64)
    assert torch.allclose(back(r)[0], proxy(r)[0], atol=1e-6)
    rr, ph, amp = effective_index_table()
    with h5py.File(tmp_path / "lut.h5", "w") as f:
        f["wavelengths"], f["radii"], f["phase"], f["transmission"] = np.array([635e-9, 532e-9, 450e-9]), rr, ph, amp
    h = PillarProxy.from_hdf5(tmp_path / "lut.h5")
    assert torch.allclose(h(r)[0], proxy(r)[0], atol=1e-9)


def test_proxy_reports_bad_tables(tmp_path):
    (tmp_path / "bad.csv").write_text("wavelength_nm,radius_nm\n532,50\n")
    with pytest.raises(ValueError, match="needs columns"):
        PillarProxy.from_csv(tmp_path / "bad.csv")
    (tmp_path / "nan.csv").write_text("wavelength_nm,radius_nm,phase_rad\n532,50,x\n")
    with pytest.raises(ValueError, match="nan.csv:2"):
        PillarProxy.from_csv(tmp_path / "nan.csv")


def test_radius_for_phase_inverts_the_proxy():
    proxy = PillarProxy.default()
    r = torch.linspace(40e-9, 110e-9, 20)
    ph, _ = proxy(r)
    back = proxy.radius_for_phase(ph[1], 1)
    ph_back, _ = proxy(back)
    d = torch.remainder(ph_back[1] - ph[1] + math.pi, 2 * math.pi) - math.pi
    assert d.abs().max() < 0.05


def test_fab_constraints_clip_and_quantise():
    fc = FabConstraints(levels=5)
    assert fc.r_min == pytest.approx(30e-9) and fc.r_max == pytest.approx(116.5e-9)
    r = torch.tensor([0.0, 50e-9, 200e-9], requires_grad=True)
    out = fc.apply(r)
    assert set(torch.round(out.detach() * 1e12).tolist()) <= set(torch.round(fc.level_values() * 1e12).tolist())
    out.sum().backward()
    assert r.grad is not None
    with pytest.raises(ValueError, match="no radius range"):
        FabConstraints(min_feature=200e-9)


def test_height_map_doe_phase():
    doe = HeightMapDOE(wavelengths=(532e-9,), index=1.5, levels=None)
    ph, amp = doe(torch.full((3, 3), 532e-9))
    assert torch.allclose(ph, torch.full((1, 3, 3), math.pi), atol=1e-5)
    q = HeightMapDOE(wavelengths=(532e-9,), index=1.5, levels=4)
    h = q.constrain(torch.tensor([0.1e-6, 0.5e-6]))
    assert torch.allclose(h / (q.max_height / 3), torch.round(h / (q.max_height / 3)))


# -- design -----------------------------------------------------------------------------------


def test_design_reproduces_targets(small_design):
    d = small_design
    assert d.history[-1] < d.history[0]
    assert min(d.fidelity["ncc"]) > 0.9, d.fidelity
    assert (d.radii >= d.constraints.r_min - 1e-12).all() and (d.radii <= d.constraints.r_max + 1e-12).all()
    assert 0 < d.window_efficiency() <= 1
    assert float(d.psf.sum()) <= 1.0 + 1e-5  # passive: no more light than came in


def test_tile_placement_roundtrip():
    lay = TileLayout(6, 5, 10)
    tiles = torch.rand(6, 2, 5, 5)
    pattern = place_tiles(tiles, lay, 64)
    assert torch.equal(extract_tiles(pattern, lay), tiles)
    with pytest.raises(ValueError, match="does not fit"):
        extract_tiles(torch.zeros(2, 20, 20), lay)


def test_fidelity_metric():
    a = torch.randn(3, 1, 7, 7)
    f = kernel_fidelity(a, 2 * a)
    assert np.allclose(f["ncc"], 1) and np.allclose(f["cosine"], 1)
    f = kernel_fidelity(a, -a)
    assert np.allclose(f["ncc"], -1)


def test_wave_frontend_equals_device_frontend_without_stray_light():
    lay = TileLayout(4, 3, 8, spacing=10)
    tiles = torch.rand(4, 1, 3, 3)
    psf = place_tiles(tiles, lay, 40)
    sensor = SensorConfig(noise_model="none", adc_bits=24)
    wave = WaveFrontEnd(psf, lay, sensor=sensor)
    dev = DeviceFrontEnd(tiles, lay, sensor=sensor)
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(wave.tile_images(x), dev.tile_images(x), atol=1e-5)
    # stray light between the tiles reaches the sub-images (crosstalk)
    wave2 = WaveFrontEnd(psf + 0.01, lay, sensor=sensor)
    assert (wave2.tile_images(x) - dev.tile_images(x)).abs().min() > 0


# -- fabrication -------------------------------------------------------------------------------


def test_correlated_field_statistics():
    g = torch.Generator().manual_seed(0)
    dx, ell = 1.0, 6.0
    f = correlated_field((256, 256), dx, ell, g).double()
    assert abs(float(f.mean())) < 0.1 and abs(float(f.std()) - 1) < 1e-6
    # autocorrelation at lag ell ≈ exp(-1)
    ac = float((f * torch.roll(f, int(ell), dims=1)).mean() / f.var())
    assert abs(ac - math.exp(-1)) < 0.08


def test_ideal_fabrication_reproduces_the_design(small_design):
    inst = FabricationModel(small_design, FabricationParams.ideal()).draw(5)
    assert torch.allclose(inst.tiles, small_design.tiles, rtol=1e-4, atol=1e-6)
    assert float(inst.shift.detach().abs().sum()) == 0 and float(inst.gain.detach()[0]) == 1.0


def test_fabricated_instances_are_seeded_and_differ(small_design):
    fab = FabricationModel(small_design, FabricationParams(width_sigma=5e-9, corr_length=1e-6))
    a, b, c = fab.draw(1), fab.draw(1), fab.draw(2)
    assert torch.equal(a.tiles, b.tiles) and a.truth["shift_px"] == b.truth["shift_px"]
    assert not torch.equal(a.tiles, c.tiles)
    x = torch.rand(2, 1, 8, 8)
    a.auto_expose(x)
    b.auto_expose(x)
    assert torch.equal(a(x), b(x))  # same hidden noise stream
    assert a.truth["radius_error_rms_m"] > 0


def test_width_bias_shifts_the_radii(small_design):
    fab = FabricationModel(small_design, FabricationParams(width_bias=10e-9, width_sigma=0, height_sigma=0))
    r, hs = fab.fabricated_radii(torch.Generator().manual_seed(0))
    inner = (small_design.radii > 40e-9) & (small_design.radii < 100e-9)
    assert torch.allclose((r - small_design.radii)[inner], torch.full_like(r[inner], 5e-9), atol=1e-12)


# -- layout export -------------------------------------------------------------------------------


def test_gds_roundtrip_positions_and_count(tmp_path):
    g = torch.Generator().manual_seed(0)
    radii = 30e-9 + 80e-9 * torch.rand(6, 5, generator=g, dtype=torch.float64)
    radii[0, 0] = 10e-9  # below the minimum feature: left out
    info = export_gds(tmp_path / "ms.gds", radii, 586e-9, 293e-9, min_radius=30e-9)
    xy, rr = pillar_positions(radii, 586e-9, 293e-9, min_radius=30e-9)
    assert info["pillars"] == 4 * 30 - 4 == len(rr)
    back_xy, back_r = read_gds_pillars(tmp_path / "ms.gds")
    assert len(back_xy) == len(xy)
    # match each written pillar to the nearest read-back pillar
    d = np.linalg.norm(xy[:, None, :] - back_xy[None, :, :], axis=2)
    j = d.argmin(1)
    assert d.min(1).max() < 2e-9 and len(set(j.tolist())) == len(xy)
    assert np.abs(back_r[j] - rr).max() < 2e-9
    # lattice: pillars 293 nm apart, the array centred on the axis
    assert np.allclose(np.sort(np.unique(np.round(xy[:, 0] * 1e9, 3))), (np.arange(10) - 4.5) * 293, atol=1e-3)


def test_radius_map_hdf5_roundtrip(tmp_path):
    r = torch.rand(8, 8, dtype=torch.float64) * 1e-7
    save_radius_map(tmp_path / "r.h5", r, 586e-9, 293e-9, 750e-9, wavelengths=(532e-9,), config={"a": 1}, seed=3)
    back, attrs = load_radius_map(tmp_path / "r.h5")
    assert torch.equal(back, r) and attrs["dx"] == 586e-9 and "seed" in attrs["provenance"]


def test_height_map_doe_design_and_fabrication(tmp_path):
    from optics.pipeline import load_design, save_design

    g = torch.Generator().manual_seed(4)
    kernels = torch.randn(2, 1, 3, 3, generator=g)
    lay = TileLayout(4, 3, 8, spacing=10)
    doe = HeightMapDOE(wavelengths=(532e-9,))
    d = design_metasurface(split_signed(kernels), lay, OpticsConfig(**SMALL), proxy=doe, iterations=60, lr=0.08, progress=False)
    assert d.element == "height_map"
    assert min(d.fidelity["ncc"]) > 0.9, d.fidelity
    assert (d.radii >= 0).all() and (d.radii <= doe.max_height + 1e-12).all()
    save_design(tmp_path / "doe.safetensors", d)
    back = load_design(tmp_path / "doe.safetensors")
    assert back.element == "height_map" and torch.equal(back.radii, d.radii)
    ideal = FabricationModel(back, FabricationParams.ideal()).draw(0)
    assert torch.allclose(ideal.tiles, d.tiles, rtol=1e-4, atol=1e-6)
    etched = FabricationModel(back, FabricationParams(height_sigma=30e-9, levels=8)).draw(0)
    assert not torch.allclose(etched.tiles, d.tiles)
