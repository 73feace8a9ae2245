"""The optics twin's optional terms (blur, cross-talk, magnification, vignetting, response, gain map):
neutral = identity, off = the plain twin exactly, each recovers a value planted by an independent
generator (``calibration.virtual_devices.OutOfFamilyDevice`` or a direct formula), the misfit test
improves with them, they survive the calibrated checkpoint, and the CLI flag reaches the config."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from calibration.device_model import RefitConfig
from calibration.device_refit import OpticsTwin
from calibration.lab import draw_device
from calibration.misfit import misfit_test, noise_from_bench
from calibration.twin_terms import parse_gain_degree, parse_twin_terms
from calibration.virtual_devices import OutOfFamilyDevice, OutOfFamilyErrors
from optics.device_terms import TERMS, TileTerms

DEVICE_SEED = 777
N, N_CALIB = 200, 100
REFIT = RefitConfig(steps_geometry=40, steps_joint=400, lr=0.02, lr_psf=0.01, psf_l2=1e-3, shift_search_px=2, batch_size=48)


@pytest.fixture(scope="module")
def om(virtual_lab, tmp_path_factory):
    """The shared small fabricated model (the conftest's virtual lab; its few captures are not used)."""
    return virtual_lab(tmp_path_factory.mktemp("terms"), n_train=1000, epochs=2, n_captures=20, device_seed=1)["om"]


def _centres():
    from optics.frontend import TileLayout

    return TileLayout(16, 7, 28).centres().float()


# -- the forward model ------------------------------------------------------------------------


def test_neutral_terms_are_the_identity_and_an_off_term_is_absent():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 16, 22, 22, generator=g, dtype=torch.float64) * 2
    t = TileTerms(TERMS, _centres(), (22, 22), gain_degree=2)
    t.response_ref.fill_(3.0)
    torch.testing.assert_close(t(y), y, rtol=0, atol=1e-12)
    # parameters of a term that is switched off do nothing, bit for bit
    on = TileTerms(("vignetting",), _centres(), (22, 22))
    with torch.no_grad():
        on.vignetting.fill_(0.2)
        on.blur_var.fill_(2.0)
        on.gamma.fill_(0.5)
        on.magnification.fill_(0.1)
    ref = y * (1 - 0.2 * on.vignetting_rho2).unsqueeze(0)
    assert torch.equal(on(y), ref)


def test_blur_variance_is_in_pixels_squared_at_the_field_edge():
    t = TileTerms(("blur",), _centres(), (33, 33))
    with torch.no_grad():
        t.blur_var.copy_(torch.tensor([0.8, 2.0], dtype=torch.float64))
    y = torch.zeros(1, 16, 33, 33, dtype=torch.float64)
    y[..., 16, 16] = 1.0
    with torch.no_grad():
        out = t(y)[0]
    q = torch.arange(33, dtype=torch.float64) - 16
    for tile in (0, 5):  # an outermost tile (ρ = 1) and an inner one (ρ = 1/3)
        rho2 = float(t.field_rho[tile]) ** 2
        p = out[tile]
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-4)  # Gaussian transfer cut at Nyquist: ~1e-5 ringing
        var_y = float((p.sum(1) * q * q).sum())
        var_x = float((p.sum(0) * q * q).sum())
        assert var_y == pytest.approx(0.8 * rho2, rel=1e-3) and var_x == pytest.approx(2.0 * rho2, rel=1e-3)


def test_plain_device_is_the_old_formula(om, mnist5k):
    """Without terms the device (and the twin) computes exactly what it did before the terms existed."""
    d = om.device_frontend()
    with torch.no_grad():
        d.shift.copy_(torch.tensor([0.3, -0.4]))
        d.rotation.fill_(0.01)
        d.gain.mul_(1.1)
        x = mnist5k.x_test[:8]
        old = d._misalign(F.conv2d(x, d.effective_tiles())) * d.gain.view(1, -1, 1, 1) + d.offset.view(1, -1, 1, 1)
        assert d.terms is None and torch.equal(d.tile_images(x), old)
    twin = OpticsTwin(om.model.frontend, om.device_frontend(), electrons_per_unit=2000.0, terms=())
    assert twin.terms is None and twin.device.terms is None and twin.terms_config() is None
    assert "twin_terms" not in twin.parameters_dict()
    assert not any(k.startswith("device.terms.") for k in twin.state_tensors())


def test_parse_terms_and_gain_degree():
    assert parse_twin_terms("gain, blur") == ("blur", "gain")  # application order
    assert parse_twin_terms("all") == TERMS and parse_twin_terms("none") == () and parse_twin_terms("") == ()
    with pytest.raises(ValueError, match="--twin-terms: unknown twin term"):
        parse_twin_terms("blur,ghosts", "--twin-terms")
    assert parse_gain_degree("pixel") is None and parse_gain_degree("3") == 3
    with pytest.raises(ValueError, match="twin_gain_degree"):
        parse_gain_degree("0")
    from calibration.loop import CalibrationConfig

    with pytest.raises(ValueError, match="need device_model 'optics'"):
        CalibrationConfig(device_model="generic", twin_terms=("blur",))
    assert CalibrationConfig(twin_terms="vignetting,response").to_dict()["twin_terms"] == ["vignetting", "response"]


def test_cli_flags_reach_the_config():
    import argparse

    from calibration.cli import config_from_args, register

    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(["calibrate", "model.safetensors", "--captures", "c.h5", "--out", "o",
                         "--twin-terms", "crosstalk,gain", "--twin-gain-map", "pixel"])
    cfg = config_from_args(args)
    assert cfg.twin_terms == ("crosstalk", "gain") and cfg.twin_gain_degree is None
    default = config_from_args(p.parse_args(["calibrate", "m", "--captures", "c.h5", "--out", "o"]))
    assert default.twin_terms == () and default.twin_gain_degree == 2  # default: the plain twin
    with pytest.raises(SystemExit):
        p.parse_args(["calibrate", "m", "--captures", "c.h5", "--out", "o", "--twin-terms", "coma"])


# -- recovery of planted values -----------------------------------------------------------------


def _frames(dev, x, seed=1):
    with torch.no_grad():
        return dev(x, noise=True, generator=torch.Generator().manual_seed(seed))


def _refit(om, inst, x, f, terms, gain_degree=2):
    twin = OpticsTwin(om.model.frontend, om.device_frontend(), electrons_per_unit=inst.sensor.config.electrons_per_unit,
                      terms=terms, gain_degree=gain_degree)
    twin.refit(x[:N_CALIB], f[:N_CALIB], REFIT)
    return twin


def _misfit(twin, dev, x, f):
    """Worst residual / predicted variance ratio over intensity bins on the held-out captures."""
    dark = _frames(dev, torch.zeros(16, *x.shape[1:]), seed=5)
    noise = noise_from_bench(dark, electrons_per_unit=dev.sensor.config.electrons_per_unit)
    xh = x[N_CALIB:]
    with torch.no_grad():
        rep = misfit_test(f[N_CALIB:], twin.predict(xh), twin.noise_signal(xh), noise)
    return max(b["ratio"] for b in rep.to_dict()["bins"]), rep.fits


def _assert_misfit_improves(name, plain, twin, dev, x, f):
    """The worst bin variance ratio on held-out captures at least halves with the matching terms."""
    worst_plain, _ = _misfit(plain, dev, x, f)
    worst_terms, fits = _misfit(twin, dev, x, f)
    print(f"{name}: worst bin variance ratio {worst_plain:.2f} plain → {worst_terms:.2f} with terms (fits: {fits})")
    assert worst_terms < 0.5 * worst_plain


def _lit(inst, x):
    """Tile pixels ``(2K, H, W)`` whose mean irradiance is above 20 % of their tile's brightest pixel."""
    with torch.no_grad():
        m = inst.tile_images(x[:50]).mean(0)
    return m > 0.2 * m.amax(dim=(1, 2), keepdim=True)


@pytest.mark.slow
def test_lens_terms_recover_blur_magnification_vignetting_and_improve_the_misfit(om, mnist5k):
    """OutOfFamilyDevice 'lens' errors (σ 1.2 px at the field edge, isotropic; magnification 3 % in x,
    1.5 % in y; vignetting 15 %) recovered by the twin with blur + magnification + vignetting."""
    inst = draw_device(om, DEVICE_SEED, mnist5k.x_train[:200])
    dev = OutOfFamilyDevice(inst, OutOfFamilyErrors(field_blur_px=1.2, magnification=0.03, anisotropy=0.5, vignetting=0.15),
                            seed=3)
    x = mnist5k.x_test[:N]
    f = _frames(dev, x)
    plain = _refit(om, inst, x, f, ())
    twin = _refit(om, inst, x, f, ("blur", "magnification", "vignetting"))
    p = twin.parameters_dict()["twin_terms"]
    print("lens terms:", p)
    sy, sx = p["blur"]["sigma_edge_px_yx"]
    assert sy == pytest.approx(1.2, rel=0.15) and sx == pytest.approx(1.2, rel=0.15)
    my, mx = p["magnification"]["scale_minus_1_yx"]
    assert my == pytest.approx(0.015, abs=0.003) and mx == pytest.approx(0.03, abs=0.003)
    assert p["vignetting"]["falloff_at_field_edge"] == pytest.approx(0.15, abs=0.03)
    _assert_misfit_improves("lens", plain, twin, dev, x, f)


@pytest.mark.slow
def test_sensor_terms_recover_gamma_and_pixel_gain_and_improve_the_misfit(om, mnist5k):
    """OutOfFamilyDevice 'sensor' errors (gamma 0.9; per-pixel gain map, 3 % rms) recovered by the twin
    with response + gain (per pixel)."""
    inst = draw_device(om, DEVICE_SEED, mnist5k.x_train[:200])
    dev = OutOfFamilyDevice(inst, OutOfFamilyErrors(gamma=0.9, gain_nonuniformity=0.03), seed=3)
    x = mnist5k.x_test[:N]
    f = _frames(dev, x)
    plain = _refit(om, inst, x, f, ())
    twin = _refit(om, inst, x, f, ("response", "gain"), gain_degree=None)
    p = twin.parameters_dict()["twin_terms"]
    print("sensor terms:", p)
    # γ is partly degenerate with the per-tile offsets (before the curve) and the saturation κ: alone it comes
    # out at 0.910 on this device, with the per-pixel gain map at 0.931
    assert p["response"]["gamma"] == pytest.approx(0.9, abs=0.04)
    # the per-pixel map, on the pixels that see light (elsewhere a gain is not observable)
    lit = _lit(inst, x)
    g, truth = twin.terms.gain_map()[lit], dev._gain_map.double()[lit]
    corr = float(torch.corrcoef(torch.stack([g, truth]))[0, 1])
    rms = float((g - truth).pow(2).mean().sqrt())
    print(f"gain map on {int(lit.sum())} lit pixels: corr {corr:.3f}, rms error {rms:.4f} (planted rms 0.03)")
    assert corr > 0.8 and rms < 0.6 * 0.03
    _assert_misfit_improves("sensor", plain, twin, dev, x, f)


@pytest.mark.slow
def test_crosstalk_recovers_the_ghost_on_a_device_with_known_psfs(om, mnist5k):
    """OutOfFamilyDevice cross-talk (the right neighbour's image, 4 %, displaced 3 px in x) on the nominal
    device (PSFs as designed, as after a laser PSF measurement; shift and gains drawn here): the ghost
    search finds the shift and the fraction. (With unknown PSF errors the per-tile PSF correction takes up
    part of a ghost this close: see calibration.twin_terms.)"""
    inst = om.device_frontend()
    with torch.no_grad():
        inst.shift.copy_(torch.tensor([0.4, -0.3]))
        inst.gain.copy_(1 + 0.1 * torch.randn(len(inst.gain), generator=torch.Generator().manual_seed(2)))
    inst.auto_expose(mnist5k.x_train[:200])
    dev = OutOfFamilyDevice(inst, OutOfFamilyErrors(crosstalk=0.04, ghost_shift_px=3), seed=3)
    x = mnist5k.x_test[:N]
    f = _frames(dev, x)
    twin = _refit(om, inst, x, f, ("crosstalk",))
    c = twin.parameters_dict()["twin_terms"]["crosstalk"]
    print("crosstalk:", c)
    assert c["right"]["ghost_shift_px_yx"] == [0, 3] and c["right"]["fraction"] == pytest.approx(0.04, abs=0.006)
    assert all(c[d]["fraction"] < 0.006 for d in ("left", "below", "above"))


@pytest.mark.slow
def test_smooth_gain_map_recovers_a_planted_formula(om, mnist5k):
    """A direct-formula gain map (a tilt in x and a bowl in y, the same on every tile) on the fabricated
    instance, recovered by the degree-2 gain map."""

    class Planted(torch.nn.Module):
        def __init__(self, inst):
            super().__init__()
            self.inst, self.sensor, self.generator = inst, inst.sensor, torch.Generator().manual_seed(4)
            h = inst.out_size
            q = (torch.arange(h, dtype=torch.float32) - (h - 1) / 2) / ((h - 1) / 2)
            self.map = 1 + 0.06 * q.view(1, h) + 0.04 * (q.view(h, 1) ** 2 - 1 / 3)

        def forward(self, x, noise=True, generator=None):
            from optics.frontend import merge_pairs

            return merge_pairs(self.sensor(self.inst.tile_images(x) * self.map, noise=noise, generator=generator))

    inst = draw_device(om, DEVICE_SEED, mnist5k.x_train[:200])
    dev = Planted(inst)
    x = mnist5k.x_test[:N]
    f = _frames(dev, x)
    twin = _refit(om, inst, x, f, ("gain",), gain_degree=2)
    lit = _lit(inst, x)
    fitted = twin.terms.gain_map()
    # the per-tile constant is the tile's gain, so compare maps normalised to their mean over lit pixels
    err = []
    for t in range(fitted.shape[0]):
        m = lit[t]
        a, b = fitted[t][m], dev.map.double()[m]
        err.append(float((a / a.mean() - b / b.mean()).pow(2).mean().sqrt()))
    print("smooth gain map rms error per tile:", np.round(err, 4), "planted map rms", float((dev.map - 1).pow(2).mean().sqrt()))
    # within a third of the planted map's rms (0.039): the map also takes up some of the fabricated PSF residual
    assert float(np.median(err)) < float((dev.map - 1).pow(2).mean().sqrt()) / 3


@pytest.mark.slow
def test_terms_survive_the_calibrated_checkpoint(om, mnist5k, tmp_path):
    from calibration.bundle import save_optical_model
    from calibration.loop import CalibrationResult
    from calibration.output import load_calibrated_device, save_calibrated
    from calibration.report import markdown

    inst = draw_device(om, DEVICE_SEED, mnist5k.x_train[:200])
    dev = OutOfFamilyDevice(inst, OutOfFamilyErrors(vignetting=0.15, gamma=0.9), seed=3)
    x = mnist5k.x_test[:60]
    twin = OpticsTwin(om.model.frontend, om.device_frontend(), electrons_per_unit=inst.sensor.config.electrons_per_unit,
                      terms=("vignetting", "response", "gain", "crosstalk"))
    twin.refit(x, _frames(dev, x), RefitConfig(steps_geometry=5, steps_joint=20, shift_search_px=0, batch_size=30))
    from calibration.loop import CalibrationConfig

    cfg = CalibrationConfig(twin_terms=("vignetting", "response", "gain", "crosstalk"))
    refit = {"rmse_before": 1.0, "rmse_after": 0.5, "noise_rmse": None, "steps": 25, "twin_pool": "test",
             "params": twin.parameters_dict()}
    res = CalibrationResult(accuracies={"simulation": 0.9, "uncalibrated": 0.8}, recovery={},
                            split={"fraction": 0.1, "n_calib": 60, "n_held_out": 0}, refit=refit, misfit={}, curve=[],
                            timings={}, capture={"path": "c.h5", "device_id": "virtual", "n_captures": 60}, config=cfg.to_dict(),
                            backends={"refit_ntk": copy.deepcopy(om.model.backend)}, twin=twin)
    src = save_optical_model(tmp_path / "model.safetensors", om)
    ckpt = save_calibrated(tmp_path / "cal.safetensors", om, res, cfg, source=src)
    _, loaded = load_calibrated_device(ckpt)
    assert loaded.terms is not None and loaded.terms.terms == twin.terms.terms
    with torch.no_grad():
        torch.testing.assert_close(loaded(x[:5], noise=False), twin.predict(x[:5]), rtol=0, atol=1e-6)
    text = "\n".join(markdown(res, {}).splitlines())
    v = twin.parameters_dict()["twin_terms"]
    assert "### Optional twin terms" in text and f"{100 * v['vignetting']['falloff_at_field_edge']:.2f} %" in text
    assert f"{v['response']['gamma']:.4f}" in text and "crosstalk from the right neighbour" in text
