"""Lab captures: the versioned HDF5 schema, its one writer and its one strict reader.

The schema is documented field by field in ``docs/captures.md``; :data:`FIELDS` below is
the same table in code and is what both the writer and the reader check against.

* :class:`CaptureWriter` appends captures in blocks to chunked, compressed, resizable
  datasets and renames the file into place only when it closes cleanly (an interrupted
  capture never leaves a half-written file under the final name).
* :func:`open_captures` returns a :class:`CaptureFile` after validating the structure
  (schema name and version, required datasets for the device kind, shapes, dtypes,
  consistent counts) and, by default, scanning every dataset chunk by chunk for NaN/Inf,
  out-of-range values and inconsistent spike counts. Big datasets are never loaded whole:
  :meth:`CaptureFile.read` returns slices, :meth:`CaptureFile.iter_batches` streams them.

Every problem raises :class:`CaptureFormatError` naming the file and the dataset.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

SCHEMA_NAME = "neurohw-captures"
SCHEMA_VERSION = 1
DEVICE_KINDS = ("optics", "neuromorphic")
FRAME_KINDS = ("feature_map", "sensor_frame")

#: Target size of one HDF5 chunk in bytes (chunks span whole captures along axis 0).
CHUNK_BYTES = 1 << 20


class CaptureFormatError(ValueError):
    """A capture file (or data handed to the writer) does not follow the schema."""


@dataclass(frozen=True)
class Field:
    """One dataset of the schema.

    ``shape`` uses ``"N"`` for the capture axis and names for the other axes (sizes that
    must agree between datasets share a name); ``per_capture`` datasets have length N.
    """

    path: str
    dtype: str
    shape: tuple[str, ...]
    unit: str
    doc: str
    per_capture: bool = True
    min_value: float | None = None  # inclusive lower bound, checked when scanning
    positive: bool = False  # strictly > 0


FIELDS: dict[str, Field] = {
    f.path: f
    for f in (
        Field("labels", "int64", ("N",), "class id", "true label of each capture, 0 <= y < num_classes", min_value=0),
        Field("timestamps", "float64", ("N",), "s (Unix time, UTC)", "time each capture was taken"),
        Field("inputs/images", "float32", ("N", "C_in", "H_in", "W_in"), "relative intensity", "the input shown"),
        Field("inputs/dataset_index", "int64", ("N",), "index", "index of the input in a named dataset split", min_value=0),
        Field("inputs/spikes", "uint8", ("N", "T_in", "C_in_spk"), "spikes per bin", "input spike trains (neuromorphic)"),
        Field("measured/frames", "float32", ("N", "C", "H", "W"), "attr unit", "measured sensor frames or feature maps"),
        Field("measured/exposure_s", "float64", ("N",), "s", "exposure time of each capture", positive=True),
        Field("measured/gain", "float64", ("N",), "attr unit", "sensor analogue gain of each capture", positive=True),
        Field("measured/spike_counts", "int32", ("N", "C_out"), "spikes", "output spike count per neuron", min_value=0),
        Field("measured/spike_raster", "uint8", ("N", "T_out", "C_out"), "spikes per bin", "output spike raster"),
        Field("calibration/dark_frames", "float32", ("D", "C", "H", "W"), "attr unit", "frames with no input light", per_capture=False),
        Field("calibration/psf", "float32", ("K", "H_psf", "W_psf"), "relative intensity", "measured PSFs (laser), dark-subtracted", per_capture=False),
        Field("calibration/psf_positions", "float32", ("K", "YX"), "sensor pixels (y, x) from the optical axis",
              "where each laser PSF was captured (matches PSFs to tiles; optional)", per_capture=False),
        Field("device/wavelengths_nm", "float64", ("L",), "nm", "illumination wavelengths", per_capture=False, positive=True),
    )
}

#: Which datasets a device kind must have; ``any_of`` groups need at least one member.
REQUIRED = {
    "optics": ("labels", "timestamps", "measured/frames", "measured/exposure_s", "measured/gain", "device/wavelengths_nm"),
    "neuromorphic": ("labels", "timestamps"),
}
ANY_OF = {
    "optics": (("inputs/images", "inputs/dataset_index"),),
    "neuromorphic": (
        ("inputs/images", "inputs/dataset_index", "inputs/spikes"),
        ("measured/spike_counts", "measured/spike_raster"),
    ),
}
ROOT_ATTRS = ("schema", "schema_version", "device_kind", "device_id", "n_captures", "num_classes", "created_utc")


def _err(path: Path | str, where: str, msg: str) -> CaptureFormatError:
    return CaptureFormatError(f"{path}: {where}: {msg}")


def _chunk_rows(item_shape: Sequence[int], itemsize: int) -> int:
    per = int(np.prod(item_shape, dtype=np.int64)) * itemsize if item_shape else itemsize
    return max(1, min(4096, CHUNK_BYTES // max(per, 1)))


def _as_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _as_str(v.item())
    return str(v)


# --------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------


class CaptureWriter:
    """Write a capture file in schema version :data:`SCHEMA_VERSION`.

    Use as a context manager; call :meth:`append` with blocks of captures (each a dict of
    per-capture arrays whose keys are the :data:`FIELDS` paths, e.g. ``"measured/frames"``),
    optionally :meth:`set_dark_frames`, :meth:`set_psf`. The file appears under ``path``
    only after a clean exit, validated by :func:`open_captures`.

    Args:
        path: destination ``.h5`` file.
        device_kind: ``"optics"`` or ``"neuromorphic"``.
        device_id: identifier of the physical (or simulated) device, non-empty.
        num_classes: number of label classes.
        frame_unit: unit of ``measured/frames`` and dark frames (e.g. ``"DN"``).
        frame_kind: ``"feature_map"`` (already digitally combined) or ``"sensor_frame"``.
        gain_unit: unit of ``measured/gain`` (e.g. ``"DN/e-"``).
        wavelengths_nm: illumination wavelengths (required for optics).
        dataset / dataset_split: name and split of the dataset that ``inputs/dataset_index``
            points into (e.g. ``"mnist5k"``, ``"test"``).
        attrs: extra JSON-able root attributes (stored under ``extra`` as JSON).
        provenance: stored as JSON in the ``provenance`` root attribute.
        compression: gzip level (0 disables compression).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device_kind: str,
        device_id: str,
        num_classes: int,
        frame_unit: str = "DN",
        frame_kind: str = "feature_map",
        gain_unit: str = "DN/e-",
        wavelengths_nm: Sequence[float] | None = None,
        dataset: str | None = None,
        dataset_split: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
        compression: int = 4,
    ):
        if device_kind not in DEVICE_KINDS:
            raise CaptureFormatError(f"{path}: device_kind must be one of {DEVICE_KINDS}, got {device_kind!r}")
        if frame_kind not in FRAME_KINDS:
            raise CaptureFormatError(f"{path}: frame_kind must be one of {FRAME_KINDS}, got {frame_kind!r}")
        if not str(device_id):
            raise CaptureFormatError(f"{path}: device_id must be a non-empty string")
        if int(num_classes) < 1:
            raise CaptureFormatError(f"{path}: num_classes must be >= 1, got {num_classes}")
        self.path = Path(path)
        self.device_kind = device_kind
        self.root_attrs = {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "device_kind": device_kind,
            "device_id": str(device_id),
            "num_classes": int(num_classes),
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "extra": json.dumps(dict(attrs or {}), default=str),
            "provenance": json.dumps(dict(provenance or {}), default=str),
        }
        self.frame_attrs = {"unit": frame_unit, "kind": frame_kind}
        self.gain_unit = gain_unit
        self.dataset = dataset
        self.dataset_split = dataset_split
        self.wavelengths_nm = None if wavelengths_nm is None else np.asarray(wavelengths_nm, dtype=np.float64)
        self.compression = int(compression)
        self._fh = None
        self._tmp: Path | None = None
        self._n = 0
        self._keys: tuple[str, ...] | None = None
        self._statics: dict[str, tuple[np.ndarray, dict]] = {}

    # -- context management ------------------------------------------------------------
    def __enter__(self) -> "CaptureWriter":
        import tempfile

        import h5py

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._fh = h5py.File(self._tmp, "w")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
            self._fh.close()
            self._fh = None
            if exc_type is None:
                open_captures(self._tmp, scan=False).close()
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self._tmp, 0o666 & ~umask)
                os.replace(self._tmp, self.path)
        except BaseException:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            self._tmp.unlink(missing_ok=True)
            raise
        if exc_type is not None:
            self._tmp.unlink(missing_ok=True)

    # -- data ----------------------------------------------------------------------------
    def _dataset_opts(self, item_shape: tuple[int, ...], dtype: np.dtype, rows: int | None = None) -> dict:
        r = _chunk_rows(item_shape, dtype.itemsize)
        opts: dict[str, Any] = {"chunks": (r if rows is None else max(1, min(r, rows)), *item_shape)}
        if self.compression > 0:
            opts.update(compression="gzip", compression_opts=self.compression, shuffle=True)
        return opts

    def append(self, block: Mapping[str, Any]) -> int:
        """Append a block of captures; returns the number of captures written so far.

        ``block`` maps per-capture field paths to arrays whose first axis is the block
        size. The first block fixes which fields the file has; later blocks must give the
        same keys. Values are cast to the schema dtype; NaN/Inf are refused.
        """
        if self._fh is None:
            raise RuntimeError("CaptureWriter.append outside its `with` block")
        keys = tuple(sorted(block))
        unknown = [k for k in keys if k not in FIELDS or not FIELDS[k].per_capture]
        if unknown:
            raise CaptureFormatError(f"{self.path}: unknown per-capture field(s) {unknown}; known: "
                                     f"{sorted(k for k, f in FIELDS.items() if f.per_capture)}")
        if self._keys is None:
            self._keys = keys
        elif keys != self._keys:
            raise CaptureFormatError(f"{self.path}: block has fields {list(keys)}, earlier blocks had {list(self._keys)}")
        arrays = {k: self._coerce(k, block[k]) for k in keys}
        sizes = {k: len(a) for k, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise CaptureFormatError(f"{self.path}: block fields differ in length: {sizes}")
        m = next(iter(sizes.values()))
        for k, a in arrays.items():
            if k not in self._fh:
                d = self._fh.create_dataset(k, shape=(0, *a.shape[1:]), maxshape=(None, *a.shape[1:]), dtype=a.dtype,
                                            **self._dataset_opts(a.shape[1:], a.dtype))
                self._field_attrs(k, d)
            d = self._fh[k]
            if d.shape[1:] != a.shape[1:]:
                raise CaptureFormatError(f"{self.path}: /{k}: block item shape {a.shape[1:]} != earlier {d.shape[1:]}")
            d.resize(self._n + m, axis=0)
            d[self._n:] = a
        self._n += m
        return self._n

    def _field_attrs(self, key: str, d) -> None:
        f = FIELDS[key]
        d.attrs["unit"] = f.unit
        if key == "measured/frames":
            d.attrs.update(self.frame_attrs)
        elif key == "measured/gain":
            d.attrs["unit"] = self.gain_unit
        elif key == "inputs/dataset_index":
            d.attrs["dataset"] = self.dataset or ""
            d.attrs["split"] = self.dataset_split or ""

    def _coerce(self, key: str, value: Any) -> np.ndarray:
        f = FIELDS[key]
        a = np.asarray(value)
        if a.ndim != len(f.shape):
            raise CaptureFormatError(f"{self.path}: /{key}: expected {len(f.shape)}-D {f.shape}, got shape {a.shape}")
        if np.issubdtype(np.dtype(f.dtype), np.integer):
            if a.dtype.kind == "f":
                if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                    raise CaptureFormatError(f"{self.path}: /{key}: integer field given non-integer values")
            elif a.dtype.kind not in "iub":
                raise CaptureFormatError(f"{self.path}: /{key}: expected integers, got dtype {a.dtype}")
            info = np.iinfo(np.dtype(f.dtype))
            if a.size and (a.min() < info.min or a.max() > info.max):
                raise CaptureFormatError(f"{self.path}: /{key}: values outside the range of {f.dtype}")
        elif a.dtype.kind not in "fiub":
            raise CaptureFormatError(f"{self.path}: /{key}: expected numbers, got dtype {a.dtype}")
        a = np.ascontiguousarray(a, dtype=f.dtype)
        _check_values(self.path, key, a, f)
        return a

    def set_dark_frames(self, frames: Any, *, exposure_s: float, gain: float) -> None:
        """Dark frames ``(D, C, H, W)`` taken with the same exposure/gain as recorded in attrs."""
        a = self._coerce_static("calibration/dark_frames", frames)
        self._statics["calibration/dark_frames"] = (a, {"unit": self.frame_attrs["unit"], "exposure_s": float(exposure_s),
                                                        "gain": float(gain)})

    def set_psf(self, psf: Any, *, wavelength_nm: float, pixel_pitch_um: float, positions: Any = None) -> None:
        """Measured PSFs ``(K, H_psf, W_psf)`` (laser captures), any K.

        ``positions`` (K, 2): where each PSF was captured, sensor pixels (y, x) from the optical
        axis; the calibration matches PSFs to tiles by it (without it only K == tiles, in tile order).
        """
        a = self._coerce_static("calibration/psf", psf)
        if positions is not None:
            pa = self._coerce_static("calibration/psf_positions", positions)
            if pa.shape != (len(a), 2):
                raise CaptureFormatError(f"{self.path}: /calibration/psf_positions must be ({len(a)}, 2), got {pa.shape}")
            self._statics["calibration/psf_positions"] = (pa, {"unit": FIELDS["calibration/psf_positions"].unit})
        self._statics["calibration/psf"] = (a, {"unit": FIELDS["calibration/psf"].unit, "wavelength_nm": float(wavelength_nm),
                                                "pixel_pitch_um": float(pixel_pitch_um)})

    def _coerce_static(self, key: str, value: Any) -> np.ndarray:
        return self._coerce(key, value)

    def _finish(self) -> None:
        fh = self._fh
        if self._n == 0:
            raise CaptureFormatError(f"{self.path}: no captures were appended")
        if self.wavelengths_nm is not None:
            self._statics["device/wavelengths_nm"] = (self._coerce("device/wavelengths_nm", self.wavelengths_nm), {"unit": "nm"})
        for key, (a, attrs) in self._statics.items():
            d = fh.create_dataset(key, data=a, **(self._dataset_opts(a.shape[1:], a.dtype, len(a)) if a.ndim > 1 else {}))
            d.attrs.update(attrs)
        fh.attrs.update(self.root_attrs)
        fh.attrs["n_captures"] = int(self._n)


# --------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------


def _check_values(path: Path | str, key: str, a: np.ndarray, f: Field, offset: int = 0) -> None:
    """Finite values, lower bounds; ``offset`` is the index of ``a[0]`` (for messages)."""
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            i = offset + int(np.argwhere(bad)[0][0])
            raise _err(path, f"/{key}", f"contains NaN or Inf (first at index {i})")
    if f.positive and a.size and not np.all(a > 0):
        i = offset + int(np.argwhere(~(a > 0))[0][0])
        raise _err(path, f"/{key}", f"values must be > 0 (first violation at index {i})")
    if f.min_value is not None and a.size and a.min() < f.min_value:
        i = offset + int(np.argwhere(a < f.min_value)[0][0])
        raise _err(path, f"/{key}", f"values must be >= {f.min_value} (index {i} has {a.min()})")


class CaptureFile:
    """A validated, open capture file. Use :func:`open_captures` to get one.

    Small per-capture vectors (labels, timestamps, exposure, gain, dataset indices) are
    loaded on open; frames, images and spikes are read on demand with :meth:`read` or
    :meth:`iter_batches`. Close it (or use it as a context manager) when done.
    """

    def __init__(self, path: Path, fh, dims: dict[str, int]):
        self.path = path
        self._fh = fh
        self.dims = dims
        a = fh.attrs
        self.schema_version = int(a["schema_version"])
        self.device_kind = _as_str(a["device_kind"])
        self.device_id = _as_str(a["device_id"])
        self.num_classes = int(a["num_classes"])
        self.created_utc = _as_str(a["created_utc"])
        self.n = int(a["n_captures"])
        self.provenance = _json_attr(path, a, "provenance")
        self.extra = _json_attr(path, a, "extra")
        self.fields = tuple(k for k in FIELDS if k in fh)
        self.labels = self._small("labels")
        self.timestamps = self._small("timestamps")
        self.exposure_s = self._small("measured/exposure_s")
        self.gain = self._small("measured/gain")
        self.dataset_index = self._small("inputs/dataset_index")

    # -- basic ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    def __enter__(self) -> "CaptureFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def has(self, key: str) -> bool:
        return key in self.fields

    def attrs(self, key: str) -> dict:
        """The attributes of dataset ``key`` as plain Python values."""
        self._need(key)
        return {k: (_as_str(v) if isinstance(v, (bytes, str)) else np.asarray(v).tolist()) for k, v in self._fh[key].attrs.items()}

    @property
    def frame_shape(self) -> tuple[int, ...] | None:
        """``(C, H, W)`` of ``measured/frames``, or None."""
        return tuple(self._fh["measured/frames"].shape[1:]) if self.has("measured/frames") else None

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return tuple(self._fh["inputs/images"].shape[1:]) if self.has("inputs/images") else None

    @property
    def dataset_name(self) -> str | None:
        if not self.has("inputs/dataset_index"):
            return None
        return _as_str(self._fh["inputs/dataset_index"].attrs.get("dataset", "")) or None

    @property
    def dataset_split(self) -> str | None:
        if not self.has("inputs/dataset_index"):
            return None
        return _as_str(self._fh["inputs/dataset_index"].attrs.get("split", "")) or None

    @property
    def wavelengths_nm(self) -> np.ndarray | None:
        return self.read_static("device/wavelengths_nm") if self.has("device/wavelengths_nm") else None

    def _need(self, key: str) -> None:
        if key not in FIELDS:
            raise KeyError(f"{key!r} is not a field of the capture schema; fields: {sorted(FIELDS)}")
        if key not in self.fields:
            raise _err(self.path, f"/{key}", "not present in this file")
        if self._fh is None:
            raise ValueError(f"{self.path}: capture file is closed")

    def _small(self, key: str) -> np.ndarray | None:
        if key not in self.fields:
            return None
        a = _read(self.path, self._fh[key], key, slice(None))
        _check_values(self.path, key, a, FIELDS[key])
        return a

    # -- streaming access ----------------------------------------------------------------
    def read(self, key: str, index: slice | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Read ``key`` for the captures at ``index`` (a slice, or integer indices in any order).

        Values are checked again (finite, bounds) so a file modified after opening still
        fails cleanly. Returns a new array in the schema dtype.
        """
        self._need(key)
        f = FIELDS[key]
        if not f.per_capture:
            return self.read_static(key)
        idx = slice(None) if index is None else index
        if isinstance(idx, slice):
            a = _read(self.path, self._fh[key], key, idx)
            off = idx.indices(self.n)[0]
        else:
            ii = np.asarray(idx, dtype=np.int64).reshape(-1)
            if ii.size and (ii.min() < -self.n or ii.max() >= self.n):
                raise IndexError(f"{self.path}: /{key}: index out of range for {self.n} captures")
            ii = np.where(ii < 0, ii + self.n, ii)
            uniq, inv = np.unique(ii, return_inverse=True)
            a = _read(self.path, self._fh[key], key, uniq)[inv] if uniq.size else np.empty((0, *self._fh[key].shape[1:]), f.dtype)
            off = 0
        _check_values(self.path, key, a, f, offset=off)
        return a

    def read_static(self, key: str) -> np.ndarray:
        """Read a non-per-capture dataset (dark frames, PSFs, wavelengths) in full."""
        self._need(key)
        a = _read(self.path, self._fh[key], key, slice(None))
        _check_values(self.path, key, a, FIELDS[key])
        return a

    def iter_batches(
        self, keys: Sequence[str], batch_size: int = 256, indices: Sequence[int] | np.ndarray | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Stream ``keys`` in batches of ``batch_size`` captures (in ``indices`` order, default all).

        Each batch is a dict with the requested keys plus ``"index"`` (the capture indices).
        Contiguous runs read as slices, so streaming a whole file costs one pass.
        """
        order = np.arange(self.n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        for s in range(0, len(order), batch_size):
            ii = order[s:s + batch_size]
            span = int(ii[-1] - ii[0] + 1) if len(ii) else 0
            increasing = len(ii) > 0 and bool(np.all(np.diff(ii) > 0))
            if increasing and span <= 2 * len(ii):
                # one contiguous read covering the batch (cheap in HDF5), then pick the rows
                sl = slice(int(ii[0]), int(ii[-1]) + 1)
                pick = ii - ii[0]
                out = {k: (lambda a: a if span == len(ii) else a[pick])(self.read(k, sl)) for k in keys}
            else:
                out = {k: self.read(k, ii) for k in keys}
            out["index"] = ii
            yield out

    def summary(self) -> dict:
        """A JSON-able description: kind, id, counts, shapes, units."""
        return {
            "path": str(self.path),
            "schema_version": self.schema_version,
            "device_kind": self.device_kind,
            "device_id": self.device_id,
            "n_captures": self.n,
            "num_classes": self.num_classes,
            "fields": {k: list(self._fh[k].shape) for k in self.fields},
            "dataset": self.dataset_name,
            "dataset_split": self.dataset_split,
        }


def _json_attr(path: Path, attrs, name: str) -> dict:
    if name not in attrs:
        return {}
    try:
        v = json.loads(_as_str(attrs[name]))
    except (json.JSONDecodeError, TypeError) as exc:
        raise _err(path, f"attribute {name!r}", f"not valid JSON ({exc})") from exc
    if not isinstance(v, dict):
        raise _err(path, f"attribute {name!r}", "must hold a JSON object")
    return v


def _read(path: Path, d, key: str, sel) -> np.ndarray:
    try:
        return np.asarray(d[sel])
    except Exception as exc:  # h5py raises OSError/ValueError/KeyError... on corrupt chunks or filters
        raise _err(path, f"/{key}", f"cannot be read ({type(exc).__name__}: {exc})") from exc


def open_captures(path: str | os.PathLike, *, scan: bool = True, scan_batch: int = 1024) -> CaptureFile:
    """Open and validate a capture file (schema version :data:`SCHEMA_VERSION`).

    Structure (attributes, required datasets, dtypes, shapes, counts) is always checked.
    With ``scan=True`` every dataset is also read once, ``scan_batch`` captures at a time
    (memory stays bounded for files bigger than RAM), checking NaN/Inf, value bounds and
    that ``measured/spike_counts`` equals the raster summed over time.
    Raises :class:`CaptureFormatError` naming the file and the dataset.
    """
    from neurohw.data.readers import open_hdf5

    path = Path(path)
    fh = open_hdf5(path, CaptureFormatError)
    try:
        dims = _validate_structure(path, fh)
        cf = CaptureFile(path, fh, dims)
        if cf.labels is not None and cf.labels.size and cf.labels.max() >= cf.num_classes:
            i = int(np.argmax(cf.labels >= cf.num_classes))
            raise _err(path, "/labels", f"label {cf.labels[i]} at index {i} is >= num_classes={cf.num_classes}")
        if scan:
            _scan(cf, scan_batch)
        return cf
    except CaptureFormatError:
        fh.close()
        raise
    except (RuntimeError, OSError, KeyError, ValueError, TypeError) as exc:
        # h5py reports corrupt object headers, B-trees or heaps in the middle of a walk
        # as any of these (e.g. "Object visitation failed (addr overflow ...)").
        fh.close()
        raise CaptureFormatError(f"{path}: corrupt HDF5 structure ({type(exc).__name__}: {exc})") from exc
    except BaseException:
        fh.close()
        raise


def _validate_structure(path: Path, fh) -> dict[str, int]:
    import h5py

    a = fh.attrs
    try:
        schema = _as_str(a["schema"]) if "schema" in a else None
    except Exception as exc:
        raise _err(path, "attribute 'schema'", f"unreadable ({exc})") from exc
    if schema != SCHEMA_NAME:
        raise _err(path, "attribute 'schema'", f"expected {SCHEMA_NAME!r}, got {schema!r}: not a neurohw capture file")
    for name in ROOT_ATTRS:
        if name not in a:
            raise _err(path, f"attribute {name!r}", "missing from the file root")
    try:
        version = np.asarray(a["schema_version"])
        ok = version.shape == () and version.dtype.kind in "iu"
    except Exception:
        ok = False
    if not ok:
        raise _err(path, "attribute 'schema_version'", f"must be an integer, got {a['schema_version']!r}")
    version = int(version)
    if version != SCHEMA_VERSION:
        newer = " (written by a newer neurohw; upgrade)" if version > SCHEMA_VERSION else ""
        raise _err(path, "attribute 'schema_version'", f"unsupported version {version}; this reader reads {SCHEMA_VERSION}{newer}")
    kind = _as_str(a["device_kind"])
    if kind not in DEVICE_KINDS:
        raise _err(path, "attribute 'device_kind'", f"must be one of {DEVICE_KINDS}, got {kind!r}")
    if not _as_str(a["device_id"]).strip():
        raise _err(path, "attribute 'device_id'", "must be a non-empty string")
    for name in ("n_captures", "num_classes"):
        v = np.asarray(a[name])
        if v.shape != () or v.dtype.kind not in "iu" or int(v) < 1:
            raise _err(path, f"attribute {name!r}", f"must be an integer >= 1, got {a[name]!r}")
    n = int(a["n_captures"])

    unknown = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name not in FIELDS:
            unknown.append(name)

    fh.visititems(visit)
    if unknown:
        raise _err(path, f"/{unknown[0]}", f"not part of schema version {SCHEMA_VERSION} (fields: {sorted(FIELDS)})")
    present = {}
    for key in FIELDS:
        if key in fh:
            obj = fh[key]
            if not isinstance(obj, h5py.Dataset):
                raise _err(path, f"/{key}", "must be a dataset, found a group")
            present[key] = obj
    for key in REQUIRED[kind]:
        if key not in present:
            raise _err(path, f"/{key}", f"required dataset missing (device_kind={kind!r})")
    for group in ANY_OF[kind]:
        if not any(k in present for k in group):
            raise _err(path, "/" + " or /".join(group), f"at least one of these datasets is required (device_kind={kind!r})")

    dims: dict[str, int] = {"N": n}
    for key, d in present.items():
        f = FIELDS[key]
        if d.dtype != np.dtype(f.dtype):
            raise _err(path, f"/{key}", f"dtype {d.dtype} does not match the schema ({f.dtype})")
        if len(d.shape) != len(f.shape):
            raise _err(path, f"/{key}", f"shape {d.shape} is not {len(f.shape)}-D {f.shape}")
        for axis, (name, size) in enumerate(zip(f.shape, d.shape)):
            if name == "N" and size != n:
                raise _err(path, f"/{key}", f"has {size} captures along axis 0 but n_captures is {n}")
            if size < 1:
                raise _err(path, f"/{key}", f"axis {axis} ({name}) is empty")
            if name in dims and dims[name] != size:
                raise _err(path, f"/{key}", f"axis {axis} ({name}) is {size}, inconsistent with {dims[name]} elsewhere in the file")
            dims[name] = size
    if "measured/frames" in present:
        fa = present["measured/frames"].attrs
        fk = _as_str(fa.get("kind", ""))
        if fk not in FRAME_KINDS:
            raise _err(path, "/measured/frames", f"attribute 'kind' must be one of {FRAME_KINDS}, got {fk!r}")
        if not _as_str(fa.get("unit", "")):
            raise _err(path, "/measured/frames", "attribute 'unit' is missing")
    return dims


def _scan(cf: CaptureFile, batch: int) -> None:
    big = [k for k in cf.fields if FIELDS[k].per_capture and len(FIELDS[k].shape) > 1]
    for k in cf.fields:
        if not FIELDS[k].per_capture:
            cf.read_static(k)
    step = max(1, batch)
    for s in range(0, cf.n, step):
        sl = slice(s, min(cf.n, s + step))
        got = {k: cf.read(k, sl) for k in big}
        if "measured/spike_counts" in got and "measured/spike_raster" in got:
            summed = got["measured/spike_raster"].astype(np.int64).sum(axis=1)
            bad = np.flatnonzero((summed != got["measured/spike_counts"]).any(axis=1))
            if bad.size:
                raise _err(cf.path, "/measured/spike_counts",
                           f"capture {s + int(bad[0])} disagrees with /measured/spike_raster summed over time")
