"""Virtual lab + calibration loop on a small fabricated MNIST-5k hybrid model (end to end)."""
from __future__ import annotations

import hashlib
import json
import math

import h5py
import numpy as np
import pytest
import torch

from calibration.bundle import load_optical_model
from calibration.captures import CaptureFormatError, CaptureWriter, open_captures
from calibration.device_model import RefitConfig
from calibration.device_refit import OpticsTwin
from calibration.lab import capture_virtual, draw_device
from calibration.loop import CalibrationConfig, calibrate
from calibration.output import load_calibrated_device, save_calibrated
from calibration.report import write_report

DEVICE_SEED = 4242
N_CAPTURES = 300


@pytest.fixture(scope="module")
def setup(tmp_path_factory, virtual_lab):
    root = tmp_path_factory.mktemp("cal")
    made = virtual_lab(root, n_train=1500, epochs=3, n_captures=N_CAPTURES, device_seed=DEVICE_SEED, reload=True)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))  # a small NTK teacher
    return {"root": root, **made, "teacher": teacher}


def test_bundle_round_trip(setup, mnist5k):
    om = setup["om"]
    om2 = load_optical_model(setup["model_path"])
    x = mnist5k.x_test[:16]
    with torch.no_grad():
        torch.testing.assert_close(om.model(x), om2.model(x))
    torch.testing.assert_close(om.design.tiles, om2.design.tiles)
    # the same seed draws the same fabricated device from both
    a, b = om.fabrication_model().draw(3), om2.fabrication_model().draw(3)
    torch.testing.assert_close(a.tiles, b.tiles)


def test_virtual_lab_writes_a_valid_file_without_the_seed(setup):
    with open_captures(setup["captures"]) as cf:
        assert cf.n == N_CAPTURES and cf.frame_shape == (8, 22, 22) and cf.input_shape == (1, 28, 28)
        assert cf.dataset_name == "mnist5k" and cf.dataset_split == "test"
        assert cf.read_static("calibration/dark_frames").shape == (16, 8, 22, 22)
        assert cf.read_static("calibration/psf").shape == (16, 22, 22)
        assert np.all(cf.exposure_s > 0) and np.all(np.diff(cf.timestamps) > 0)
        assert cf.extra["source_flux_e_per_unit_s"] > 0
    with h5py.File(setup["captures"], "r") as fh:
        text = json.dumps({k: str(v) for k, v in fh.attrs.items()})
        for name in fh:
            for sub in (fh[name].values() if isinstance(fh[name], h5py.Group) else [fh[name]]):
                text += json.dumps({k: str(v) for k, v in sub.attrs.items()})
    assert str(DEVICE_SEED) not in text and "seed\": 4242" not in text


def test_hidden_seed_is_random(setup, mnist5k, tmp_path):
    outs = []
    for i in range(2):
        p = capture_virtual(setup["om"], mnist5k.x_test[:8], mnist5k.y_test[:8], tmp_path / f"c{i}.h5",
                            dark_frames=0, psf=False, progress=False)
        with open_captures(p) as cf:
            outs.append((cf.device_id, cf.read("measured/frames")))
    assert outs[0][0] != outs[1][0]
    assert not np.allclose(outs[0][1], outs[1][1])


def test_refit_recovers_the_fabricated_assembly_errors(setup, mnist5k):
    """Check against the drawn truth (the test knows the seed; the calibration never reads it)."""
    om = setup["om"]
    inst = draw_device(om, DEVICE_SEED, mnist5k.x_train[:200])
    with open_captures(setup["captures"]) as cf:
        idx = np.arange(120)
        x = torch.from_numpy(cf.read("inputs/images", idx))
        f = torch.from_numpy(cf.read("measured/frames", idx))
        epu = float(np.median(cf.exposure_s)) * cf.extra["source_flux_e_per_unit_s"]
    assert epu == pytest.approx(inst.sensor.config.electrons_per_unit, rel=1e-6)
    twin = OpticsTwin(om.model.frontend, om.device_frontend(), electrons_per_unit=epu)
    res = twin.refit(x, f, RefitConfig(steps_geometry=40, steps_joint=60, lr=0.02, lr_psf=0.01, shift_search_px=2,
                                       batch_size=48))
    np.testing.assert_allclose(res.params["shift_px_yx"], inst.truth["shift_px"], atol=0.1)
    assert res.params["rotation_deg"] == pytest.approx(math.degrees(inst.truth["rotation_rad"]), abs=0.1)
    assert res.rmse_after < 0.3 * res.rmse_before
    # the refit never touches the noise: it comes from the bench (set_noise), not the residual
    assert res.params["electrons_per_unit"] == pytest.approx(epu, rel=1e-9)
    assert res.params["read_noise_e"] == om.device_frontend().sensor.config.read_noise_e
    assert res.noise_rmse is None


def test_bench_noise_model_recovers_the_sensor(setup, mnist5k):
    """Dark frames + recorded exposure → the twin's read noise and exposure match the drawn sensor."""
    from calibration.misfit import noise_from_bench

    om = setup["om"]
    inst = draw_device(om, DEVICE_SEED, mnist5k.x_train[:200])
    with open_captures(setup["captures"]) as cf:
        dark = cf.read_static("calibration/dark_frames")
        epu = float(np.median(cf.exposure_s)) * cf.extra["source_flux_e_per_unit_s"]
    twin = OpticsTwin(om.model.frontend, om.device_frontend(), electrons_per_unit=epu)
    src = twin.set_noise(noise_from_bench(dark, electrons_per_unit=epu))
    truth = inst.sensor.config
    assert src["electrons_per_unit"] == pytest.approx(truth.electrons_per_unit, rel=1e-6)
    assert twin.device.sensor.config.read_noise_e == pytest.approx(truth.read_noise_e, rel=0.15)


@pytest.mark.slow
def test_calibrate_end_to_end(setup, tmp_path):
    om = load_optical_model(setup["model_path"])
    digest = hashlib.sha256(setup["model_path"].read_bytes()).hexdigest()
    cfg = CalibrationConfig.quick(fraction=0.2, fractions=(0.05, 0.2), twin_steps=120, twin_pool=1500)
    res = calibrate(om, setup["captures"], cfg, teacher=setup["teacher"])
    a = res.accuracies
    assert set(a) >= {"simulation", "uncalibrated", "after_refit", "paper_ce", "paper_ntk", "refit_ce", "refit_ntk"}
    assert res.split["n_calib"] == 60 and res.split["n_held_out"] == 240
    # the device loses accuracy and the refit wins most of it back
    assert a["uncalibrated"] < a["simulation"] - 0.03
    assert a["after_refit"] > a["uncalibrated"] + 0.03
    assert res.refit["rmse_after"] < 0.5 * res.refit["rmse_before"]
    assert [c["fraction"] for c in res.curve] == [0.05, 0.2]
    ckpt = save_calibrated(tmp_path / "cal.safetensors", om, res, cfg, source=setup["model_path"])
    paths = write_report(res, tmp_path, seed=0)
    for name in ("report", "results", "accuracies", "sample_efficiency", "frames", "psfs"):
        assert paths[name].exists() and paths[name].stat().st_size > 0
    data = json.loads(paths["results"].read_text())
    assert data["accuracies"] == pytest.approx(a) and data["provenance"]["seed"] == 0
    assert hashlib.sha256(setup["model_path"].read_bytes()).hexdigest() == digest  # input untouched
    cal, dev = load_calibrated_device(ckpt)
    torch.testing.assert_close(dev.shift.detach(), res.twin.device.shift.detach())
    with torch.no_grad():
        x = torch.from_numpy(open_captures(setup["captures"]).read("inputs/images", [0, 1, 2]))
        torch.testing.assert_close(cal.model.backend(dev(x, noise=False)),
                                   res.backends["refit_ntk"](res.twin.device(x, noise=False)))


@pytest.mark.slow
def test_cli_lab_and_calibrate(setup, tmp_path):
    from neurohw.cli import main

    cap = tmp_path / "cli.h5"
    assert main(["lab", "capture", "--model", str(setup["model_path"]), "--data", "mnist5k", "--limit", "200",
                 "--out", str(cap), "--device-seed", "7", "--dark-frames", "4"]) == 0
    with open_captures(cap) as cf:
        assert cf.n == 200
    from neurohw.io import save_checkpoint
    from neurohw.models import build_teacher

    torch.manual_seed(0)
    teacher = save_checkpoint(tmp_path / "lenet5.safetensors", build_teacher("lenet5", num_classes=10, in_channels=1))
    out = tmp_path / "report"
    # the generic device model (DeviceCorrection on the simulated maps) through the CLI
    assert main(["calibrate", str(setup["model_path"]), "--captures", str(cap), "--fraction", "0.1", "--out", str(out),
                 "--quick", "--no-curve", "--device-model", "generic", "--teacher", "lenet5",
                 "--teacher-checkpoint", str(teacher), "--use-laser-psfs", "off"]) == 0
    assert (out / "report.md").exists() and (out / "calibrated.safetensors").exists()
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["device_model"] == "generic" and res["split"]["n_calib"] == 20
    assert res["config"]["use_laser_psfs"] == "off"  # the CLI option reaches the config (default: correct)
    assert res["refit"]["rmse_after"] < res["refit"]["rmse_before"]


def test_cli_rejects_bad_captures(setup, tmp_path, capsys):
    from neurohw.cli import main

    bad = tmp_path / "neuro.h5"
    with CaptureWriter(bad, device_kind="neuromorphic", device_id="x", num_classes=2) as wr:
        wr.append({"labels": [0, 1], "timestamps": [0.0, 1.0], "inputs/dataset_index": [0, 1],
                   "measured/spike_counts": [[1], [2]]})
    rc = main(["calibrate", str(setup["model_path"]), "--captures", str(bad), "--out", str(tmp_path / "o"), "--quick"])
    assert rc == 2
    assert "optics captures" in capsys.readouterr().err
    with pytest.raises(CaptureFormatError, match="front-end produces"):
        p = tmp_path / "shape.h5"
        with CaptureWriter(p, device_kind="optics", device_id="x", num_classes=10, wavelengths_nm=[532]) as wr:
            wr.append({"measured/frames": np.zeros((4, 8, 20, 20)), "labels": [0, 1, 2, 3], "timestamps": [0.0, 1, 2, 3],
                       "measured/exposure_s": [1e-3] * 4, "measured/gain": [1.0] * 4,
                       "inputs/images": np.zeros((4, 1, 28, 28))})
        calibrate(setup["om"], p, CalibrationConfig.quick(curve=False), teacher=setup["teacher"])


def test_cli_capture_never_writes_the_device_seed(setup, tmp_path, monkeypatch):
    import sys

    from neurohw.cli import main

    out = tmp_path / "c.h5"
    argv = ["lab", "capture", "--model", str(setup["model_path"]), "--limit", "4", "--out", str(out),
            "--device-seed", "987654321", "--dark-frames", "2", "--no-psf"]
    monkeypatch.setattr(sys, "argv", ["neurohw", *argv])  # provenance records sys.argv
    assert main(argv) == 0
    assert b"987654321" not in out.read_bytes()
    with h5py.File(out, "r") as f:
        assert "<hidden>" in str(f.attrs["provenance"])


def _with_psfs(src, dst, psf, positions=None):
    import shutil

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as fh:
        attrs = dict(fh["calibration/psf"].attrs)
        del fh["calibration/psf"]
        if "calibration/psf_positions" in fh:
            del fh["calibration/psf_positions"]
        d = fh.create_dataset("calibration/psf", data=psf.astype(np.float32))
        d.attrs.update(attrs)
        if positions is not None:
            fh.create_dataset("calibration/psf_positions", data=positions.astype(np.float32)).attrs["unit"] = "px"
    return dst


def test_calibrate_and_report_with_any_laser_psf_count(setup, tmp_path):
    """A capture with fewer laser PSFs than tiles used to crash the report (IndexError)."""
    from calibration.psf_match import PSFMatchError

    om = setup["om"]
    with open_captures(setup["captures"]) as cf:
        psf = cf.read_static("calibration/psf")
        pos = cf.read_static("calibration/psf_positions")
    assert len(psf) == len(om.device_frontend().centres)  # the lab writes one per tile, with positions
    cfg = CalibrationConfig.quick(fraction=0.2, curve=False, twin_steps=4, finetune_max_steps=2, twin_pool=64,
                                  refit=RefitConfig(steps_geometry=2, steps_joint=2, shift_search_px=0, batch_size=32))
    for name, (p, q) in {"five_by_position": (psf[[3, 7, 0, 11, 5]], pos[[3, 7, 0, 11, 5]]),
                         "five_no_positions": (psf[:5], None), "one": (psf[[9]], pos[[9]])}.items():
        f = _with_psfs(setup["captures"], tmp_path / f"{name}.h5", p, q)
        res = calibrate(om, f, cfg, teacher=setup["teacher"])
        lp = res.capture["laser_psfs"]
        paths = write_report(res, tmp_path / name, seed=0)
        text = paths["report"].read_text()
        if q is None:
            assert lp["matched"] == 0 and "no /calibration/psf_positions" in text
        else:
            want = [-1] * len(psf)
            for k, t in enumerate([3, 7, 0, 11, 5] if len(p) == 5 else [9]):
                want[t] = k
            assert lp["tile_to_psf"] == want and lp["matched"] == len(p)
            assert f"{len(p)} of {len(psf)} tiles matched (by position)" in text
            assert paths["psfs"].stat().st_size > 0
    bad = _with_psfs(setup["captures"], tmp_path / "bad.h5", psf[:2], np.array([[0.0, 0.0], [500.0, 0.0]]))
    with pytest.raises(PSFMatchError, match=r"bad.h5: /calibration/psf_positions\[\d\]"):
        calibrate(om, bad, cfg, teacher=setup["teacher"])


def _small_cfg(**kw):
    return CalibrationConfig.quick(**{**dict(fraction=0.5, curve=False, twin_steps=10, finetune_max_steps=4, twin_pool=200,
                                             refit=RefitConfig(steps_geometry=40, steps_joint=80, lr=0.02, lr_psf=0.01,
                                                               shift_search_px=2, batch_size=48),
                                             misfit_captures=150), **kw})


@pytest.mark.slow
def test_calibrate_misfit_passes_an_in_family_device_and_flags_an_out_of_family_one(setup, mnist5k, tmp_path):
    """End to end through ``calibrate``: the noise comes from the dark frames and the recorded
    exposure, never the refit residual, so the test can fail — and it must for a device with
    blur/cross-talk/vignetting/gamma/gain-map errors, while the in-family device passes."""
    from calibration.virtual_devices import OutOfFamilyDevice, OutOfFamilyErrors

    om = setup["om"]
    good = calibrate(om, setup["captures"], _small_cfg(), teacher=setup["teacher"])
    m = good.misfit
    print("in-family:", m["verdict"], [round(b["ratio"], 2) for b in m["bins"]],
          [round(c["chi2_per_pixel"], 2) for c in m["channels"]])
    assert m["fits_within_noise"] is True and m["verdict"] == "twin fits within noise"
    assert m["held_out_captures"] == 150 and 4 <= len(m["bins"]) <= 8 and len(m["channels"]) == 8
    assert "dark frames" in m["noise_model"]["source"]["b"] and "exposure" in m["noise_model"]["source"]["a"]
    # the reported noise level is the bench's prediction, not the refit RMSE
    assert good.refit["noise_rmse"] != pytest.approx(good.refit["rmse_after"], rel=1e-3)

    inst = draw_device(om, DEVICE_SEED, mnist5k.x_train[:200])
    dev = OutOfFamilyDevice(inst, OutOfFamilyErrors.strong(), seed=1)
    bad_path = capture_virtual(om, mnist5k.x_test[:N_CAPTURES], mnist5k.y_test[:N_CAPTURES], tmp_path / "oof.h5",
                               dataset="mnist5k", dataset_split="test", indices=np.arange(N_CAPTURES), device=dev,
                               progress=False)
    bad = calibrate(om, bad_path, _small_cfg(), teacher=setup["teacher"])
    mb = bad.misfit
    print("out-of-family:", mb["verdict"])
    assert mb["fits_within_noise"] is False and mb["verdict"].startswith("twin does not fit within noise")
    assert any(not b["ok"] for b in mb["bins"]) or any(not c["ok"] for c in mb["channels"])
    text = write_report(bad, tmp_path / "rep", seed=0)["report"].read_text()
    assert "## Does the twin fit within noise?" in text and "twin does not fit within noise" in text and "**fails**" in text
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert data["misfit"]["fits_within_noise"] is False


@pytest.mark.slow
def test_calibrate_sensor_frames_equal_feature_maps(setup, mnist5k, tmp_path):
    """A ``sensor_frame`` capture (raw tiles, 2K channels) of the same device and noise stream
    combines to exactly the ``feature_map`` capture, so calibrate gives the same figures."""
    om = setup["om"]
    n = 120
    kw = dict(dataset="mnist5k", dataset_split="test", indices=np.arange(n), device_seed=DEVICE_SEED,
              exposure_images=mnist5k.x_train[:200], progress=False, dark_frames=4)
    fm = capture_virtual(om, mnist5k.x_test[:n], mnist5k.y_test[:n], tmp_path / "fm.h5", **kw)
    sf = capture_virtual(om, mnist5k.x_test[:n], mnist5k.y_test[:n], tmp_path / "sf.h5", frame_kind="sensor_frame", **kw)
    from calibration.loop import capture_frames, dark_feature_frames

    with open_captures(fm) as a, open_captures(sf) as b:
        assert a.frame_shape == (8, 22, 22) and b.frame_shape == (16, 22, 22)
        assert b.attrs("measured/frames")["kind"] == "sensor_frame"
        torch.testing.assert_close(capture_frames(b, np.arange(n)), capture_frames(a, np.arange(n)), rtol=0, atol=1e-6)
        torch.testing.assert_close(dark_feature_frames(b), dark_feature_frames(a), rtol=0, atol=1e-6)
    cfg = _small_cfg(fraction=0.25, misfit_captures=40,
                     refit=RefitConfig(steps_geometry=4, steps_joint=4, shift_search_px=0, batch_size=32))
    ra = calibrate(om, fm, cfg, teacher=setup["teacher"])
    rb = calibrate(om, sf, cfg, teacher=setup["teacher"])
    assert rb.accuracies == pytest.approx(ra.accuracies, abs=1e-9)
    assert rb.refit["rmse_after"] == pytest.approx(ra.refit["rmse_after"], rel=1e-4)
    assert rb.misfit["verdict"] == ra.misfit["verdict"]
    # an odd tile count cannot be a positive/negative pair layout
    odd = tmp_path / "odd.h5"
    with CaptureWriter(odd, device_kind="optics", device_id="x", num_classes=10, wavelengths_nm=[532],
                       frame_kind="sensor_frame") as wr:
        wr.append({"measured/frames": np.zeros((4, 15, 22, 22)), "labels": [0, 1, 2, 3], "timestamps": [0.0, 1, 2, 3],
                   "measured/exposure_s": [1e-3] * 4, "measured/gain": [1.0] * 4,
                   "inputs/images": np.zeros((4, 1, 28, 28))})
    with pytest.raises(CaptureFormatError, match="odd.h5: /measured/frames: kind 'sensor_frame' needs an even"):
        calibrate(om, odd, cfg, teacher=setup["teacher"])


def test_shot_noise_from_repeated_exposures(setup, mnist5k, tmp_path):
    """Repeated exposures of one input measure the shot noise without the recorded flux: the
    variance slope gives 1/electrons_per_unit of the drawn sensor."""
    from calibration.loop import bench_noise
    from calibration.misfit import repeat_groups

    om = setup["om"]
    n = 100
    p = capture_virtual(om, mnist5k.x_test[:n], mnist5k.y_test[:n], tmp_path / "rep.h5", dataset="mnist5k",
                        dataset_split="test", indices=np.arange(n), device_seed=DEVICE_SEED,
                        exposure_images=mnist5k.x_train[:200], progress=False, dark_frames=8, psf=False, repeats=64)
    inst = draw_device(om, DEVICE_SEED, mnist5k.x_train[:200])
    with open_captures(p) as cf:
        assert cf.n == n + 64
        g = repeat_groups(cf)
        assert len(g) == 1 and list(g[0]) == [0, *range(n, n + 64)]
        x = torch.from_numpy(cf.read("inputs/images", np.arange(n)))
        f = torch.from_numpy(cf.read("measured/frames", np.arange(n)))
        epu = float(np.median(cf.exposure_s)) * cf.extra["source_flux_e_per_unit_s"]
        twin = OpticsTwin(om.model.frontend, om.device_frontend(), electrons_per_unit=epu)
        twin.refit(x, f, RefitConfig(steps_geometry=40, steps_joint=60, lr=0.02, lr_psf=0.01, shift_search_px=2, batch_size=48))
        cf.extra.pop("source_flux_e_per_unit_s")  # as if the bench did not know its flux
        nm = bench_noise(cf, twin)
    assert "repeated exposures" in nm.source["a"] and "65 captures" in nm.source["repeats"]
    assert 1.0 / nm.a == pytest.approx(inst.sensor.config.electrons_per_unit, rel=0.2)
