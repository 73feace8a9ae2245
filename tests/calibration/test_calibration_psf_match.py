"""Laser PSFs matched to tiles by position: any K, named errors, and the report on K != tiles."""
from __future__ import annotations

import numpy as np
import pytest

from calibration.captures import CaptureWriter, open_captures
from calibration.psf_match import PSFMatchError, match_psfs

CENTRES = np.array([[-10.0, -10.0], [-10.0, 10.0], [10.0, -10.0], [10.0, 10.0]])  # 2x2 grid, spacing 20 px


def test_same_count_without_positions_is_tile_order():
    m = match_psfs(4, CENTRES)
    assert m.by == "order" and m.tile_to_psf.tolist() == [0, 1, 2, 3] and m.note == ""


def test_other_count_without_positions_is_unmatched_with_a_note():
    m = match_psfs(3, CENTRES, where="f.h5")
    assert m.matched == 0 and m.by == "none"
    assert "f.h5" in m.note and "3 PSFs" in m.note and "4 tiles" in m.note and "psf_positions" in m.note


def test_positions_match_nearest_tile_any_k():
    pos = np.array([[10.4, 9.1], [-9.0, -10.5]])  # two PSFs, permuted, slightly off-centre
    m = match_psfs(2, CENTRES, pos)
    assert m.tile_to_psf.tolist() == [1, -1, -1, 0]
    assert "tiles [1, 2] have no laser PSF" in m.note
    np.testing.assert_allclose(m.distances_px, [np.hypot(0.4, 0.9), np.hypot(1.0, 0.5)])
    # more PSFs than tiles cannot all match: the error names the PSF index
    with pytest.raises(PSFMatchError, match=r"psf_positions\[4\] and \[\d\] both match tile"):
        match_psfs(5, CENTRES, np.vstack([CENTRES, CENTRES[:1] + 1]))


def test_position_far_from_every_tile_is_named():
    with pytest.raises(PSFMatchError, match=r"f.h5: /calibration/psf_positions\[1\] = \(0, 0\) px is 14.14 px"):
        match_psfs(2, CENTRES, np.array([[10.0, 10.0], [0.0, 0.0]]), where="f.h5")
    with pytest.raises(PSFMatchError, match=r"shape \(3,\), expected \(3, 2\)"):
        match_psfs(3, CENTRES, np.zeros(3))


def test_writer_stores_positions_and_reader_validates(tmp_path):
    p = tmp_path / "c.h5"
    with CaptureWriter(p, device_kind="optics", device_id="d", num_classes=2, frame_unit="feature units",
                       wavelengths_nm=[532.0]) as w:
        w.append({"labels": np.array([0, 1]), "timestamps": np.array([1.0, 2.0]),
                  "measured/frames": np.zeros((2, 1, 4, 4), np.float32), "measured/exposure_s": np.ones(2),
                  "measured/gain": np.ones(2), "inputs/images": np.zeros((2, 1, 6, 6), np.float32)})
        w.set_psf(np.ones((3, 5, 5)), wavelength_nm=532.0, pixel_pitch_um=0.586, positions=CENTRES[:3])
    with open_captures(p) as cf:
        np.testing.assert_array_equal(cf.read_static("calibration/psf_positions"), CENTRES[:3].astype(np.float32))
    with pytest.raises(ValueError, match=r"psf_positions must be \(3, 2\)"):
        with CaptureWriter(tmp_path / "d.h5", device_kind="optics", device_id="d", num_classes=2,
                           frame_unit="feature units", wavelengths_nm=[532.0]) as w:
            w.set_psf(np.ones((3, 5, 5)), wavelength_nm=532.0, pixel_pitch_um=0.586, positions=CENTRES[:2])
