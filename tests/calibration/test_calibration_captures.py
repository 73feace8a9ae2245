"""Capture files: writer/reader round trip, streaming access, and malformed files failing cleanly."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from calibration.captures import (
    CHUNK_BYTES,
    FIELDS,
    SCHEMA_VERSION,
    CaptureFormatError,
    CaptureWriter,
    open_captures,
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_optics(path, n=37, c=3, h=5, w=4, seed=0, block=16, images=True, dark=True, psf=True, compression=4):
    rng = np.random.default_rng(seed)
    data = {
        "measured/frames": rng.normal(size=(n, c, h, w)).astype(np.float32),
        "labels": rng.integers(0, 10, n),
        "timestamps": 1.7e9 + np.arange(n, dtype=np.float64),
        "measured/exposure_s": rng.uniform(1e-3, 1e-2, n),
        "measured/gain": rng.uniform(0.5, 2, n),
        "inputs/dataset_index": rng.permutation(1000)[:n],
    }
    if images:
        data["inputs/images"] = rng.random((n, 1, 6, 6)).astype(np.float32)
    with CaptureWriter(path, device_kind="optics", device_id="bench-7", num_classes=10, wavelengths_nm=[532.0],
                       dataset="mnist5k", dataset_split="test", frame_unit="feature units",
                       provenance={"seed": 1}, compression=compression) as wr:
        for s in range(0, n, block):
            wr.append({k: v[s:s + block] for k, v in data.items()})
        if dark:
            wr.set_dark_frames(rng.normal(size=(4, c, h, w)), exposure_s=5e-3, gain=1.0)
        if psf:
            wr.set_psf(rng.random((2 * c, 7, 7)), wavelength_nm=532.0, pixel_pitch_um=0.586)
    return data


def write_neuro(path, n=20, t=6, cin=5, cout=4, seed=0, counts=True, raster=True):
    rng = np.random.default_rng(seed)
    r = (rng.random((n, t, cout)) < 0.3).astype(np.uint8)
    data = {"labels": rng.integers(0, 3, n), "timestamps": np.arange(n, dtype=np.float64),
            "inputs/spikes": (rng.random((n, t, cin)) < 0.2).astype(np.uint8)}
    if raster:
        data["measured/spike_raster"] = r
    if counts:
        data["measured/spike_counts"] = r.sum(1).astype(np.int32)
    with CaptureWriter(path, device_kind="neuromorphic", device_id="loihi2-chip0", num_classes=3) as wr:
        wr.append(data)
    return data


def test_round_trip_optics(tmp_path):
    p = tmp_path / "c.h5"
    data = write_optics(p)
    with open_captures(p) as cf:
        assert cf.n == 37 and cf.device_kind == "optics" and cf.device_id == "bench-7"
        assert cf.schema_version == SCHEMA_VERSION and cf.num_classes == 10
        assert cf.frame_shape == (3, 5, 4) and cf.input_shape == (1, 6, 6)
        assert cf.dataset_name == "mnist5k" and cf.dataset_split == "test"
        assert cf.provenance == {"seed": 1}
        for k, v in data.items():
            np.testing.assert_array_equal(cf.read(k), v.astype(FIELDS[k].dtype))
        np.testing.assert_array_equal(cf.labels, data["labels"])
        np.testing.assert_array_equal(cf.wavelengths_nm, [532.0])
        assert cf.read_static("calibration/dark_frames").shape == (4, 3, 5, 4)
        assert cf.attrs("calibration/psf")["wavelength_nm"] == 532.0
        assert cf.attrs("measured/frames") == {"unit": "feature units", "kind": "feature_map"}
        # any-order fancy indexing and streaming
        idx = [5, 1, 1, 30]
        np.testing.assert_array_equal(cf.read("measured/frames", idx), data["measured/frames"][idx])
        got = np.concatenate([b["measured/frames"] for b in cf.iter_batches(["measured/frames"], batch_size=10)])
        np.testing.assert_array_equal(got, data["measured/frames"])
        sparse = np.array([1, 3, 4, 8, 9, 12])  # increasing, gappy: one span read, rows picked
        got = next(cf.iter_batches(["measured/frames", "labels"], batch_size=6, indices=sparse))
        np.testing.assert_array_equal(got["measured/frames"], data["measured/frames"][sparse])
        np.testing.assert_array_equal(got["labels"], data["labels"][sparse])
        order = np.array([36, 0, 2, 3, 4])
        got = [b for b in cf.iter_batches(["labels"], batch_size=2, indices=order)]
        np.testing.assert_array_equal(np.concatenate([b["index"] for b in got]), order)
        np.testing.assert_array_equal(np.concatenate([b["labels"] for b in got]), data["labels"][order])


def test_datasets_are_chunked_and_compressed(tmp_path):
    p = tmp_path / "c.h5"
    write_optics(p, n=300, c=8, h=22, w=22, block=128)
    with h5py.File(p, "r") as fh:
        d = fh["measured/frames"]
        assert d.chunks is not None and d.chunks[0] < 300 and d.chunks[1:] == (8, 22, 22)
        assert np.prod(d.chunks) * 4 <= CHUNK_BYTES
        assert d.compression == "gzip" and d.shuffle
        assert d.maxshape[0] is None


def test_round_trip_neuromorphic(tmp_path):
    p = tmp_path / "n.h5"
    data = write_neuro(p)
    with open_captures(p) as cf:
        assert cf.device_kind == "neuromorphic" and cf.frame_shape is None
        np.testing.assert_array_equal(cf.read("measured/spike_counts"), data["measured/spike_counts"])
        np.testing.assert_array_equal(cf.read("measured/spike_raster"), data["measured/spike_raster"])
        np.testing.assert_array_equal(cf.read("inputs/spikes", slice(3, 7)), data["inputs/spikes"][3:7])


@FUZZ
@given(n=st.integers(1, 40), c=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6),
       block=st.integers(1, 50), seed=st.integers(0, 2**31 - 1), images=st.booleans(), dark=st.booleans())
def test_round_trip_property(tmp_path, n, c, h, w, block, seed, images, dark):
    p = tmp_path / f"rt_{seed}_{n}.h5"
    data = write_optics(p, n=n, c=c, h=h, w=w, seed=seed, block=block, images=images, dark=dark, psf=False, compression=0)
    with open_captures(p) as cf:
        for k, v in data.items():
            np.testing.assert_array_equal(cf.read(k), v.astype(FIELDS[k].dtype))
    p.unlink()


def test_writer_refuses_bad_data_and_leaves_no_file(tmp_path):
    p = tmp_path / "bad.h5"
    with pytest.raises(CaptureFormatError, match="measured/frames.*NaN"):
        with CaptureWriter(p, device_kind="optics", device_id="d", num_classes=2, wavelengths_nm=[532]) as wr:
            wr.append({"measured/frames": np.full((2, 1, 2, 2), np.nan), "labels": [0, 1], "timestamps": [0.0, 1.0],
                       "measured/exposure_s": [1e-3, 1e-3], "measured/gain": [1.0, 1.0], "inputs/dataset_index": [0, 1]})
    assert not p.exists() and not list(tmp_path.iterdir())
    with pytest.raises(CaptureFormatError, match="labels"):
        with CaptureWriter(p, device_kind="optics", device_id="d", num_classes=2, wavelengths_nm=[532]) as wr:
            wr.append({"measured/frames": np.zeros((2, 1, 2, 2)), "labels": [0, 5], "timestamps": [0.0, 1.0],
                       "measured/exposure_s": [1e-3, 1e-3], "measured/gain": [1.0, 1.0], "inputs/dataset_index": [0, 1]})
    assert not p.exists()
    with pytest.raises(CaptureFormatError, match="required"):  # optics without wavelengths
        with CaptureWriter(p, device_kind="optics", device_id="d", num_classes=2) as wr:
            wr.append({"measured/frames": np.zeros((2, 1, 2, 2)), "labels": [0, 1], "timestamps": [0.0, 1.0],
                       "measured/exposure_s": [1e-3, 1e-3], "measured/gain": [1.0, 1.0], "inputs/dataset_index": [0, 1]})
    with pytest.raises(CaptureFormatError, match="unknown per-capture field"):
        with CaptureWriter(p, device_kind="optics", device_id="d", num_classes=2) as wr:
            wr.append({"frames": np.zeros((2, 1, 2, 2))})


# ---------------------------------------------------------------------------------------
# malformed files: every mutation must raise CaptureFormatError naming what is wrong
# ---------------------------------------------------------------------------------------

def _replace(fh, key, data):
    attrs = dict(fh[key].attrs)
    del fh[key]
    fh.create_dataset(key, data=data)
    fh[key].attrs.update(attrs)


def mutate(path: Path, kind: str, draw) -> str:
    """Apply one malformation; returns a fragment the error message must contain."""
    with h5py.File(path, "r+") as fh:
        keys = [k for k in FIELDS if k in fh]
        if kind == "delete_required":
            key = draw(st.sampled_from(["labels", "timestamps", "measured/frames", "measured/exposure_s",
                                        "measured/gain", "device/wavelengths_nm"]))
            del fh[key]
            return key
        if kind == "wrong_dtype":
            key = draw(st.sampled_from(keys))
            a = fh[key][()]
            new = {"float64": np.float32, "float32": np.float64, "int64": np.int32, "int32": np.int64,
                   "uint8": np.int16}[str(a.dtype)]
            _replace(fh, key, a.astype(new))
            return key
        if kind == "wrong_length":
            key = draw(st.sampled_from([k for k in keys if FIELDS[k].per_capture]))
            a = fh[key][()]
            cut = draw(st.integers(1, len(a)))
            _replace(fh, key, a[:-cut] if cut < len(a) else np.concatenate([a, a[:1]]))
            return key
        if kind == "wrong_ndim":
            key = draw(st.sampled_from(keys))
            a = fh[key][()]
            _replace(fh, key, a[..., None])
            return key
        if kind == "nan":
            key = draw(st.sampled_from([k for k in keys if fh[k].dtype.kind == "f"]))
            a = fh[key][()]
            flat = a.reshape(-1)
            flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            _replace(fh, key, a)
            return key
        if kind == "bad_version":
            fh.attrs["schema_version"] = draw(st.sampled_from([0, 2, 99, -1, "1", 1.0]))
            return "schema_version"
        if kind == "drop_attr":
            name = draw(st.sampled_from(["schema", "schema_version", "device_kind", "device_id", "n_captures",
                                         "num_classes", "created_utc"]))
            del fh.attrs[name]
            return name
        if kind == "bad_label":
            a = fh["labels"][()]
            a[draw(st.integers(0, len(a) - 1))] = draw(st.sampled_from([-1, 10, 1000]))
            _replace(fh, "labels", a)
            return "labels"
        if kind == "bad_count":
            fh.attrs["n_captures"] = int(fh.attrs["n_captures"]) + draw(st.sampled_from([-1, 1, 5]))
            return "captures"
        if kind == "nonpositive":
            key = draw(st.sampled_from(["measured/exposure_s", "measured/gain", "device/wavelengths_nm"]))
            a = fh[key][()]
            a[draw(st.integers(0, len(a) - 1))] = draw(st.sampled_from([0.0, -1.0]))
            _replace(fh, key, a)
            return key
        if kind == "dark_mismatch":
            a = fh["calibration/dark_frames"][()]
            _replace(fh, "calibration/dark_frames", a[:, :, :-1] if a.shape[2] > 1 else np.concatenate([a, a], 2))
            return "calibration/dark_frames"
        if kind == "unknown_dataset":
            fh.create_dataset("measured/extra_thing", data=np.zeros(3))
            return "measured/extra_thing"
        if kind == "group_for_dataset":
            del fh["labels"]
            fh.create_group("labels")
            return "labels"
        if kind == "frame_kind":
            fh["measured/frames"].attrs["kind"] = "photo"
            return "measured/frames"
    raise AssertionError(kind)


MUTATIONS = ["delete_required", "wrong_dtype", "wrong_length", "wrong_ndim", "nan", "bad_version", "drop_attr",
             "bad_label", "bad_count", "nonpositive", "dark_mismatch", "unknown_dataset", "group_for_dataset", "frame_kind"]


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("valid") / "valid.h5"
    write_optics(p, n=12, c=2, h=3, w=3, compression=0)
    return p


@FUZZ
@given(kind=st.sampled_from(MUTATIONS), data=st.data())
def test_malformed_files_fail_cleanly(tmp_path, valid_file, kind, data):
    p = tmp_path / f"m_{kind}.h5"
    shutil.copy(valid_file, p)
    fragment = mutate(p, kind, data.draw)
    with pytest.raises(CaptureFormatError) as exc:
        open_captures(p).close()
    assert fragment in str(exc.value), (kind, str(exc.value))
    assert str(p) in str(exc.value)


@FUZZ
@given(blob=st.binary(min_size=0, max_size=4096), keep=st.integers(0, 20000))
def test_garbage_and_truncated_files_fail_cleanly(tmp_path, valid_file, blob, keep):
    p = tmp_path / "g.h5"
    p.write_bytes(blob)
    with pytest.raises(CaptureFormatError):
        open_captures(p)
    raw = valid_file.read_bytes()
    if keep < len(raw):
        p.write_bytes(raw[:keep])
        with pytest.raises(CaptureFormatError):
            open_captures(p)


@FUZZ
@example(flips=[(0.9932437345329522, 1)])  # h5py RuntimeError 'Object visitation failed (addr overflow)'
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=16))
def test_corrupt_bytes_inside_file_fail_cleanly(tmp_path, valid_file, flips):
    """Flipped bytes anywhere: either the file still reads fully, or CaptureFormatError — nothing else."""
    b = bytearray(valid_file.read_bytes())
    for where, mask in flips:
        b[int(where * len(b))] ^= mask
    p = tmp_path / "x.h5"
    p.write_bytes(bytes(b))
    try:
        with open_captures(p) as cf:
            for k in cf.fields:
                cf.read(k)
    except CaptureFormatError as exc:
        assert str(p) in str(exc)


def test_neuromorphic_inconsistent_counts(tmp_path):
    p = tmp_path / "n.h5"
    write_neuro(p)
    with h5py.File(p, "r+") as fh:
        a = fh["measured/spike_counts"][()]
        a[3, 1] += 1
        fh["measured/spike_counts"][...] = a
    with pytest.raises(CaptureFormatError, match=r"spike_counts.*capture 3"):
        open_captures(p)
    # without the scan the structure is fine, and reading the slice does not check consistency
    open_captures(p, scan=False).close()


def test_neuromorphic_needs_an_output(tmp_path):
    with pytest.raises(CaptureFormatError, match="spike_counts or /measured/spike_raster"):
        write_neuro(tmp_path / "n.h5", counts=False, raster=False)


def test_scan_is_streaming(tmp_path):
    """The scan reads in bounded batches: a NaN late in a big dataset is found and named."""
    p = tmp_path / "big.h5"
    write_optics(p, n=500, c=2, h=4, w=4, block=100)
    with h5py.File(p, "r+") as fh:
        fh["measured/frames"][477, 1, 2, 3] = np.nan
    with pytest.raises(CaptureFormatError, match=r"/measured/frames.*index 477"):
        open_captures(p, scan_batch=64)
    cf = open_captures(p, scan=False)  # structure only
    cf.read("measured/frames", slice(0, 100))
    with pytest.raises(CaptureFormatError, match="index 477"):
        cf.read("measured/frames", slice(400, 500))
    cf.close()
