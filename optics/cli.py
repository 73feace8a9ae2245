"""``neurohw optics …``: design, fabricate (Monte Carlo), export-layout."""
from __future__ import annotations

import argparse
from pathlib import Path

from neurohw import argtypes as at


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optics", help="optical backend: metasurface design, fabrication Monte Carlo, layout export")
    osub = p.add_subparsers(dest="optics_command", metavar="ACTION")

    d = osub.add_parser("design", help="train the MNIST hybrid in kernel mode, design its metasurface, evaluate kernel/device/wave modes")
    d.add_argument("--out", type=Path, required=True,
                   help="folder for hardware.safetensors (the bundle `neurohw lab capture --model` takes), "
                        "model.safetensors, design.safetensors, plots, summary.json")
    d.add_argument("--epochs", type=at.count, default=4)
    d.add_argument("--n-train", type=at.count, default=None, help="training images (default all 4000)")
    d.add_argument("--n-test", type=at.count, default=None)
    d.add_argument("--grid", type=at.count, default=144, help="metasurface cells per side (paper: 1600)")
    d.add_argument("--dx", type=at.positive, default=586e-9, help="cell pitch, metres")
    d.add_argument("--z", type=at.positive, default=60e-6, help="metasurface to sensor distance, metres (paper: 2.4e-3)")
    d.add_argument("--pixel-cells", type=at.count, default=1, help="sensor pixel size in cells (paper config: 8)")
    d.add_argument("--iterations", type=at.count, default=100, help="design iterations (paper: 300)")
    d.add_argument("--instances", type=at.nonneg_int, default=0, help="also evaluate this many fabricated instances")
    d.add_argument("--seed", type=at.seed, default=0)
    at.add_threads(d, help="torch CPU threads (default: torch's choice; 1 is often faster on a busy machine)")
    d.set_defaults(func=_design)

    f = osub.add_parser("fabricate", help="Monte Carlo: draw fabricated instances of a design and evaluate the model on them")
    f.add_argument("--design", type=Path, required=True,
                   help="folder written by `neurohw optics design`, or a hardware bundle (.safetensors, e.g. `neurohw calibrate`'s calibrated.safetensors)")
    f.add_argument("--out", type=Path, default=None, help="output folder (default: the design folder)")
    f.add_argument("-n", "--instances", type=at.count, default=20)
    f.add_argument("--seed", type=at.seed, default=0)
    f.add_argument("--n-test", type=at.count, default=None)
    f.add_argument("--width-bias", type=at.finite, default=None, help="systematic pillar width bias, metres")
    f.add_argument("--width-sigma", type=at.nonneg, default=None, help="random width error std, metres")
    f.add_argument("--height-sigma", type=at.nonneg, default=None, help="random height error std, metres")
    f.add_argument("--corr-length", type=at.nonneg, default=None, help="correlation length of the random errors, metres")
    f.add_argument("--misalign-sigma", type=at.nonneg, default=None, help="lateral misalignment std, metres")
    f.add_argument("--rotation-sigma", type=at.nonneg, default=None, help="rotation std, radians")
    f.add_argument("--focal-sigma", type=at.nonneg, default=None, help="focal distance error std, metres")
    f.add_argument("--brightness-sigma", type=at.nonneg, default=None, help="relative brightness std")
    f.add_argument("--levels", type=at.count, default=None, help="quantise fabricated radii to this many levels")
    for term in ("defocus", "astigmatism", "coma", "spherical"):
        f.add_argument(f"--zernike-{term}", type=at.nonneg, default=None,
                       help=f"std of the Zernike {term} coefficient (RMS wavefront error), metres")
    f.add_argument("--psf-stack", type=Path, default=None,
                   help="evaluate the model on a device built from a measured PSF stack (.npz/.h5, optics.measured) "
                        "instead of drawing fabricated instances")
    f.add_argument("--psf-normalise", choices=["design", "absolute"], default="design",
                   help="scale the measured PSF to the design PSF's total power (default) or take it as absolute")
    at.add_threads(f)
    f.set_defaults(func=_fabricate)

    e = osub.add_parser("export-layout", help="write the metasurface as GDSII (pillars) + HDF5/PNG radius maps; reads the GDS back")
    e.add_argument("--design", type=Path, required=True, help="folder written by `neurohw optics design`, a design .safetensors, or a hardware bundle")
    e.add_argument("--out", type=Path, default=None, help="output folder (default: the design folder)")
    e.add_argument("--layer", type=at.nonneg_int, default=1, help="GDS layer number")
    e.set_defaults(func=_export)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _design_path(p: Path) -> Path:
    return p if p.suffix == ".safetensors" else p / "design.safetensors"


def _design(args) -> int:
    from neurohw.data import load_mnist5k
    from neurohw.io import atomic_write_json, provenance, save_checkpoint
    from optics.design import OpticsConfig
    from neurohw.io import save_artifact
    from optics.pipeline import run_mnist_pipeline, save_design

    cfg = OpticsConfig(grid=args.grid, dx=args.dx, z=args.z, pixel_cells=args.pixel_cells)
    _check_grid(cfg, args)
    res = run_mnist_pipeline(
        load_mnist5k(), args.out, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs, optics=cfg,
        iterations=args.iterations, n_instances=max(args.instances, 1), seed=args.seed, progress=True,
    )
    fig = res["figures"]
    if args.instances == 0:
        fig.pop("fabricated", None)
    save_checkpoint(args.out / "model.safetensors", res["model"], config={"model": "HybridMNIST", **res["model"].config}, seed=args.seed)
    save_design(args.out / "design.safetensors", res["design"], seed=args.seed)
    save_artifact(res["hardware"], args.out / "hardware.safetensors", seed=args.seed, extra={"data": "mnist5k"})
    atomic_write_json(args.out / "summary.json", {"provenance": provenance(args.seed, vars_json(args)), **fig})
    a = fig["accuracy"]
    print(f"kernel {a['kernel']:.4f}  device {a['device']:.4f}  wave {a['wave']:.4f}  mean NCC {fig['design']['mean_ncc']:.4f}")
    print(f"wrote {args.out}/hardware.safetensors, model.safetensors, design.safetensors, summary.json and plots")
    return 0


def _check_grid(cfg, args) -> None:
    """The MNIST hybrid's tile layout must fit the sensor of ``--grid``/``--pixel-cells``: checked
    before the data set is loaded, the error naming the options."""
    from neurohw.errors import UsageError
    from optics.design import check_layout_fits
    from optics.hybrid import HybridMNIST

    try:
        check_layout_fits(HybridMNIST().frontend.layout(None), cfg)
    except ValueError as exc:
        raise UsageError(f"--grid {args.grid} --pixel-cells {args.pixel_cells}", str(exc)) from None


def vars_json(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def _load_model(folder: Path):
    """The hybrid model of a design folder (``model.safetensors``) or of a hardware bundle file."""
    from neurohw.io import artifact_kind, load_artifact, load_checkpoint
    from optics.hybrid import HybridMNIST

    if folder.is_file() and artifact_kind(folder) == "optical-hardware":
        return load_artifact(folder).model
    tensors, meta = load_checkpoint(folder / "model.safetensors")
    cfg = {k: v for k, v in meta.get("config", {}).items() if k != "model"}
    model = HybridMNIST(**cfg)
    model.load_state_dict(tensors)
    return model.eval()


def _fabricate(args) -> int:
    import dataclasses

    import matplotlib.pyplot as plt

    from neurohw.data import load_mnist5k
    from neurohw.io import atomic_write_json, provenance
    from optics.fabrication import FabricationModel, FabricationParams, evaluate_instances
    from optics.hybrid import accuracy
    from optics.pipeline import load_design
    from optics.plots import plot_accuracy_distribution

    out = args.out or (args.design if args.design.is_dir() else args.design.parent)
    design = load_design(_design_path(args.design))
    model = _load_model(args.design)
    over = {
        k: getattr(args, k)
        for k in ("width_bias", "width_sigma", "height_sigma", "corr_length", "misalign_sigma", "rotation_sigma", "focal_sigma", "brightness_sigma", "levels",
                  "zernike_defocus", "zernike_astigmatism", "zernike_coma", "zernike_spherical")
        if getattr(args, k, None) is not None
    }
    if args.psf_stack is not None:
        return _measured(args, design, model, out)
    params = dataclasses.replace(FabricationParams(), **over)
    split = load_mnist5k()
    x, y = split.x_test[: args.n_test], split.y_test[: args.n_test]
    res = evaluate_instances(model.backend, FabricationModel(design, params), x, y, args.instances, seed=args.seed, exposure_from=split.x_train[:200])
    kernel_acc = accuracy(model, x, y)
    plt.close(plot_accuracy_distribution(res["accuracies"], Path(out) / "fabricated_accuracy.png", reference={"kernel": kernel_acc}))
    atomic_write_json(Path(out) / "fabricated.json", {"provenance": provenance(args.seed, vars_json(args)), "kernel_accuracy": kernel_acc, **res})
    print(f"{args.instances} fabricated instances: accuracy {100 * res['mean']:.2f} ± {100 * res['std']:.2f} % (min {100 * res['min']:.2f}, max {100 * res['max']:.2f}); kernel mode {100 * kernel_acc:.2f} %")
    print(f"wrote {out}/fabricated.json and fabricated_accuracy.png")
    return 0


def _measured(args, design, model, out) -> int:
    """``fabricate --psf-stack``: the model's back-end on the device built from a measured PSF stack."""
    import torch

    from neurohw.data import load_mnist5k
    from neurohw.io import atomic_write_json, provenance
    from optics.hybrid import accuracy
    from optics.measured import auto_expose, load_psf_stack, measured_frontend

    stack = load_psf_stack(args.psf_stack)  # named errors before any evaluation
    split = load_mnist5k()
    x, y = split.x_test[: args.n_test], split.y_test[: args.n_test]
    accs = {}
    for kind in ("tiles", "wave"):
        fe = measured_frontend(design, stack, normalise=args.psf_normalise, kind=kind)
        fe.generator = torch.Generator().manual_seed(args.seed)
        auto_expose(fe, split.x_train[:200])
        with torch.no_grad():
            accs[kind] = accuracy(torch.nn.Sequential(fe, model.backend), x, y)
    kernel_acc = accuracy(model, x, y)
    atomic_write_json(Path(out) / "measured.json", {"provenance": provenance(args.seed, vars_json(args)), "psf_stack": str(args.psf_stack),
                                                     "normalise": args.psf_normalise, "kernel_accuracy": kernel_acc,
                                                     "accuracy": {"measured_tiles": accs["tiles"], "measured_wave": accs["wave"]}})
    print(f"measured PSF device ({args.psf_stack}): accuracy {100 * accs['tiles']:.2f} % (tile windows), "
          f"{100 * accs['wave']:.2f} % (full-field, cross-talk kept); kernel mode {100 * kernel_acc:.2f} %")
    print(f"wrote {out}/measured.json")
    return 0


def _export(args) -> int:
    from neurohw.errors import UsageError
    from neurohw.io import atomic_write_json, check_writable
    from optics.layout import export_gds, plot_radius_map, read_gds_pillars, save_radius_map
    from optics.pipeline import load_design

    dpath = _design_path(args.design)
    out = Path(args.out or dpath.parent)
    d = load_design(dpath)
    if d.element != "pillars":
        raise UsageError(str(dpath), f"a {d.element} design has no pillars to export as GDS")
    c = d.constraints
    n_pillars = int((d.radii >= c.r_min - 1e-12).sum())
    if n_pillars == 0:
        raise UsageError(str(dpath), f"radii: no pillar reaches the minimum radius {c.r_min:.4g} m; nothing to export")
    check_writable(out, "dir", "--out")
    info = export_gds(out / "metasurface.gds", d.radii, d.config.dx, c.period, min_radius=c.r_min - 1e-12, layer=args.layer)
    save_radius_map(out / "radius_map.h5", d.radii, d.config.dx, c.period, c.height, d.config.wavelengths, config=d.config.to_dict())
    plot_radius_map(out / "radius_map.png", d.radii, d.config.dx)
    xy, r = read_gds_pillars(out / "metasurface.gds", layer=args.layer)
    ok = len(xy) == info["pillars"]
    info.update({"read_back_pillars": int(len(xy)), "read_back_ok": ok})
    atomic_write_json(out / "layout.json", info)
    print(f"wrote {info['path']}: {info['pillars']} pillars ({info['distinct_radii']} distinct radii); read back {len(xy)} -> {'ok' if ok else 'MISMATCH'}")
    print(f"wrote {out}/radius_map.h5 and radius_map.png")
    return 0 if ok else 1
