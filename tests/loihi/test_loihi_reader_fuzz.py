"""Fuzzing the netx reader: every malformed field gives ``LoihiConfigError`` (naming the file and
the field) or a network that validates and simulates — never another exception."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurohw.loihi import LoihiConfigError, simulate
from neurohw.loihi.netx_io import read_netx, write_netx
from neurohw.loihi.random_nets import (random_conv_net, random_delay_net, random_recurrent_net, random_shortcut_net,
                                       random_sigma_delta_net, random_spikes)

#: Replacement values for one dataset: wrong types, shapes, ranges and non-integers.
BAD_VALUES = [
    np.array([b"12"], dtype="S10"), np.bytes_(b"abc"), np.array(["x", "y"], dtype="S3"),
    np.int64(3), np.int64(-5), np.int64(2**40), np.float64(2.5), np.float64(np.nan), np.float64(np.inf),
    np.zeros((0,)), np.array([1.5, 2.5]), np.array([[-1, 0], [3, 4]]), np.full((2, 3, 4), 7),
    np.array([2**31, -2**31], dtype=np.int64), np.array([True, False]), np.array([-1]), np.array([0, 0, 0]),
]


def _datasets(path) -> list[str]:
    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    return [write_netx(random_conv_net(3), d / "conv.net"), write_netx(random_shortcut_net(4), d / "sc.net"),
            write_netx(random_recurrent_net(1), d / "rec.net"), write_netx(random_delay_net(1), d / "delay.net"),
            write_netx(random_sigma_delta_net(1), d / "sd.net")]


def _check_outcome(path):
    try:
        net = read_netx(path)
    except LoihiConfigError as exc:
        assert str(path) in str(exc) and exc.field
        return
    net.validate()
    simulate(net, random_spikes(0, 4, net.input_shape, batch=1, rate=0.5))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_netx_reader_fuzz(valid_files, tmp_path_factory, data):
    src = data.draw(st.sampled_from(valid_files))
    names = _datasets(src)
    path = tmp_path_factory.mktemp("case") / "mutated.net"
    path.write_bytes(src.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(names))
        action = data.draw(st.sampled_from(["replace", "delete", "group"]))
        with h5py.File(path, "a") as f:
            if name not in f:
                continue
            del f[name]
            if action == "replace":
                f.create_dataset(name, data=data.draw(st.sampled_from(BAD_VALUES)))
            elif action == "group":
                f.create_group(name)
    _check_outcome(path)


@pytest.mark.parametrize("name, value, field", [
    ("layer/0/shape", np.array([b"2", b"10", b"10"]), "shape"),
    ("layer/1/bias", np.int64(3), "bias"),
    ("layer/1/weight", None, "weight"),  # filled with non-integers below
    ("layer/4/weight", None, "weight"),  # out of range below
])
def test_named_malformed_fields(tmp_path, name, value, field):
    path = write_netx(random_conv_net(3), tmp_path / "n.net")
    with h5py.File(path, "a") as f:
        if value is None:
            w = f[name][()].astype(np.float64)
            value = w + 0.5 if name.startswith("layer/1") else w * 1000
        if name in f:
            del f[name]
        f.create_dataset(name, data=value)
    with pytest.raises(LoihiConfigError) as info:
        read_netx(path)
    assert info.value.field == field and str(path) in str(info.value)


def test_cli_exit_2_on_string_shape(tmp_path, capsys):
    from neurohw.cli import main

    path = write_netx(random_conv_net(3), tmp_path / "n.net")
    with h5py.File(path, "a") as f:
        del f["layer/0/shape"]
        f.create_dataset("layer/0/shape", data=np.array([b"2", b"10", b"10"]))
    for cmd in (["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npy")],
                ["report", str(path)]):
        np.save(tmp_path / "x.npy", np.zeros((3, 2, 10, 10), dtype=np.uint8))
        assert main(["loihi", *cmd]) == 2
        err = capsys.readouterr().err
        assert "layer/0" in err and "'shape'" in err and "Traceback" not in err
