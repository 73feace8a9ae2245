"""``neurohw loihi simulate | compare | report`` — netx files in neurohw's simulator and in Lava.

Input spike files (``--input SPIKES.npy``): integer or bool arrays shaped ``(steps, *input)`` or
``(batch, steps, *input)``, where ``input`` is the network's input shape ((N,) or (C, H, W);
the trailing axes may also be given flattened). Non-zero entries are spikes (graded payloads
when the file's network has ``input_message_bits > 0``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neurohw import argtypes as at

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loihi", help="Loihi 2: simulate, compare with Lava, report (netx HDF5 files)")
    s = p.add_subparsers(dest="loihi_command", metavar="ACTION")

    sim = s.add_parser("simulate", help="run a netx file in neurohw's exact simulator")
    sim.add_argument("net", type=Path, help="netx HDF5 file")
    sim.add_argument("--input", type=Path, required=True, help="spikes .npy: (steps, *input) or (batch, steps, *input)")
    sim.add_argument("--out", type=Path, required=True, help="output .npy: last layer spikes (batch, steps, *shape), uint8")
    sim.add_argument("--all-layers", type=Path, default=None, help="also write every layer's spikes to this .npz")
    at.add_device(sim, "cpu")
    sim.set_defaults(func=_simulate)

    cmp_ = s.add_parser("compare", help="run a netx file in neurohw and in Lava (fixed_pt); print 'identical' or the first divergence")
    cmp_.add_argument("net", type=Path)
    cmp_.add_argument("--steps", type=at.count, default=50)
    cmp_.add_argument("--samples", type=at.count, default=1)
    cmp_.add_argument("--seed", type=at.seed, default=0)
    cmp_.add_argument("--rate", type=at.rate, default=0.2, help="spike probability of the random input")
    cmp_.add_argument("--input", type=Path, default=None, help="spikes .npy instead of random input")
    cmp_.set_defaults(func=_compare)

    rep = s.add_parser("report", help="deployability on Loihi 1/2 cores and an energy estimate")
    rep.add_argument("net", type=Path)
    rep.add_argument("--input", type=Path, default=None, help="spikes .npy (default: random input)")
    rep.add_argument("--steps", type=at.count, default=32)
    rep.add_argument("--samples", type=at.count, default=4)
    rep.add_argument("--rate", type=at.rate, default=0.1)
    rep.add_argument("--seed", type=at.seed, default=0)
    rep.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    rep.set_defaults(func=_report)

    imp = s.add_parser("import-nir", help="a NIR graph (snnTorch, Norse, …) → Loihi integers → netx HDF5 file, with the quantisation report")
    imp.add_argument("model", type=Path, help="NIR file (.nir)")
    imp.add_argument("--out", type=Path, required=True, help="netx HDF5 file to write")
    imp.add_argument("--dt", type=at.positive, default=None,
                     help="time step in seconds (default: the graph's metadata dt; snnTorch exports assume 1e-4)")
    imp.add_argument("--report-json", type=Path, default=None, help="also write the quantisation report as JSON")
    imp.set_defaults(func=_import_nir)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _import_nir(args) -> int:
    from neurohw.io import atomic_write_json, provenance

    from .netx_io import write_netx
    from .nir_import import import_nir

    net, rep = import_nir(args.model, dt=args.dt)
    write_netx(net, args.out)
    print(rep.text())
    shapes = net.shapes()
    print(f"wrote {args.out}: input {net.input_shape}, {len(net.layers)} layers "
          f"({', '.join(f'{l.name} {s}' for l, s in zip(net.layers, shapes))})")
    if args.report_json:
        atomic_write_json(args.report_json, {"rows": rep.rows, "provenance": provenance(config={"model": str(args.model), "dt": args.dt})})
    return 0


def _load_input(path: Path) -> np.ndarray:
    from .network import LoihiConfigError

    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise LoihiConfigError(str(path), "input", f"not a readable .npy array ({exc})") from None
    if x.dtype.kind not in "biuf":
        raise LoihiConfigError(str(path), "input", f"dtype {x.dtype} is not numeric")
    return x


def _simulate(args) -> int:
    from neurohw.io import atomic_path

    from .netx_io import read_netx
    from .simulator import simulate

    net = read_netx(args.net)
    x = _load_input(args.input)
    res = simulate(net, x, device=args.device)
    out = res.output.cpu().numpy().astype(np.uint8)
    with atomic_path(args.out, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, out)
    if args.all_layers:
        with atomic_path(args.all_layers, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{f"layer{i}": s.cpu().numpy().astype(np.uint8) for i, s in enumerate(res.spikes)})
    rates = [float(s.float().mean()) for s in res.spikes]
    print(f"simulated {net.name}: batch {res.batch}, {res.steps} steps, {len(net.layers)} layers; "
          f"spike rate per layer {', '.join(f'{r:.3f}' for r in rates)}; wrote {args.out} {tuple(out.shape)}")
    return 0


def _compare(args) -> int:
    from .lava_bridge import compare_with_lava, lava_available
    from .netx_io import read_netx
    from .random_nets import random_spikes

    net = read_netx(args.net)
    if args.input is not None:
        x = _load_input(args.input)
    else:
        x = random_spikes(args.seed, args.steps, net.input_shape, batch=args.samples, rate=args.rate)
    if not lava_available():
        print("error: Lava (lava-nc 0.10, lava-dl 0.6, Python 3.10) is not installed", file=sys.stderr)
        return 3
    res = compare_with_lava(args.net, x, probe="all")
    if res["identical"]:
        print(f"identical ({x.shape[0] if x.ndim > len(net.input_shape) + 1 else 1} sample(s), "
              f"{res['ours'].steps} steps, {len(net.layers)} layers; spikes per layer {res['spikes_per_layer']}; voltages and currents equal)")
        return 0
    d = res["first_divergence"]
    if d is None:
        print(f"spikes identical but states differ: voltage equal {res['voltage_equal']}, current equal {res['current_equal']}")
    else:
        print(format_divergence(d, net))
    return 1


def format_divergence(d: dict, net) -> str:
    """One line naming the layer, neuron (flat index in (C, H, W) order), step and sample."""
    name = net.layers[d["layer"]].name
    if "step" not in d:
        return f"first divergence: layer {d['layer']} ({name}): {d.get('reason')}"
    return (f"first divergence: layer {d['layer']} ({name}), neuron {d['neuron']}, step {d['step']}, "
            f"sample {d['sample']}: neurohw spike={int(d['neurohw'])}, lava spike={int(d['lava'])}")


def _report(args) -> int:
    from neurohw.io import atomic_write_json, provenance

    from .netx_io import read_netx
    from .report import format_report, full_report

    net = read_netx(args.net)
    x = _load_input(args.input) if args.input is not None else None
    rep = full_report(net, x, steps=args.steps, rate=args.rate, seed=args.seed, samples=args.samples)
    print(format_report(rep))
    if args.json:
        rep["provenance"] = provenance(seed=args.seed, config={"net": str(args.net), "steps": args.steps, "rate": args.rate})
        atomic_write_json(args.json, rep)
    return 0
