"""Synaptic delays (``DenseConn.delay``: Lava ``DelayDense``, netx ``delay``): a synapse with delay d
delivers d steps after the usual one; the weight exponent shifts each delay's partial sum.

Checked against a numpy reading of ``PyDelayDenseModelBitAcc``, an analytic shift, Lava 0.10
``fixed_pt`` (process-built and netx-loaded, including netx's scalar and 1-D delay forms), the
netx file, the CLI ``compare``, the report and the NIR export."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from neurohw.cli import main
from neurohw.loihi import CubaParams, DenseConn, DenseLayer, LoihiConfigError, LoihiNetwork, Shortcut, simulate
from neurohw.loihi.fixedpoint import effective_dense_weights
from neurohw.loihi.netx_io import read_netx, write_netx
from neurohw.loihi.random_nets import random_delay_net, random_dense_net, random_recurrent_net, random_spikes
from neurohw.loihi.report import deployability
from lava_compare import (assert_cli_compare_identical, assert_identical, assert_netx_same_as_lava,
                          assert_same_as_lava)

STEPS = 40


def _delay_dense_reference(net: LoihiNetwork, x: np.ndarray) -> list[np.ndarray]:
    """Spikes of a dense chain (no shortcuts) in numpy, one step at a time, with Lava's DelayDense
    buffer: column k of ``buf`` is what arrives k steps from now; each step the layer receives
    column 0, the buffer moves on, and the new input's per-delay sums (each floor-shifted by
    weight_exp) are added."""
    B, T = x.shape[:2]
    outs, src = [], x.reshape(B, T, -1).astype(bool)
    for layer in net.layers:
        p, n = layer.neuron, layer.weight.shape[0]
        w = effective_dense_weights(layer.weight, layer.sign_mode, layer.num_weight_bits)
        d = np.broadcast_to(np.asarray(layer.delay), w.shape)
        D = int(d.max())
        e = layer.weight_exp
        buf = np.zeros((B, n, D + 1), np.int64)
        u = np.zeros((B, n), np.int64)
        v = np.zeros((B, n), np.int64)
        s = np.zeros((B, T, n), bool)
        bias = np.broadcast_to(p.bias((n,)), (n,))
        for t in range(T):
            a = buf[:, :, 0].copy()
            buf = np.concatenate([buf[:, :, 1:], np.zeros((B, n, 1), np.int64)], axis=2)
            for k in range(D + 1):
                part = src[:, t].astype(np.int64) @ np.where(d == k, w, 0).T
                buf[:, :, k] += part << e if e > 0 else part >> -e
            uu = np.sign(u) * (np.abs(u * (4096 - p.du - 1)) >> 12) + (a << 6)
            u = np.where(uu > 2**23, uu - 2**24, np.where(uu <= -2**23, uu + 2**24, uu))
            v = np.clip(np.sign(v) * (np.abs(v * (4096 - p.dv)) >> 12) + u + bias, -(2**23 - 1), 2**23 - 1)
            s[:, t] = v > (p.vth << 6)
            v[s[:, t]] = 0
        outs.append(s)
        src = s
    return outs


@pytest.mark.parametrize("seed", [2, 6])  # weight exponents (1, 1, −1) and (−2, 0, −2); every layer spikes
def test_delays_match_delaydense_reference(seed):
    net = random_dense_net(seed, netx_safe=False)  # weight_exp −2..1: per-delay floor shifts matter
    rng = np.random.default_rng(seed)
    net.layers[0].delay = rng.integers(0, 5, size=net.layers[0].weight.shape)
    net.layers[1].delay = rng.integers(0, 3, size=(net.layers[1].weight.shape[0], 1))
    net.layers[2].delay = rng.integers(0, 4, size=(1, net.layers[2].weight.shape[1]))
    x = random_spikes(seed, STEPS, net.input_shape, batch=3, rate=0.3)
    res = simulate(net, x)
    for i, (a, b) in enumerate(zip(res.spikes, _delay_dense_reference(net, x))):
        assert np.array_equal(a.numpy(), b), f"layer {i}"
        assert b.sum() > 0


def test_uniform_delay_shifts_output_and_zero_delay_is_no_delay():
    net = random_dense_net(1, sizes=(20, 12), netx_safe=True)
    net.layers[0].neuron.bias_mant = 0  # a bias acts from step 0: only without one is a delay a pure shift
    x = random_spikes(1, STEPS, net.input_shape, batch=2, rate=0.4)
    base = simulate(net, x, probe="all")
    zero = net.copy()
    zero.layers[0].delay = np.zeros(net.layers[0].weight.shape, dtype=np.int64)
    assert torch_equal(simulate(zero, x).spikes[0], base.spikes[0])
    late = net.copy()
    late.layers[0].delay = 5
    res = simulate(late, x, probe="all")
    assert not res.spikes[0][:, :5].any()
    assert torch_equal(res.spikes[0][:, 5:], base.spikes[0][:, :-5])
    assert torch_equal(res.voltage[0][:, 5:], base.voltage[0][:, :-5])


def torch_equal(a, b) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def test_delay_validation_names_layer_and_field():
    net = random_dense_net(0, netx_safe=True)
    cases = [(-1, "outside 0..62"), (63, "outside 0..62"), (np.zeros((3, 3), dtype=int), "broadcast"),
             (np.full((20, 24), 1.5), "integer")]
    for bad, msg in cases:
        n = net.copy()
        n.layers[0].delay = bad
        with pytest.raises(LoihiConfigError, match=rf"layer 0 .*'delay'.*{msg}"):
            n.validate()
    n = net.copy()
    n.layers[1].shortcuts.append(Shortcut(-1, DenseConn(np.full((16, 24), 2), delay=70)))
    with pytest.raises(LoihiConfigError, match=r"layer 1 .*shortcut 0.*'delay'"):
        n.validate()
    rec = random_recurrent_net(0)
    rec.layers[0].recurrent.delay = 1
    with pytest.raises(LoihiConfigError, match=r"layer 0 .*recurrent.*'delay'.*not supported"):
        rec.validate()


def test_delay_netx_round_trip_forms_and_refusals(tmp_path):
    net = random_delay_net(2)
    path = write_netx(net, tmp_path / "d.net")
    with h5py.File(path) as f:
        assert f["layer/2/delay"].shape == net.layers[1].weight.shape
        assert "delay" not in f["layer/1"]
        assert f["neurohw/shortcut/0/synapseDelay"].shape == (8, 16)
    back = read_netx(path)
    assert np.array_equal(back.layers[1].conn.delays(), net.layers[1].conn.delays())
    assert np.array_equal(back.layers[2].shortcuts[0].conn.delays(), net.layers[2].shortcuts[0].conn.delays())
    x = random_spikes(3, STEPS, net.input_shape, batch=2)
    a, b = simulate(net, x), simulate(back, x)
    assert all(torch_equal(p, q) for p, q in zip(a.spikes, b.spikes))
    # netx's other forms: a scalar, n_out values (per output, checked first), n_in values (per input)
    plain = write_netx(random_dense_net(2, netx_safe=True), tmp_path / "p.net")  # layer/2: 16 × 20
    for val, expect in [(np.int64(3), np.full((16, 20), 3)), (np.arange(16) % 3, np.repeat((np.arange(16) % 3)[:, None], 20, 1)),
                        (np.arange(20) % 4, np.repeat((np.arange(20) % 4)[None], 16, 0))]:
        with h5py.File(plain, "a") as f:
            if "delay" in f["layer/2"]:
                del f["layer/2/delay"]
            f["layer/2/delay"] = val
        assert np.array_equal(read_netx(plain).layers[1].conn.delays(), expect)
    for val, msg in [(np.arange(7), "fits neither"), (np.full((16, 20), 63), "outside 0..62"), (np.full((16, 20), -1), "outside")]:
        with h5py.File(plain, "a") as f:
            del f["layer/2/delay"]
            f["layer/2/delay"] = val
        with pytest.raises(LoihiConfigError, match=rf"layer/2.*'delay'.*{msg}"):
            read_netx(plain)
    assert main(["loihi", "report", str(plain)]) == 2
    # a recurrent layer with delays: netx 0.6 would build it wrongly — refused, nothing written
    rec = random_recurrent_net(0)
    rec.layers[0].delay = 1
    with pytest.raises(LoihiConfigError, match=r"layer 0 .*'delay'.*dense_rec"):
        write_netx(rec, tmp_path / "r.net")
    assert not (tmp_path / "r.net").exists()


def test_delay_report_and_nir(tmp_path):
    from neurohw.loihi.nir_io import read_nir_graph, write_nir

    net = random_delay_net(0)
    assert deployability(net)["deployable_on_one_chip"]
    long = net.copy()
    long.layers[2].shortcuts[0].delay = 60  # + per-input synaptic delays up to 4
    rep = deployability(long, "loihi1")
    assert any("shortcut 0: delay" in v for v in rep["violations"])
    # NIR: per-input delays become a Delay node on the source; per-synapse delays have no NIR form
    only_in = random_dense_net(0, sizes=(10, 6), netx_safe=True)
    only_in.layers[0].delay = np.arange(10).reshape(1, 10) % 3
    g = read_nir_graph(write_nir(only_in, tmp_path / "d.nir", dt=1e-3))
    assert np.allclose(np.asarray(g.nodes["layer0_delay"].delay), (np.arange(10) % 3) * 1e-3)
    with pytest.raises(LoihiConfigError, match=r"'delay'.*no NIR form"):
        write_nir(net, tmp_path / "bad.nir")


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 5])
def test_delays_identical_in_lava_process_built(seed):
    """DelayDense with varied (negative) weight exponents and bit widths, a delayed shortcut with
    per-input synaptic delays."""
    net = random_delay_net(seed, netx_safe=False)
    assert_same_as_lava(net, random_spikes(seed + 1, STEPS, net.input_shape, batch=1, rate=0.3))


@pytest.mark.lava
@pytest.mark.slow
def test_delays_identical_in_lava_netx_and_cli(tmp_path, capsys):
    net = random_delay_net(0)
    path = assert_netx_same_as_lava(net, random_spikes(4, STEPS, net.input_shape, batch=1, rate=0.3), tmp_path / "d.net")
    assert_cli_compare_identical(path, ["--steps", "25", "--seed", "2", "--rate", "0.3"], capsys)


@pytest.mark.lava
@pytest.mark.slow
def test_netx_per_output_delay_form_identical_in_lava(tmp_path):
    """A file written by another tool with netx's 1-D per-output ``delay``."""
    from neurohw.loihi.lava_bridge import run_netx_in_lava

    path = write_netx(random_dense_net(2, netx_safe=True), tmp_path / "p.net")
    with h5py.File(path, "a") as f:
        f["layer/2/delay"] = np.arange(16) % 4
    net = read_netx(path)
    x = random_spikes(3, STEPS, net.input_shape, batch=1, rate=0.3)
    assert_identical(simulate(net, x, probe="all"), run_netx_in_lava(path, x, probe="all"), all_probed=True)
