"""Readers for standard on-disk dataset formats, with clear errors for bad files.

- IDX (MNIST / Fashion-MNIST), raw or gzip: :func:`read_idx`, :func:`read_mnist_idx_pair`;
- CIFAR-10 binary batches (``data_batch_1.bin`` …): :func:`read_cifar10_batch`;
- ``.npz`` and HDF5 arrays: :func:`read_npz_arrays`, :func:`read_hdf5_arrays` (files opened
  by :func:`open_hdf5`, which other HDF5 readers share).

Every failure raises :class:`DataFormatError` naming the file and what is wrong.
"""
from __future__ import annotations

import gzip
import os
import struct
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataFormatError(ValueError):
    """A dataset file is missing, truncated or not in the expected format."""


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataFormatError(f"{path}: file does not exist")
    with open(path, "rb") as fh:
        head = fh.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: cannot decompress ({exc})") from exc


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of its declared dtype and shape."""
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise DataFormatError(f"{path}: too short for an IDX header ({len(buf)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", buf[:4])
    if zero != 0:
        raise DataFormatError(f"{path}: bad IDX magic {buf[:4].hex()} (first two bytes must be 0)")
    if dtype_code not in _IDX_DTYPES:
        raise DataFormatError(f"{path}: unknown IDX element type 0x{dtype_code:02x}")
    if ndim == 0:
        raise DataFormatError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(buf) < header_len:
        raise DataFormatError(f"{path}: truncated IDX header (need {header_len} bytes, have {len(buf)})")
    dims = struct.unpack(">" + "I" * ndim, buf[4:header_len])
    dtype = _IDX_DTYPES[dtype_code]
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(buf) - header_len
    if have != need:
        kind = "truncated" if have < need else "has trailing bytes"
        raise DataFormatError(f"{path}: {kind}: shape {dims} of {dtype} needs {need} data bytes, file has {have}")
    return np.frombuffer(buf, dtype=dtype, offset=header_len).reshape(dims).astype(dtype.newbyteorder("="))


def read_mnist_idx_pair(images: str | os.PathLike, labels: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an (images, labels) IDX pair, as MNIST/Fashion-MNIST ship them.

    Returns images as float32 (N, 1, H, W) in [0, 1] and labels as int64 (N,).
    """
    x = read_idx(images)
    y = read_idx(labels)
    if x.ndim != 3:
        raise DataFormatError(f"{images}: image file must be 3-D (N, H, W), got shape {x.shape}")
    if y.ndim != 1:
        raise DataFormatError(f"{labels}: label file must be 1-D (N,), got shape {y.shape}")
    if len(x) != len(y):
        raise DataFormatError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    return (x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64)


CIFAR10_RECORD = 1 + 3 * 32 * 32


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3,072 pixel bytes (R, G, B planes).

    Returns images float32 (N, 3, 32, 32) in [0, 1] and labels int64 (N,).
    """
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) == 0 or len(buf) % CIFAR10_RECORD:
        raise DataFormatError(
            f"{path}: size {len(buf)} bytes is not a whole number of CIFAR-10 records ({CIFAR10_RECORD} bytes each)"
        )
    rec = np.frombuffer(buf, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    y = rec[:, 0].astype(np.int64)
    if y.max() > 9:
        bad = int(np.argmax(y > 9))
        raise DataFormatError(f"{path}: record {bad} has label {y[bad]}, CIFAR-10 labels are 0..9")
    x = rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return x, y


def _check_keys(path: Path, have: Iterable[str], keys: Iterable[str] | None) -> list[str]:
    have = list(have)
    if keys is None:
        return have
    missing = [k for k in keys if k not in have]
    if missing:
        raise DataFormatError(f"{path}: missing array(s) {missing}; file has {sorted(have)}")
    return list(keys)


def _check_finite(path: Path, key: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise DataFormatError(f"{path}: array {key!r} contains NaN or Inf")
    if a.dtype.kind not in "biuf":
        raise DataFormatError(f"{path}: array {key!r} has non-numeric dtype {a.dtype}")
    return a


def read_npz_arrays(path: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read named arrays from an ``.npz`` file. Object arrays are refused (no unpickling)."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: file does not exist")
    if not zipfile.is_zipfile(path):
        raise DataFormatError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = _check_keys(path, z.files, keys)
            return {k: _check_finite(path, k, z[k]) for k in names}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: not a readable .npz file ({exc})") from exc
    except ValueError as exc:  # object arrays need pickle
        raise DataFormatError(f"{path}: {exc}") from exc


def open_hdf5(path: str | os.PathLike, error: type[Exception] = DataFormatError):
    """Open an HDF5 file read-only (an ``h5py.File``; the caller closes it).

    A missing file or one h5py cannot open raises ``error`` (a class taking one message, e.g.
    :class:`DataFormatError` or ``calibration.captures.CaptureFormatError``) naming the file.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise error(f"{path}: file does not exist")
    try:
        return h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError for most bad files, others for odd ones
        raise error(f"{path}: not a readable HDF5 file ({exc})") from exc


def read_hdf5_arrays(path: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read named datasets from the root of an HDF5 file."""
    import h5py

    path = Path(path)
    with open_hdf5(path) as fh:
        try:
            have = [k for k in fh.keys() if isinstance(fh[k], h5py.Dataset)]
            names = _check_keys(path, have, keys)
            return {k: _check_finite(path, k, np.asarray(fh[k][()])) for k in names}
        except DataFormatError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:  # h5py's errors on a damaged file
            raise DataFormatError(f"{path}: damaged HDF5 file ({type(exc).__name__}: {exc})") from exc
