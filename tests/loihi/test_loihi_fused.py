"""The batch-1 fused chain (:mod:`neurohw.loihi.fused`): every layer in one time loop must give
exactly the layer-by-layer run's spikes, voltages and currents (which the Lava suites check
against Lava; ``test_loihi_lava_equality`` also runs the chain itself, at batch 1), including
when a later layer needs the current wrap or the voltage saturation that the first run skipped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neurohw.loihi import CubaParams, DenseLayer, LoihiNetwork, simulate
from neurohw.loihi import fused
from neurohw.loihi import simulator as sim
from neurohw.loihi.random_nets import random_dense_net, random_spikes


def _layered(net, x, monkeypatch, **kw):
    with monkeypatch.context() as m:
        m.setattr(sim, "CHAIN_MAX_BATCH", 0)
        return simulate(net, x, **kw)


def _assert_same(a, b):
    assert len(a.spikes) == len(b.spikes)
    for i, (p, q) in enumerate(zip(a.spikes, b.spikes)):
        assert p.shape == q.shape and p.dtype == q.dtype and torch.equal(p, q), f"spikes of layer {i}"
    assert sorted(a.voltage) == sorted(b.voltage)
    for k in a.voltage:
        assert torch.equal(a.voltage[k], b.voltage[k]), f"voltage of layer {k}"
        assert torch.equal(a.current[k], b.current[k]), f"current of layer {k}"


def _spy_chain_runs(monkeypatch) -> list:
    calls = []
    real = fused.chain_run

    def counted(*args, **kwargs):
        calls.append((args[3], args[4]))  # wrap, clip
        return real(*args, **kwargs)

    monkeypatch.setattr(sim, "chain_run", counted)
    return calls


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("probe", ["all", ()])
def test_chain_equals_layer_by_layer(seed, probe, monkeypatch):
    net = random_dense_net(seed, sizes=(30, 24, 16, 10))  # weight_exp −2..1, per-neuron biases
    x = random_spikes(seed, 40, net.input_shape, batch=1, rate=0.3)
    calls = _spy_chain_runs(monkeypatch)
    ours = simulate(net, x, probe=probe)
    assert calls, "the network is a plain dense chain: the fused loop should have run"
    _assert_same(ours, _layered(net, x, monkeypatch, probe=probe))
    assert sum(int(s.sum()) for s in ours.spikes) > 0


def _saturating_net() -> LoihiNetwork:
    """Layer 0 needs neither wrap nor clip; layer 1 (strongly inhibited, almost no voltage
    decay) needs the lower voltage saturation; layer 2 (no current decay, strong input) the
    24-bit current wrap. Only the input each later layer actually receives shows it."""
    rng = np.random.default_rng(5)
    w0 = rng.integers(20, 60, size=(40, 30))
    w1 = np.concatenate([np.full((4, 40), -250), np.full((28, 40), 100)])  # 4 saturate, 28 spike
    w2 = rng.integers(200, 250, size=(6, 32))
    return LoihiNetwork((30,), [
        DenseLayer(w0, CubaParams(du=4095, dv=4095, vth=50, bias_mant=100, bias_exp=6)),
        DenseLayer(w1, CubaParams(du=4095, dv=1, vth=3000)),
        DenseLayer(w2, CubaParams(du=0, dv=2000, vth=131071)),
    ])


def test_chain_reruns_with_wrap_and_clip_when_a_later_layer_needs_them(monkeypatch):
    net = _saturating_net()
    x = random_spikes(1, 60, net.input_shape, batch=1, rate=0.5)
    calls = _spy_chain_runs(monkeypatch)
    ours = simulate(net, x, probe="all")
    assert calls == [(False, False), (True, True)], calls
    ref = _layered(net, x, monkeypatch, probe="all")
    _assert_same(ours, ref)
    assert int(ref.voltage[1].min()) == -(2**23 - 1), "layer 1 should reach the lower saturation"
    assert int(ref.current[2].min()) < 0 < int(ref.current[2].max()), "layer 2's current should wrap"
    assert int(ref.spikes[1].sum()) > 0 and int(ref.spikes[2].sum()) > 0


@pytest.mark.lava
@pytest.mark.slow
def test_saturating_chain_equals_lava():
    """The rerun path against Lava itself (process-built network)."""
    from lava_compare import assert_identical

    from neurohw.loihi.lava_bridge import run_in_lava

    net = _saturating_net()
    x = random_spikes(1, 60, net.input_shape, batch=1, rate=0.5)
    assert_identical(simulate(net, x, probe="all"), run_in_lava(net, x, probe="all"), 3)


def test_chain_is_not_used_for_batches_shortcuts_or_counts(monkeypatch):
    net = random_dense_net(2, sizes=(20, 16, 8))
    calls = _spy_chain_runs(monkeypatch)
    simulate(net, random_spikes(2, 20, net.input_shape, batch=3, rate=0.3))
    simulate(net, random_spikes(2, 20, net.input_shape, batch=1, rate=0.3), count_ops=True)
    assert calls == []
    simulate(net, random_spikes(2, 20, net.input_shape, batch=1, rate=0.3))
    assert len(calls) == 1
