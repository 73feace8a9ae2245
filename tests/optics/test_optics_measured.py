"""A device from a measured / imported PSF stack (optics.measured) and `optics fabricate --psf-stack`."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from optics.design import extract_tiles, simulate_psf
from optics.measured import PSFStackError, load_psf_stack, measured_frontend, save_psf_stack


@pytest.fixture(scope="module")
def design(small_design):
    return small_design  # tests/optics/conftest.py


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_the_designs_own_psf_gives_the_nominal_device(design, tmp_path, suffix):
    p = save_psf_stack(tmp_path / f"psf{suffix}", design.psf, wavelengths_nm=[532.0], pixel_pitch_um=0.586)
    st = load_psf_stack(p)
    assert st["psf"].shape == design.psf.shape and st["wavelengths_nm"] == [532.0] and st["pixel_pitch_um"] == pytest.approx(0.586)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    nominal = design.device_frontend()
    for norm, psf_scale in (("absolute", 1.0), ("design", 3.7)):
        fe = measured_frontend(design, {**st, "psf": st["psf"] * psf_scale}, normalise=norm)
        torch.testing.assert_close(fe.tiles, nominal.tiles, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(fe(x, noise=False), nominal(x, noise=False), rtol=1e-4, atol=1e-6)
    wave = measured_frontend(design, st, normalise="absolute", kind="wave")
    torch.testing.assert_close(wave(x, noise=False), design.wave_frontend()(x, noise=False), rtol=1e-4, atol=1e-6)


def test_a_defocused_measurement_changes_the_device_as_simulated(design, tmp_path):
    """An 'imported' PSF from the wave simulation at a 3 µm focal error: the measured device's tiles
    are exactly its tile windows in kernel units."""
    psf = simulate_psf(design.radii, design.config, design.proxy, dz=3e-6)
    fe = measured_frontend(design, save_psf_stack(tmp_path / "dz.npz", psf), normalise="absolute")
    torch.testing.assert_close(fe.tiles, extract_tiles(psf, design.layout) * design.scale)
    assert float((fe.tiles - design.tiles).norm() / design.tiles.norm()) > 1e-3


def test_bad_psf_stacks_are_named(design, tmp_path):
    good = design.psf.numpy()
    cases = {
        "missing.npz": None,
        "nopsf.npz": dict(other=good),
        "size.npz": dict(psf=good[:, :40, :40]),
        "wl.npz": dict(psf=np.concatenate([good, good])),
        "nan.npz": dict(psf=np.where(np.arange(good.size).reshape(good.shape) == 7, np.nan, good)),
        "negative.npz": dict(psf=good - 0.1 * good.max()),
        "pitch.npz": dict(psf=good, pixel_pitch_um=np.asarray(1.2)),
        "wlnm.npz": dict(psf=good, wavelengths_nm=np.asarray([633.0])),
    }
    msgs = {"missing.npz": "no such PSF stack", "nopsf.npz": "no array 'psf'", "size.npz": "design's sensor is 48×48",
            "wl.npz": "2 wavelength image", "nan.npz": "NaN or Inf", "negative.npz": "dark subtraction",
            "pitch.npz": "pixel_pitch_um 1.2", "wlnm.npz": "wavelengths_nm"}
    for name, arrays in cases.items():
        p = tmp_path / name
        if arrays is not None:
            np.savez(p, **arrays)
        with pytest.raises(PSFStackError, match=msgs[name]) as e:
            measured_frontend(design, p)
        assert name in str(e.value)
    with h5py.File(tmp_path / "g.h5", "w") as fh:
        fh.create_group("psf")
    with pytest.raises(PSFStackError, match=r"g.h5: no dataset /psf"):
        load_psf_stack(tmp_path / "g.h5")
    with pytest.raises(PSFStackError, match=r"x.tif: a PSF stack is .npz or .h5"):
        (tmp_path / "x.tif").write_bytes(b"0")
        load_psf_stack(tmp_path / "x.tif")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(PSFStackError, match="junk.h5: cannot read"):
        load_psf_stack(tmp_path / "junk.h5")


@pytest.mark.slow
def test_cli_fabricate_with_a_measured_psf_stack(tmp_path, capsys):
    from neurohw.cli import main
    from optics.pipeline import load_design

    out = tmp_path / "d"
    assert main(["optics", "design", "--out", str(out), "--n-train", "300", "--n-test", "100", "--epochs", "1",
                 "--iterations", "5", "--grid", "144"]) == 0
    from optics.cli import _design_path

    d = load_design(_design_path(out))
    psf = simulate_psf(d.radii, d.config, d.proxy, dz=2e-6)
    stack = save_psf_stack(tmp_path / "lab_psf.h5", psf * 123.0, wavelengths_nm=[w * 1e9 for w in d.config.wavelengths])
    assert main(["optics", "fabricate", "--design", str(out), "--n-test", "100", "--psf-stack", str(stack)]) == 0
    res = json.loads((out / "measured.json").read_text())
    assert 0 <= res["accuracy"]["measured_tiles"] <= 1 and 0 <= res["accuracy"]["measured_wave"] <= 1
    assert "measured PSF device" in capsys.readouterr().out
    bad = tmp_path / "bad.npz"
    np.savez(bad, psf=np.ones((1, 10, 10)))
    assert main(["optics", "fabricate", "--design", str(out), "--psf-stack", str(bad)]) == 2
    assert "bad.npz" in capsys.readouterr().err
    assert main(["optics", "fabricate", "--design", str(out), "-n", "1", "--n-test", "50", "--zernike-coma", "30e-9"]) == 0
    fab = json.loads((out / "fabricated.json").read_text())
    assert fab["truth"][0]["params"]["zernike_coma"] == 30e-9 and fab["truth"][0]["zernike_m"]["coma_x"] != 0
