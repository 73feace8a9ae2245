"""Graded 8-bit (``direct``) input: training computes what the deployed Loihi network computes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neurohw.errors import UsageError
from neurohw.loihi.fixedpoint import MAX_UV
from neurohw.loihi.network import LoihiConfigError
from snn.deploy import integer_forward, lava_forward, loihi_forward, padded_input, to_loihi_network
from snn.encode import encode
from snn.model import BWSNN, BWSNNConfig, graded_weight_limit
from snn.train import fit_snn, predict_snn


@pytest.fixture(scope="module")
def data():
    from neurohw.data import load_mnist5k

    return load_mnist5k()


@pytest.fixture(scope="module")
def direct_model(data):
    """A few hundred steps of a tiny conv SEI-BWSNN on graded input, with a synaptic filter (du < 4095)."""
    cfg = BWSNNConfig(arch="conv", channels=(4, 8), steps=2, epochs=1, encoding="direct", multi_shortcut=True,
                      current_decay=0.5, voltage_decay=0.2, seed=3)
    return fit_snn(cfg, data.x_train[:300], data.y_train[:300], progress=False).model


def test_direct_encoding_is_the_8bit_payload_every_step():
    x = torch.tensor([0.0, 1 / 255, 0.5, 127 / 255, 1.0]).view(1, 1, 1, 5)
    s = encode(x, 3, "direct")
    assert s.shape == (1, 3, 1, 1, 5) and s.dtype == torch.float32
    for t in range(3):
        assert s[0, t].flatten().tolist() == [0.0, 1.0, 128.0, 127.0, 255.0]
    with pytest.raises(ValueError, match="direct_encode"):
        encode(x + 0.5, 1, "direct")
    # the CLI chain (neurohw loihi run --encoding direct) feeds the same payloads as snn's deploy path
    from neurohw.loihi.chain import encode_images

    imgs = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    m = BWSNN(BWSNNConfig(arch="conv", channels=(4, 8), steps=2, encoding="direct"))
    assert np.array_equal(encode_images(imgs, 2, "direct", pad=len(m.layers) + 1), padded_input(m, imgs))


def test_config_accepts_direct_and_names_bad_encodings():
    assert BWSNNConfig.from_dict({"encoding": "direct"}).encoding == "direct"
    with pytest.raises(UsageError, match="encoding"):
        BWSNNConfig.from_dict({"encoding": "graded"})
    # a dense first layer over 784 pixels cannot hold 255 × any grid weight × fan-in in 24 bits
    with pytest.raises(ValueError, match="fan-in 784"):
        BWSNN(BWSNNConfig(arch="mlp", channels=(32,), encoding="direct"))


def test_first_layer_works_in_payload_units():
    m = BWSNN(BWSNNConfig(arch="conv", channels=(4, 8), steps=1, encoding="direct", threshold=1.0))
    first, second = m.layers[0], m.layers[1]
    assert first.neuron.vth == 255 * 64 and second.neuron.vth == 64
    assert first.synapse.max_abs == graded_weight_limit(9, 1, 1.0) == 56 / 64
    assert second.synapse.max_abs is None
    net = to_loihi_network(m)
    assert net.input_message_bits == 8
    assert to_loihi_network(BWSNN(BWSNNConfig(arch="conv", channels=(4, 8), steps=1))).input_message_bits == 0


def test_direct_model_deploys_exactly(direct_model, data):
    """snn's integer forward, the Loihi simulator and the trained float model: same spikes, logits, predictions."""
    x = data.x_test[:200]
    ours, sim = integer_forward(direct_model, x), loihi_forward(direct_model, x)
    for k, (a, b) in enumerate(zip(ours.spikes, sim.spikes)):
        assert torch.equal(a.bool(), b.bool()), f"layer {k}: spikes differ"
    assert torch.equal(ours.logits, sim.logits)
    preds, logits, spikes = predict_snn(direct_model, x)
    assert torch.equal(preds, sim.predictions)
    assert torch.equal(logits.double() * 64 * direct_model.cfg.steps, sim.logits.double())
    assert torch.equal(spikes.sum(1), sim.spikes_per_inference)
    assert sim.spikes[0].float().mean() > 0


def test_graded_input_is_not_binarised(direct_model, data):
    """The same net read as binary input (any payload > 0 → 1) answers differently: the grey levels reach the chip."""
    from neurohw.loihi import simulate

    net = to_loihi_network(direct_model)
    spikes = padded_input(direct_model, data.x_test[:50])
    graded = simulate(net, spikes, probe=[len(net.layers) - 1])
    net.input_message_bits = 0
    binary = simulate(net, spikes, probe=[len(net.layers) - 1])
    assert not torch.equal(graded.spikes[0], binary.spikes[0])


def test_weight_limit_is_tight_and_export_refuses_beyond_it():
    """All first-layer weights at the limit and an all-white image: the current peaks just below 2^23, no wrap,
    exact; two weight units more and the export refuses, naming the layer."""
    cfg = BWSNNConfig(arch="conv", channels=(2, 4), steps=1, encoding="direct", threshold=8.0)
    m = BWSNN(cfg).eval()
    syn = m.layers[0].synapse
    with torch.no_grad():
        syn.weight.fill_(syn.max_abs)
    x = torch.ones(2, 1, 28, 28)
    from neurohw.loihi import simulate

    net = to_loihi_network(m)
    res = simulate(net, padded_input(m, x), probe=[0])
    peak = int(res.current[0].max())
    assert peak == 255 * 9 * 56 << 6 and peak < MAX_UV
    sim = loihi_forward(m, x, net=net)
    assert torch.equal(predict_snn(m, x)[1].double() * 64, sim.logits.double())
    syn.max_abs = None
    with torch.no_grad():
        syn.weight.fill_(syn.weight[0, 0, 0, 0].item() + 2 / 64)
    with pytest.raises(LoihiConfigError, match=r"layer 0 \(layer0\).*24-bit"):
        to_loihi_network(m)


@pytest.mark.lava
@pytest.mark.slow
def test_direct_model_runs_in_lava_with_same_spikes(direct_model, data, tmp_path):
    """The netx export (input_message_bits 8) and the directly built Lava processes both match the simulator."""
    from snn.export import export_model

    path = export_model(direct_model, "loihi", tmp_path / "direct.h5")
    x = data.x_test[:2]
    sim = loihi_forward(direct_model, x)
    for lava in (lava_forward(direct_model, x, netx_path=path), lava_forward(direct_model, x)):
        for k, (a, b) in enumerate(zip(sim.spikes, lava.spikes)):
            assert torch.equal(a.bool(), b.bool()), f"layer {k}: spikes differ"
        assert torch.equal(sim.logits, lava.logits)
        assert torch.equal(lava.predictions, predict_snn(direct_model, x)[0])
