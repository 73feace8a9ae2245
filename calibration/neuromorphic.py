"""Calibration from neuromorphic captures (``device_kind = "neuromorphic"``, docs/captures.md).

:func:`calibrate_neuromorphic` runs the network (a netx file, exact Lava semantics) in neurohw's
simulator on the captured input spikes and

1. reports how the measurements agree with the simulation: output raster agreement per
   (capture, step, neuron), the first divergence (earliest step in the first capture that
   differs), spike-count error per neuron (mean |Δ|, total relative), and the simulated spike
   rate of every layer (schema v1 records only the output layer's spikes, so hidden layers
   cannot be compared with measurements);
2. refits the read-out on a seeded slice (``fraction``) of measured counts: a ridge-regression
   decoder from output counts (+1) to one-hot classes, and reports held-out accuracy
   (the captures outside the slice) of
   - ``simulation``: the default decoder (counts summed per class group) on simulated counts,
   - ``uncalibrated``: the default decoder on measured counts,
   - ``control``: the same ridge decoder fitted on *simulated* counts of the slice, applied to
     measured counts (what a trained decoder gives without seeing the chip),
   - ``calibrated``: the ridge decoder fitted on *measured* counts of the slice.

Class groups: output neuron ``j`` belongs to class ``j // (C_out / num_classes)`` (C_out must be
a multiple of ``num_classes``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .captures import CaptureFormatError, open_captures

RIDGE = 1.0
#: Captures replayed per simulator call (memory stays bounded for large files).
BATCH = 256


def is_neuromorphic(path) -> bool:
    """True when ``path`` is a readable capture file whose ``device_kind`` is neuromorphic."""
    with open_captures(path, scan=False) as cf:
        return cf.device_kind == "neuromorphic"


def _group_decode(counts: np.ndarray, num_classes: int) -> np.ndarray:
    return counts.reshape(len(counts), num_classes, -1).sum(-1).argmax(1)


def _fit_ridge(counts: np.ndarray, labels: np.ndarray, num_classes: int, lam: float = RIDGE) -> np.ndarray:
    """Decoder weights ((C_out + 1), num_classes) minimising ‖[c, 1]·W − onehot‖² + λ‖W‖²
    (counts standardised by their slice maximum so λ is scale-free)."""
    x = np.concatenate([counts, np.ones((len(counts), 1))], axis=1).astype(np.float64)
    t = np.eye(num_classes)[labels]
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ t)


def _ridge_decode(w: np.ndarray, counts: np.ndarray) -> np.ndarray:
    x = np.concatenate([counts, np.ones((len(counts), 1))], axis=1).astype(np.float64)
    return (x @ w).argmax(1)


def first_divergence(sim: np.ndarray, meas: np.ndarray) -> dict[str, int] | None:
    """Earliest (capture, step, neuron) where two (N, T, C) rasters differ, captures in order."""
    diff = sim != meas
    for n in range(diff.shape[0]):
        if diff[n].any():
            t, c = np.argwhere(diff[n])[0]
            return {"capture": int(n), "step": int(t), "neuron": int(c), "simulated": int(sim[n, t, c]), "measured": int(meas[n, t, c])}
    return None


def calibrate_neuromorphic(net_path, captures_path, *, fraction: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """Agreement and read-out refit (see the module docstring). Returns a JSON-able dict."""
    from neurohw.loihi import simulate
    from neurohw.loihi.netx_io import read_netx

    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    net = read_netx(net_path)
    shapes = net.shapes()
    n_in, c_out = math.prod(net.input_shape), math.prod(shapes[-1])
    rates = np.zeros(len(shapes))
    equal = n_cells = identical = 0
    divergence = None
    sim_counts, counts = [], []
    with open_captures(captures_path) as cf:
        if cf.device_kind != "neuromorphic":
            raise CaptureFormatError(f"{captures_path}: device_kind is {cf.device_kind!r}, not 'neuromorphic'")
        if not cf.has("inputs/spikes"):
            raise CaptureFormatError(f"{captures_path}: /inputs/spikes: missing; the neuromorphic loop replays the captured input spikes")
        labels, num_classes, n = np.asarray(cf.labels), cf.num_classes, len(cf)
        has_raster, has_counts = cf.has("measured/spike_raster"), cf.has("measured/spike_counts")
        if c_out % num_classes:
            raise CaptureFormatError(f"{captures_path}: num_classes {num_classes} does not divide the {c_out} output neurons")
        keys = ["inputs/spikes"] + (["measured/spike_raster"] if has_raster else []) + (["measured/spike_counts"] if has_counts else [])
        for batch in cf.iter_batches(keys, batch_size=BATCH):
            x = batch["inputs/spikes"]
            if x.shape[2] != n_in:
                raise CaptureFormatError(f"{captures_path}: /inputs/spikes: {x.shape[2]} input channels, the network {net_path} takes {n_in}")
            res = simulate(net, x)
            rates += np.array([float(s_.float().sum()) for s_ in res.spikes])
            sim_r = res.output.numpy().reshape(len(x), x.shape[1], -1)
            sim_counts.append(sim_r.sum(axis=1).astype(np.int64))
            meas_c = batch["measured/spike_counts"] if has_counts else batch["measured/spike_raster"].sum(axis=1)
            if meas_c.shape[1] != c_out:
                raise CaptureFormatError(f"{captures_path}: measured output has {meas_c.shape[1]} neurons, the network's output layer has {c_out}")
            counts.append(meas_c.astype(np.int64))
            if has_raster:
                r = batch["measured/spike_raster"].astype(bool)
                if r.shape != sim_r.shape:
                    raise CaptureFormatError(f"{captures_path}: /measured/spike_raster: shape {r.shape[1:]} per capture, "
                                             f"the simulation gives {sim_r.shape[1:]}")
                eq = r == sim_r
                equal += int(eq.sum())
                n_cells += eq.size
                identical += int(eq.all(axis=(1, 2)).sum())
                if divergence is None:
                    d = first_divergence(sim_r.astype(np.uint8), r.astype(np.uint8))
                    if d is not None:
                        d["capture"] = int(batch["index"][d["capture"]])
                        divergence = d
        steps = int(x.shape[1])
    sim_counts, counts = np.concatenate(sim_counts), np.concatenate(counts)
    agreement: dict[str, Any] = {
        "layer_rates_simulated": [float(v / (n * steps * math.prod(s_))) for v, s_ in zip(rates, shapes)],
        "count_mean_abs_error": float(np.abs(sim_counts - counts).mean()),
        "count_total_relative_error": float((counts.sum() - sim_counts.sum()) / max(sim_counts.sum(), 1)),
        "count_correlation": float(np.corrcoef(sim_counts.reshape(-1), counts.reshape(-1))[0, 1]) if counts.std() and sim_counts.std() else None,
    }
    if has_raster:
        agreement.update(raster_agreement=equal / n_cells, captures_identical=identical, first_divergence=divergence)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    k = max(1, int(round(fraction * n)))
    sl, ho = order[:k], order[k:]
    if len(ho) == 0:
        raise ValueError(f"fraction {fraction} leaves no held-out captures out of {n}")
    w_meas = _fit_ridge(counts[sl], labels[sl], num_classes)
    w_sim = _fit_ridge(sim_counts[sl], labels[sl], num_classes)
    acc = lambda pred: float((pred == labels[ho]).mean())  # noqa: E731
    accuracies = {
        "simulation": acc(_group_decode(sim_counts[ho], num_classes)),
        "uncalibrated": acc(_group_decode(counts[ho], num_classes)),
        "control": acc(_ridge_decode(w_sim, counts[ho])),
        "calibrated": acc(_ridge_decode(w_meas, counts[ho])),
    }
    return {"network": str(net_path), "captures": str(captures_path), "n_captures": int(n), "steps": steps,
            "slice": int(k), "held_out": int(len(ho)), "fraction": fraction, "seed": seed, "agreement": agreement,
            "accuracies": accuracies, "decoder": {"kind": "ridge", "lambda": RIDGE, "weights": w_meas.tolist()}}


def format_result(r: dict[str, Any]) -> str:
    """Markdown text of :func:`calibrate_neuromorphic`'s result."""
    a, acc = r["agreement"], r["accuracies"]
    lines = [f"# Neuromorphic calibration: {Path(r['network']).name} on {Path(r['captures']).name}", "",
             f"{r['n_captures']} captures × {r['steps']} steps; read-out refit on {r['slice']} (fraction {r['fraction']}, "
             f"seed {r['seed']}), held out {r['held_out']}.", "", "## Agreement of measurements with the simulation", ""]
    if "raster_agreement" in a:
        d = a["first_divergence"]
        lines.append(f"- output raster agreement: {100 * a['raster_agreement']:.2f} % of (capture, step, neuron); "
                     f"{a['captures_identical']} captures identical")
        lines.append("- first divergence: " + ("none" if d is None else
                     f"capture {d['capture']}, step {d['step']}, output neuron {d['neuron']} "
                     f"(simulated {d['simulated']}, measured {d['measured']})"))
    lines.append(f"- spike-count error: mean |Δ| {a['count_mean_abs_error']:.3f} spikes per neuron and capture; "
                 f"total {100 * a['count_total_relative_error']:+.2f} %; correlation {a['count_correlation']}")
    lines.append("- simulated spike rate per layer: " + ", ".join(f"{v:.4f}" for v in a["layer_rates_simulated"])
                 + " (schema v1 records the output layer only)")
    lines += ["", "## Held-out accuracy", "", "| read-out | accuracy |", "|---|---|"]
    for k, v in acc.items():
        lines.append(f"| {k} | {100 * v:.2f} % |")
    return "\n".join(lines) + "\n"


def run_cli(args) -> int:
    """``neurohw calibrate NET.net --captures C.h5 --out DIR`` for neuromorphic captures."""
    import h5py

    from neurohw.io import atomic_write_json, atomic_write_text, provenance

    if not (Path(args.model).is_file() and h5py.is_hdf5(args.model)):
        raise CaptureFormatError(f"{args.captures}: device_kind 'neuromorphic' is calibrated against a netx network file, "
                                 f"but {args.model} is not an HDF5 file (model bundles go with optics captures)")
    r = calibrate_neuromorphic(args.model, args.captures, fraction=args.fraction, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    text = format_result(r)
    atomic_write_text(args.out / "report.md", text)
    atomic_write_json(args.out / "results.json", {**r, "provenance": provenance(seed=args.seed, config={
        "net": str(args.model), "captures": str(args.captures), "fraction": args.fraction})})
    print(" | ".join(f"{k} {100 * v:.2f}%" for k, v in r["accuracies"].items()))
    print(f"report: {args.out / 'report.md'}")
    return 0


def load_result(path) -> dict[str, Any]:
    """Read back a ``results.json`` written by :func:`run_cli`."""
    return json.loads(Path(path).read_text())
