"""Netlists: simplification preserves the function, the packed evaluator equals the reference, files round-trip."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from logic.netlist import Netlist, NetlistBuilder, NetlistError, simplify
from logic.packed import PackedEvaluator, pack_bits, unpack_bits


def random_netlist(seed: int, n_in: int = 5, n_gates: int = 60, n_out: int = 6, classes: int = 3) -> Netlist:
    rng = np.random.default_rng(seed)
    op = rng.integers(0, 16, n_gates)
    a = np.array([rng.integers(0, n_in + g) for g in range(n_gates)])
    b = np.array([rng.integers(0, n_in + g) for g in range(n_gates)])
    outs = rng.integers(0, n_in + n_gates, n_out)
    return Netlist(n_in, op, a, b, outs, classes)


def all_inputs(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product((0, 1), repeat=n)), dtype=torch.bool)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6))
def test_simplify_preserves_function_exhaustively(seed):
    net = random_netlist(seed)
    simple = simplify(net)
    x = all_inputs(net.n_inputs)
    assert torch.equal(net.evaluate(x), simple.evaluate(x))
    assert simple.gate_count() <= net.gate_count()
    # the documented rule leaves no pass-through, no constant except output constants, no duplicate
    assert not np.isin(simple.op, (3, 5)).any()
    keys = set()
    for op, a, b in zip(simple.op, simple.a, simple.b):
        if op in (0, 15):
            continue
        assert (op, a, b) not in keys
        keys.add((op, a, b))
        assert a <= b  # canonical input order (NOT reads its input twice)


def test_simplify_rules_on_a_hand_made_netlist():
    bld = NetlistBuilder(2)
    zero = bld.const(0)
    p = bld.add(3, 0, 1)  # pass-through of x0
    and1 = bld.add(1, p, 1)  # x0 & x1
    and2 = bld.add(1, 1, 0)  # x1 & x0: duplicate after canonical ordering
    k = bld.add(7, zero, and2)  # 0 | (x0&x1): pass-through after constant propagation
    x = bld.add(6, 0, 0)  # x0 ^ x0 = constant 0
    nand = bld.add(14, and1, 1)  # real gate
    net = bld.build([and1, k, x, nand], num_classes=1)
    simple = simplify(net)
    assert simple.gate_count() == 2  # one AND, one NAND; the output constant is not counted
    assert torch.equal(net.evaluate(all_inputs(2)), simple.evaluate(all_inputs(2)))


@pytest.mark.parametrize("inputs", [1, 7])
@pytest.mark.parametrize("n", [1, 63, 64, 65, 200])
def test_pack_unpack_roundtrip(n, inputs):
    bits = torch.rand(n, inputs) > 0.5
    words = pack_bits(bits)
    assert words.shape == (inputs, -(-n // 64)) and words.dtype == torch.int64
    assert torch.equal(unpack_bits(words, n), bits)
    # bit k of word w is sample 64w + k, including the sign bit
    if n > 63:
        assert bool((words[:, 0] < 0).eq(bits[63]).all())


@pytest.mark.parametrize("seed", range(5))
def test_packed_equals_reference(seed):
    net = random_netlist(seed, n_in=12, n_gates=300, n_out=30, classes=5)
    x = torch.rand(333, 12) > 0.5
    ev = PackedEvaluator(net)
    assert torch.equal(ev.class_counts(x), net.class_counts(x))
    assert torch.equal(ev.class_counts(x, chunk=64), net.class_counts(x))


def test_save_load_and_validation(tmp_path):
    net = random_netlist(1)
    p = net.save(tmp_path / "n.npz")
    back = Netlist.load(p)
    assert back.n_inputs == net.n_inputs and back.num_classes == net.num_classes
    for f in ("op", "a", "b", "outputs"):
        assert np.array_equal(getattr(back, f), getattr(net, f))
    with pytest.raises(NetlistError, match="earlier gate"):
        Netlist(2, [1], [2], [0], [2])
    with pytest.raises(NetlistError, match="op"):
        Netlist(2, [16], [0], [1], [2])
    with pytest.raises(NetlistError, match="equal groups"):
        Netlist(2, [1], [0], [1], [2, 2, 2], num_classes=2)
    with pytest.raises(NetlistError, match="missing array"):
        np.savez(tmp_path / "bad.npz", op=np.zeros(1))
        Netlist.load(tmp_path / "bad.npz")
    with pytest.raises(NetlistError, match=r"shape \(N, 5\)"):
        net.evaluate(torch.zeros(3, 4, dtype=torch.bool))
