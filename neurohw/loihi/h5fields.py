"""Strict readers of single HDF5 fields (netx files and neurohw's extension group).

Each function reads one dataset of a group and raises :class:`LoihiConfigError` naming
``where`` (file and layer) and the field when it is missing, a group, of the wrong type
(strings where numbers belong, booleans, NaN/inf), of the wrong size, non-integer where Loihi
needs integers, or outside int64. Nothing here knows about layer semantics.
"""
from __future__ import annotations

import h5py
import numpy as np

from .network import LoihiConfigError

#: Magnitudes above this are refused for any integer field (far beyond every Loihi range,
#: small enough that shifts and products in int64 cannot overflow).
INT_LIMIT = 2**31


def get(where: str, g, key: str, *, required: bool = True):
    """The value of dataset ``g[key]`` (None when absent and not ``required``)."""
    if not isinstance(g, h5py.Group):
        raise LoihiConfigError(where, key, "its parent must be an HDF5 group, found a dataset")
    if key not in g:
        if required:
            raise LoihiConfigError(where, key, "missing dataset")
        return None
    obj = g[key]
    if not isinstance(obj, h5py.Dataset):
        raise LoihiConfigError(where, key, "must be a dataset, found a group")
    try:
        return obj[()]
    except (OSError, TypeError, ValueError) as exc:
        raise LoihiConfigError(where, key, f"cannot be read ({exc})") from None


def text(where: str, g, key: str, *, required: bool = True) -> str | None:
    """A string dataset (bytes or str, scalar or the first element of a 1-D array)."""
    v = get(where, g, key, required=required)
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        if v.size == 0:
            raise LoihiConfigError(where, key, "empty")
        v = v.reshape(-1)[0]
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode("ascii", errors="replace")
    if isinstance(v, str):
        return v
    raise LoihiConfigError(where, key, f"must be a string, got {type(v).__name__}")


def int_array(where: str, g, key: str, *, ndim: int | None = None, required: bool = True) -> np.ndarray | None:
    """An integer-valued numeric array as int64. Float storage is accepted only when every value
    is a whole number (netx would silently truncate a fraction)."""
    v = get(where, g, key, required=required)
    if v is None:
        return None
    arr = np.asarray(v)
    if arr.dtype.kind not in "iuf":
        raise LoihiConfigError(where, key, f"must be numeric, got {_kind(arr)}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise LoihiConfigError(where, key, "contains NaN or infinity")
        if not np.all(arr == np.round(arr)):
            bad = arr.reshape(-1)[np.flatnonzero(arr.reshape(-1) != np.round(arr.reshape(-1)))[0]]
            raise LoihiConfigError(where, key, f"must hold integers (netx would silently truncate them), found {bad!r}")
    if arr.size and np.abs(arr.astype(np.float64)).max() >= INT_LIMIT:
        raise LoihiConfigError(where, key, f"values up to {np.abs(arr.astype(np.float64)).max():.4g} exceed ±2^31")
    if ndim is not None and arr.ndim != ndim:
        raise LoihiConfigError(where, key, f"must have {ndim} dimensions, got shape {arr.shape}")
    return arr.astype(np.int64)


def integer(where: str, g, key: str, default: int | None = None) -> int:
    """One integer (a scalar or a one-element array); ``default`` when absent (required if None)."""
    arr = int_array(where, g, key, required=default is None)
    if arr is None:
        return int(default)  # type: ignore[arg-type]
    if arr.size != 1:
        raise LoihiConfigError(where, key, f"must be one integer, got shape {arr.shape}")
    return int(arr.reshape(-1)[0])


def pair(where: str, g, key: str, default: int, *, minimum: int = 0) -> tuple[int, int]:
    """One or two integers ≥ ``minimum`` as a (y, x) pair; (default, default) when absent."""
    arr = int_array(where, g, key, required=False)
    if arr is None:
        return default, default
    arr = arr.reshape(-1)
    if arr.size not in (1, 2):
        raise LoihiConfigError(where, key, f"must be one or two integers, got {arr.tolist()}")
    if arr.min() < minimum:
        raise LoihiConfigError(where, key, f"must be ≥ {minimum}, got {arr.tolist()}")
    return (int(arr[0]), int(arr[0])) if arr.size == 1 else (int(arr[0]), int(arr[1]))


def shape(where: str, g, key: str = "shape", *, ndims: tuple[int, ...] = (1, 3)) -> tuple[int, ...]:
    """A neuron shape: positive integers, ``len`` in ``ndims``."""
    arr = int_array(where, g, key)
    s = tuple(int(v) for v in arr.reshape(-1))
    if len(s) not in ndims or min(s, default=0) < 1:
        raise LoihiConfigError(where, key, f"must be {' or '.join(f'{n} positive integers' for n in ndims)}, got {list(s)}")
    return s


def _kind(arr: np.ndarray) -> str:
    if arr.dtype.kind in "SUO":
        return "a string"
    if arr.dtype.kind == "b":
        return "booleans"
    return f"dtype {arr.dtype}"
