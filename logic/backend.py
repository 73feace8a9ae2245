"""The logic-gate backend's four faces (see :mod:`neurohw.backend`).

* ``harden(student)``: a trained :class:`logic.models.LogicNet` → :class:`LogicHardware` (the
  simplified gate netlist and the thermometer input encoding).
* ``predict(x)``: images (N, *input_shape) → int64 class counts (N, classes) from the packed
  bit-sliced evaluator (= the hardened float model's counts, = the C export's).
* ``export(hw, path, "c" | "verilog" | "netlist")``.
* ``report(hw, x)``: gates by kind, depth, packed words, images/s measured (on ``x``, else on
  seeded random input bits), estimated LUTs; with ``synth_targets`` (and ``synth_pipeline``)
  yosys figures measured now, with ``synth_figures`` those of a result (``results/logic-synth.json``,
  :mod:`logic.synth_figures`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from logic.netlist import Netlist
from neurohw.backend import Backend, BackendError, Constant, Report, register


@dataclass
class LogicHardware:
    """A gate netlist and its input encoding: thermometer with ``levels`` thresholds on images ``input_shape``."""

    netlist: Netlist
    levels: int
    input_shape: tuple[int, ...]
    _evaluator: object = field(default=None, repr=False, compare=False)

    backend = "logic"  # registry name (a class attribute, not a field)

    def encode_bits(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, *input_shape) in [0, 1] → netlist input bits (N, n_inputs) bool."""
        from neurohw.data.encoders import thermometer_encode

        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"LogicHardware: expected inputs (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        return thermometer_encode(x, self.levels).flatten(1) != 0

    def evaluator(self):
        if self._evaluator is None:
            from logic.packed import PackedEvaluator

            self._evaluator = PackedEvaluator(self.netlist)
        return self._evaluator

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.evaluator().class_counts(self.encode_bits(x))


def save_net(path, model, **kw) -> Path:
    """:func:`logic.models.save_model` with the artifact savers' argument order (``neurohw.io.save_artifact``)."""
    from logic.models import save_model

    return save_model(model, path, **kw)


class LogicBackend(Backend):
    name = "logic"
    formats = ("c", "verilog", "netlist")
    student = "logic.LogicNet (dense LGN or LogicTreeNet with thermometer inputs)"
    cli_modules = ("logic.cli",)
    demo_stages = (("logic", "logic.demo_stage:run"),)

    def harden(self, student, *, simplified: bool = True) -> LogicHardware:
        enc = getattr(student, "encoder", None)
        if not hasattr(student, "to_netlist") or not hasattr(enc, "levels"):
            raise BackendError(f"logic.harden: {type(student).__name__} is not a LogicNet with a thermometer encoder")
        return LogicHardware(student.to_netlist(simplified=simplified), int(enc.levels), tuple(student.input_shape))

    def export(self, hw: LogicHardware, path, format: str, name: str = "nh_logic", pipeline: int | None = None) -> Path:
        """``pipeline``: K — the pipelined Verilog of :mod:`logic.pipeline` (``format="verilog"`` only)."""
        self.check_format(format)
        if pipeline is not None and format != "verilog":
            raise BackendError(f"logic.export: pipeline applies to format 'verilog', not {format!r}")
        if format == "netlist":
            return hw.netlist.save(path)
        from logic.export import write_c, write_verilog

        if format == "c":
            return write_c(hw.netlist, path, name=name)
        return write_verilog(hw.netlist, path, name=name, pipeline=pipeline)

    def report(self, hw: LogicHardware, x: torch.Tensor | None = None, repeats: int = 3,
               synth_targets: tuple[str, ...] = (), synth_pipeline: int | None = None,
               synth_figures: dict | None = None) -> Report:
        """``synth_targets``: yosys targets ("lut6", "ice40") whose synthesis figures join the report
        (``synth_pipeline``: K, synthesise the pipelined export). ``synth_figures``: figures already
        measured — a result dict (``neurohw.results.load_result("logic-synth")``) or its ``figures``;
        its table rows join the summary, marked with the netlist they were measured on."""
        net = hw.netlist
        kinds = net.counts_by_kind()
        if x is not None:
            bits, source = hw.encode_bits(x), f"{len(x)} given images"
        else:
            n = 4096
            bits = torch.rand(n, net.n_inputs, generator=torch.Generator().manual_seed(0)) < 0.5
            source = f"{n} seeded random input vectors"
        ev = hw.evaluator()
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            ev.class_counts(bits)
            times.append(time.perf_counter() - t0)
        ips = len(bits) / min(times)
        words_in = net.n_inputs
        logic_luts = kinds["two_input"] + kinds["not"]
        figures = {"gates": net.gate_count(), "gates_by_kind": kinds, "depth": net.depth, "inputs": net.n_inputs,
                   "outputs": int(net.outputs.size), "classes": net.num_classes, "group_size": net.group_size,
                   "packed_words_per_64_images": {"inputs": words_in, "outputs": int(net.outputs.size),
                                                  "working_set": net.n_signals},
                   "images_per_s": ips, "images_per_s_runs_s": times, "measured_on": source,
                   "torch_threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
                   "estimated_luts": logic_luts, "histogram": net.histogram().tolist()}
        summary = [("gates (non-constant)", f"{net.gate_count():,}"),
                   ("two-input / NOT / wire / constant", f"{kinds['two_input']:,} / {kinds['not']:,} / "
                                                        f"{kinds['pass_through']:,} / {kinds['constant']:,}"),
                   ("logic depth", str(net.depth)),
                   ("packed words per 64 images (in / out / working set)",
                    f"{words_in:,} / {net.outputs.size:,} / {net.n_signals:,} × uint64"),
                   ("images/s, packed evaluator (best of runs)", f"{ips:,.0f} on {source}, {torch.get_num_threads()} thread(s)"),
                   ("estimated LUTs (gate logic)", f"{logic_luts:,}")]
        for target in synth_targets:
            from logic.synth import synthesize

            fig = synthesize(net, target, pipeline=synth_pipeline)
            fig.pop("netlist_verilog")
            figures[f"synth_{target}"] = fig
            pipe = "" if fig["pipeline"] is None else f", pipelined every {synth_pipeline} level(s)"
            lat = "" if fig["pipeline"] is None else f", latency {fig['pipeline']['latency']} cycles"
            summary.append((f"yosys {target}{pipe}: LUTs / flip-flops / depth (cells)",
                            f"{fig['luts']:,} / {fig['flip_flops']:,} / {fig['logic_depth']}{lat} (fmax not estimated)"))
        if synth_figures is not None:
            from logic.synth_figures import netlist_digest

            figs = synth_figures.get("figures", synth_figures)
            if "table" not in figs or "net" not in figs:
                raise BackendError("logic.report: synth_figures must be a logic-synth result (figures with 'table' and 'net')")
            same = figs["net"].get("netlist_sha256") == netlist_digest(net)
            figures["synth_figures"] = {"rows": figs["table"]["rows"], "net": figs["net"], "same_netlist": same,
                                        "source": synth_figures.get("_where", "given figures")}
            which = "this netlist" if same else f"another netlist ({figs['net']['gates']:,} gates)"
            for r in figs["table"]["rows"]:
                k = r["pipeline K"]
                label = f"yosys {r['target']}" + ("" if k == "none" else f", pipelined every {k} level(s)")
                summary.append((f"{label}: LUTs / flip-flops / depth (cells) [{which}]",
                                f"{r['LUTs']:,} / {r['flip-flops (yosys)']:,} / {r['depth (cells)']}"
                                + ("" if k == "none" else f", latency {r['latency (cycles)']} cycles")))
        constants = {"lut_per_gate": Constant(1.0, "LUT per two-input or NOT gate (upper bound)",
                                              "assumption: one k≥2-input LUT per gate; LUT6 packing merges gates, "
                                              "wires and constants cost none; the popcount is not included")}
        notes = [f"images/s: best of {len(times)} timed runs on a shared machine (load average "
                 f"{figures['load_average'][0]:.2f}); the compiled C export is faster (python -m bench.logic)"]
        hist = figures["histogram"]

        def plot_gates(path):
            from neurohw.plotting import plt, save

            fig, ax = plt.subplots(figsize=(6, 3))
            ax.bar(range(16), hist, color="k")
            ax.set_xlabel("gate id (0..15)")
            ax.set_ylabel("gates")
            ax.set_title("gate histogram")
            save(fig, path)
            plt.close(fig)

        return Report("logic", "Logic report: gate netlist", summary, figures=figures, constants=constants, notes=notes,
                      plots={"logic_gates": plot_gates})


register(LogicBackend())
