"""``neurohw lab neuromorphic-model | neuromorphic-capture``: the virtual neuromorphic lab's commands
(``neurohw calibrate`` dispatches neuromorphic captures to :mod:`calibration.neuromorphic`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from neurohw import argtypes as at


def register_lab(labsub: argparse._SubParsersAction) -> None:
    m = labsub.add_parser("neuromorphic-model", help="build the virtual neuromorphic lab's digits network (netx file)")
    m.add_argument("--out", type=Path, required=True, help="netx HDF5 file to write")
    m.add_argument("--seed", type=at.seed, default=0)
    m.add_argument("--steps", type=at.count, default=32, help="time steps per sample (rate code)")
    m.add_argument("--hidden", type=at.count, default=96, help="hidden LIF neurons")
    m.set_defaults(func=_model)

    c = labsub.add_parser("neuromorphic-capture", help="run the digits test split on a perturbed virtual Loihi chip; write a capture file")
    c.add_argument("--net", type=Path, required=True, help="netx file (from `neurohw lab neuromorphic-model`)")
    c.add_argument("--out", type=Path, required=True, help="capture file (.h5)")
    c.add_argument("--steps", type=at.count, default=32)
    c.add_argument("--input-seed", type=at.seed, default=1, help="seed of the input rate code")
    c.add_argument("--limit", type=at.count, default=None, help="capture only the first N test images")
    c.add_argument("--device-seed", type=at.seed, default=None, help="chip seed (default: random); never written to the file")
    for name, default, kind in (("drop", None, at.rate), ("extra", None, at.rate), ("jitter", None, at.rate),
                                ("threshold-sigma", None, at.nonneg), ("decay-sigma", None, at.nonneg),
                                ("neurons-per-core", None, at.count)):
        c.add_argument(f"--{name}", type=kind, default=default, help="perturbation magnitude (default: calibration.neuromorphic_lab.MAGNITUDES)")
    c.set_defaults(func=_capture)


def _model(args) -> int:
    from neurohw.loihi.netx_io import write_netx

    from .neuromorphic_lab import build_digits_model

    net, _, _ = build_digits_model(args.seed, steps=args.steps, hidden=args.hidden)
    write_netx(net, args.out, seed=args.seed)
    print(f"wrote {args.out}: {net.name}, layers {net.shapes()}")
    return 0


def _capture(args) -> int:
    from neurohw.data import load_dataset
    from neurohw.io import provenance
    from neurohw.loihi.netx_io import read_netx

    from .neuromorphic_lab import capture_neuromorphic, rate_code

    net = read_netx(args.net)
    ds = load_dataset("digits8x8")
    x, y = ds.x_test, ds.y_test.numpy()
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    mags = {k: getattr(args, k) for k in ("drop", "extra", "jitter", "threshold_sigma", "decay_sigma", "neurons_per_core")
            if getattr(args, k) is not None}
    capture_neuromorphic(net, rate_code(x, args.steps, args.input_seed), y, args.out, num_classes=10,
                         device_seed=args.device_seed, magnitudes=mags,
                         provenance=provenance(seed=args.input_seed, config={"net": str(args.net), "steps": args.steps,
                                                                             "limit": args.limit, "data": "digits8x8 test"}))
    print(f"wrote {len(x)} captures to {args.out}")
    return 0
