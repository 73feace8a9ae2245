"""The Loihi 2 backend's four faces (see :mod:`neurohw.backend`).

* ``harden(student)``: a trained :class:`snn.model.BWSNN` → :class:`LoihiHardware` (the
  integer :class:`~neurohw.loihi.network.LoihiNetwork` from :func:`snn.deploy.to_loihi_network`,
  plus the student's input encoding); a ``LoihiNetwork`` itself is accepted too.
* ``predict(x)``: images (N, C, H, W) or spikes (N, T, ...) → int64 logits (N, classes) from
  the exact integer simulator (:func:`snn.deploy.loihi_forward`), = 64·T × the float model's
  time-averaged logits; for a bare network, the output layer's spike counts.
* ``export(hw, path, "netx" | "nir")``.
* ``report(hw, x)``: deployability on Loihi 1/2 and the energy estimate of
  :mod:`neurohw.loihi.report` (simulated on ``x`` when given, else seeded random spikes).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neurohw.backend import Backend, Constant, Report, register

from .network import LoihiNetwork


@dataclass
class LoihiHardware:
    """A Loihi network and (optionally) the BWSNN it came from (for input encoding and timing)."""

    net: LoihiNetwork
    student: Any = None  # snn.model.BWSNN
    backend = "loihi"  # registry name (a class attribute, not a field)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if self.student is not None:
            from snn.deploy import loihi_forward

            return loihi_forward(self.student, x, net=self.net).logits
        from .simulator import simulate

        res = simulate(self.net, x)
        return res.spikes[-1].flatten(2).sum(1).long()

    def spikes(self, x: torch.Tensor | None):
        """Input spikes for a report simulation: the student's padded encoding of ``x`` (or ``x``)."""
        if x is None or self.student is None:
            return None if x is None else x
        from snn.deploy import padded_input

        return padded_input(self.student, x)


class LoihiBackend(Backend):
    name = "loihi"
    formats = ("netx", "nir")
    student = "snn.BWSNN (binary-weight spiking network on Loihi's grids)"
    cli_modules = ("neurohw.loihi.cli", "snn.cli")
    demo_stages = (("loihi", "neurohw.loihi.demo_stage:run"), ("snn", "snn.demo_stage:run"))
    students = ("bwsnn",)

    def build_student(self, name: str, num_classes: int = 10, input_shape=(1, 28, 28)):
        """``"bwsnn"``: :class:`snn.model.BWSNN` with its default configuration; its logits are the
        time-averaged readout, so it maps images (N, C, H, W) → (N, num_classes)."""
        if name != "bwsnn":
            return super().build_student(name, num_classes, input_shape)
        from snn.model import BWSNN, BWSNNConfig

        return BWSNN(BWSNNConfig(), in_shape=tuple(input_shape), num_classes=num_classes)

    def harden(self, student, **options) -> LoihiHardware:
        if isinstance(student, LoihiNetwork):
            return LoihiHardware(student.validate())
        from snn.deploy import to_loihi_network

        return LoihiHardware(to_loihi_network(student, **options), student.eval())

    def export(self, hw: LoihiHardware, path, format: str) -> Path:
        self.check_format(format)
        if format == "netx":
            from .netx_io import write_netx

            seed = getattr(getattr(hw.student, "cfg", None), "seed", None)
            return write_netx(hw.net, path, seed=seed)
        from .nir_io import write_nir

        return write_nir(hw.net, path)

    def report(self, hw: LoihiHardware, x: torch.Tensor | None = None) -> Report:
        from .report import ENERGY, full_report

        rep = full_report(hw.net, hw.spikes(x))
        e = rep["energy"]
        per, ej = e["per_inference"], e["energy_J"]
        summary = [("network", rep["network"]), ("input", rep["input"]), ("steps", str(rep["steps"]))]
        for chip in ("loihi2", "loihi1"):
            d = rep[chip]
            summary.append((f"{chip} cores / chips", f"{d['total_cores']} / {d['chips']}"
                            f" ({'deployable on one chip' if d['deployable_on_one_chip'] else 'NOT deployable as is'})"))
        summary += [("synaptic ops per inference", f"{per['syn_ops']:.0f}"),
                    ("spikes per inference", f"{per['spikes']:.0f}"),
                    ("energy per inference (Davies 2018 constants)", f"{ej['total_davies'] * 1e9:.3f} nJ"),
                    ("energy per inference (SANA-FE synop)", f"{ej['total_with_sanafe_synop'] * 1e9:.3f} nJ")]
        constants = {k: Constant(c.value, c.unit, f"{c.source} [{c.grade}]") for k, c in ENERGY.items()}
        notes = list(e["notes"]) + [f"{chip}: {v}" for chip in ("loihi2", "loihi1") for v in rep[chip]["violations"]]
        layers = rep["loihi2"]["layers"]

        def plot_cores(path):
            from neurohw.plotting import plt, save

            fig, ax = plt.subplots(figsize=(6, 3))
            ax.bar([r["name"] for r in layers], [r["cores"] for r in layers], color="k")
            ax.set_ylabel("Loihi 2 cores")
            ax.set_title(f"{rep['network']}: cores per layer")
            save(fig, path)
            plt.close(fig)

        return Report("loihi", f"Loihi report: {rep['network']}", summary, figures=rep, constants=constants,
                      notes=notes, tables={"layers (Loihi 2)": layers}, plots={"loihi_cores": plot_cores})


register(LoihiBackend())
