"""Fixed-point rules: the torch simulator against Lava's own arithmetic (called directly, no
runtime) and against a plain-Python reading of the rules; weight clipping/truncation and netx's
weight-bit optimisation against Lava's functions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurohw.loihi.fixedpoint import (clip_weights, effective_dense_weights, netx_optimize_weight_bits,
                                      sign_mode_of, truncate_weights, wrap32)
from neurohw.loihi.network import CubaParams
from neurohw.loihi.simulator import cuba_run


def _ref_step(u, v, a, p: CubaParams):
    """One LIF step in plain Python ints, written from docs/loihi.md."""
    def tz(x):
        return (abs(x) >> 12) * (1 if x > 0 else -1 if x < 0 else 0)

    def w32(x):
        return ((x + 2**31) % 2**32) - 2**31

    cur = w32(tz(u * (4096 - (p.du + 1))) + w32(a << 6))
    if cur > 2**23:
        u2 = cur - 2**24
    elif cur <= -(2**23):
        u2 = cur + 2**24
    else:
        u2 = cur
    bias = p.bias_mant << p.bias_exp
    v2 = w32(tz(v * (4096 - p.dv)) + u2 + bias)
    v2 = max(-(2**23 - 1), min(2**23 - 1, v2))
    s = v2 > (p.vth << 6)
    return u2, (0 if s else v2), s


params = st.builds(
    CubaParams,
    du=st.integers(0, 4095), dv=st.integers(0, 4095), vth=st.integers(0, 131071),
    bias_mant=st.integers(-4096, 4095), bias_exp=st.integers(0, 7),
)


@settings(max_examples=60, deadline=None)
@given(p=params, a=st.lists(st.integers(-(2**17), 2**17), min_size=1, max_size=12))
def test_cuba_matches_python_reference(p, a):
    a_t = torch.tensor(a, dtype=torch.int64).reshape(1, -1, 1)
    s, v, u = cuba_run(p, a_t, (1,), record_state=True)
    uu = vv = 0
    for t, at in enumerate(a):
        uu, vv, ss = _ref_step(uu, vv, at, p)
        assert int(u[0, t, 0]) == uu and int(v[0, t, 0]) == vv and bool(s[0, t, 0]) == ss


@settings(max_examples=40, deadline=None)
@given(p=params, a=st.lists(st.integers(-(2**28), 2**28), min_size=1, max_size=12))
def test_cuba_int32_overflow_paths_match_reference(p, a):
    """Inputs ≥ 2^23 switch on the int32 wrap-around emulation (numpy's int32 stores)."""
    a = a + [2**27]
    a_t = torch.tensor(a, dtype=torch.int64).reshape(1, -1, 1)
    s, v, u = cuba_run(p, a_t, (1,), record_state=True)
    uu = vv = 0
    for t, at in enumerate(a):
        uu, vv, ss = _ref_step(uu, vv, at, p)
        assert int(u[0, t, 0]) == uu and int(v[0, t, 0]) == vv and bool(s[0, t, 0]) == ss


@settings(max_examples=40, deadline=None)
@given(p=params, level=st.integers(2**12, 2**24), steps=st.integers(5, 40), sign=st.sampled_from([1, -1]))
def test_cuba_sustained_input_growth_matches_reference(p, level, steps, sign):
    """A constant input makes u grow over many steps (slow current decay): the single 24-bit
    wrap and int32 wrap-around must match step for step, whichever internal path runs."""
    a = [sign * level] * steps
    a_t = torch.tensor(a, dtype=torch.int64).reshape(1, -1, 1)
    s, v, u = cuba_run(p, a_t, (1,), record_state=True)
    uu = vv = 0
    for t, at in enumerate(a):
        uu, vv, ss = _ref_step(uu, vv, at, p)
        assert int(u[0, t, 0]) == uu and int(v[0, t, 0]) == vv and bool(s[0, t, 0]) == ss


def test_edge_rules():
    # strict threshold: v == vth << 6 does not spike
    p = CubaParams(du=4095, dv=4095, vth=1)
    s, v, u = cuba_run(p, torch.tensor([[[1], [2]]], dtype=torch.int64), (1,), record_state=True)
    assert s[0, :, 0].tolist() == [False, True]  # 64 is not > 64; 128 is
    # truncation toward zero on negative voltages: −4097 · 4095/4096 → −(4097·4095 >> 12)
    p = CubaParams(du=4095, dv=1, vth=100000)
    s, v, u = cuba_run(p, torch.tensor([[[-65], [0]]], dtype=torch.int64), (1,), record_state=True)
    assert int(v[0, 0, 0]) == -65 * 64
    assert int(v[0, 1, 0]) == -((65 * 64 * 4095) >> 12)
    # the current wraps at 24 bits, the voltage saturates
    p = CubaParams(du=0, dv=0, vth=131071)
    a = torch.tensor([[[2**17], [2**17]]], dtype=torch.int64)  # 2^23 each
    s, v, u = cuba_run(p, a, (1,), record_state=True)
    assert int(u[0, 0, 0]) == 2**23  # +2^23 itself stays
    assert int(u[0, 1, 0]) == 2**23 - 2**11 + 2**23 - 2**24  # decayed then wrapped
    p = CubaParams(du=4095, dv=0, vth=131071)
    a = torch.full((1, 2, 1), -(2**17) + 1, dtype=torch.int64)
    s, v, u = cuba_run(p, a, (1,), record_state=True)
    assert int(u[0, 1, 0]) == -(2**23) + 64
    assert int(v[0, 1, 0]) == -(2**23 - 1)  # saturates instead of wrapping


def test_wrap32():
    x = torch.tensor([2**31, -(2**31) - 1, 5, -5], dtype=torch.int64)
    assert wrap32(x).tolist() == [-(2**31), 2**31 - 1, 5, -5]


@pytest.mark.lava
@settings(max_examples=40, deadline=None)
@given(
    p=params,
    u0=st.lists(st.integers(-(2**23) + 1, 2**23), min_size=4, max_size=4),
    v0=st.lists(st.integers(-(2**23) + 1, 2**23 - 1), min_size=4, max_size=4),
    a=st.lists(st.one_of(st.integers(-(2**16), 2**16), st.integers(-(2**27), 2**27)), min_size=4, max_size=4),
)
def test_one_step_equals_lava_lif_model(p, u0, v0, a):
    """Lava's PyLifModelBitAcc arithmetic (called directly) and neurohw's step agree."""
    from lava.proc.lif.models import PyLifModelBitAcc

    m = PyLifModelBitAcc({})
    m.u = np.array(u0, dtype=np.int32)
    m.v = np.array(v0, dtype=np.int32)
    m.du, m.dv, m.vth = p.du, p.dv, p.vth
    m.bias_mant = np.full(4, p.bias_mant, dtype=np.int16)
    m.bias_exp = np.full(4, p.bias_exp, dtype=np.int16)
    m.scale_bias()
    m.scale_threshold()
    m.subthr_dynamics(activation_in=np.array(a, dtype=np.int32))
    s_lava = m.spiking_activation()
    m.reset_voltage(s_lava)
    for i in range(4):
        u, v, s = _ref_step(u0[i], v0[i], a[i], p)
        assert (u, v, s) == (int(m.u[i]), int(m.v[i]), bool(s_lava[i]))


@pytest.mark.lava
@settings(max_examples=60, deadline=None)
@given(
    w=st.lists(st.integers(-300, 300), min_size=6, max_size=6),
    mode=st.sampled_from(["mixed", "excitatory", "inhibitory"]),
    bits=st.integers(1, 8),
)
def test_clip_and_truncate_equal_lava(w, mode, bits):
    from lava.utils import weightutils as wu

    lm = {"mixed": wu.SignMode.MIXED, "excitatory": wu.SignMode.EXCITATORY, "inhibitory": wu.SignMode.INHIBITORY}[mode]
    w = np.array(w)
    ours = truncate_weights(clip_weights(w, mode, 8), mode, bits)
    theirs = wu.truncate_weights(wu.clip_weights(w, lm, num_bits=8), lm, bits)
    assert np.array_equal(ours, theirs)


@pytest.mark.lava
@settings(max_examples=60, deadline=None)
@given(w=st.lists(st.integers(-256, 254), min_size=5, max_size=5).filter(lambda l: any(l)),
       shift=st.integers(0, 5))
def test_netx_optimize_weight_bits_equals_lava_dl(w, shift):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        from lava.lib.dl.netx.utils import optimize_weight_bits

    w = (np.array(w) >> shift) << shift
    if not w.any():
        return
    ours = netx_optimize_weight_bits(w)
    tw, tbits, texp, _ = optimize_weight_bits(w.copy())
    assert np.array_equal(ours.weight, tw) and ours.num_weight_bits == tbits and ours.weight_exp == texp


def test_netx_worked_case_binary_64():
    """LOIHI.md's worked case: binary ±64 → stored ±128, weight_exp −1, 2 weight bits."""
    r = netx_optimize_weight_bits(np.array([[64, -64], [-64, 64]]))
    assert np.array_equal(np.abs(r.weight), np.full((2, 2), 128))
    assert (r.weight_exp, r.num_weight_bits, r.sign_mode) == (-1, 2, "mixed")
    eff = effective_dense_weights(r.weight, None, r.num_weight_bits)
    assert np.array_equal(eff, r.weight)  # lossless


def test_sign_modes():
    assert sign_mode_of(np.array([0, 3])) == "excitatory"
    assert sign_mode_of(np.array([0, -3])) == "inhibitory"
    assert sign_mode_of(np.array([1, -3])) == "mixed"
    # inhibitory clipping keeps magnitude ≤ 255: −256 → −255
    assert clip_weights(np.array([-256, 5]), "inhibitory").tolist() == [-255, 0]
    # mixed 8-bit weights are even after truncation
    assert truncate_weights(np.array([-255, 255, 3]), "mixed", 8).tolist() == [-256, 254, 2]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), du=st.integers(0, 4095), dv=st.integers(0, 4095),
       vth=st.integers(0, 3000), scale=st.sampled_from([30, 3000, 2**17]))
def test_one_recurrence_three_arithmetics(seed, du, dv, vth, scale):
    """neurohw.loihi.cuba: the rounded float arithmetic (float64 hardware units, and float32 in
    snn's 1/4096 units) equals the int arithmetic spike for spike and state for state; the
    plain float arithmetic uses the same recurrence without rounding."""
    from neurohw.loihi.cuba import cuba_sequence, lava_keeps

    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-scale, scale + 1, (12, 3, 5), generator=g) << 6  # (T, B, N)
    bias = torch.randint(-4096, 4096, (5,), generator=g) << 3
    ku, kv = lava_keeps(du, dv)
    s_i, u_i, v_i = cuba_sequence(a, ku, kv, vth << 6, bias=bias, arith="int", return_states=True)
    s_r, u_r, v_r = cuba_sequence(a.double(), ku, kv, float(vth << 6), bias=bias.double(), arith="rounded",
                                  return_states=True)
    assert torch.equal(s_i, s_r) and torch.equal(u_i, u_r.long()) and torch.equal(v_i, v_r.long())
    if scale < 2**17:  # float32 holds the 24-bit states exactly
        s_f, u_f, _ = cuba_sequence(a.float() / 4096, ku, kv, (vth << 6) / 4096, bias=bias.float() / 4096,
                                    arith="rounded", unit=4096, return_states=True)
        assert torch.equal(s_i, s_f) and torch.equal(u_i, (u_f.double() * 4096).long())
    s_p = cuba_sequence(a.double(), ku, kv, float(vth << 6), bias=bias.double(), arith="float")
    assert s_p.shape == s_i.shape and s_p.dtype == torch.bool


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), du=st.integers(0, 4095), dv=st.integers(0, 4095),
       vth=st.sampled_from([0, 7, 300, 5000, 131071]), scale=st.sampled_from([30, 3000, 2**16, 2**19, 2**26]),
       skew=st.sampled_from([-1.0, -0.8, 0.0, 0.9]), bias_kind=st.sampled_from(["none", "scalar", "array"]),
       lead=st.integers(0, 2))
def test_neuron_run_shortcuts_match_the_full_int_arithmetic(seed, du, dv, vth, scale, skew, bias_kind, lead):
    """The simulator's neuron loop skips the current wrap and the voltage saturation when its
    bounds prove them no-ops (only the lower saturation while ``vth << 6`` < 2^23 − 1: a voltage
    above it spikes and resets either way) and runs in float64 when no int32 store can wrap;
    on any input, sign-skewed or not, it must equal Lava's int arithmetic with every wrap and
    clip applied."""
    from neurohw.loihi.cuba import cuba_sequence, lava_keeps
    from neurohw.loihi.simulator import neuron_run

    rng = np.random.default_rng(seed)
    a = rng.integers(-scale, scale + 1, size=(14, 2, 6))
    a = np.where(rng.random(a.shape) < abs(skew), np.abs(a) * (-1 if skew < 0 else 1), a)  # mostly one sign
    bias_mant = {"none": 0, "scalar": int(rng.integers(-4096, 4096)), "array": rng.integers(-4096, 4096, size=6)}[bias_kind]
    p = CubaParams(du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=int(rng.integers(0, 8)))
    ku, kv = lava_keeps(du, dv)
    bias = torch.as_tensor(p.bias((6,)).reshape(-1))
    a_t = torch.as_tensor(a)
    full = torch.cat([torch.zeros((lead, 2, 6), dtype=torch.int64), a_t])
    s_ref, u_ref, v_ref = cuba_sequence(wrap32(full << 6), ku, kv, vth << 6, bias=bias, arith="int", return_states=True)
    for inp in (a_t, a_t.double()):
        bound = float(np.abs(a).max())
        s, v, u = neuron_run(p, inp.clone(), (6,), record_state=True, bound=bound, lead=lead, owned=True)
        assert torch.equal(s, s_ref) and torch.equal(u, u_ref) and torch.equal(v, v_ref)
        s2, _, _ = neuron_run(p, inp.clone(), (6,), lead=lead)
        assert torch.equal(s2, s_ref)


def test_recurrence_rejects_bad_arguments():
    from neurohw.loihi.cuba import cuba_sequence

    with pytest.raises(ValueError, match="arith"):
        cuba_sequence(torch.zeros(3, 2), 0.5, 0.5, 1.0, arith="fixed")
    with pytest.raises(ValueError, match="1/4096"):
        cuba_sequence(torch.zeros(3, 2, dtype=torch.long), 0.3, 0.5, 1, arith="int")


def test_float_to_int_casts_round_first():
    """A float sum that comes back as 2.9999 (a GPU kernel, a reordered sum) must become 3, not
    2: ``to_int64`` rounds before casting, and the simulator's int32-overflow path (which casts
    its float input to int64) gives the same states as for the exact integers."""
    from neurohw.loihi.fixedpoint import to_int64

    x = torch.tensor([2.9999, -2.9999, 3.0001, -0.4999, 7.0], dtype=torch.float64)
    assert to_int64(x).tolist() == [3, -3, 3, 0, 7]
    assert to_int64(x.float()).tolist() == [3, -3, 3, 0, 7]
    assert to_int64(torch.tensor([5, -6])).tolist() == [5, -6]
    p = CubaParams(du=100, dv=300, vth=1000)
    a = torch.tensor([2**27 + 3, -(2**26) - 5, 9, 2**27, -7], dtype=torch.int64).reshape(1, -1, 1)
    exact = cuba_run(p, a, (1,), record_state=True)
    off = a.to(torch.float64) - 1e-4  # each value a hair below its integer
    near = cuba_run(p, off, (1,), record_state=True)
    for e, n in zip(exact, near):
        assert torch.equal(e, n)
