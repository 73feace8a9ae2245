"""yosys synthesis: plausible LUT counts, and the synthesised LUT6 netlist simulates to the packed evaluator's counts."""
from __future__ import annotations

import pytest
import torch

from logic import export, synth
from logic.models import dense_lgn, logic_tree_net
from logic.packed import PackedEvaluator

needs_tools = pytest.mark.skipif(not (synth.have_yosys() and export.have_iverilog()),
                                 reason="yosys / Icarus not installed (tools/system_deps.sh installs them)")


def _nets():
    dense = dense_lgn(levels=2, widths=(120, 60, 20), tau=5, seed=3).eval()
    tree = logic_tree_net(k=2, dense=(40, 20), tau=5, init="residual", seed=4).eval()
    return {"dense": dense, "tree": tree}


@needs_tools
@pytest.mark.parametrize("kind", ["dense", "tree"])
def test_lut6_synthesis_plausible_and_simulates_equal(kind):
    model = _nets()[kind]
    net = model.to_netlist()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(64, *model.input_shape, generator=g)
    bits = model.encode_bits(x)
    fig = synth.synthesize(net, "lut6")
    assert 0 < fig["luts"] and fig["logic_depth"] > 0 and fig["flip_flops"] == 0
    # gate logic alone is at most one LUT per gate; the popcount adds LUTs of its own
    assert fig["luts"] <= net.gate_count() + net.num_classes * net.group_size
    counts = synth.simulate_synth_netlist(net, fig["netlist_verilog"], bits)
    assert torch.equal(counts, PackedEvaluator(net).class_counts(bits))


@needs_tools
def test_ice40_synthesis_reports_luts():
    net = _nets()["dense"].to_netlist()
    fig = synth.synthesize(net, "ice40")
    assert fig["luts"] > 0 and fig["fmax_mhz"] is None and "SB_LUT4" in fig["cells_by_type"]


def test_bad_target_is_rejected():
    with pytest.raises(ValueError, match="target"):
        synth.synthesize(_nets()["dense"].to_netlist(), "xc7")


@needs_tools
def test_cli_synth_and_report_face(tmp_path, capsys):
    from logic.backend import LogicHardware, LogicBackend
    from neurohw.cli import main

    net = _nets()["dense"].to_netlist()
    net.save(tmp_path / "n.npz")
    assert main(["logic", "synth", str(tmp_path / "n.npz"), "--target", "lut6", "--json", str(tmp_path / "s.json")]) == 0
    import json

    fig = json.loads((tmp_path / "s.json").read_text())
    assert f"{fig['luts']:,} LUTs" in capsys.readouterr().out
    assert main(["logic", "synth", str(tmp_path / "missing.npz")]) == 2
    rep = LogicBackend().report(LogicHardware(net, 2, (1, 28, 28)), repeats=1, synth_targets=("lut6",))
    assert rep.figures["synth_lut6"]["luts"] == fig["luts"]
