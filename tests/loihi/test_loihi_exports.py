"""netx HDF5 and NIR exports: round trips, netx's own loader, malformed files, snnTorch import."""
from __future__ import annotations

import contextlib
import io

import h5py
import numpy as np
import pytest
import torch

from neurohw.loihi import CubaParams, DenseLayer, LoihiConfigError, LoihiNetwork, simulate
from neurohw.loihi.netx_io import read_netx, write_netx
from neurohw.loihi.nir_io import read_nir_graph, to_nir, write_nir
from neurohw.loihi.random_nets import random_conv_net, random_dense_net, random_shortcut_net, random_spikes


@pytest.mark.parametrize("make", [lambda: random_dense_net(1, netx_safe=True), lambda: random_conv_net(2),
                                  lambda: random_shortcut_net(5)])
def test_netx_round_trip_simulates_identically(make, tmp_path):
    net = make()
    path = write_netx(net, tmp_path / "n.net")
    back = read_netx(path)
    assert back.input_shape == net.input_shape and len(back.layers) == len(net.layers)
    x = random_spikes(0, 30, net.input_shape, batch=2, rate=0.3)
    a, b = simulate(net, x, probe="all"), simulate(back, x, probe="all")
    assert all(torch.equal(p, q) for p, q in zip(a.spikes, b.spikes))
    assert all(torch.equal(a.voltage[k], b.voltage[k]) for k in a.voltage)


def test_netx_datasets_are_what_netx_reads(tmp_path):
    net = random_conv_net(0)
    path = write_netx(net, tmp_path / "n.net")
    with h5py.File(path, "r") as f:
        types = [f["layer"][str(k)]["type"][0].decode() for k in range(len(f["layer"]))]
        assert types == ["input", "conv", "conv", "flatten", "dense"]
        g = f["layer/1"]
        assert isinstance(g["weight"], h5py.Dataset) and g["weight"].shape == net.layers[0].weight.shape
        assert g["neuron/iDecay"][()] == net.layers[0].neuron.du + 1
        assert g["neuron/type"].dtype == np.dtype("S10")
        assert list(f["layer/2/stride"][()]) == [2, 2]


@pytest.mark.lava
def test_netx_network_loads_the_export(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        from lava.lib.dl.netx import hdf5
    for net in (random_dense_net(1, netx_safe=True), random_conv_net(2)):
        path = write_netx(net, tmp_path / f"{net.name}.net")
        lnet = hdf5.Network(net_config=str(path))
        assert len(lnet.layers) == len(net.layers)
        assert lnet.out.shape == (10,)


def test_writer_refuses_what_netx_cannot_represent(tmp_path):
    p = CubaParams(du=1, dv=1, vth=10)
    bad = [
        (LoihiNetwork((3,), [DenseLayer(np.array([[3, 1, 1]]), p, weight_exp=-1, num_weight_bits=9, sign_mode="mixed")]), "weight_exp"),
        (LoihiNetwork((3,), [DenseLayer(np.zeros((2, 3), dtype=int), p)]), "weight"),
        (LoihiNetwork((3,), [DenseLayer(np.ones((2, 3), dtype=int) * 2, CubaParams(1, 1, 10, bias_mant=3, bias_exp=0))]), "neuron.bias_mant"),
        (LoihiNetwork((3,), [DenseLayer(np.array([[200, -2, 2]]), p, weight_exp=2)]), "weight"),
    ]
    for net, field in bad:
        with pytest.raises(LoihiConfigError) as info:
            write_netx(net, tmp_path / "bad.net")
        assert info.value.field == field and "layer 0" in str(info.value)
    assert not (tmp_path / "bad.net").exists()  # atomic: nothing half-written


def _write_raw(path, layers):
    with h5py.File(path, "w") as f:
        for k, spec in enumerate(layers):
            g = f.create_group(f"layer/{k}")
            for key, val in spec.items():
                if isinstance(val, dict):
                    n = g.create_group(key)
                    for kk, vv in val.items():
                        n.create_dataset(kk, data=vv)
                else:
                    g.create_dataset(key, data=val)


NEURON = {"type": np.array([b"CUBA"], dtype="S10"), "iDecay": 100, "vDecay": 100, "vThMant": 50, "refDelay": 1, "gradedSpike": 0}


@pytest.mark.parametrize("layers, field, text", [
    ([{"type": np.array([b"input"], "S10"), "shape": [2, 4, 4]}, {"type": np.array([b"pool"], "S10")}], "type", "pool"),
    ([{"type": np.array([b"dense"], "S10"), "shape": [3], "weight": np.ones((3, 4)) * 2}], "neuron", "missing"),
    ([{"type": np.array([b"dense"], "S10"), "shape": [3], "neuron": NEURON}], "weight", "missing"),
    ([{"type": np.array([b"dense"], "S10"), "shape": [5], "weight": np.ones((3, 4)) * 2, "neuron": NEURON}], "weight", "shape"),
    ([{"type": np.array([b"dense"], "S10"), "shape": [3], "weight": np.ones((3, 4)) * 2,
       "neuron": {**NEURON, "type": np.array([b"RF_PHASE"], "S10")}}], "type", "RF_PHASE"),  # SDNN is read since issue 13
    ([{"type": np.array([b"dense"], "S10"), "shape": [3], "weight": np.ones((3, 4)) * 2,
       "neuron": {**NEURON, "vThMant": 10**7}}], "neuron.vth", "range"),
    ([{"type": np.array([b"wormhole"], "S10")}], "type", "unknown"),
])
def test_malformed_netx_files_name_layer_and_field(tmp_path, layers, field, text):
    path = tmp_path / "bad.net"
    _write_raw(path, layers)
    with pytest.raises(LoihiConfigError) as info:
        read_netx(path)
    assert info.value.field == field and text in str(info.value) and "layer" in str(info.value)


def test_not_hdf5(tmp_path):
    p = tmp_path / "x.net"
    p.write_text("hello")
    with pytest.raises(LoihiConfigError, match="not a readable HDF5"):
        read_netx(p)


def test_nir_round_trip_with_explicit_dt(tmp_path):
    import nir

    net = random_shortcut_net(2)
    path = write_nir(net, tmp_path / "n.nir", dt=2e-3)
    g = read_nir_graph(path)
    assert g.metadata["dt"] == pytest.approx(2e-3)
    lif = g.nodes["layer1_lif"]
    p = net.layers[1].neuron
    assert isinstance(lif, nir.CubaLIF) and lif.metadata["dt"] == pytest.approx(2e-3)
    assert np.allclose(lif.tau_syn, 2e-3 * 4096 / (p.du + 1)) and np.allclose(lif.v_threshold, p.vth)
    assert isinstance(g.nodes["layer2_shortcut0_delay"], nir.Delay)
    conv = to_nir(random_conv_net(0))
    assert isinstance(conv.nodes["layer0_syn"], nir.Conv2d) and isinstance(conv.nodes["layer2_flatten"], nir.Flatten)


def test_nir_grouped_conv_expanded_equivalently(tmp_path):
    """Pooling (a depthwise conv) is written as an equivalent dense kernel so nir.read type-checks."""
    from neurohw.loihi import pool_layer

    net = LoihiNetwork((3, 6, 6), [pool_layer(3, 2, weight=5, neuron=CubaParams(du=10, dv=10, vth=20))])
    g = read_nir_graph(write_nir(net, tmp_path / "p.nir"))
    w = g.nodes["layer0_syn"].weight
    x = torch.rand(2, 3, 6, 6)
    full = torch.nn.functional.conv2d(x, torch.as_tensor(w, dtype=torch.float32), stride=2)
    grouped = torch.nn.functional.conv2d(x, torch.as_tensor(net.layers[0].weight, dtype=torch.float32), stride=2, groups=3)
    assert torch.allclose(full, grouped)


def test_nir_imports_into_snntorch_and_agrees(tmp_path):
    """snnTorch (dt hard-coded to 1e-4, no bias) runs the export; after aligning Loihi's one step
    per layer its spikes agree with the integer simulation."""
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.import_nir import import_from_nir

    rng = np.random.default_rng(0)
    net = LoihiNetwork((20,), [DenseLayer(rng.integers(-60, 61, (16, 20)) * 2, CubaParams(du=4095, dv=2000, vth=100)),
                               DenseLayer(rng.integers(-60, 61, (8, 16)) * 2, CubaParams(du=1000, dv=500, vth=150))])
    path = write_nir(net, tmp_path / "s.nir", dt=1e-4)
    with contextlib.redirect_stdout(io.StringIO()):
        model = import_from_nir(read_nir_graph(path))
    x = random_spikes(0, 40, (20,), batch=1, rate=0.4)
    outs = []
    with torch.no_grad():
        for t in range(40):
            o = model(torch.as_tensor(x[0, t:t + 1], dtype=torch.float32))
            outs.append(o[0] if isinstance(o, tuple) else o)
    theirs = torch.cat(outs).numpy().astype(bool)
    ours = simulate(net, x).spikes[1][0].numpy()
    assert ours.sum() > 10
    assert (theirs[:-2] == ours[2:]).mean() >= 0.97
