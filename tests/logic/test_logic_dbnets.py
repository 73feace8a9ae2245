"""∂B operators are hard-equivalent to their boolean counterparts; the ∂B MNIST net's soft bits harden to its hard net."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from logic import dbnets as db

# Soft bits at a few distances from 1/2 on either side (never 1/2 itself), float64.
SOFT_FALSE = (0.0, 0.1, 0.3, 0.49, 0.4999)
SOFT_TRUE = (1.0, 0.9, 0.7, 0.51, 0.5001)

soft_bit = st.one_of(st.floats(0.0, 0.499), st.floats(0.501, 1.0))


def _soft_vectors(n):
    """Every sign pattern of length n, each filled with several soft values per side."""
    rows = []
    for pattern in itertools.product((0, 1), repeat=n):
        for k in range(len(SOFT_TRUE)):
            rows.append([(SOFT_TRUE if p else SOFT_FALSE)[(k + i) % len(SOFT_TRUE)] for i, p in enumerate(pattern)])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("soft,hard", [(db.soft_and, db.hard_and), (db.soft_or, db.hard_or), (db.soft_maj, db.hard_maj)])
def test_nary_ops_exhaustive_sign_patterns(n, soft, hard):
    x = _soft_vectors(n)
    out = soft(x, -1)
    assert ((out >= 0) & (out <= 1)).all()
    assert torch.equal(db.harden(out), hard(db.harden(x), -1))


def test_binary_ops_exhaustive():
    v = torch.tensor(SOFT_FALSE + SOFT_TRUE, dtype=torch.float64)
    w, x = torch.meshgrid(v, v, indexing="ij")
    for soft, hard in ((db.soft_not, db.hard_not), (db.soft_implies, db.hard_implies)):
        out = soft(w, x)
        assert ((out >= 0) & (out <= 1)).all()
        assert torch.equal(db.harden(out), hard(db.harden(w), db.harden(x)))
    # ∂¬ at the corners is exactly the boolean function
    assert db.soft_not(torch.tensor(1.0), torch.tensor(0.0)) == 0 and db.soft_not(torch.tensor(0.0), torch.tensor(0.0)) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(soft_bit, min_size=1, max_size=33))
def test_nary_ops_property(xs):
    x = torch.tensor(xs, dtype=torch.float64)
    for soft, hard in ((db.soft_and, db.hard_and), (db.soft_or, db.hard_or), (db.soft_maj, db.hard_maj)):
        assert bool(db.harden(soft(x, 0))) == bool(hard(db.harden(x), 0))


@settings(max_examples=200, deadline=None)
@given(soft_bit, soft_bit)
def test_binary_ops_property(w, x):
    tw, tx = torch.tensor(w, dtype=torch.float64), torch.tensor(x, dtype=torch.float64)
    assert bool(db.harden(db.soft_not(tw, tx))) == bool(db.hard_not(db.harden(tw), db.harden(tx)))
    assert bool(db.harden(db.soft_implies(tw, tx))) == bool(db.hard_implies(db.harden(tw), db.harden(tx)))


def test_margin_packing_is_gradient_rich():
    """Every input of ∂∧/∂∨/∂Maj gets a non-zero gradient, also when the representative is saturated."""
    for op in (db.soft_and, db.soft_or, db.soft_maj):
        x = torch.tensor([0.0, 0.2, 0.8, 1.0, 0.6], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(op(x, 0), x)
        assert (g != 0).all(), op.__name__


def test_dbnet_soft_hardens_to_hard_net():
    torch.manual_seed(0)
    net = db.DBMnistNet(n_in=64, width1=8, group=16, width2=5, num_classes=4, seed=3)
    assert net.n_weights() == 64 * 8 + 32 * 5
    images = torch.rand(200, 1, 8, 8)
    x = net.encode(images)
    assert torch.equal(db.harden(net.bits(x)), net.hard_bits(x))
    # after some (random) training steps too
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(x) / 4, torch.randint(0, 4, (200,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.clamp_()
    assert torch.equal(db.harden(net.bits(x)), net.hard_bits(x))
    assert torch.equal(db.harden(net.bits(x)).view(200, 4, -1).sum(-1), net.hard_logits(x))


def test_dbnet_default_size_matches_paper():
    assert db.DBMnistNet().n_weights() == 105_840
    with pytest.raises(ValueError, match="group"):
        db.DBMnistNet(n_in=10, width1=3, group=16)


def test_straight_through_training_learns_the_hard_counts(mnist5k):
    """``fit_dbnet(ste=True)``: the loss sees the hardened bucket counts; the hard net learns (well above chance)."""
    from logic.train import evaluate_dbnet, fit_dbnet

    m = db.DBMnistNet(width1=20, group=16, width2=10, seed=0)
    w0 = m.w2.detach().clone()
    fit_dbnet(m, mnist5k.x_train[:1000], mnist5k.y_train[:1000], epochs=2, lr=0.05, tau=20.0, ste=True, progress=False)
    assert not torch.equal(w0, m.w2)  # gradients reach the weights through the straight-through estimator
    r = evaluate_dbnet(m, mnist5k.x_val, mnist5k.y_val)
    assert r["acc_hard"] > 0.4, r
