"""Seeded random Loihi networks and inputs, for equality tests against Lava and benchmarks."""
from __future__ import annotations

import numpy as np

from .network import ConvLayer, CubaParams, DenseLayer, LoihiNetwork, Shortcut, matched_delay


def random_cuba(rng: np.random.Generator, n: int | tuple[int, ...], *, per_neuron_bias: bool = True,
                vth_range=(20, 400), netx_safe: bool = False) -> CubaParams:
    """Varied du/dv/vth and (optionally per-neuron) bias, within Lava's ranges.
    ``netx_safe``: bias_exp = 6 (netx fixes it) with small mantissas."""
    shape = (n,) if isinstance(n, int) else tuple(n)
    du = int(rng.integers(0, 4096))
    dv = int(rng.integers(0, 4096))
    vth = int(rng.integers(*vth_range))
    lo, hi = (-4, 7) if netx_safe else (-40, 60)
    if per_neuron_bias:
        bias_mant = rng.integers(lo, hi, size=shape).astype(np.int64)
    else:
        bias_mant = int(rng.integers(lo, hi))
    bias_exp = 6 if netx_safe else int(rng.integers(0, 4))
    return CubaParams(du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)


def random_dense_net(seed: int, sizes=(24, 20, 16, 10), *, weight_exp_range=(-2, 2), netx_safe: bool = False) -> LoihiNetwork:
    """A dense network with mixed-sign 8-bit weights, varied weight_exp / num_weight_bits.

    ``netx_safe``: weights/exponents that netx can represent exactly (integer effective
    weights: ``weight_exp ≥ 0`` and effective weights within 8 bits).
    """
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-256, 256, size=(n_out, n_in)).astype(np.int64)
        if netx_safe:
            exp = 0
            w = rng.integers(-128, 128, size=(n_out, n_in)).astype(np.int64) * 2
            nwb = 8
        else:
            exp = int(rng.integers(*weight_exp_range))
            nwb = int(rng.integers(4, 9))
        layers.append(DenseLayer(w, random_cuba(rng, n_out, netx_safe=netx_safe), weight_exp=exp, num_weight_bits=nwb))
    return LoihiNetwork((sizes[0],), layers, name=f"random_dense_{seed}")


def random_conv_net(seed: int, input_shape=(2, 10, 10), channels=(4, 6), dense_out: int = 10) -> LoihiNetwork:
    """Conv → conv (stride 2, padding) → dense, mixed-sign weights."""
    rng = np.random.default_rng(seed)
    c_in = input_shape[0]
    layers = []
    c1, c2 = channels
    layers.append(ConvLayer(rng.integers(-60, 61, size=(c1, c_in, 3, 3)), random_cuba(rng, 1, per_neuron_bias=False, netx_safe=True),
                            padding=1))
    layers.append(ConvLayer(rng.integers(-60, 61, size=(c2, c1, 3, 3)), random_cuba(rng, 1, per_neuron_bias=False, netx_safe=True),
                            stride=2, padding=(1, 0)))
    net = LoihiNetwork(tuple(input_shape), layers)
    n_flat = int(np.prod(net._shapes()[-1]))
    layers.append(DenseLayer(rng.integers(-120, 121, size=(dense_out, n_flat)) * 2, random_cuba(rng, dense_out, netx_safe=True)))
    return LoihiNetwork(tuple(input_shape), layers, name=f"random_conv_{seed}")


def random_shortcut_net(seed: int, sizes=(16, 14, 14, 10)) -> LoihiNetwork:
    """Dense chain with a latency-matched shortcut from layer 0 into layer 2."""
    net = random_dense_net(seed, sizes, netx_safe=True)
    rng = np.random.default_rng(seed + 1000)
    w = rng.integers(-100, 101, size=(sizes[3], sizes[1])).astype(np.int64) * 2
    from .network import DenseConn

    net.layers[2].shortcuts.append(Shortcut(0, DenseConn(w), delay=matched_delay(0, 2)))
    return net


def random_recurrent_net(seed: int, sizes=(16, 14, 12, 8), *, netx_safe: bool = True) -> LoihiNetwork:
    """Dense chain whose layers 0 and 2 are recurrent (own spikes of step t − 1 back in).

    ``netx_safe``: every layer's two matrices share one exponent and bit width (as netx stores a
    ``dense_rec`` layer); otherwise the recurrent weights get their own exponent and bits."""
    from .network import DenseConn

    net = random_dense_net(seed, sizes, netx_safe=netx_safe)
    rng = np.random.default_rng(seed + 2000)
    for i in (0, 2):
        n = sizes[i + 1]
        w = rng.integers(-90, 91, size=(n, n)).astype(np.int64) * 2
        w[rng.random((n, n)) < 0.3] = 0
        if netx_safe:
            net.layers[i].recurrent = DenseConn(w)
        else:
            net.layers[i].recurrent = DenseConn(w, weight_exp=int(rng.integers(-2, 2)), num_weight_bits=int(rng.integers(4, 9)))
    net.name = f"random_recurrent_{seed}"
    return net


def random_delay_net(seed: int, sizes=(16, 14, 12, 8), *, netx_safe: bool = True, max_delay: int = 4) -> LoihiNetwork:
    """Dense chain with synaptic delays: per synapse (n_out, n_in) on layer 1, per output neuron
    (n_out, 1) on layer 2, and a shortcut from the input into layer 2 with per-input delays
    (1, n_in) on top of its matched delay. ``netx_safe=False``: varied (also negative) weight
    exponents, so each delay's partial sum is floor-shifted on its own."""
    from .network import DenseConn

    net = random_dense_net(seed, sizes, netx_safe=netx_safe)
    rng = np.random.default_rng(seed + 3000)
    net.layers[1].delay = rng.integers(0, max_delay + 1, size=net.layers[1].weight.shape)
    net.layers[2].delay = rng.integers(0, max_delay + 1, size=(sizes[3], 1))
    w = rng.integers(-100, 101, size=(sizes[3], sizes[0])).astype(np.int64) * 2
    net.layers[2].shortcuts.append(Shortcut(-1, DenseConn(w, delay=rng.integers(0, max_delay + 1, size=(1, sizes[0]))),
                                            delay=matched_delay(-1, 2)))
    net.name = f"random_delay_{seed}"
    return net


def random_sigma_delta_net(seed: int, input_shape=(2, 8, 8), *, netx_safe: bool = True, graded_input: bool = True) -> LoihiNetwork:
    """Sigma-delta conv → sigma-delta dense → CUBA dense (a LIF read-out on graded messages).

    Graded integer input (``input_message_bits`` 8) by default. ``netx_safe``: netx's SDNN
    settings (spike_exp = state_exp = 6, ReLU, no cumulative error, weight_exp 0); otherwise varied
    exponents, the unit activation, cumulative error and a negative weight exponent."""
    from .network import SigmaDeltaParams

    rng = np.random.default_rng(seed)
    c = input_shape[0]

    def sd(n_bias, vth):
        if netx_safe:
            return SigmaDeltaParams(vth=vth, bias=rng.integers(-3, 4, size=n_bias))
        return SigmaDeltaParams(vth=vth, bias=rng.integers(-3, 4, size=n_bias), spike_exp=int(rng.integers(2, 7)),
                                state_exp=int(rng.integers(2, 7)), activation=str(rng.choice(["relu", "unit"])),
                                cum_error=bool(rng.integers(0, 2)))

    conv = ConvLayer(rng.integers(-30, 40, size=(4, c, 3, 3)), sd(None, int(rng.integers(1, 4))), stride=2, padding=1)
    conv.neuron.bias = int(rng.integers(-2, 3))
    net = LoihiNetwork(tuple(input_shape), [conv], input_message_bits=8 if graded_input else 0)
    n = int(np.prod(net._shapes()[0]))
    w1 = rng.integers(-60, 61, size=(12, n)) * 2
    net.layers.append(DenseLayer(w1, sd((12,), int(rng.integers(1, 4))), weight_exp=0 if netx_safe else -1))
    w2 = rng.integers(-80, 81, size=(6, 12)) * 2
    net.layers.append(DenseLayer(w2, CubaParams(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                                                vth=int(rng.integers(2000, 20000)), bias_mant=int(rng.integers(-4, 5)), bias_exp=6)))
    net.name = f"random_sigma_delta_{seed}"
    net.__post_init__()
    return net


def random_mixed_net(seed: int, sizes=(12, 14, 12, 8)) -> LoihiNetwork:
    """Every issue-13 kind in one netx-safe network, graded input (8 bits):
    sigma-delta dense with per-synapse delays (0) → recurrent CUBA dense reading graded messages
    (1) → CUBA dense with per-output delays (2), plus a shortcut 0 → 2 whose latency is matched by
    a synaptic delay of 1 (a graded source cannot go through LIF relays)."""
    from .network import DenseConn, SigmaDeltaParams

    rng = np.random.default_rng(seed)
    n0, n1, n2, n3 = sizes
    sd = SigmaDeltaParams(vth=int(rng.integers(1, 4)), bias=rng.integers(-2, 3, size=n1))
    l0 = DenseLayer(rng.integers(-60, 61, size=(n1, n0)) * 2, sd, delay=rng.integers(0, 3, size=(n1, n0)))
    w_rec = rng.integers(-60, 61, size=(n2, n2)) * 2
    w_rec[rng.random((n2, n2)) < 0.4] = 0
    l1 = DenseLayer(rng.integers(-40, 41, size=(n2, n1)) * 2,
                    CubaParams(du=int(rng.integers(500, 4096)), dv=int(rng.integers(100, 2000)), vth=int(rng.integers(1000, 8000))),
                    recurrent=DenseConn(w_rec))
    l2 = DenseLayer(rng.integers(-100, 101, size=(n3, n2)) * 2, random_cuba(rng, n3, netx_safe=True, vth_range=(50, 300)),
                    delay=rng.integers(0, 4, size=(n3, 1)))
    l2.shortcuts.append(Shortcut(0, DenseConn(rng.integers(-20, 21, size=(n3, n1)) * 2, delay=1)))
    return LoihiNetwork((n0,), [l0, l1, l2], input_message_bits=8, name=f"random_mixed_{seed}")


def random_spikes(seed: int, steps: int, shape, batch: int | None = None, rate: float = 0.3) -> np.ndarray:
    """Bernoulli spikes (uint8), (steps, *shape) or (batch, steps, *shape)."""
    rng = np.random.default_rng(seed)
    full = ((batch,) if batch else ()) + (steps,) + tuple(shape)
    return (rng.random(full) < rate).astype(np.uint8)


def random_block_net(seed: int, input_shape=(2, 8, 8)) -> LoihiNetwork:
    """Every lowered block netx refuses, in one seeded network:
    conv(0) → conv(1) → conv on concat(0, 1) (2) with a residual from 1 → average pool (3) →
    sum pool (4) → dense on concat(input, 3, 4) (5). netx-safe weights and biases."""
    from .blocks import add_residual, append_concat, avg_pool_layer
    from .network import pool_layer

    rng = np.random.default_rng(seed)
    c = input_shape[0]

    def neuron(vth=(40, 200)):
        return random_cuba(rng, 1, per_neuron_bias=False, vth_range=vth, netx_safe=True)

    net = LoihiNetwork(tuple(input_shape), [
        ConvLayer(rng.integers(-60, 61, size=(4, c, 3, 3)), neuron(), padding=1),
        ConvLayer(rng.integers(-60, 61, size=(4, 4, 3, 3)), neuron(), padding=1),
    ], name=f"random_blocks_{seed}")
    append_concat(net, [0, 1], rng.integers(-50, 51, size=(4, 8, 3, 3)), neuron(), kind="conv", padding=(1, 1))
    add_residual(net, 2, 1, int(rng.integers(20, 80)))
    net.layers.append(avg_pool_layer(4, 2, 4 * int(rng.integers(10, 30)), neuron((10, 60))))
    net.layers.append(pool_layer(4, 2, int(rng.integers(10, 40)), neuron((10, 40)), stride=1))
    n = sum(int(np.prod(s)) for s in (input_shape, net._shapes()[3], net._shapes()[4]))
    append_concat(net, [-1, 3, 4], rng.integers(-100, 101, size=(10, n)) * 2, random_cuba(rng, 10, netx_safe=True))
    net.__post_init__()
    return net
