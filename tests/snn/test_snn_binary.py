"""Binary weights α·sign(w): values on the grid, per-channel α, clipped STE, hardening; model config."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from snn.binary import binarize, effective_weight, sign_ste
from snn.model import BWSNN, BWSNNConfig


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cout=st.integers(1, 6), cin=st.integers(1, 20))
def test_binary_rows_are_plus_minus_alpha_on_grid(seed, cout, cin):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(cout, cin, generator=g) * 0.3
    wb = binarize(w)
    for c in range(cout):
        vals = set(wb[c].abs().tolist())
        assert len(vals) == 1  # one magnitude per output channel
        a = vals.pop()
        assert a * 32 == round(a * 32) and a >= 2 / 64  # α on the 2/64 grid
        assert abs(a - w[c].abs().mean().item()) <= 1 / 64 + 1e-7 or a == 2 / 64
        assert torch.equal(torch.sign(wb[c]), torch.where(w[c] >= 0, 1.0, -1.0))


def test_clipped_ste():
    w = torch.tensor([-2.0, -0.5, 0.0, 0.5, 1.5], requires_grad=True)
    sign_ste(w).sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_learned_alpha_gets_gradient():
    w = torch.randn(3, 4, requires_grad=True)
    alpha = torch.full((3,), 0.5, requires_grad=True)
    (binarize(w, alpha) * torch.randn(3, 4)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_hardening_blends_and_ends_binary():
    w = torch.tensor([[0.05, -0.5, 0.2]])
    hard = binarize(w, hardness=1.0)
    soft = binarize(w, hardness=0.0)
    assert not torch.equal(hard, soft)
    assert torch.allclose(binarize(w, hardness=0.5), 0.5 * (hard + soft))


def test_effective_weight_precisions():
    w = torch.randn(4, 5)
    assert torch.equal(effective_weight(w, "float"), w)
    assert ((effective_weight(w, "int8") * 32).frac() == 0).all()
    with pytest.raises(ValueError, match="precision"):
        effective_weight(w, "int4")


def test_model_precisions_and_shortcuts():
    m = BWSNN(BWSNNConfig(arch="conv", channels=(4, 8), multi_shortcut=True))
    precs = [l.synapse.precision for l in m.layers] + [m.readout.precision]
    assert precs == ["int8", "binary", "binary", "binary", "int8"]
    assert [l.shortcut is not None for l in m.layers] == [False, True, True, True]
    m2 = BWSNN(BWSNNConfig(arch="mlp", channels=(16,), int8_layers=("first", "last", 1)))
    assert [l.synapse.precision for l in m2.layers] == ["int8", "int8", "binary"]
    m3 = BWSNN(BWSNNConfig(arch="mlp", channels=(16,), binary=False))
    assert {l.synapse.precision for l in m3.layers} == {"float"}
    z = m(torch.rand(3, 1, 28, 28))
    assert z.shape == (3, 10) and m.last_spikes.shape == (3, 4)


def test_config_round_trip_and_errors():
    cfg = BWSNNConfig(arch="mlp", channels=(32,), kd=True)
    assert BWSNNConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        BWSNNConfig.from_dict({"chanels": [3]})
    with pytest.raises(ValueError, match="arch"):
        BWSNN(BWSNNConfig(arch="transformer"))
    with pytest.raises(ValueError, match="expected images"):
        BWSNN(BWSNNConfig(arch="mlp", channels=(8,)))(torch.rand(3, 28, 28))
