"""Readers: good files of every supported format round-trip; malformed ones fail with a clear error."""
from __future__ import annotations

import gzip
import struct

import h5py
import numpy as np
import pytest

from neurohw.data import (
    DataFormatError,
    load_dataset,
    read_cifar10_batch,
    read_hdf5_arrays,
    read_idx,
    read_mnist_idx_pair,
    read_npz_arrays,
)


def write_idx(path, arr: np.ndarray, code: int = 0x08, gz: bool = False):
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_pair_roundtrip(tmp_path, gz):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=7).astype(np.uint8)
    xi = write_idx(tmp_path / "imgs.idx", x, gz=gz)
    yi = write_idx(tmp_path / "labels.idx", y, gz=gz)
    xr, yr = read_mnist_idx_pair(xi, yi)
    assert xr.shape == (7, 1, 28, 28) and xr.dtype == np.float32
    np.testing.assert_array_equal(np.round(xr[:, 0] * 255).astype(np.uint8), x)
    np.testing.assert_array_equal(yr, y.astype(np.int64))


def test_idx_other_dtypes(tmp_path):
    a = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.idx", a, code=0x0C)), a)
    f = np.linspace(-1, 1, 6).astype(np.float32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "f.idx", f, code=0x0D)), f)


def test_idx_malformed(tmp_path):
    x = np.zeros((4, 5, 5), np.uint8)
    good = write_idx(tmp_path / "x.idx", x).read_bytes()
    (tmp_path / "trunc.idx").write_bytes(good[:-3])
    with pytest.raises(DataFormatError, match=r"trunc\.idx: truncated"):
        read_idx(tmp_path / "trunc.idx")
    (tmp_path / "magic.idx").write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(DataFormatError, match="magic"):
        read_idx(tmp_path / "magic.idx")
    (tmp_path / "type.idx").write_bytes(good[:2] + b"\x07" + good[3:])
    with pytest.raises(DataFormatError, match="element type"):
        read_idx(tmp_path / "type.idx")
    (tmp_path / "short.idx").write_bytes(good[:6])
    with pytest.raises(DataFormatError, match="header"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "trail.idx").write_bytes(good + b"\x00")
    with pytest.raises(DataFormatError, match="trailing"):
        read_idx(tmp_path / "trail.idx")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(DataFormatError, match="bad.gz"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(DataFormatError, match="does not exist"):
        read_idx(tmp_path / "missing.idx")


def test_idx_pair_count_mismatch(tmp_path):
    xi = write_idx(tmp_path / "x.idx", np.zeros((4, 3, 3), np.uint8))
    yi = write_idx(tmp_path / "y.idx", np.zeros(5, np.uint8))
    with pytest.raises(DataFormatError, match="4 images but .* 5 labels"):
        read_mnist_idx_pair(xi, yi)


def test_cifar10_roundtrip_and_malformed(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    pixels = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    rec = np.concatenate([labels[:, None], pixels], axis=1)
    (tmp_path / "data_batch_1.bin").write_bytes(rec.tobytes())
    x, y = read_cifar10_batch(tmp_path / "data_batch_1.bin")
    assert x.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(np.round(x[2, 1] * 255).astype(np.uint8), pixels[2, 1024:2048].reshape(32, 32))
    (tmp_path / "short.bin").write_bytes(rec.tobytes()[:-10])
    with pytest.raises(DataFormatError, match="whole number of CIFAR-10 records"):
        read_cifar10_batch(tmp_path / "short.bin")
    rec[3, 0] = 12
    (tmp_path / "label.bin").write_bytes(rec.tobytes())
    with pytest.raises(DataFormatError, match="record 3 has label 12"):
        read_cifar10_batch(tmp_path / "label.bin")


def _split_arrays():
    rng = np.random.default_rng(2)
    return {
        "x_train": rng.random((6, 8, 8)).astype(np.float32),
        "y_train": np.arange(6) % 3,
        "x_test": rng.random((3, 8, 8)).astype(np.float32),
        "y_test": np.arange(3),
    }


def test_npz_and_hdf5_roundtrip(tmp_path):
    arrs = _split_arrays()
    np.savez(tmp_path / "d.npz", **arrs)
    with h5py.File(tmp_path / "d.h5", "w") as fh:
        for k, v in arrs.items():
            fh[k] = v
    for name in ("d.npz", "d.h5"):
        got = read_npz_arrays(tmp_path / name) if name.endswith("npz") else read_hdf5_arrays(tmp_path / name)
        for k in arrs:
            np.testing.assert_array_equal(got[k], arrs[k])
        split = load_dataset(str(tmp_path / name))
        assert split.x_train.shape == (6, 1, 8, 8) and split.num_classes == 3


def test_npz_and_hdf5_malformed(tmp_path):
    arrs = _split_arrays()
    np.savez(tmp_path / "missing.npz", x_train=arrs["x_train"])
    with pytest.raises(DataFormatError, match=r"missing\.npz: missing array\(s\) \['y_train'"):
        read_npz_arrays(tmp_path / "missing.npz", ["x_train", "y_train"])
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataFormatError, match="obj.npz"):
        read_npz_arrays(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="junk.npz: not a readable"):
        read_npz_arrays(tmp_path / "junk.npz")
    bad = arrs["x_train"].copy()
    bad[0, 0, 0] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as fh:
        fh["x_train"] = bad
    with pytest.raises(DataFormatError, match=r"nan\.h5: array 'x_train' contains NaN"):
        read_hdf5_arrays(tmp_path / "nan.h5")
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF garbage")
    with pytest.raises(DataFormatError, match="junk.h5: not a readable HDF5"):
        read_hdf5_arrays(tmp_path / "junk.h5")
    with pytest.raises(DataFormatError, match="missing.h5: file does not exist"):
        read_hdf5_arrays(tmp_path / "missing.h5")
