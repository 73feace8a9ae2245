"""Deploy mode = the Loihi simulator, exactly; the netx export runs in Lava with the same predictions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from snn.deploy import deploy_predict, integer_forward, lava_forward, loihi_forward, to_loihi_network
from snn.encode import encode
from snn.model import BWSNNConfig
from snn.train import fit_snn, predict_snn


@pytest.fixture(scope="module")
def data():
    from neurohw.data import load_mnist5k

    return load_mnist5k()


@pytest.fixture(scope="module")
def mlp_model(data):
    cfg = BWSNNConfig(arch="mlp", channels=(64,), epochs=1, multi_shortcut=True, voltage_decay=0.3, seed=1)
    return fit_snn(cfg, data.x_train[:600], data.y_train[:600], progress=False).model


@pytest.fixture(scope="module")
def conv_model(data):
    cfg = BWSNNConfig(arch="conv", channels=(4, 8), epochs=1, multi_shortcut=True, current_decay=0.5,
                      voltage_decay=0.2, surrogate="triangle", seed=2)
    return fit_snn(cfg, data.x_train[:200], data.y_train[:200], progress=False).model


def _assert_same(a, b):
    assert len(a.spikes) == len(b.spikes)
    for k, (x, y) in enumerate(zip(a.spikes, b.spikes)):
        assert torch.equal(x.bool(), y.bool()), f"layer {k}: spikes differ"
    assert torch.equal(a.logits, b.logits)


def test_deploy_equals_loihi_simulator_on_test_split(mlp_model, data):
    """snn's own integer forward and neurohw.loihi.simulate agree spike for spike on all 1,000 test images."""
    ours = integer_forward(mlp_model, data.x_test)
    sim = loihi_forward(mlp_model, data.x_test)
    _assert_same(ours, sim)
    assert ours.spikes_per_inference.float().mean() > 0
    # and the training-mode (float, Loihi-exact rounding) forward gives the same predictions and logits
    preds, logits, spikes = predict_snn(mlp_model, data.x_test)
    assert torch.equal(preds, sim.predictions)
    assert torch.equal(logits.double() * 64 * mlp_model.cfg.steps, sim.logits.double())
    assert torch.equal(spikes.sum(1), sim.spikes_per_inference)


def test_conv_shortcuts_and_current_decay_exact(conv_model, data):
    """Conv layers, identity and pooling shortcuts as second synapse groups, du < 4095: still exact."""
    x = data.x_test[:100]
    sim = loihi_forward(conv_model, x)
    _assert_same(integer_forward(conv_model, x), sim)
    preds, logits, _ = predict_snn(conv_model, x)
    assert torch.equal(preds, sim.predictions)
    assert torch.equal(logits.double() * 64 * conv_model.cfg.steps, sim.logits.double())


def test_float_snn_deploys_quantised(data):
    """A float-weight SNN deploys with 8-bit weights; integer forward and simulator still agree exactly."""
    cfg = BWSNNConfig(arch="mlp", channels=(32,), epochs=1, binary=False)
    m = fit_snn(cfg, data.x_train[:300], data.y_train[:300], progress=False).model
    x = data.x_test[:200]
    _assert_same(integer_forward(m, x), loihi_forward(m, x))
    net = to_loihi_network(m)
    assert all((np.asarray(l.weight) % 2 == 0).all() for l in net.layers)


def test_network_description(conv_model):
    net = to_loihi_network(conv_model)
    assert len(net.layers) == len(conv_model.layers) + 1
    for i, (layer, ours) in enumerate(zip(net.layers, conv_model.layers)):
        assert (layer.neuron.du, layer.neuron.dv, layer.neuron.vth) == (ours.neuron.du, ours.neuron.dv, ours.neuron.vth)
        assert len(layer.shortcuts) == (ours.shortcut is not None)
        for sc in layer.shortcuts:
            assert sc.source == i - 1 and sc.delay == 0
        if ours.synapse.precision == "binary":
            w = np.asarray(layer.weight).reshape(layer.weight.shape[0], -1)
            assert all(len(set(np.abs(row).tolist())) == 1 for row in w)  # each row is ±α_c
    ro = net.layers[-1].neuron
    assert ro.du == 4095 and ro.dv == 0
    with pytest.raises(ValueError, match="backend"):
        deploy_predict(conv_model, torch.zeros(1, 1, 28, 28), backend="fpga")


def test_nir_export(mlp_model, tmp_path):
    """``export_model(..., "nir")`` (the Loihi backend's writer): a CubaLIF per spiking layer and the
    read-out, shortcut edges into the layer they skip to, synapse weights proportional to the integer ones."""
    import nir

    from snn.export import export_model

    g = nir.read(export_model(mlp_model, "nir", tmp_path / "m.nir"))
    lifs = [k for k, v in g.nodes.items() if isinstance(v, nir.CubaLIF)]
    assert len(lifs) == len(mlp_model.layers) + 1
    assert ("layer1_shortcut0_syn", "layer1_lif") in g.edges and ("layer0_lif", "layer1_shortcut0_syn") in g.edges
    net = to_loihi_network(mlp_model)
    w_nir, w_int = np.asarray(g.nodes["layer1_syn"].weight, dtype=np.float64), np.asarray(net.layers[1].weight, dtype=np.float64)
    scale = np.abs(w_nir).max() / np.abs(w_int).max()
    np.testing.assert_allclose(w_nir, w_int * scale, rtol=1e-6, atol=1e-9)


@pytest.mark.lava
@pytest.mark.slow
def test_netx_export_runs_in_lava_with_same_predictions(mlp_model, conv_model, data, tmp_path):
    """Export to netx HDF5, load it with lava-dl netx, run with fixed_pt models: same spikes and logits."""
    from snn.export import export_model

    for name, model, n in (("mlp", mlp_model, 4), ("conv", conv_model, 2)):
        path = export_model(model, "loihi", tmp_path / f"{name}.h5")
        x = data.x_test[:n]
        lava = lava_forward(model, x, netx_path=path)
        sim = loihi_forward(model, x)
        _assert_same(sim, lava)
        assert torch.equal(lava.predictions, predict_snn(model, x)[0])


def test_learned_alpha_hardening_and_rate_code_deploy_exactly(data):
    """Learned α, a ∂B-style hardening schedule and Bernoulli input still deploy exactly (hardness ends at 1)."""
    cfg = BWSNNConfig(arch="mlp", channels=(32,), epochs=2, alpha="learned", hardening_epochs=2, surrogate="fast_sigmoid",
                      multi_shortcut=True, steps=6)
    m = fit_snn(cfg, data.x_train[:300], data.y_train[:300], progress=False).model
    assert all(l.synapse.hardness == 1.0 for l in m.layers)
    g = torch.Generator().manual_seed(5)
    spikes = encode(data.x_test[:100], cfg.steps, "rate", g)  # spikes in: the model passes them through
    sim = loihi_forward(m, spikes)
    _assert_same(integer_forward(m, spikes), sim)
    assert torch.equal(predict_snn(m, spikes)[0], sim.predictions)
