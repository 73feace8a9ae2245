"""Synthesis figures as a committed result: ``neurohw logic synth-figures NET`` → ``results/logic-synth.json``.

:func:`synth_table` runs :func:`logic.synth.synthesize` for every target and pipeline setting
(``None`` = the combinational export, else K logic levels per register stage) and returns
the figures with a table (``figures["table"]``, see :mod:`neurohw.results`) of one row per run:
LUTs, flip-flops reported by yosys and inserted by the pipeline plan, latency, logic depth in
cells, SB_CARRY cells and yosys wall time. The raw per-run figures stay under ``runs``.
"""
from __future__ import annotations

import hashlib
import time

from logic.netlist import Netlist
from logic.synth import TARGETS, synthesize

RESULT_NAME = "logic-synth"
COLUMNS = ["target", "pipeline K", "latency (cycles)", "LUTs", "flip-flops (yosys)", "flip-flops inserted",
           "inserted: gate banks / tree / valid", "depth (cells)", "SB_CARRY", "yosys s"]


def netlist_digest(net: Netlist) -> str:
    """sha256 of the netlist's arrays (identifies the net a figure was measured on)."""
    h = hashlib.sha256()
    for arr in (net.op, net.a, net.b, net.outputs):
        h.update(arr.astype("<i8").tobytes())
    h.update(f"{net.n_inputs},{net.num_classes}".encode())
    return h.hexdigest()


def synth_table(net: Netlist, targets=TARGETS, pipelines=(None,), timeout: float = 900, progress=print,
                store=None) -> dict:
    """Synthesise ``net`` for each target × pipeline setting; returns the result figures (see the module docstring).

    ``store``: a :class:`neurohw.results.RunStore`; each finished run is kept there (keyed by
    target and K, checked against the netlist's sha256 and the yosys version) and reused on a rerun."""
    runs, rows = [], []
    t_all = time.perf_counter()
    digest, version = netlist_digest(net), _yosys_version()
    for target in targets:
        for k in pipelines:
            key = f"{target}-{'comb' if k is None else f'k{k}'}"
            cfg = {"target": target, "pipeline": k, "netlist_sha256": digest, "yosys": version}
            fig = store.get(key, cfg) if store is not None else None
            if fig is None:
                fig = synthesize(net, target, timeout=timeout, pipeline=k)
                fig.pop("netlist_verilog")
                if store is not None:
                    store.put(key, fig, cfg)
            fig = {kk: v for kk, v in fig.items() if kk != "config"}
            runs.append(fig)
            pipe = fig["pipeline"]
            rows.append({"target": target, "pipeline K": "none" if k is None else int(k),
                         "latency (cycles)": 0 if pipe is None else pipe["latency"], "LUTs": fig["luts"],
                         "flip-flops (yosys)": fig["flip_flops"],
                         "flip-flops inserted": 0 if pipe is None else pipe["flip_flops"],
                         "inserted: gate banks / tree / valid": "–" if pipe is None else
                         f"{pipe['gate_flip_flops']:,} / {pipe['tree_flip_flops']:,} / {pipe['valid_flip_flops']:,}",
                         "depth (cells)": fig["logic_depth"],
                         "SB_CARRY": fig["carry_cells"] if target == "ice40" else None,
                         "yosys s": fig["yosys_wall_s"]})
            if progress:
                progress(f"{target} pipeline={k}: {fig['luts']:,} LUTs, {fig['flip_flops']:,} FFs, depth {fig['logic_depth']} "
                         f"({fig['yosys_wall_s']} s)")
    caption = (f"yosys {version} on the Verilog export of a {net.gate_count():,}-gate net (gate depth {net.depth}, "
               f"{net.num_classes} classes × {net.group_size} outputs). LUTs include the GroupSum popcount; depth = longest "
               "path in cells (between registers when pipelined); flip-flops inserted = the pipeline plan's registers "
               "(gate banks + GroupSum tree + valid bits). No fmax: yosys/abc give no timing for these flows.")
    return {"table": {"caption": caption, "rows": rows, "digits": 1, "columns": COLUMNS}, "runs": runs,
            "net": {"gates": net.gate_count(), "depth": net.depth, "inputs": net.n_inputs, "classes": net.num_classes,
                    "group_size": net.group_size, "netlist_sha256": digest},
            "wall_time_s": time.perf_counter() - t_all}


def _yosys_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["yosys", "-V"], capture_output=True, text=True, timeout=30).stdout.split()
        return out[1] if len(out) > 1 else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"
