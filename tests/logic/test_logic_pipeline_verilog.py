"""Pipelined Verilog (``--pipeline K``): Icarus simulation equals the packed evaluator after the pipeline latency,
and yosys reports exactly the flip-flops the pipeline inserts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from logic import export, pipeline, synth
from logic.models import dense_lgn, logic_tree_net
from logic.netlist import Netlist, simplify
from logic.packed import PackedEvaluator, pack_bits, unpack_bits
from logic.train import fit_logic

needs_iverilog = pytest.mark.skipif(not export.have_iverilog(), reason="Icarus Verilog not installed (tools/system_deps.sh)")
needs_yosys = pytest.mark.skipif(not (synth.have_yosys() and export.have_iverilog()),
                                 reason="yosys / Icarus not installed (tools/system_deps.sh installs them)")


def random_net(rng: np.random.Generator, n_in: int, n_gates: int, classes: int, group: int) -> Netlist:
    """Deep-ish random netlist; outputs may be inputs, repeated signals or constant gates."""
    op = rng.integers(0, 16, n_gates)
    a = np.array([rng.integers(max(0, n_in + g - 30), n_in + g) if rng.random() < 0.8 else rng.integers(0, n_in + g)
                  for g in range(n_gates)])
    b = np.array([rng.integers(0, n_in + g) for g in range(n_gates)])
    outs = rng.integers(0, n_in + n_gates, classes * group)
    return Netlist(n_in, op, a, b, outs, classes)


def fold_proven_constants(net: Netlist) -> Netlist:
    """Replace every signal that is constant on all 2**n_inputs inputs by a constant gate, then simplify.

    yosys removes a register whose input it proves constant, and ``simplify`` only folds
    constants it sees locally; random nets have such hidden constants, trained nets rarely."""
    n = net.n_inputs
    assert n <= 16
    allbits = torch.from_numpy(((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool))
    every_gate = Netlist(n, net.op, net.a, net.b, np.arange(n, net.n_signals), 1)  # outputs: all gate signals
    vals = PackedEvaluator(every_gate).run_words(pack_bits(allbits))
    sig = unpack_bits(vals, 2**n)  # (2**n, n_gates)
    op = net.op.copy()
    op[(~sig).all(0).numpy()] = 0
    op[sig.all(0).numpy()] = 15
    return simplify(Netlist(n, op, net.a, net.b, net.outputs, net.num_classes))


@pytest.fixture(scope="module")
def small_trained(mnist5k):
    """A small dense net and a small LogicTreeNet, briefly trained (so gates are not random)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    d = mnist5k.subset(300, 100)
    dense = dense_lgn(levels=2, widths=(300, 300, 100), tau=5, seed=11)
    fit_logic(dense, d.x_train, d.y_train, epochs=1, lr=0.05, batch_size=64, progress=False, seed=11)
    tree = logic_tree_net(k=2, dense=(60, 30), tau=5, init="residual", seed=12)
    fit_logic(tree, d.x_train[:128], d.y_train[:128], epochs=1, progress=False, seed=12)
    torch.set_num_threads(threads)
    return {"dense": dense.eval(), "tree": tree.eval(), "x": d.x_test}


def test_plan_latency_and_register_rule():
    net = random_net(np.random.default_rng(1), 10, 120, 3, 5)
    for k in (1, 2, 5, 1000):
        plan = pipeline.plan_pipeline(net, k)
        assert plan.gate_stages == max(1, -(-net.depth // k))
        assert plan.tree_levels == int(np.ceil(np.log2(max(len(lv) for lv in plan.leaves))))
        assert plan.latency == plan.gate_stages + -(-plan.tree_levels // k) and plan.tree_registered[-1]
        assert pipeline.plan_pipeline(net, k, tree_k=1).latency == plan.gate_stages + plan.tree_levels
        # every gate reads only signals made in its own stage or held in that stage's bank
        made = np.zeros(net.n_signals, dtype=np.int64)
        made[net.n_inputs:] = plan.stage_of_gate
        const = np.zeros(net.n_signals, dtype=bool)
        const[net.n_inputs:] = np.isin(net.op, (0, 15))
        for g in range(net.n_gates):
            st = plan.stage_of_gate[g]
            for s in (net.a[g], net.b[g]):
                assert const[s] or made[s] == st or (st >= 1 and s in set(plan.banks[st - 1].tolist()))
    with pytest.raises(ValueError, match="pipeline"):
        pipeline.plan_pipeline(net, 0)
    with pytest.raises(ValueError, match="pipeline"):
        export.to_verilog(net, pipeline=True)


@needs_iverilog
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pipelined_random_nets_equal_packed(seed, tmp_path):
    rng = np.random.default_rng(seed)
    net = random_net(rng, int(rng.integers(1, 20)), int(rng.integers(1, 250)), int(rng.integers(1, 5)),
                     int(rng.integers(1, 12)))
    bits = torch.from_numpy(rng.random((37, net.n_inputs)) < 0.5)
    ref = PackedEvaluator(net).class_counts(bits)
    for k in (1, 2, 3, 7):
        assert torch.equal(export.simulate_verilog(net, bits, tmp_path, pipeline=k), ref), k
    assert torch.equal(pipeline.simulate_pipelined(net, bits, 3, tmp_path, tree_k=1), ref)


@needs_iverilog
@pytest.mark.parametrize("kind", ["dense", "tree"])
def test_pipelined_trained_nets_equal_packed(small_trained, kind, tmp_path):
    model = small_trained[kind]
    bits = model.encode_bits(small_trained["x"][:30])
    net = model.to_netlist()
    ref = PackedEvaluator(net).class_counts(bits)
    assert torch.equal(ref, model.hard_counts(small_trained["x"][:30]))
    for k in (1, 2, 4):
        assert torch.equal(export.simulate_verilog(net, bits, tmp_path, pipeline=k), ref), k
    text = export.to_verilog(net, name="deep_net", pipeline=2)
    assert "module deep_net" in text and "valid_out" in text and "(* keep *) always @(posedge clk)" in text


@needs_iverilog
def test_wrong_latency_is_caught(tmp_path):
    """The testbench's latency check can fail: a module one register longer than planned is refused."""
    net = random_net(np.random.default_rng(4), 6, 40, 2, 3)
    text = pipeline.to_verilog_pipelined(net, 2)
    lat = pipeline.plan_pipeline(net, 2).latency
    longer = text.replace(f"assign valid_out = valid_pipe[{lat - 1}];", "reg late; always @(posedge clk) late <= "
                          f"valid_pipe[{lat - 1}]; assign valid_out = late;")
    assert longer != text
    bits = torch.from_numpy(np.random.default_rng(0).random((8, 6)) < 0.5)
    with pytest.raises(export.ExportError, match="cycles"):
        export.simulate_verilog(net, bits, tmp_path, verilog=longer, pipeline=2)


@needs_yosys
@pytest.mark.parametrize("seed", [0, 2])
def test_synth_flip_flops_equal_inserted_registers_random(seed):
    rng = np.random.default_rng(seed)
    net = fold_proven_constants(random_net(rng, 12, 200, 3, 7))
    bits = torch.from_numpy(rng.random((40, net.n_inputs)) < 0.5)
    ref = PackedEvaluator(net).class_counts(bits)
    for k in (1, 3):
        fig = synth.synthesize(net, "lut6", pipeline=k)
        assert fig["flip_flops"] == pipeline.plan_pipeline(net, k).flip_flops == fig["pipeline"]["flip_flops"]
        assert torch.equal(synth.simulate_synth_netlist(net, fig["netlist_verilog"], bits, pipeline=k), ref)


@needs_yosys
@pytest.mark.parametrize("kind", ["dense", "tree"])
def test_synth_flip_flops_equal_inserted_registers_trained(small_trained, kind):
    net = small_trained[kind].to_netlist()
    bits = small_trained[kind].encode_bits(small_trained["x"][:20])
    comb = synth.synthesize(net, "lut6")
    fig = synth.synthesize(net, "lut6", pipeline=1)
    assert comb["flip_flops"] == 0 and comb["pipeline"] is None
    assert fig["flip_flops"] == pipeline.plan_pipeline(net, 1).flip_flops > 0
    # registers every level: the longest path between registers is shorter than the combinational one
    assert fig["logic_depth"] < comb["logic_depth"]
    counts = synth.simulate_synth_netlist(net, fig["netlist_verilog"], bits, pipeline=1)
    assert torch.equal(counts, PackedEvaluator(net).class_counts(bits))
    if kind == "dense":
        ice = synth.synthesize(net, "ice40", pipeline=1)
        assert ice["flip_flops"] == pipeline.plan_pipeline(net, 1).flip_flops
        # the path search stops at the SB_DFF cells too
        assert ice["logic_depth"] < synth.synthesize(net, "ice40")["logic_depth"]


@needs_yosys
def test_cli_pipeline_options(tmp_path, capsys):
    import json

    from neurohw.cli import main

    net = fold_proven_constants(random_net(np.random.default_rng(3), 10, 150, 2, 6))
    net.save(tmp_path / "n.npz")
    plan = pipeline.plan_pipeline(net, 2)
    assert main(["logic", "export", "--netlist", str(tmp_path / "n.npz"), "--format", "verilog", "--pipeline", "2",
                 "--out", str(tmp_path / "p.v")]) == 0
    assert (tmp_path / "p.v").read_text() == pipeline.to_verilog_pipelined(net, 2)
    assert f"latency {plan.latency} cycles" in capsys.readouterr().out
    assert main(["logic", "export", "--netlist", str(tmp_path / "n.npz"), "--format", "c", "--pipeline", "2",
                 "--out", str(tmp_path / "p.c")]) == 2 and not (tmp_path / "p.c").exists()
    with pytest.raises(SystemExit) as e:
        main(["logic", "export", "--netlist", str(tmp_path / "n.npz"), "--format", "verilog", "--pipeline", "0",
              "--out", str(tmp_path / "q.v")])
    assert e.value.code == 2
    assert main(["logic", "synth", str(tmp_path / "n.npz"), "--pipeline", "2", "--json", str(tmp_path / "s.json")]) == 0
    fig = json.loads((tmp_path / "s.json").read_text())
    assert fig["flip_flops"] == plan.flip_flops and f"{plan.flip_flops:,} flip-flops inserted" in capsys.readouterr().out
    assert main(["logic", "synth-figures", str(tmp_path / "n.npz"), "--targets", "lut6", "--pipeline", "1,2",
                 "--results", str(tmp_path / "res")]) == 0
    res = json.loads((tmp_path / "res" / "logic-synth.json").read_text())
    rows = res["figures"]["table"]["rows"]
    assert [r["pipeline K"] for r in rows] == ["none", 1, 2]
    assert all(r["flip-flops (yosys)"] == r["flip-flops inserted"] for r in rows)
    assert rows[2]["flip-flops inserted"] == plan.flip_flops and res["figures"]["net"]["gates"] == net.gate_count()
    assert sorted(p.name for p in (tmp_path / "res" / "logic-synth").iterdir()) == ["lut6-comb.json", "lut6-k1.json",
                                                                                "lut6-k2.json"]  # runs kept for a rerun
    with pytest.raises(SystemExit):
        main(["logic", "synth-figures", str(tmp_path / "n.npz"), "--targets", "xc7"])


@needs_yosys
def test_report_face_carries_synth_figures(tmp_path):
    from logic.backend import LogicBackend, LogicHardware
    from logic.synth_figures import synth_table

    net = fold_proven_constants(random_net(np.random.default_rng(5), 8, 80, 2, 4))
    hw = LogicHardware(net, 2, (1, 2, 2))
    figs = synth_table(net, ("lut6",), (None, 2), progress=None)
    assert figs["runs"][1]["pipeline"]["k"] == 2
    rep = LogicBackend().report(hw, repeats=1, synth_figures=figs, synth_targets=("lut6",), synth_pipeline=2)
    assert rep.figures["synth_figures"]["same_netlist"] and rep.figures["synth_lut6"]["pipeline"]["k"] == 2
    rows = dict(rep.summary)
    key = "yosys lut6, pipelined every 2 level(s): LUTs / flip-flops / depth (cells) [this netlist]"
    assert rows[key].startswith(f"{figs['table']['rows'][1]['LUTs']:,} / {pipeline.plan_pipeline(net, 2).flip_flops:,} /")
    other = LogicHardware(random_net(np.random.default_rng(6), 8, 50, 2, 4), 2, (1, 2, 2))
    rep2 = LogicBackend().report(other, repeats=1, synth_figures={"figures": figs})
    assert not rep2.figures["synth_figures"]["same_netlist"]
    assert any("another netlist" in k for k, _ in rep2.summary)
