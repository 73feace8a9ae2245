"""The gate table, the fast affine-bilinear mixture and the initialisations."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from logic import gates


def test_table_formulas_match_truth_table_and_coeffs():
    assert len(gates.GATES) == 16
    for g in gates.GATES:
        for a, b in itertools.product((0, 1), repeat=2):
            # the published product-logic formula, evaluated on bits, is the truth table
            assert eval(g.formula, {"a": a, "b": b}) == g.truth[2 * a + b] == gates.truth_value(g.id, a, b)
            c0, c1, c2, c3 = g.coeffs
            assert c0 + c1 * a + c2 * b + c3 * a * b == g.truth[2 * a + b]
    # canonical order: the id is the truth table read MSB first over 00, 01, 10, 11
    assert [int("".join(map(str, g.truth)), 2) for g in gates.GATES] == list(range(16))
    assert gates.GATES[1].name == "AND" and gates.GATES[6].name == "XOR" and gates.GATES[14].name == "NAND"


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1), st.lists(st.floats(-6, 6), min_size=16, max_size=16))
def test_formula_coeffs_equal_formulas_on_soft_inputs(a, b, logits):
    """On soft inputs too: bilinear coefficients reproduce each formula, and fast mixture = naive sum."""
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    explicit = gates.gate_outputs(ta, tb)
    for g in range(16):
        assert float(explicit[g]) == pytest.approx(eval(gates.GATE_FORMULAS[g], {"a": a, "b": b}), abs=1e-12)
        assert float(gates.bilinear(ta, tb, gates.COEFFS[g])) == pytest.approx(float(explicit[g]), abs=1e-12)
    lg = torch.tensor(logits, dtype=torch.float64)
    fast = gates.mix(ta, tb, lg)
    naive = gates.mix(ta, tb, lg, naive=True)
    assert float(fast) == pytest.approx(float(naive), abs=1e-12)


def test_fast_and_naive_gradients_agree():
    torch.manual_seed(0)
    a = torch.rand(64, 32, dtype=torch.float64, requires_grad=True)
    b = torch.rand(64, 32, dtype=torch.float64, requires_grad=True)
    lg = torch.randn(32, 16, dtype=torch.float64, requires_grad=True)
    grads = []
    for naive in (False, True):
        out = gates.mix(a, b, lg, naive=naive)
        grads.append(torch.autograd.grad((out * torch.linspace(0, 1, 32, dtype=torch.float64)).sum(), (a, b, lg)))
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2)


def test_hard_mixture_is_the_argmax_gate_on_bits():
    lg = torch.randn(16, 16)
    lg[torch.arange(16), torch.arange(16)] = 100.0  # neuron g prefers gate g
    for a, b in itertools.product((0.0, 1.0), repeat=2):
        out = gates.mix(torch.full((16,), a), torch.full((16,), b), lg, hard=True)
        assert out.tolist() == [float(gates.truth_value(g, int(a), int(b))) for g in range(16)]


def test_anf_and_swap():
    for g in range(16):
        k0, k1, k2, k3 = gates.ANF[g].tolist()
        sw = gates.swap_inputs(g)
        for a, b in itertools.product((0, 1), repeat=2):
            assert k0 ^ (k1 & a) ^ (k2 & b) ^ (k3 & a & b) == gates.truth_value(g, a, b)
            assert gates.truth_value(sw, a, b) == gates.truth_value(g, b, a)


def test_initialisations():
    res = gates.init_logits(10, init="residual")
    p = torch.softmax(res, -1)[:, gates.RESIDUAL_GATE]
    assert torch.allclose(p, torch.full((10,), 0.9081), atol=1e-3)  # e^5 / (e^5 + 15)
    g = gates.init_logits(20000, init="gaussian", generator=torch.Generator().manual_seed(0))
    assert abs(float(g.mean())) < 0.02 and abs(float(g.std()) - 1) < 0.02
    with pytest.raises(ValueError, match="init"):
        gates.init_logits(3, init="uniform")


def test_grad_scale():
    x = torch.ones(3, requires_grad=True)
    y = gates.grad_scale(x, 2.5)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.5))
