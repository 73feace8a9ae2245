"""Verilator simulation of the (pipelined) Verilog export equals the packed evaluator; the conv LogicTreeNet included."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from logic import export, pipeline, verilator
from logic.models import dense_lgn, save_model
from logic.netlist import Netlist
from logic.packed import PackedEvaluator
from logic.train import fit_logic

needs_verilator = pytest.mark.skipif(not verilator.have_verilator(), reason="Verilator not installed (tools/system_deps.sh)")


def _random_net(rng, n_in, n_gates, classes, group) -> Netlist:
    op = rng.integers(0, 16, n_gates)
    a = np.array([rng.integers(max(0, n_in + g - 30), n_in + g) if rng.random() < 0.8 else rng.integers(0, n_in + g)
                  for g in range(n_gates)])
    b = np.array([rng.integers(0, n_in + g) for g in range(n_gates)])
    return Netlist(n_in, op, a, b, rng.integers(0, n_in + n_gates, classes * group), classes)


@pytest.fixture(scope="module")
def tree_net(train_tree_net):
    """A small conv LogicTreeNet (tree convolutions + OR pooling), briefly trained."""
    tree, d = train_tree_net(200, 300, (60, 30), 21)
    return tree, d.x_test


@needs_verilator
def test_verilator_tree_net_equals_packed(tree_net, tmp_path):
    model, x = tree_net
    net = model.to_netlist()
    bits = model.encode_bits(x)  # 300 MNIST-5k test images
    ref = PackedEvaluator(net).class_counts(bits)
    assert torch.equal(ref, model.hard_counts(x))
    assert torch.equal(verilator.simulate_verilator(net, bits, tmp_path), ref)


@needs_verilator
def test_verilator_pipelined_random_net_equals_packed(tmp_path):
    """Wide ports on both sides (x: 150 bits, counts: 4 × 6 bits) and repeated / constant outputs."""
    rng = np.random.default_rng(7)
    net = _random_net(rng, 150, 400, 4, 33)
    net.op[5] = 15  # a constant-1 gate
    net.outputs[:3] = net.n_inputs + 5
    bits = torch.from_numpy(rng.random((300, net.n_inputs)) < 0.5)
    ref = PackedEvaluator(net).class_counts(bits)
    assert torch.equal(verilator.simulate_verilator(net, bits, tmp_path, pipeline=2), ref)


@needs_verilator
@pytest.mark.slow
def test_verilator_latency_check_can_fail(tmp_path):
    net = _random_net(np.random.default_rng(4), 6, 40, 2, 3)
    lat = pipeline.plan_pipeline(net, 2).latency
    text = pipeline.to_verilog_pipelined(net, 2)
    longer = text.replace(f"assign valid_out = valid_pipe[{lat - 1}];", "reg late; always @(posedge clk) late <= "
                          f"valid_pipe[{lat - 1}]; assign valid_out = late;")
    bits = torch.from_numpy(np.random.default_rng(0).random((8, 6)) < 0.5)
    with pytest.raises(export.ExportError, match="cycles"):
        verilator.simulate_verilator(net, bits, tmp_path, pipeline=2, verilog=longer)


def test_cli_simulate_icarus(tree_net, tmp_path, capsys):
    if not export.have_iverilog():
        pytest.skip("Icarus Verilog not installed")
    from neurohw.cli import main

    model, _ = tree_net
    save_model(model, tmp_path / "model.safetensors")
    assert main(["logic", "simulate", str(tmp_path / "model.safetensors"), "--simulator", "icarus", "--pipeline", "2",
                 "--n", "12", "--json", str(tmp_path / "s.json")]) == 0
    out = json.loads((tmp_path / "s.json").read_text())
    assert out["counts_equal_packed"] and out["packed_equal_hard_model"] and out["images"] == 12
    assert "equal the packed evaluator's on every image: True" in capsys.readouterr().out
    assert main(["logic", "simulate", str(tmp_path / "missing.safetensors")]) == 2


@needs_verilator
@pytest.mark.slow
def test_verilator_whole_mnist5k_test_split(mnist5k, tmp_path):
    """The docs' net size (dense 3 × 4,000, 2 epochs): Verilator, combinational and pipelined, on all 1,000 test images."""
    from neurohw.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = dense_lgn(levels=2, widths=(4000, 4000, 4000), tau=10.0, seed=0)
    fit_logic(model, mnist5k.x_train, mnist5k.y_train, epochs=2, lr=0.05, batch_size=128, progress=False, seed=0)
    torch.set_num_threads(threads)
    save_model(model.eval(), tmp_path / "model.safetensors")
    for extra in ([], ["--pipeline", "1"]):
        assert main(["logic", "simulate", str(tmp_path / "model.safetensors"), "--json", str(tmp_path / "v.json"), *extra]) == 0
        out = json.loads((tmp_path / "v.json").read_text())
        assert out["images"] == 1000 and out["counts_equal_packed"] and out["packed_equal_hard_model"]
