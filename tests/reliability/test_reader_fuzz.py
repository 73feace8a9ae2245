"""Fuzzing every file reader not covered elsewhere (netx: tests/loihi/test_loihi_reader_fuzz.py,
captures: tests/calibration/test_calibration_captures.py).

Each property: a malformed file gives the reader's project error with the file's name in the
message (and, where the reader knows it, the field), or a result that is valid by the reader's
own contract — never another exception. The CLI-level cases run the command in-process and
check exit 2 with the file named, or exit 0, and a sentinel output untouched on failure.
"""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurohw.data.readers import (DataFormatError, read_cifar10_batch, read_hdf5_arrays, read_idx,
                                  read_mnist_idx_pair, read_npz_arrays)
from neurohw.errors import is_project_error

# Examples are the same on every suite run (tests/conftest.py's "suite" profile); HYPOTHESIS_PROFILE=explore draws new ones.
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SENTINEL = b"a good result that no failing run may touch\n"


def _mutate(data, raw: bytes) -> bytes:
    """One to three byte-level mutations: truncate, overwrite a span, insert, append."""
    b = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        op = data.draw(st.sampled_from(["truncate", "overwrite", "insert", "append"]), label="op")
        pos = data.draw(st.integers(0, max(len(b) - 1, 0)), label="pos")
        junk = data.draw(st.binary(min_size=1, max_size=16), label="junk")
        if op == "truncate":
            del b[pos:]
        elif op == "overwrite":
            b[pos:pos + len(junk)] = junk
        elif op == "insert":
            b[pos:pos] = junk
        else:
            b += junk
    return bytes(b)


def _names_file(exc: BaseException, path: Path) -> None:
    assert is_project_error(exc), f"{type(exc).__name__} is not a project error: {exc}"
    assert str(path) in str(exc) or path.name in str(exc), str(exc)


# --------------------------------------------------------------------------- IDX
def _idx_bytes(a: np.ndarray, code: int) -> bytes:
    return struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


@FUZZ
@given(data=st.data())
def test_idx_reader_fuzz(tmp_path_factory, data):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = _mutate(data, _idx_bytes(a, 0x08))
    path = tmp_path_factory.mktemp("idx") / "f.idx"
    path.write_bytes(gzip.compress(raw) if data.draw(st.booleans(), label="gzip") else raw)
    try:
        out = read_idx(path)
    except DataFormatError as exc:
        _names_file(exc, path)
        return
    # a result is exactly what its (possibly mutated) header declares
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    assert out.shape == dims and out.size * out.itemsize == len(raw) - 4 - 4 * ndim


@FUZZ
@given(data=st.data())
def test_idx_pair_fuzz(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("pair")
    n = data.draw(st.integers(0, 4), label="n")
    imgs = np.zeros((n, 3, 3), np.uint8)
    labels = np.asarray(data.draw(st.lists(st.integers(0, 255), min_size=0, max_size=5), label="labels"), np.uint8)
    (d / "i.idx").write_bytes(_idx_bytes(imgs, 0x08))
    (d / "l.idx").write_bytes(_idx_bytes(labels, 0x08) if labels.ndim else b"")
    try:
        x, y = read_mnist_idx_pair(d / "i.idx", d / "l.idx")
    except DataFormatError as exc:
        assert "i.idx" in str(exc) or "l.idx" in str(exc)
        return
    assert x.shape == (n, 1, 3, 3) and x.dtype == np.float32 and y.shape == (n,) and y.dtype == np.int64


# --------------------------------------------------------------------------- CIFAR-10
@FUZZ
@given(data=st.data())
def test_cifar_reader_fuzz(tmp_path_factory, data):
    n = data.draw(st.integers(0, 3), label="records")
    rec = [bytes([data.draw(st.integers(0, 255), label="label")]) + bytes(3072) for _ in range(n)]
    raw = b"".join(rec)
    if data.draw(st.booleans(), label="mutate"):
        raw = _mutate(data, raw or b"\x00")
    path = tmp_path_factory.mktemp("cifar") / "data_batch_1.bin"
    path.write_bytes(raw)
    try:
        x, y = read_cifar10_batch(path)
    except DataFormatError as exc:
        _names_file(exc, path)
        return
    assert len(raw) % 3073 == 0 and len(raw) > 0
    assert x.shape == (len(raw) // 3073, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 9


# --------------------------------------------------------------------------- npz / HDF5 arrays and dataset files
_DTYPES = [np.uint8, np.int64, np.float32, np.float64, np.bool_, np.complex64, "S3", np.uint64]
_VALUES = [0, 1, 0.5, -1, 3, 42, 255, 2**63, np.nan, np.inf, 1e300]


def _array(data, label: str) -> np.ndarray:
    shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=4), label=f"{label} shape"))
    dtype = data.draw(st.sampled_from(_DTYPES), label=f"{label} dtype")
    fill = data.draw(st.sampled_from(_VALUES), label=f"{label} value")
    a = np.zeros(shape, dtype=np.float64)
    if a.size:
        a.flat[data.draw(st.integers(0, a.size - 1), label=f"{label} where")] = fill
    if dtype == "S3":
        return np.full(shape, b"ab", dtype="S3")
    with np.errstate(invalid="ignore", over="ignore"):
        return a.astype(dtype)


def _dataset_arrays(data) -> dict:
    """A valid 10-class dataset, then one to three of its arrays replaced, dropped or added."""
    y = np.arange(20) % 10
    arrs = {"x_train": np.zeros((20, 4, 4), np.float32), "y_train": y, "x_test": np.zeros((10, 4, 4), np.uint8),
            "y_test": y[:10]}
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        key = data.draw(st.sampled_from(["x_train", "y_train", "x_test", "y_test", "num_classes"]), label="key")
        if data.draw(st.booleans(), label="drop"):
            arrs.pop(key, None)
        else:
            arrs[key] = _array(data, key)
    return arrs


def _write(path: Path, arrs: dict) -> None:
    if path.suffix == ".npz":
        np.savez(path, **arrs)
    else:
        with h5py.File(path, "w") as f:
            for k, v in arrs.items():
                f[k] = v


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".npz", ".h5"]))
def test_array_readers_fuzz(tmp_path_factory, data, suffix):
    """read_npz_arrays / read_hdf5_arrays: numeric, finite arrays, or DataFormatError naming the file."""
    path = tmp_path_factory.mktemp("arr") / f"a{suffix}"
    _write(path, _dataset_arrays(data))
    if data.draw(st.booleans(), label="corrupt"):
        path.write_bytes(_mutate(data, path.read_bytes()))
    reader = read_npz_arrays if suffix == ".npz" else read_hdf5_arrays
    try:
        out = reader(path, ("x_train", "y_train") if data.draw(st.booleans(), label="keys") else None)
    except DataFormatError as exc:
        _names_file(exc, path)
        return
    for v in out.values():
        assert v.dtype.kind in "biuf" and (v.dtype.kind != "f" or np.isfinite(v).all())


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".npz", ".h5"]))
def test_dataset_file_fuzz(tmp_path_factory, data, suffix):
    """load_dataset on a file: images finite in [0, 1], labels 0..K-1 — or DataFormatError naming it."""
    from neurohw.data import load_dataset

    path = tmp_path_factory.mktemp("ds") / f"d{suffix}"
    _write(path, _dataset_arrays(data))
    try:
        ds = load_dataset(str(path))
    except DataFormatError as exc:
        _names_file(exc, path)
        return
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test), (ds.x_val, ds.y_val)):
        assert x.dtype == torch.float32 and x.ndim == 4 and torch.isfinite(x).all()
        assert (x.numel() == 0 or (x.min() >= 0 and x.max() <= 1)) and len(x) == len(y)
        assert y.dtype == torch.int64 and (y.numel() == 0 or (y.min() >= 0 and y.max() < ds.num_classes))


# --------------------------------------------------------------------------- checkpoints and artifacts
@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """(file, sidecar fields to tamper with, the loader a command calls, a check of the loaded object)."""
    from neurohw.io import save_artifact
    from neurohw.models import build_teacher
    from snn.experiments import load_model, save_model
    from snn.model import BWSNN, BWSNNConfig

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("art")
    teacher = save_artifact(build_teacher("lenet5").eval(), d / "teacher.safetensors")
    snn = save_model(d / "snn.safetensors", BWSNN(BWSNNConfig(arch="mlp", channels=(8,), steps=2), in_shape=(1, 8, 8)))
    x = torch.zeros(1, 1, 28, 28)
    return {
        "teacher": (teacher, [("kind",), ("version",), ("config",), ("config", "model"), ("config", "num_classes"),
                              ("config", "in_channels"), ("extra",)], None, lambda m: torch.isfinite(m(x)).all()),
        "bwsnn": (snn, [("config",), ("config", "bwsnn"), ("config", "bwsnn", "steps"), ("config", "bwsnn", "channels"),
                        ("config", "bwsnn", "arch"), ("config", "in_shape")], load_model,
                  lambda m: torch.isfinite(m(torch.zeros(1, *m.in_shape))).all()),
    }


_JSON_VALUES = [None, True, -1, 0, 1.5, "x", "", [], [1, "a"], [0, 8, 8], {}, {"a": 1}, 10**30]


@FUZZ
@given(data=st.data(), which=st.sampled_from(["teacher", "bwsnn"]))
def test_checkpoint_and_artifact_fuzz(artifacts, tmp_path_factory, data, which):
    """Corrupt weights or sidecar → CheckpointError (or another project error) naming a file, or a
    model whose output is finite."""
    from neurohw.io import load_artifact, load_checkpoint, sidecar_path

    src, fields, loader, check = artifacts[which]
    d = tmp_path_factory.mktemp("ck")
    path, side = d / src.name, d / src.with_suffix(".json").name
    path.write_bytes(src.read_bytes())
    meta = json.loads(sidecar_path(src).read_text())
    what = data.draw(st.sampled_from(["weights", "sidecar-bytes", "sidecar-field", "sidecar-missing"]), label="what")
    if what == "weights":
        path.write_bytes(_mutate(data, path.read_bytes()))
        side.write_text(json.dumps(meta))
    elif what == "sidecar-bytes":
        side.write_bytes(_mutate(data, json.dumps(meta).encode()))
    elif what == "sidecar-field":
        key = data.draw(st.sampled_from(fields), label="field")
        target = meta
        for k in key[:-1]:
            target = target.setdefault(k, {}) if isinstance(target, dict) else {}
        target[key[-1]] = data.draw(st.sampled_from(_JSON_VALUES), label="value")
        side.write_text(json.dumps(meta))
    for load in filter(None, (load_checkpoint, load_artifact, loader)):
        try:
            out = load(path)
        except Exception as exc:  # noqa: BLE001 — the property is about the exception's type and text
            assert is_project_error(exc), f"{load.__name__}: {type(exc).__name__}: {exc}"
            assert path.name in str(exc) or side.name in str(exc), str(exc)
            continue
        if load is load_checkpoint:
            tensors, m = out
            assert isinstance(m, dict) and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
        else:
            assert check(out)


# --------------------------------------------------------------------------- JSON configs
_FIELDS = ["arch", "channels", "steps", "encoding", "binary", "int8_layers", "epochs", "batch_size", "lr",
           "threshold", "voltage_decay", "current_decay", "surrogate", "seed", "n_train", "kd", "no_such_field"]


@FUZZ
@given(data=st.data())
def test_snn_config_fuzz(tmp_path_factory, data):
    """An snn config file with fields set to wrong types/ranges: UsageError naming the file and field,
    or a config every field of which is of its declared type."""
    from neurohw.errors import UsageError
    from snn.cli import _parse_config
    from snn.model import BWSNNConfig

    path = tmp_path_factory.mktemp("cfg") / "cfg.json"
    cfg = {data.draw(st.sampled_from(_FIELDS), label="field"): data.draw(st.sampled_from(_JSON_VALUES + [4, 0.25, "mlp", [8]]), label="value")
           for _ in range(data.draw(st.integers(1, 3), label="n"))}
    text = json.dumps(cfg)
    path.write_text(_mutate(data, text.encode()).decode("latin-1") if data.draw(st.booleans(), label="corrupt") else text)
    try:
        c, extra = _parse_config(path, [], False)
    except UsageError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(c, BWSNNConfig)
    for f in ("steps", "epochs", "batch_size", "seed"):
        assert type(getattr(c, f)) is int and getattr(c, f) >= 0
    assert all(type(v) is int and v >= 1 for v in c.channels)


# --------------------------------------------------------------------------- spike .npy (CLI)
@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory):
    from neurohw.loihi.netx_io import write_netx
    from neurohw.loihi.network import CubaParams, DenseLayer, LoihiNetwork

    net = LoihiNetwork((4,), [DenseLayer(np.array([[1, 2, -3, 4], [5, -6, 7, 8]]) * 8, CubaParams(du=0, dv=0, vth=10))])
    return write_netx(net, tmp_path_factory.mktemp("tiny") / "tiny.net")


def _run_cli(argv, capsys) -> tuple[int, str]:
    from neurohw.cli import main

    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


@FUZZ
@given(data=st.data())
def test_spike_npy_cli_fuzz(tiny_net, tmp_path_factory, capsys, data):
    d = tmp_path_factory.mktemp("sp")
    src = d / "spikes.npy"
    shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=4), label="shape"))
    if data.draw(st.booleans(), label="valid shape"):
        shape = (data.draw(st.integers(1, 3), label="batch"), data.draw(st.integers(1, 3), label="steps"), 4)
    arr = _array(data, "spikes") if shape != () else np.float64(1)
    if arr.shape != shape and data.draw(st.booleans(), label="reshape"):
        arr = np.resize(arr if arr.size else np.zeros(1, arr.dtype), shape)
    np.save(src, arr)
    if data.draw(st.booleans(), label="corrupt"):
        src.write_bytes(_mutate(data, src.read_bytes()))
    out = d / "out.npy"
    out.write_bytes(SENTINEL)
    rc, err = _run_cli(["loihi", "simulate", str(tiny_net), "--input", str(src), "--out", str(out)], capsys)
    assert "Traceback" not in err and rc in (0, 2), err
    if rc == 2:
        assert "spikes.npy" in err.strip().splitlines()[-1], err
        assert out.read_bytes() == SENTINEL
    else:
        assert np.load(out).dtype == np.uint8


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".npz", ".h5"]))
def test_dataset_file_cli_fuzz(tmp_path_factory, capsys, data, suffix):
    """``loihi encode --data FILE``: exit 0 with spikes and labels, or exit 2 naming the file."""
    d = tmp_path_factory.mktemp("dsc")
    path = d / f"data{suffix}"
    _write(path, _dataset_arrays(data))
    out = d / "enc.npy"
    out.write_bytes(SENTINEL)
    rc, err = _run_cli(["loihi", "encode", "--data", str(path), "--steps", "2", "--out", str(out)], capsys)
    assert "Traceback" not in err and rc in (0, 2), err
    if rc == 2:
        assert path.name in err.strip().splitlines()[-1], err
        assert out.read_bytes() == SENTINEL
    else:
        assert np.load(out).shape[1] == 2 and np.load(d / "enc.labels.npy").min() >= 0


# --------------------------------------------------------------------------- NIR files
@pytest.fixture(scope="module")
def nir_file(tmp_path_factory):
    from neurohw.loihi.nir_io import write_nir
    from neurohw.loihi.random_nets import random_conv_net

    return write_nir(random_conv_net(3), tmp_path_factory.mktemp("nir") / "net.nir")


_BAD_H5 = [np.array([b"12"], dtype="S10"), np.float64(np.nan), np.int64(-5), np.zeros((0,)), np.array([1.5, -2.5]),
           np.full((2, 3), np.inf), np.array([[-1, 0], [3, 4]]), np.int64(2**40)]


@FUZZ
@given(data=st.data())
def test_nir_file_fuzz(nir_file, tmp_path_factory, capsys, data):
    """A .nir file with datasets replaced, deleted or its bytes damaged: ``import-nir`` exits 2
    naming the file, or 0 with a network that reads back."""
    d = tmp_path_factory.mktemp("nirm")
    path = d / "bad.nir"
    path.write_bytes(nir_file.read_bytes())
    if data.draw(st.booleans(), label="bytes"):
        path.write_bytes(_mutate(data, path.read_bytes()))
    else:
        names: list[str] = []
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        with h5py.File(path, "a") as f:
            for _ in range(data.draw(st.integers(1, 2), label="edits")):
                name = data.draw(st.sampled_from(sorted(names)), label="dataset")
                if name in f:
                    del f[name]
                    if data.draw(st.booleans(), label="replace"):
                        f.create_dataset(name, data=data.draw(st.sampled_from(_BAD_H5), label="value"))
    out = d / "out.net"
    out.write_bytes(SENTINEL)
    rc, err = _run_cli(["loihi", "import-nir", str(path), "--out", str(out), "--dt", "1e-3"], capsys)
    assert "Traceback" not in err and rc in (0, 2), err
    if rc == 2:
        assert "bad.nir" in err.strip().splitlines()[-1], err
        assert out.read_bytes() == SENTINEL
    else:
        from neurohw.loihi.netx_io import read_netx

        read_netx(out).validate()


@pytest.mark.parametrize("y, words", [
    (np.array([0, 1, 2**63] * 7 + [0] * 9, np.uint64), "implies more than"),  # would wrap negative as int64
    (np.arange(30) % 10 + 0.5, "must be integers"),
    (np.where(np.arange(30) % 10 == 3, 42, np.arange(30) % 10), "have no training image"),
])
def test_dataset_labels_named(tmp_path, y, words):
    from neurohw.data import load_dataset

    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((30, 4, 4), np.float32), y_train=y, x_test=np.zeros((10, 4, 4), np.float32),
             y_test=np.arange(10))
    with pytest.raises(DataFormatError, match=words) as info:
        load_dataset(str(path))
    assert str(path) in str(info.value) and "y_train" in str(info.value)


# --------------------------------------------------------------------------- JSON result files and run records
@FUZZ
@given(data=st.data())
def test_result_and_run_json_fuzz(tmp_path_factory, data):
    """A damaged ``results/<name>.json`` → ResultError naming it; a damaged per-run record is
    simply redone (``RunStore.get`` returns None), never an exception."""
    from neurohw.results import ResultError, RunStore, load_result

    d = tmp_path_factory.mktemp("res")
    good = {"name": "x", "figures": {"rows": []}, "config": {}, "seeds": [0], "command": "neurohw x",
            "provenance": {}, "wall_time_s": 1.0}
    text = json.dumps(data.draw(st.sampled_from([good, [good], "x", None, {**good, "figures": []}]), label="object"))
    raw = _mutate(data, text.encode()) if data.draw(st.booleans(), label="corrupt") else text.encode()
    (d / "x.json").write_bytes(raw)
    try:
        load_result(d / "x.json")
    except ResultError as exc:
        assert "x.json" in str(exc)
    store = RunStore("exp", d)
    store.folder.mkdir(parents=True, exist_ok=True)
    store.path("run-s0").write_bytes(raw)
    rec = store.get("run-s0", {"seed": 0})
    assert rec is None or (isinstance(rec, dict) and rec["config"] == {"seed": 0})


@FUZZ
@given(data=st.data())
def test_netx_deploy_provenance_fuzz(tmp_path_factory, capsys, data):
    """The deploy record an SNN export keeps in its netx file (``neurohw/provenance``), damaged:
    ``loihi report`` exits 0 (falling back to random input) or 2 naming the file."""
    from neurohw.loihi.netx_io import write_netx
    from neurohw.loihi.network import CubaParams, DenseLayer, LoihiNetwork

    d = tmp_path_factory.mktemp("prov")
    net = LoihiNetwork((4,), [DenseLayer(np.array([[1, 2, -3, 4], [5, -6, 7, 8]]) * 8, CubaParams(du=0, dv=0, vth=10))])
    path = write_netx(net, d / "exp.net")
    deploy = {"data": "digits8x8", "encoding": "rate", "steps": 2, "pad": 1, "readout": "spikes", "window_start": 0,
              "current_shift": 0}
    key = data.draw(st.sampled_from(sorted(deploy)), label="field")
    deploy[key] = data.draw(st.sampled_from(_JSON_VALUES + ["nonsense", 2**40]), label="value")
    prov = json.dumps({"config": data.draw(st.sampled_from([{"deploy": deploy}, [deploy], {"deploy": [1]}, "x"]), label="config")})
    raw = _mutate(data, prov.encode()) if data.draw(st.booleans(), label="corrupt") else prov.encode()
    with h5py.File(path, "a") as f:
        if "neurohw/provenance" in f:
            del f["neurohw/provenance"]
        # h5py stores neither a string with a NUL byte nor an empty opaque value: such bytes go as
        # the other kind (the reader must take both)
        as_void = data.draw(st.booleans(), label="void")
        as_void = (as_void and len(raw) > 0) or b"\x00" in raw
        f["neurohw/provenance"] = np.void(raw) if as_void else raw
    rc, err = _run_cli(["loihi", "report", str(path), "--samples", "2"], capsys)
    assert "Traceback" not in err and rc in (0, 2), err
    if rc == 2:
        last = err.strip().splitlines()[-1]
        assert "exp.net" in last or "--" in last, last  # the file, or the option a bad record fed


@FUZZ
@given(raw=st.binary(max_size=64))
def test_snn_config_bytes_fuzz(tmp_path_factory, raw):
    """Arbitrary bytes as an snn config file (not UTF-8, not JSON, not an object): UsageError naming it."""
    from neurohw.errors import UsageError
    from snn.cli import _parse_config

    path = tmp_path_factory.mktemp("cfgb") / "cfg.json"
    path.write_bytes(raw)
    try:
        _parse_config(path, [], False)
    except UsageError as exc:
        assert str(path) in str(exc)


@pytest.mark.parametrize("field", ["pad", "steps", "window_start", "current_shift", "data"])
def test_netx_deploy_null_field_counts_as_absent(tmp_path, capsys, field):
    """A deploy field recorded as null (found by the fuzz test above: ``pad: null`` crashed
    ``int(None)``) is treated as not recorded: ``loihi report`` runs or refuses cleanly (the
    tiny net does not fit the recorded data set), never an internal error."""
    from neurohw.loihi.netx_io import write_netx
    from neurohw.loihi.network import CubaParams, DenseLayer, LoihiNetwork

    net = LoihiNetwork((4,), [DenseLayer(np.array([[1, 2, -3, 4], [5, -6, 7, 8]]) * 8, CubaParams(du=0, dv=0, vth=10))])
    path = write_netx(net, tmp_path / "exp.net")
    deploy = {"data": "digits8x8", "encoding": "rate", "steps": 2, "pad": 1, "readout": "spikes", "window_start": 0,
              "current_shift": 0, field: None}
    with h5py.File(path, "a") as f:
        if "neurohw/provenance" in f:
            del f["neurohw/provenance"]
        f["neurohw/provenance"] = json.dumps({"config": {"deploy": deploy}}).encode()
    rc, err = _run_cli(["loihi", "report", str(path), "--samples", "2"], capsys)
    assert rc in (0, 2) and "internal error" not in err, err
