"""Random networks: neurohw's simulator and Lava 0.10 (fixed_pt) give identical spikes at every
step and identical voltages/currents, both for the process-built network and for the exported
netx file loaded by ``netx.hdf5.Network``. Kept small: each Lava run takes a few seconds."""
from __future__ import annotations

import numpy as np
import pytest

from neurohw.loihi import CubaParams, DenseLayer, LoihiNetwork, pool_layer, simulate
from neurohw.loihi.netx_io import write_netx
from neurohw.loihi.random_nets import (random_conv_net, random_cuba, random_dense_net, random_shortcut_net,
                                       random_spikes)
from lava_compare import assert_identical

pytestmark = [pytest.mark.lava, pytest.mark.slow]
STEPS = 50


@pytest.mark.parametrize("seed", [0, 4])
def test_random_dense_process_built(seed):
    from neurohw.loihi.lava_bridge import run_in_lava

    net = random_dense_net(seed, sizes=(24, 20, 16, 10))  # varied weight_exp (−2..1) and num_weight_bits
    x = random_spikes(seed, STEPS, net.input_shape, batch=1, rate=0.3)
    assert_identical(simulate(net, x, probe="all"), run_in_lava(net, x, probe="all"), 3)


def test_random_conv_process_built():
    from neurohw.loihi.lava_bridge import run_in_lava

    net = random_conv_net(0)
    x = random_spikes(10, STEPS, net.input_shape, batch=1, rate=0.3)
    assert_identical(simulate(net, x, probe=[1, 2]), run_in_lava(net, x, probe=[1, 2]), 3)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_random_netx_loaded(kind, tmp_path):
    from neurohw.loihi.lava_bridge import run_netx_in_lava

    net = random_dense_net(2, netx_safe=True) if kind == "dense" else random_conv_net(5)
    path = write_netx(net, tmp_path / f"{kind}.net")
    x = random_spikes(3, STEPS, net.input_shape, batch=1, rate=0.3)
    assert_identical(simulate(net, x, probe="all"), run_netx_in_lava(path, x, probe="all"), 3)


def test_shortcut_process_built_and_netx(tmp_path):
    from neurohw.loihi.lava_bridge import run_in_lava, run_netx_in_lava

    net = random_shortcut_net(3)
    x = random_spikes(4, STEPS, net.input_shape, batch=1, rate=0.35)
    ours = simulate(net, x, probe=[2])
    assert_identical(ours, run_in_lava(net, x, probe=[2]), 3)
    path = write_netx(net, tmp_path / "shortcut.net")
    assert_identical(ours, run_netx_in_lava(path, x, probe=[2]), 3)


def test_graded_input_and_pool_lowering(tmp_path):
    """Graded (integer) input spikes into a conv → pool(lowered) → dense network, via netx."""
    from neurohw.loihi.lava_bridge import run_netx_in_lava
    from neurohw.loihi.network import ConvLayer

    rng = np.random.default_rng(7)
    layers = [
        ConvLayer(rng.integers(-20, 21, size=(3, 1, 3, 3)), CubaParams(du=300, dv=500, vth=300, bias_mant=2, bias_exp=6), padding=1),
        pool_layer(3, 2, weight=40, neuron=CubaParams(du=4095, dv=1000, vth=50)),
        DenseLayer(rng.integers(-100, 101, size=(6, 3 * 4 * 4)) * 2, random_cuba(rng, 6, netx_safe=True)),
    ]
    net = LoihiNetwork((1, 8, 8), layers, input_message_bits=8)
    x = rng.integers(0, 30, size=(1, STEPS, 1, 8, 8)) * (rng.random((1, STEPS, 1, 8, 8)) < 0.4)
    path = write_netx(net, tmp_path / "graded_pool.net")
    ours = simulate(net, x, probe="all")
    binary = simulate(LoihiNetwork(net.input_shape, net.layers, input_message_bits=0), x)
    assert not np.array_equal(ours.spikes[0].numpy(), binary.spikes[0].numpy()), "graded input must matter"
    assert_identical(ours, run_netx_in_lava(path, x, probe="all"), 3)


@pytest.mark.parametrize("seed", [1])
def test_all_issue13_kinds_together_process_built_and_netx(seed, tmp_path):
    """Sigma-delta with per-synapse delays → recurrent LIF on graded messages → LIF with per-output
    delays and a graded shortcut matched by a synaptic delay; graded input. Messages/spikes and
    states of every layer identical in both Lava paths."""
    from neurohw.loihi.lava_bridge import run_in_lava, run_netx_in_lava
    from neurohw.loihi.random_nets import random_mixed_net

    net = random_mixed_net(seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 20, size=(1, 30, *net.input_shape)) * (rng.random((1, 30, *net.input_shape)) < 0.4)
    ours = simulate(net, x, probe="all")
    for lava in (run_in_lava(net, x, probe="all"), run_netx_in_lava(write_netx(net, tmp_path / "mixed.net"), x, probe="all")):
        for i, (a, b) in enumerate(zip(ours.spikes, lava.spikes)):
            assert a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy()), f"layer {i}"
            assert (a != 0).sum() > 0
        for k in range(3):
            assert np.array_equal(ours.voltage[k].numpy(), lava.voltage[k].numpy()), f"voltage of layer {k}"
            assert np.array_equal(ours.current[k].numpy(), lava.current[k].numpy()), f"current of layer {k}"
