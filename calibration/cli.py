"""Command line: ``neurohw lab build-model | capture`` and ``neurohw calibrate``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neurohw import argtypes as at


def register(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser("lab", help="the virtual lab: build an optical model, capture a dataset on a fabricated device")
    labsub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")

    b = labsub.add_parser("build-model", help="train a HybridMNIST and design its metasurface; write a model bundle")
    b.add_argument("--data", default="mnist5k", help="training data (mnist5k)")
    b.add_argument("--epochs", type=at.count, default=6)
    b.add_argument("--seed", type=at.seed, default=0)
    b.add_argument("--grid", type=at.count, default=144, help="metasurface grid (cells per side)")
    b.add_argument("--design-iterations", type=at.count, default=100)
    b.add_argument("--fabrication", choices=["prototype", "optics-default"], default="prototype",
                   help="fabrication error magnitudes of the device the virtual lab will draw")
    b.add_argument("--out", type=Path, required=True, help="model bundle (.safetensors; a .json sidecar is written next to it)")
    b.set_defaults(func=_build_model)

    c = labsub.add_parser("capture", help="show a dataset to a simulated fabricated device; write a capture file")
    c.add_argument("--model", type=Path, required=True,
                   help="model bundle: the file `neurohw lab build-model` writes, or the folder `neurohw optics design` writes")
    c.add_argument("--data", default="mnist5k", help="dataset to show (mnist5k, digits8x8, .npz/.h5)")
    c.add_argument("--split", choices=["test", "train", "all"], default="test",
                   help="which split to show (default test: images the model never trained on)")
    c.add_argument("--limit", type=at.count, default=None, help="show only the first N images")
    c.add_argument("--out", type=Path, required=True, help="capture file (.h5)")
    c.add_argument("--device-seed", type=at.seed, default=None,
                   help="fabrication seed (default: random); never written to the file")
    c.add_argument("--dark-frames", type=at.count, default=16)
    c.add_argument("--no-psf", action="store_true", help="skip the laser PSF captures")
    c.add_argument("--frame-kind", choices=["feature_map", "sensor_frame"], default="feature_map",
                   help="write digitally combined feature maps (default) or the raw per-tile sensor frames")
    c.add_argument("--repeats", type=at.nonneg_int, default=0,
                   help="extra exposures of the first image, for the noise model's shot-noise estimate")
    c.set_defaults(func=_capture)
    from calibration.neuromorphic_cli import register_lab

    register_lab(labsub)
    lab.set_defaults(func=lambda args: (lab.print_help(), 2)[1])

    k = sub.add_parser("calibrate", help="calibrate a hybrid optical model from device captures; write a checkpoint and a report")
    k.add_argument("model", type=Path, help="model bundle, or a `neurohw optics design` folder (never modified); "
                                            "for neuromorphic captures a netx file")
    k.add_argument("--captures", type=Path, required=True, help="capture file (HDF5, docs/captures.md)")
    k.add_argument("--fraction", type=at.fraction, default=0.1, help="calibration slice, fraction of the captures (default 0.1)")
    k.add_argument("--out", type=Path, required=True, help="output folder: calibrated.safetensors, report.md, results.json, plots")
    k.add_argument("--seed", type=at.seed, default=0)
    k.add_argument("--device-model", choices=["optics", "generic"], default="optics",
                   help="optics: refit the optics DeviceFrontEnd; generic: DeviceCorrection on the simulated maps")
    k.add_argument("--teacher", default=None,
                   help="NTK teacher: a teacher artifact (.safetensors or a `neurohw train-teacher` folder), or a teacher "
                        "name for the cached default (default lenet5, trained and cached on first use; announced on stderr)")
    k.add_argument("--teacher-checkpoint", type=Path, default=None, help="the same as --teacher PATH (older spelling)")
    k.add_argument("--ntk-loss", choices=["mse", "normalised", "cka"], default="normalised")
    k.add_argument("--ntk-beta", type=at.nonneg, default=1.0)
    k.add_argument("--fractions", type=at.fraction_list, default=None, help="comma-separated fractions for the sample-efficiency curve")
    k.add_argument("--no-curve", action="store_true", help="skip the sample-efficiency curve")
    k.add_argument("--save-arm", default="refit_ntk", help="which back-end goes into the checkpoint (default refit_ntk)")
    k.add_argument("--use-laser-psfs", choices=["off", "replace", "correct"], default="correct",
                   help="how the optics twin uses the capture's laser PSFs per matched tile: ignore them, use them "
                        "instead of the design PSFs, or blend with a fitted per-tile weight (default correct)")
    k.add_argument("--twin-terms", type=_twin_terms, default=(),
                   help="optional terms of the optics twin, fitted and reported: comma-separated of blur, crosstalk, "
                        "magnification, vignetting, response, gain, or 'all' / 'none' (default none: the plain twin)")
    k.add_argument("--twin-gain-map", type=_gain_degree, default=2, metavar="DEGREE|pixel",
                   help="the 'gain' term's map per tile: Legendre degree (default 2, smooth) or 'pixel' (one value per pixel)")
    k.add_argument("--quick", action="store_true", help="few steps (smoke test)")
    at.add_threads(k, 1)
    k.set_defaults(func=_calibrate)


def _twin_terms(text: str) -> tuple:
    from calibration.twin_terms import parse_twin_terms

    try:
        return parse_twin_terms(text, "--twin-terms")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _gain_degree(text: str):
    from calibration.twin_terms import parse_gain_degree

    try:
        return parse_gain_degree(text, "--twin-gain-map")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load_split(name: str, split: str, limit: int | None):
    import numpy as np
    import torch

    from neurohw.data import load_dataset

    ds = load_dataset(name)
    if split == "all":
        x = torch.cat([ds.x_train, ds.x_test])
        y = torch.cat([ds.y_train, ds.y_test])
        idx = np.arange(len(x))
        split_name = "all"  # indices into train followed by test
    else:
        x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
        idx = np.arange(len(x))
        split_name = split
    if limit:
        x, y, idx = x[:limit], y[:limit], idx[:limit]
    return ds, x, y, idx, split_name


def _build_model(args) -> int:
    from calibration.bundle import build_optical_model, fabrication_preset, save_optical_model
    from neurohw.data import load_dataset
    from optics import accuracy

    ds = load_dataset(args.data)
    om = build_optical_model(ds.x_train, ds.y_train, epochs=args.epochs, seed=args.seed, grid=args.grid,
                             design_iterations=args.design_iterations, progress=True,
                             fabrication=fabrication_preset(args.fabrication))
    acc = accuracy(om.model, ds.x_test, ds.y_test)
    save_optical_model(args.out, om, seed=args.seed, extra={"test_accuracy_simulation": acc, "data": args.data})
    print(f"model bundle {args.out}: simulation test accuracy {100 * acc:.2f} %, design mean NCC "
          f"{sum(om.design.fidelity['ncc']) / len(om.design.fidelity['ncc']):.4f}")
    return 0


def _capture(args) -> int:
    from calibration.bundle import load_optical_model
    from calibration.lab import capture_virtual
    from neurohw.io import provenance

    om = load_optical_model(args.model)
    ds, x, y, idx, split_name = _load_split(args.data, args.split, args.limit)
    if split_name == "all":
        print("note: --split all records indices into train+test concatenated; the calibration loop "
              "cannot exclude held-out training images from its twin data in that case", file=sys.stderr)
    capture_virtual(om, x, y, args.out, dataset=args.data if split_name != "all" else None,
                    dataset_split=split_name if split_name != "all" else None, indices=idx,
                    device_seed=args.device_seed, exposure_images=ds.x_train[:200], dark_frames=args.dark_frames,
                    psf=not args.no_psf, frame_kind=args.frame_kind, repeats=args.repeats, provenance=provenance(config={"model": str(args.model), "data": args.data,
                                                                       "split": args.split, "limit": args.limit}))
    print(f"wrote {len(x)} captures to {args.out}")
    return 0


def config_from_args(args):
    """The :class:`~calibration.loop.CalibrationConfig` of parsed ``neurohw calibrate`` arguments."""
    from calibration.loop import CalibrationConfig
    from neurohw.models import TEACHERS

    name = args.teacher if args.teacher in TEACHERS else "lenet5"
    kw = dict(fraction=args.fraction, seed=args.seed, device_model=args.device_model, teacher=name,
              ntk_loss=args.ntk_loss, ntk_beta=args.ntk_beta, curve=not args.no_curve, save_arm=args.save_arm,
              num_threads=args.threads, progress=True, use_laser_psfs=args.use_laser_psfs,
              twin_terms=args.twin_terms, twin_gain_degree=args.twin_gain_map)
    if args.fractions:
        kw["fractions"] = args.fractions
    return CalibrationConfig.quick(**kw) if args.quick else CalibrationConfig(**kw)


def _calibrate(args) -> int:
    from calibration.neuromorphic import is_neuromorphic, run_cli

    if is_neuromorphic(args.captures):
        return run_cli(args)
    from calibration.bundle import load_optical_model
    from calibration.loop import calibrate
    from calibration.output import save_calibrated
    from calibration.report import write_report
    from neurohw.io import artifact_kind, load_into
    from neurohw.models import TEACHERS, build_teacher
    from neurohw.train import resolve_teacher

    spec = args.teacher_checkpoint or args.teacher
    name = args.teacher if args.teacher in TEACHERS else "lenet5"
    cfg = config_from_args(args)
    om = load_optical_model(args.model)
    if args.teacher_checkpoint and artifact_kind(args.teacher_checkpoint) is None:
        # weights only (no kind in the sidecar): the architecture is --teacher NAME
        teacher = build_teacher(name, num_classes=10, in_channels=1)
        load_into(teacher, args.teacher_checkpoint)
    else:
        teacher = resolve_teacher(spec, who="neurohw calibrate")
    result = calibrate(om, args.captures, cfg, teacher=teacher)
    ckpt = save_calibrated(args.out / "calibrated.safetensors", om, result, cfg, source=args.model)
    paths = write_report(result, args.out, seed=args.seed, extra={"checkpoint": str(ckpt), "model": str(args.model),
                                                                   "captures": str(args.captures)})
    a = result.accuracies
    print(" | ".join(f"{k} {100 * v:.2f}%" for k, v in a.items()))
    print(f"misfit test (held-out captures): {result.misfit['verdict']}")
    print(f"report: {paths['report']}  checkpoint: {ckpt}")
    return 0
