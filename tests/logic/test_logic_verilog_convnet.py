"""The conv LogicTreeNet (tree convolutions + OR pooling) through every export of the logic backend:
harden → C, Verilog (combinational and pipelined), netlist file, yosys — all equal the packed evaluator."""
from __future__ import annotations

import pytest
import torch

from logic import export, pipeline, synth
from logic.backend import LogicBackend
from logic.netlist import Netlist

needs_tools = pytest.mark.skipif(not (export.find_cc() and export.have_iverilog() and synth.have_yosys()),
                                 reason="gcc, Icarus and yosys needed (tools/system_deps.sh installs them)")


@needs_tools
def test_tree_net_through_every_export(train_tree_net, tmp_path):
    model, d = train_tree_net(128, 48, (40, 20), 31)
    be = LogicBackend()
    hw = be.harden(model)
    x = torch.cat([d.x_test, torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(3))])
    counts = hw.predict(x)  # packed evaluator
    assert torch.equal(counts, model.hard_counts(x))
    bits = hw.encode_bits(x)
    assert any(type(m).__name__ == "OrPool2d" for m in model.body)  # a conv net, not a dense one

    src = be.export(hw, tmp_path / "net.c", "c")
    exe = export.compile_c(src, tmp_path / "net")
    assert torch.equal(export.run_c_counts(exe, bits, hw.netlist.num_classes), counts)

    v = be.export(hw, tmp_path / "net.v", "verilog")
    assert torch.equal(export.simulate_verilog(hw.netlist, bits, tmp_path / "ic", verilog=v.read_text()), counts)
    vp = be.export(hw, tmp_path / "net_p.v", "verilog", pipeline=2)
    assert torch.equal(export.simulate_verilog(hw.netlist, bits, tmp_path / "ip", verilog=vp.read_text(), pipeline=2),
                       counts)
    with pytest.raises(Exception, match="pipeline"):
        be.export(hw, tmp_path / "x.c", "c", pipeline=2)

    back = Netlist.load(be.export(hw, tmp_path / "net.npz", "netlist"))
    assert torch.equal(back.class_counts(bits), counts)

    fig = synth.synthesize(hw.netlist, "lut6", pipeline=2)
    assert fig["flip_flops"] == pipeline.plan_pipeline(hw.netlist, 2).flip_flops
    assert 0 < fig["luts"]
    assert torch.equal(synth.simulate_synth_netlist(hw.netlist, fig["netlist_verilog"], bits, pipeline=2), counts)
