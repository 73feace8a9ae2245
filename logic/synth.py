"""FPGA synthesis figures for a gate netlist with yosys (``neurohw logic synth``).

:func:`synthesize` writes the Verilog export (:func:`logic.export.to_verilog`), runs yosys
(``synth -lut 6`` for a generic 6-input-LUT fabric, ``synth_ice40`` for Lattice iCE40, both
mapping with abc) and returns the figures parsed from ``stat -json`` and ``ltp -noff``:

* ``luts``: LUT cells (``$lut`` or ``SB_LUT4``), GroupSum popcount included;
* ``flip_flops``: flip-flop cells (0 for the combinational export; with ``pipeline=K`` the
  registers of :mod:`logic.pipeline`, equal to its plan's ``flip_flops``);
* ``carry_cells``: ``SB_CARRY`` cells (ice40 only);
* ``logic_depth``: the longest topological path in cells (``ltp -noff``), input to output, or
  between registers: ``-noff`` cuts yosys's own flip-flop cells (``$_DFF_*``, the lut6 flow),
  and the iCE40 flip-flops (``SB_DFF*``, library cells it does not know) are left out of the
  selection;
* ``fmax_mhz``: None — yosys/abc give no timing estimate for these flows (iCE40 timing needs
  nextpnr/icetime, not installed), so none is reported.

With ``pipeline=K`` the pipelined export (:func:`logic.pipeline.to_verilog_pipelined`) is
synthesised instead, ``logic_depth`` is then the longest path between registers, and the
figures carry the plan's ``pipeline`` summary (latency, flip-flops it inserts).

The LUT6 netlist (``write_verilog``) is plain Verilog and simulates in Icarus
(:func:`simulate_synth_netlist`).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from logic.export import ExportError, _run, to_verilog
from logic.netlist import Netlist

TARGETS = ("lut6", "ice40")
_SYNTH = {"lut6": "synth -lut 6 -top {top}", "ice40": "synth_ice40 -top {top}"}
_LTP_SELECT = {"lut6": "", "ice40": " * t:SB_DFF* %d"}  # leave the iCE40 flip-flop cells out of the path search


def have_yosys() -> bool:
    return shutil.which("yosys") is not None


def synthesize(net: Netlist, target: str = "lut6", name: str = "nh_logic", workdir: str | Path | None = None,
               timeout: float = 900, pipeline: int | None = None) -> dict:
    """Synthesise ``net`` for ``target`` ("lut6" | "ice40"); returns the figures (see the module docstring)
    and ``netlist_verilog`` (the synthesised netlist's text). ``pipeline``: K logic levels per register
    stage (None: the combinational export)."""
    import time

    from logic.pipeline import check_k, plan_pipeline, to_verilog_pipelined

    if target not in TARGETS:
        raise ValueError(f"synthesize: target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not have_yosys():
        raise ExportError("yosys is not installed (apt-get install yosys; tools/system_deps.sh does)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(workdir or tmp)
        d.mkdir(parents=True, exist_ok=True)
        plan = None
        if pipeline is None:
            (d / "net.v").write_text(to_verilog(net, name))
        else:
            plan = plan_pipeline(net, check_k(pipeline))
            (d / "net.v").write_text(to_verilog_pipelined(net, plan.k, name, plan))
        t0 = time.perf_counter()
        script = (f"read_verilog net.v; {_SYNTH[target].format(top=name)}; tee -q -o ltp.txt ltp -noff{_LTP_SELECT[target]}; "
                  f"tee -q -o stat.json stat -json; write_verilog -noattr synth.v")
        _run(["yosys", "-q", "-p", script], f"yosys ({target})", timeout=timeout, cwd=str(d))
        wall = time.perf_counter() - t0
        stat = json.loads((d / "stat.json").read_text())
        ltp = (d / "ltp.txt").read_text()
        text = (d / "synth.v").read_text()
    cells = stat["design"]["num_cells_by_type"]
    luts = sum(v for k, v in cells.items() if k in ("$lut", "SB_LUT4"))
    ffs = sum(v for k, v in cells.items() if "DFF" in k.upper())
    depth = None
    for ln in ltp.splitlines():
        if "length=" in ln:
            depth = int(ln.split("length=")[1].split(")")[0])
    if depth is None:
        raise ExportError(f"yosys ltp printed no path length: {ltp[-500:]}")
    return {"target": target, "luts": int(luts), "flip_flops": int(ffs), "carry_cells": int(cells.get("SB_CARRY", 0)),
            "logic_depth": depth, "cells_by_type": {k: int(v) for k, v in cells.items()}, "fmax_mhz": None,
            "fmax_note": "yosys/abc give no timing estimate for this flow (needs nextpnr/icetime)",
            "pipeline": None if plan is None else plan.summary(), "yosys_wall_s": round(wall, 1),
            "netlist_verilog": text}


def simulate_synth_netlist(net: Netlist, synth_verilog: str, bits, name: str = "nh_logic", pipeline: int | None = None):
    """Simulate a LUT6 netlist written by :func:`synthesize` in Icarus on (N, NI) bits → (N, classes) int64 counts.

    ``pipeline``: the K it was synthesised with (the pipelined testbench then checks the latency)."""
    from logic.export import simulate_verilog

    return simulate_verilog(net, bits, verilog=synth_verilog, name=name, pipeline=pipeline)
