"""Sigma-delta neurons (Lava ``SigmaDelta`` fixed_pt; lava-dl netx ``SDNN``) and graded messages.

Checked against a numpy reading of ``PySigmaDeltaModelFixed`` (batched, ReLU / unit activation,
with and without cumulative error), against Lava 0.10 ``fixed_pt`` (process-built and netx's own
SDNN blocks; messages, ``act`` and ``sigma`` of the sigma-delta layers and spikes, v and u of the
LIF read-out), through the netx file, the CLI and the report."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from neurohw.cli import main
from neurohw.loihi import (CubaParams, DenseConn, DenseLayer, LoihiConfigError, LoihiNetwork, SigmaDeltaParams,
                           simulate)
from neurohw.loihi.fixedpoint import effective_dense_weights
from neurohw.loihi.netx_io import read_netx, write_netx
from neurohw.loihi.random_nets import random_sigma_delta_net
from neurohw.loihi.report import full_report
from lava_compare import assert_cli_compare_identical, assert_netx_same_as_lava, assert_same_as_lava

STEPS = 30


def _graded_input(seed: int, shape, batch: int = 1, steps: int = STEPS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    full = (batch, steps, *shape)
    return (rng.integers(0, 20, size=full) * (rng.random(full) < 0.4)).astype(np.int64)


def _dense_sd_net(seed: int) -> LoihiNetwork:
    rng = np.random.default_rng(seed)
    return LoihiNetwork((10,), [
        DenseLayer(rng.integers(-60, 61, size=(12, 10)) * 2, SigmaDeltaParams(vth=2, bias=rng.integers(-2, 3, size=12),
                                                                          spike_exp=3, state_exp=4), weight_exp=-1),
        DenseLayer(rng.integers(-60, 61, size=(8, 12)) * 2, SigmaDeltaParams(vth=1, bias=1, spike_exp=5, state_exp=2,
                                                                         activation="unit", cum_error=True)),
        DenseLayer(rng.integers(-80, 81, size=(5, 8)) * 2, CubaParams(du=800, dv=300, vth=3000)),
    ], input_message_bits=8, name=f"dense_sd_{seed}")


def _reference(net: LoihiNetwork, x: np.ndarray):
    """Messages / spikes of every layer of a dense chain, one step at a time in numpy int64."""
    B, T = x.shape[:2]
    src = x.reshape(B, T, -1).astype(np.int64)
    outs = []
    for layer in net.layers:
        n = layer.weight.shape[0]
        w = effective_dense_weights(layer.weight, layer.sign_mode, layer.num_weight_bits)
        e = layer.weight_exp
        a_all = np.zeros((B, T, n), np.int64)
        for t in range(1, T):  # the synapse delivers the previous step's weighted sum
            tot = src[:, t - 1] @ w.T
            a_all[:, t] = tot << e if e > 0 else tot >> -e
        p = layer.neuron
        out = np.zeros((B, T, n), np.int64)
        if isinstance(p, SigmaDeltaParams):
            sh = p.spike_exp + p.state_exp
            bias = np.broadcast_to(np.asarray(p.bias), (n,)) << sh
            sigma = np.zeros((B, n), np.int64)
            act_prev = np.zeros_like(sigma)
            residue = np.zeros_like(sigma)
            error = np.zeros_like(sigma)
            for t in range(T):
                sigma = sigma + a_all[:, t]
                act = sigma + bias
                if p.activation == "relu":
                    act = np.maximum(act, 0)
                delta = act - act_prev + residue
                if p.cum_error:
                    error = error + delta
                    s = np.where(np.abs(error) >= p.vth << sh, delta, 0)
                    error = np.where(s != 0, 0, error)
                else:
                    s = np.where(np.abs(delta) >= p.vth << sh, delta, 0)
                residue = delta - s
                act_prev = act
                out[:, t] = s >> p.state_exp
        else:
            u = np.zeros((B, n), np.int64)
            v = np.zeros((B, n), np.int64)
            for t in range(T):
                uu = np.sign(u) * (np.abs(u * (4096 - p.du - 1)) >> 12) + (a_all[:, t] << 6)
                u = np.where(uu > 2**23, uu - 2**24, np.where(uu <= -2**23, uu + 2**24, uu))  # graded input: u wraps
                v = np.clip(np.sign(v) * (np.abs(v * (4096 - p.dv)) >> 12) + u, -(2**23 - 1), 2**23 - 1)
                s = v > (p.vth << 6)
                v[s] = 0
                out[:, t] = s
        outs.append(out)
        src = out
    return outs


def test_sigma_delta_matches_numpy_reference_batched():
    net = _dense_sd_net(0)
    x = _graded_input(1, net.input_shape, batch=3)
    res = simulate(net, x, probe="all")
    ref = _reference(net, x)
    for i, (a, b) in enumerate(zip(res.spikes, ref)):
        assert np.array_equal(a.numpy().astype(np.int64), b), f"layer {i}"
        assert np.any(b != 0)
    assert res.spikes[0].dtype != res.spikes[2].dtype  # graded messages vs binary spikes
    assert np.abs(res.spikes[0].numpy()).max() > 1  # genuinely graded


def test_sigma_delta_validation_names_layer_and_field():
    for kw, field in [({"spike_exp": 8}, "spike_exp"), ({"vth": -1}, "vth"), ({"vth": 4000}, "vth"),
                      ({"activation": "tanh"}, "activation"), ({"bias": np.ones(5)}, "bias"), ({"cum_error": 1}, "cum_error")]:
        net = _dense_sd_net(0)
        args = {"vth": 2, **kw}
        net.layers[0].neuron = SigmaDeltaParams(**args)
        with pytest.raises(LoihiConfigError, match=rf"layer 0 .*'neuron\.{field}'"):
            net.validate()
    net = _dense_sd_net(0)
    net.layers[0].recurrent = DenseConn(np.eye(12, dtype=np.int64) * 2)
    with pytest.raises(LoihiConfigError, match=r"layer 0 .*recurrent.*CUBA"):
        net.validate()


def test_sigma_delta_netx_round_trip_refusals_cli_report(tmp_path, capsys):
    from neurohw.loihi.nir_io import write_nir

    net = random_sigma_delta_net(3)
    path = write_netx(net, tmp_path / "sd.net")
    with h5py.File(path) as f:
        assert f["layer/1/neuron/type"][0] == b"SDNN" and "messageBits" not in f["layer/1/neuron"]
    back = read_netx(path)
    assert isinstance(back.layers[1].neuron, SigmaDeltaParams) and back.input_message_bits == 8
    x = _graded_input(2, net.input_shape, batch=2)
    a, b = simulate(net, x, probe="all"), simulate(back, x, probe="all")
    assert all(np.array_equal(p.numpy(), q.numpy()) for p, q in zip(a.spikes, b.spikes))
    # CLI: graded output messages are written as int32
    sd_out = LoihiNetwork(net.input_shape, net.layers[:2], input_message_bits=8)
    p2 = write_netx(sd_out, tmp_path / "sd2.net")
    np.save(tmp_path / "x.npy", x)
    assert main(["loihi", "simulate", str(p2), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npy")]) == 0
    o = np.load(tmp_path / "o.npy")
    assert o.dtype == np.int32 and np.array_equal(o, simulate(sd_out, x).output.numpy())
    assert main(["loihi", "report", str(path)]) == 0
    assert "sigma-delta" in capsys.readouterr().out
    rep = full_report(net, x)
    assert [r["type"] for r in rep["loihi2"]["layers"]] == ["conv (sigma-delta)", "dense (sigma-delta)", "dense"]
    assert rep["energy"]["per_layer"][0]["spikes"] == int((a.spikes[0] != 0).sum()) / 2
    # what netx cannot express is refused, naming the field
    bad = net.copy()
    bad.layers[1].neuron = SigmaDeltaParams(vth=1, spike_exp=5)
    with pytest.raises(LoihiConfigError, match=r"layer 1 .*'neuron\.spike_exp'.*netx"):
        write_netx(bad, tmp_path / "bad.net")
    assert not (tmp_path / "bad.net").exists()
    with h5py.File(path, "a") as f:
        f["layer/1/neuron/messageBits"] = np.int64(16)
    with pytest.raises(LoihiConfigError, match=r"layer/1 neuron.*'messageBits'.*netx 0.6"):
        read_netx(path)
    with pytest.raises(LoihiConfigError, match=r"'neuron'.*sigma-delta.*NIR"):
        write_nir(net, tmp_path / "sd.nir")


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 3])
def test_sigma_delta_identical_in_lava_process_built(seed):
    """Varied spike/state exponents, unit and ReLU activations, cumulative error on and off, a
    negative weight exponent on graded synapses; conv and dense sigma-delta layers, LIF read-out."""
    net = random_sigma_delta_net(seed, netx_safe=False)
    assert_same_as_lava(net, _graded_input(seed + 1, net.input_shape))


@pytest.mark.lava
@pytest.mark.slow
def test_sigma_delta_identical_in_lava_netx_and_cli(tmp_path, capsys):
    net = random_sigma_delta_net(3)
    x = _graded_input(1, net.input_shape)
    path = assert_netx_same_as_lava(net, x, tmp_path / "sd.net")
    np.save(tmp_path / "x.npy", x[0])
    assert_cli_compare_identical(path, ["--input", str(tmp_path / "x.npy")], capsys)
