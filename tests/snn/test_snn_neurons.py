"""CUBA LIF on Loihi grids: against snnTorch's Leaky, against integer Lava semantics, surrogates, grids."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from snn.deploy import cuba_int
from neurohw.loihi.fixedpoint import (current_decay_to_du, quantize_weight, snap_threshold, threshold_to_int, voltage_decay_to_dv,
                       weight_to_int)
from snn.neurons import CubaLIF, lif_sequence
from snn.surrogate import get_surrogate


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dv=st.integers(0, 4095), theta64=st.integers(1, 200))
def test_lif_equals_snntorch_leaky(seed, dv, theta64):
    """Without Loihi rounding and with no synaptic filter, our LIF spikes exactly as snntorch.Leaky(reset zero)."""
    import snntorch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 12, 5, generator=g)
    theta = theta64 / 64
    lif = CubaLIF(current_decay=1.0, voltage_decay=dv / 4096, threshold=theta, exact=False)
    ours = lif(x)
    leaky = snntorch.Leaky(beta=1 - dv / 4096, threshold=theta, reset_mechanism="zero")
    mem = leaky.init_leaky()
    ref = []
    for t in range(x.shape[1]):
        s, mem = leaky(x[:, t], mem)
        ref.append(s)
    assert torch.equal(ours, torch.stack(ref, 1))


def _grid_input(g, shape, scale=400):
    """Synaptic input on the weight grid: a_in integers / 64 (what Σ w·s gives)."""
    return torch.randint(-scale, scale + 1, shape, generator=g).double()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), du=st.integers(0, 4095), dv=st.integers(0, 4095), vth=st.integers(0, 2000),
       scale=st.sampled_from([50, 400, 30000]))
def test_exact_lif_equals_lava_integer_arithmetic(seed, du, dv, vth, scale):
    """exact=True reproduces Lava fixed_pt (truncating decays, wrap, saturation) spike for spike, states included."""
    g = torch.Generator().manual_seed(seed)
    a_in = _grid_input(g, (4, 16, 7), scale).long()
    spikes_int = cuba_int(a_in, du, dv, vth)
    s, u, v = lif_sequence(a_in.double() / 64, du, dv, vth / 64, get_surrogate("atan"), exact=True, return_states=True)
    assert torch.equal(s.bool(), spikes_int)
    # the float states are exactly the integer states / 4096
    assert torch.equal(u * 4096, torch.round(u * 4096))
    assert torch.equal(v * 4096, torch.round(v * 4096))


def test_exact_lif_float32_matches_integer():
    """The training dtype (float32) gives the same spikes as float64 for grid inputs."""
    g = torch.Generator().manual_seed(3)
    a_in = _grid_input(g, (16, 8, 32), 300).long()
    s32 = lif_sequence(a_in.float() / 64, 2047, 1024, 1.0, get_surrogate("triangle"), exact=True)
    assert torch.equal(s32.bool(), cuba_int(a_in, 2047, 1024, 64))


def test_inexact_lif_can_differ_from_integer():
    """Without rounding emulation the float LIF drifts from Lava: the exact mode is needed (this must find a case)."""
    g = torch.Generator().manual_seed(0)
    a_in = _grid_input(g, (64, 20, 64), 100).long()
    s = lif_sequence(a_in.double() / 64, 1000, 700, 1.0, get_surrogate("atan"), exact=False)
    assert not torch.equal(s.bool(), cuba_int(a_in, 1000, 700, 64))


def test_reset_keeps_current_and_zeroes_voltage():
    x = torch.zeros(1, 3, 1)
    x[0, 0, 0] = 3.0
    s, u, v = lif_sequence(x, du=2047, dv=0, theta=1.0, spike_fn=get_surrogate("atan"), return_states=True)
    assert s[0, :, 0].tolist() == [1.0, 1.0, 0.0]
    assert v[0, 0, 0] == 0 and u[0, 0, 0] == 3.0  # current kept after the spike
    assert u[0, 1, 0] == 1.5 and u[0, 2, 0] == 0.75


@pytest.mark.parametrize("name", ["atan", "triangle", "fast_sigmoid"])
def test_surrogates_forward_strict_and_gradients(name):
    fn = get_surrogate(name)
    x = torch.tensor([-1.5, -0.5, 0.0, 0.25, 2.0], requires_grad=True)
    y = fn(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # strict >, as on Loihi
    y.sum().backward()
    g = x.grad
    if name == "atan":
        expect = 2.0 / 2 / (1 + (math.pi / 2 * 2.0 * x.detach()) ** 2)
    elif name == "fast_sigmoid":
        expect = 1 / (25 * x.detach().abs() + 1) ** 2
    else:
        expect = (1 - x.detach().abs()).clamp_min(0)
    assert torch.allclose(g, expect)
    assert g[2] == g.max()  # peaks at the threshold


def test_unknown_surrogate_names_choices():
    with pytest.raises(ValueError, match="atan"):
        get_surrogate("sigmoidal")


def test_grids():
    w = torch.tensor([0.0, 0.01, -0.02, 1.0, 10.0, -10.0])
    q = quantize_weight(w)
    ints = weight_to_int(q)
    assert ints.tolist() == [0, 0, -2, 64, 254, -256]
    assert (ints % 2 == 0).all()
    with pytest.raises(ValueError, match="grid"):
        weight_to_int(torch.tensor([0.001]))
    assert threshold_to_int(1.0) == 64
    with pytest.raises(ValueError, match="1/64"):
        threshold_to_int(1.001)
    assert snap_threshold(1.001) == 1.0
    assert current_decay_to_du(1.0) == 4095 and current_decay_to_du(0.5) == 2047
    assert voltage_decay_to_dv(0.25) == 1024
    with pytest.raises(ValueError, match="current decay"):
        current_decay_to_du(0.0)
    with pytest.raises(ValueError, match="voltage decay"):
        voltage_decay_to_dv(1.0)


def test_quantize_weight_straight_through():
    w = torch.tensor([0.3, -0.7], requires_grad=True)
    quantize_weight(w).sum().backward()
    assert w.grad.tolist() == [1.0, 1.0]
