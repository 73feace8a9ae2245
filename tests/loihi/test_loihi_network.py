"""Network description: validation errors, pooling and shortcut lowering, timing, exponent modes,
batching and devices."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurohw.loihi import (ConvLayer, CubaParams, DenseConn, DenseLayer, LoihiConfigError, LoihiNetwork,
                           Shortcut, matched_delay, pool_layer, simulate)
from neurohw.loihi.random_nets import random_conv_net, random_dense_net, random_shortcut_net, random_spikes
from neurohw.loihi.simulator import cuba_run

RELAY = CubaParams(du=4095, dv=4095, vth=0)  # spikes iff it received any positive input last step


def _dense(w, **kw):
    return DenseLayer(np.asarray(w), kw.pop("neuron", CubaParams(du=100, dv=100, vth=10)), **kw)


@pytest.mark.parametrize("make, field", [
    (lambda: LoihiNetwork((3,), [_dense(np.full((2, 3), 300))]), "weight"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 4)))]), "weight"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3)), weight_exp=9)]), "weight_exp"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3)), num_weight_bits=0)]), "num_weight_bits"),
    (lambda: LoihiNetwork((3,), [_dense(-np.ones((2, 3)), sign_mode="excitatory")]), "sign_mode"),
    (lambda: LoihiNetwork((3,), [_dense(np.full((2, 3), 0.5))]), "weight"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3)), neuron=CubaParams(du=5000, dv=0, vth=1))]), "neuron.du"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3)), neuron=CubaParams(du=0, dv=0, vth=200000))]), "neuron.vth"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3)), neuron=CubaParams(du=0, dv=0, vth=1, bias_mant=5000))]), "neuron.bias_mant"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3)), neuron=CubaParams(du=0, dv=0, vth=1, bias_exp=8))]), "neuron.bias_exp"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3)), neuron=CubaParams(du=0, dv=0, vth=1, bias_mant=np.ones(5)))]), "neuron.bias_mant"),
    (lambda: LoihiNetwork((12,), [ConvLayer(np.ones((2, 1, 3, 3)), CubaParams(du=0, dv=0, vth=1))]), "weight"),
    (lambda: LoihiNetwork((2, 5, 5), [ConvLayer(np.ones((3, 1, 3, 3)), CubaParams(du=0, dv=0, vth=1), groups=2)]), "groups"),
    (lambda: LoihiNetwork((1, 2, 2), [ConvLayer(np.ones((3, 1, 3, 3)), CubaParams(du=0, dv=0, vth=1))]), "weight"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3)), shortcuts=[Shortcut(0, DenseConn(np.ones((2, 3))))])]), "source"),
    (lambda: LoihiNetwork((3,), [_dense(np.ones((2, 3))), _dense(np.ones((2, 2)), shortcuts=[Shortcut(-1, DenseConn(np.ones((3, 3))))])]), "conn"),
])
def test_validation_names_layer_and_field(make, field):
    with pytest.raises(LoihiConfigError) as info:
        make().validate()
    assert info.value.field == field
    assert "layer" in str(info.value) or "input" in str(info.value)


def test_unsupported_layer_type():
    with pytest.raises(LoihiConfigError, match="unsupported layer type"):
        LoihiNetwork((3,), [object()]).validate()


def test_latency_one_step_per_layer():
    """An input spike at step 0 reaches layer i's spikes at step i + 1 through relay neurons."""
    eye = np.eye(4, dtype=np.int64) * 2
    net = LoihiNetwork((4,), [_dense(eye, neuron=RELAY) for _ in range(3)])
    x = np.zeros((8, 4), dtype=np.uint8)
    x[0, 1] = 1
    r = simulate(net, x)
    for i in range(3):
        assert np.argwhere(r.spikes[i][0].numpy()).tolist() == [[net.latency(i), 1]]


def test_shortcut_delay_matches_latency():
    """A matched shortcut from the input arrives together with the main path."""
    eye = np.eye(3, dtype=np.int64) * 2
    rel = CubaParams(du=4095, dv=4095, vth=2)  # needs both inputs (2+2 > 2, but 2 alone is not > 2)
    layers = [_dense(eye, neuron=RELAY), _dense(eye, neuron=rel)]
    layers[1].shortcuts.append(Shortcut(-1, DenseConn(eye), delay=matched_delay(-1, 1)))
    net = LoihiNetwork((3,), layers)
    x = np.zeros((6, 3), dtype=np.uint8)
    x[0, 2] = 1
    assert np.argwhere(simulate(net, x).spikes[1][0].numpy()).tolist() == [[2, 2]]
    layers[1].shortcuts[0].delay = 0  # unmatched: the two halves arrive one step apart, no spike
    assert simulate(net, x).spikes[1].sum() == 0


def test_pool_lowering_is_sum_pooling():
    """pool_layer's depthwise uniform conv equals sum pooling of the previous layer's spikes."""
    rng = np.random.default_rng(0)
    net = LoihiNetwork((2, 6, 6), [pool_layer(2, 2, weight=3, neuron=CubaParams(du=4095, dv=4095, vth=100000))])
    x = (rng.random((1, 5, 2, 6, 6)) < 0.5).astype(np.uint8)
    r = simulate(net, x, probe=[0])
    pooled = torch.nn.functional.avg_pool2d(torch.as_tensor(x[0], dtype=torch.float64), 2) * 4 * 3
    expected_u = (pooled * 64).to(torch.int64)  # du=4095: u = a << 6 exactly
    assert torch.equal(r.current[0][0, 1:], expected_u[:-1])
    assert r.current[0][0, 0].abs().sum() == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), exp=st.integers(-4, 3))
def test_loihi1_and_lava_exponents_agree_on_multiples(seed, exp):
    """Lava shifts the sum, Loihi 1 every weight; equal when weights are multiples of 2^-exp."""
    rng = np.random.default_rng(seed)
    step = 2 ** max(-exp, 1)
    w = rng.integers(-256 // step, 256 // step, size=(6, 10)) * step
    w = np.clip(w, -256, 254)
    net = LoihiNetwork((10,), [_dense(w, weight_exp=exp, neuron=CubaParams(du=300, dv=200, vth=50))])
    x = random_spikes(seed, 20, (10,), batch=2, rate=0.5)
    a = simulate(net, x, probe="all")
    b = simulate(net, x, probe="all", weight_exp_mode="loihi1")
    assert torch.equal(a.current[0], b.current[0]) and torch.equal(a.spikes[0], b.spikes[0])


def test_exponent_modes_differ_without_multiples():
    w = np.array([[1, 1, 1]])  # odd weights: each floor(1/2) = 0 per synapse, but floor(3/2) = 1 on the sum
    net = LoihiNetwork((3,), [_dense(w, weight_exp=-1, num_weight_bits=9, sign_mode="mixed", neuron=CubaParams(du=4095, dv=4095, vth=100))])
    x = np.ones((3, 3), dtype=np.uint8)
    assert simulate(net, x, probe=[0]).current[0][0, 1, 0] == 64
    assert simulate(net, x, probe=[0], weight_exp_mode="loihi1").current[0][0, 1, 0] == 0


def test_batch_equals_individual_samples_and_binary_input():
    net = random_conv_net(4)
    x = random_spikes(0, 12, net.input_shape, batch=3, rate=0.3)
    full = simulate(net, x)
    for b in range(3):
        one = simulate(net, x[b])
        assert all(torch.equal(f[b], o[0]) for f, o in zip(full.spikes, one.spikes))
    # binary input: any non-zero value is one spike
    assert all(torch.equal(a, b) for a, b in zip(full.spikes, simulate(net, x * 7).spikes))


def test_float32_and_float64_paths_agree():
    """Large fan-in forces the float64 path; both give the same integers."""
    from neurohw.loihi.simulator import _Synapse

    w = np.full((3, 70000), 254)
    syn = _Synapse(DenseConn(w), graded=False, device=torch.device("cpu"))
    x = torch.ones(1, 1, 70000, dtype=torch.int64)
    assert syn(x)[0, 0, 0].item() == ((254 * 70000 + 2**31) % 2**32) - 2**31


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_is_exact():
    for net in (random_dense_net(0), random_conv_net(0), random_shortcut_net(3)):
        x = random_spikes(1, 30, net.input_shape, batch=4, rate=0.3)
        cpu = simulate(net, x, probe="all")
        gpu = simulate(net, torch.as_tensor(x).cuda(), probe="all")
        assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu.spikes, gpu.spikes))
        assert all(torch.equal(cpu.voltage[k], gpu.voltage[k].cpu()) for k in cpu.voltage)


def test_neuron_reference_strict_and_reset():
    p = CubaParams(du=0, dv=0, vth=1)
    s, v, u = cuba_run(p, torch.tensor([[[1], [0], [0]]]), (1,), record_state=True)
    # u = 64, then 64·4095 >> 12 = 63, then 62; v = 64 (not > 64), 127 (spike, reset), 62
    assert s[0, :, 0].tolist() == [False, True, False]
    assert u[0, :, 0].tolist() == [64, 63, 62] and v[0, :, 0].tolist() == [64, 0, 62]


@pytest.mark.slow
def test_package_works_without_lava():
    """With Lava made unimportable, the package imports, simulates, exports and the CLI registers."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['lava'] = None\n"
        "import neurohw.loihi as L, neurohw.loihi.lava_bridge as B, neurohw.loihi.cli, neurohw.loihi.netx_io as N\n"
        "from neurohw.loihi.random_nets import random_dense_net, random_spikes\n"
        "net = random_dense_net(0); r = L.simulate(net, random_spikes(0, 5, net.input_shape))\n"
        "assert not B.lava_available()\n"
        "print('ok', len(r.spikes))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok 3" in out.stdout


def test_prepared_synapses_follow_in_place_weight_edits():
    """``simulate`` reuses prepared weights between calls; an in-place edit of a layer's weight
    array (or a changed field) must be seen: results equal those of a fresh copy of the net."""
    import copy

    import numpy as np
    import torch

    from neurohw.loihi import CubaParams, DenseLayer, LoihiNetwork, simulate
    from neurohw.loihi.simulator import _PREPARED

    rng = np.random.default_rng(3)
    net = LoihiNetwork((20,), [DenseLayer(rng.integers(-60, 90, size=(12, 20)), CubaParams(du=500, dv=300, vth=40)),
                               DenseLayer(rng.integers(-60, 90, size=(5, 12)), CubaParams(du=500, dv=300, vth=40))])
    x = torch.as_tensor(rng.random((3, 15, 20)) < 0.4)
    first = simulate(net, x, probe="all")
    assert [torch.equal(a, b) for a, b in zip(first.spikes, simulate(net, x, probe="all").spikes)] == [True, True]
    net.layers[0].weight[:] = -net.layers[0].weight  # in place: same array object
    net.layers[1].weight_exp = 1
    edited = simulate(net, x, probe="all")
    _PREPARED.clear()
    fresh = simulate(copy.deepcopy(net), x, probe="all")
    assert not torch.equal(first.voltage[0], edited.voltage[0])
    for a, b in zip(edited.spikes + [edited.voltage[1], edited.current[1]], fresh.spikes + [fresh.voltage[1], fresh.current[1]]):
        assert torch.equal(a, b)
