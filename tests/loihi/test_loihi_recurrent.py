"""Recurrent dense layers: a layer's own spikes of step t − 1 into its neurons through a Dense weight.

Checked against a plain-numpy reading of Lava's rules (batched), against Lava 0.10 ``fixed_pt``
(process-built: a ``Dense`` from the LIF's ``s_out`` back to its ``a_in``; netx-loaded: netx's own
``dense_rec`` block), through the netx file, the CLI ``compare`` and the report."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from neurohw.cli import main
from neurohw.loihi import CubaParams, DenseConn, DenseLayer, LoihiConfigError, LoihiNetwork, simulate
from neurohw.loihi.fixedpoint import effective_dense_weights
from neurohw.loihi.netx_io import read_netx, write_netx
from neurohw.loihi.random_nets import random_conv_net, random_recurrent_net, random_spikes
from neurohw.loihi.report import deployability, full_report
from lava_compare import assert_cli_compare_identical, assert_netx_same_as_lava, assert_same_as_lava

STEPS = 40


def _numpy_reference(net: LoihiNetwork, x: np.ndarray) -> list[np.ndarray]:
    """Spikes (batch, steps, n) of every layer of a dense chain, one step at a time in numpy int64
    (Lava's arithmetic, no overflow in these small nets): every synapse group delivers at step t
    what it computed from its source's spikes of step t − 1."""
    B, T = x.shape[:2]
    outs, src = [], x.reshape(B, T, -1).astype(bool)
    for layer in net.layers:
        p = layer.neuron
        n = layer.weight.shape[0]
        w = effective_dense_weights(layer.weight, layer.sign_mode, layer.num_weight_bits)
        rec = layer.recurrent
        wr = None if rec is None else effective_dense_weights(rec.weight, rec.sign_mode, rec.num_weight_bits)
        bias = np.broadcast_to(p.bias((n,)), (n,))
        u = np.zeros((B, n), np.int64)
        v = np.zeros((B, n), np.int64)
        s = np.zeros((B, T, n), bool)

        def shifted(total, e):
            return total << e if e > 0 else total >> -e

        for t in range(T):
            a = np.zeros((B, n), np.int64)
            if t > 0:
                a += shifted(src[:, t - 1].astype(np.int64) @ w.T, layer.weight_exp)
                if wr is not None:
                    a += shifted(s[:, t - 1].astype(np.int64) @ wr.T, rec.weight_exp)
            uu = np.sign(u) * (np.abs(u * (4096 - p.du - 1)) >> 12) + (a << 6)
            u = np.where(uu > 2**23, uu - 2**24, np.where(uu <= -2**23, uu + 2**24, uu))
            v = np.sign(v) * (np.abs(v * (4096 - p.dv)) >> 12) + u + bias
            v = np.clip(v, -(2**23 - 1), 2**23 - 1)
            s[:, t] = v > (p.vth << 6)
            v[s[:, t]] = 0
        outs.append(s)
        src = s
    return outs


@pytest.mark.parametrize("netx_safe", [True, False])
def test_recurrent_matches_numpy_reference_batched(netx_safe):
    net = random_recurrent_net(1, netx_safe=netx_safe)
    x = random_spikes(2, STEPS, net.input_shape, batch=3, rate=0.3)
    res = simulate(net, x)
    ref = _numpy_reference(net, x)
    for i, (a, b) in enumerate(zip(res.spikes, ref)):
        assert np.array_equal(a.numpy(), b), f"layer {i}"
    # the recurrence matters: without it the recurrent layers spike differently
    plain = net.copy()
    for layer in plain.layers:
        layer.recurrent = None
    assert not np.array_equal(simulate(plain, x).spikes[0].numpy(), res.spikes[0].numpy())


def test_recurrent_ops_and_report():
    net = random_recurrent_net(0)
    x = random_spikes(0, 20, net.input_shape, batch=2, rate=0.3)
    res = simulate(net, x, count_ops=True)
    plain = net.copy()
    for layer in plain.layers:
        layer.recurrent = None
    base = simulate(plain, x, count_ops=True)
    # layer 0's feed-forward events are the same input's; the recurrent ones are its own spikes × fan-out
    fan = (np.asarray(net.layers[0].recurrent.weight) != 0).sum(axis=0)  # per source neuron
    rec_events = int((res.spikes[0].numpy().reshape(-1, fan.size) * fan).sum())
    assert res.ops[0]["syn_ops"] == base.ops[0]["syn_ops"] + rec_events
    rep = deployability(net)
    row0 = rep["layers"][0]
    assert row0["type"] == "dense_rec"
    assert row0["synapses"] == np.count_nonzero(net.layers[0].weight) + np.count_nonzero(net.layers[0].recurrent.weight)
    assert row0["fan_in"] == net.input_shape[0] + net.layers[0].weight.shape[0]
    assert full_report(net, x)["energy"]["per_layer"][0]["syn_ops"] == res.ops[0]["syn_ops"] / 2


def test_recurrent_validation_names_layer_and_field():
    net = random_recurrent_net(0)
    bad = net.copy()
    bad.layers[0].recurrent = DenseConn(np.ones((14, 13), dtype=np.int64) * 2)
    with pytest.raises(LoihiConfigError, match=r"layer 0 .*recurrent.*'weight'.*square"):
        bad.validate()
    bad = net.copy()
    bad.layers[0].recurrent = DenseConn(np.full((14, 14), 300))
    with pytest.raises(LoihiConfigError, match=r"recurrent.*'weight'.*8-bit"):
        bad.validate()
    bad = net.copy()
    bad.layers[0].recurrent = DenseConn(np.full((14, 14), 2), weight_exp=9)
    with pytest.raises(LoihiConfigError, match=r"recurrent.*'weight_exp'"):
        bad.validate()
    bad = net.copy()
    bad.layers[0].recurrent = np.ones((14, 14))
    with pytest.raises(LoihiConfigError, match=r"recurrent.*'type'.*DenseConn"):
        bad.validate()
    conv = random_conv_net(0)
    conv.layers[0].recurrent = DenseConn(np.ones((2, 2)))
    with pytest.raises(LoihiConfigError, match=r"layer 0 .*dense layers only"):
        conv.validate()


def test_recurrent_netx_round_trip_and_refusal(tmp_path):
    net = random_recurrent_net(3)
    path = write_netx(net, tmp_path / "rec.net")
    with h5py.File(path) as f:
        assert f["layer/1/type"][0] == b"dense_rec" and f["layer/2/type"][0] == b"dense"
        assert f["layer/1/weight_rec"].shape == (14, 14)
    back = read_netx(path)
    assert back.layers[0].recurrent is not None and back.layers[1].recurrent is None
    x = random_spikes(5, STEPS, net.input_shape, batch=2)
    a, b = simulate(net, x, probe="all"), simulate(back, x, probe="all")
    assert all(np.array_equal(p.numpy(), q.numpy()) for p, q in zip(a.spikes, b.spikes))
    assert all(np.array_equal(a.voltage[k].numpy(), b.voltage[k].numpy()) for k in a.voltage)
    # netx stores one exponent for both matrices: a recurrent exponent that pushes the effective
    # weights outside netx's range is refused, naming the field, and nothing is written
    bad = net.copy()
    bad.layers[0].recurrent = DenseConn(np.asarray(net.layers[0].recurrent.weight), weight_exp=1)
    out = tmp_path / "bad.net"
    with pytest.raises(LoihiConfigError, match=r"layer 0 .*recurrent\.weight"):
        write_netx(bad, out)
    assert not out.exists()


def test_recurrent_netx_reader_errors(tmp_path):
    path = write_netx(random_recurrent_net(3), tmp_path / "rec.net")
    with h5py.File(path, "a") as f:
        del f["layer/1/weight_rec"]
        f["layer/1/weight_rec"] = np.ones((14, 13), dtype=np.int64)
    with pytest.raises(LoihiConfigError, match=r"layer/1.*'weight_rec'.*\(14, 14\)"):
        read_netx(path)
    with h5py.File(path, "a") as f:
        del f["layer/1/weight_rec"]
    with pytest.raises(LoihiConfigError, match=r"layer/1.*'weight_rec'"):
        read_netx(path)
    assert main(["loihi", "simulate", str(path), "--input", str(tmp_path / "none.npy"), "--out", str(tmp_path / "o.npy")]) == 2


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 7])
def test_recurrent_identical_in_lava_process_built(seed):
    """Own exponent and bit width on the recurrent Dense (not netx-representable)."""
    net = random_recurrent_net(seed, netx_safe=False)
    assert_same_as_lava(net, random_spikes(seed + 1, STEPS, net.input_shape, batch=1, rate=0.3))


@pytest.mark.lava
@pytest.mark.slow
def test_recurrent_identical_in_lava_netx_and_cli(tmp_path, capsys):
    net = random_recurrent_net(4)
    path = assert_netx_same_as_lava(net, random_spikes(9, STEPS, net.input_shape, batch=1, rate=0.3), tmp_path / "rec.net")
    assert_cli_compare_identical(path, ["--steps", "25", "--seed", "2", "--rate", "0.3"], capsys)


def test_recurrent_nir_export_is_a_cycle_and_import_refuses_it(tmp_path):
    from neurohw.loihi.nir_import import import_nir
    from neurohw.loihi.nir_io import read_nir_graph, write_nir

    net = random_recurrent_net(0)
    g = read_nir_graph(write_nir(net, tmp_path / "rec.nir", dt=1e-3))
    assert ("layer0_lif", "layer0_recurrent_syn") in g.edges and ("layer0_recurrent_syn", "layer0_lif") in g.edges
    w = np.asarray(g.nodes["layer0_recurrent_syn"].weight)
    assert np.array_equal(w, effective_dense_weights(net.layers[0].recurrent.weight, None, 8))
    with pytest.raises(LoihiConfigError, match="loop"):
        import_nir(g)
