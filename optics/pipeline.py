"""The optical workflow end to end, shared by the CLI, the demo stage and the notebook:

kernel-mode training of a hybrid model → metasurface design → evaluation in kernel, device
(designed tiles + sensor) and wave (full PSF, crosstalk) modes → fabricated instances.
Also saving/loading a design (safetensors + JSON sidecar through :mod:`neurohw.io`).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from neurohw.io import CheckpointError, load_checkpoint, save_checkpoint
from optics.design import MetasurfaceDesign, OpticsConfig, check_layout_fits
from optics.fabrication import FabricationModel, FabricationParams, evaluate_instances
from optics.hardware import design_from_state, design_state
from optics.hybrid import HybridMNIST, accuracy, train_hybrid
from optics.sensor import SensorConfig

__all__ = ["save_design", "load_design", "evaluate_modes", "run_mnist_pipeline", "run_pipeline"]


def save_design(path, design: MetasurfaceDesign, seed: int | None = None) -> Path:
    """Write a design as ``path`` (safetensors) + its JSON sidecar (artifact kind ``optics-design``;
    the same tensor and field layout as a hardware bundle's design, :func:`optics.hardware.design_state`)."""
    tensors, info = design_state(design)
    return save_checkpoint(path, tensors, config={"design": info}, seed=seed, kind="optics-design")


def load_design(path) -> MetasurfaceDesign:
    """Read a design written by :func:`save_design`, or the design inside a hardware bundle or a
    ``neurohw optics design`` folder (errors name the file and the missing field)."""
    from neurohw.io import artifact_file, artifact_kind

    path = artifact_file(path, kinds=("optics-design", "optical-hardware"))
    if artifact_kind(path) == "optical-hardware":
        from optics.hardware import load_hardware

        return load_hardware(path).design
    t, meta = load_checkpoint(path)
    try:
        cfg = meta["config"]
        if "design" in cfg:
            info = cfg["design"]
        else:  # files written before designs shared the bundle's layout
            info = {"config": cfg["optics"], "layout": cfg["layout"], "constraints": cfg["constraints"],
                    "proxy": cfg["proxy"], **meta["extra"]}
            t = {("design." + k if k in ("radii", "psf", "tiles", "targets") else k.replace("proxy_", "proxy.")): v
                 for k, v in t.items()}
        design = design_from_state(t, info)
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not an optics design file (missing {exc})") from exc
    _check_radii(path, design)
    return design


def _check_radii(path, design: MetasurfaceDesign) -> None:
    """Pillar radii must lie in [0, r_max] (below r_min: no pillar); NaN/Inf never get this far
    (:func:`neurohw.io.load_checkpoint` refuses them)."""
    r = design.radii
    if design.element != "pillars" or not r.numel():
        return
    c = design.constraints
    lo, hi = float(r.min()), float(r.max())
    if lo < 0 or hi > c.r_max * (1 + 1e-6):
        raise ValueError(f"{path}: radii: pillar radii must lie in [0, {c.r_max:.4g}] m (period {c.period:.4g} m, "
                         f"min feature {c.min_feature:.4g} m); found [{lo:.4g}, {hi:.4g}] m")


@torch.no_grad()
def evaluate_modes(model, design: MetasurfaceDesign, x, y, sensor: SensorConfig | None = None, seed: int = 0, exposure_from=None) -> dict:
    """Accuracy in kernel mode (trained front-end), device mode (designed tiles + sensor) and wave
    mode (whole PSF + sensor), and the gaps between them."""
    ref = exposure_from if exposure_from is not None else x[:200]
    out = {"kernel": accuracy(model, x, y)}
    dev = design.device_frontend(sensor)
    dev.auto_expose(ref)
    dev.generator = torch.Generator().manual_seed(seed)
    out["device"] = accuracy(model.with_frontend(dev), x, y)
    wave = design.wave_frontend(sensor)
    wave.sensor.config.electrons_per_unit = dev.sensor.config.electrons_per_unit
    wave.generator = torch.Generator().manual_seed(seed + 1)
    out["wave"] = accuracy(model.with_frontend(wave), x, y)
    # feature-level gap: relative RMS difference of noiseless features, kernel vs wave
    fk = model.frontend(x[:200])
    fw = wave(x[:200], noise=False)
    out["feature_gap_rel"] = float((fw - fk).norm() / fk.norm().clamp_min(1e-30))
    out["gap_kernel_minus_wave"] = out["kernel"] - out["wave"]
    return out


def run_mnist_pipeline(
    split,
    out: Path | None = None,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    model: HybridMNIST | None = None,
    **kw,
) -> dict:
    """Train → design → evaluate → fabricate for the MNIST compressed meta-optic
    (``split``: a :class:`neurohw.data.DatasetSplit`, MNIST-5k). See :func:`run_pipeline`."""
    return run_pipeline(
        model if model is not None else HybridMNIST(),
        split.x_train[:n_train], split.y_train[:n_train], split.x_test[:n_test], split.y_test[:n_test], out,
        train=model is None, **kw,
    )


def run_pipeline(
    model,
    xtr: torch.Tensor,
    ytr: torch.Tensor,
    xte: torch.Tensor,
    yte: torch.Tensor,
    out: Path | None = None,
    *,
    train: bool = True,
    epochs: int = 3,
    batch_size: int = 128,
    optics: OpticsConfig | None = None,
    iterations: int = 100,
    n_instances: int = 5,
    fab: FabricationParams | None = None,
    sensor: SensorConfig | None = None,
    seed: int = 0,
    progress: bool = False,
    plots: bool = True,
    spacing: int | None = None,
) -> dict:
    """Train (kernel mode, unless ``train=False``) → design → evaluate kernel/device/wave → fabricate.

    Works for any :class:`~optics.hybrid.HybridModel` with a ``KernelFrontEnd`` (mono or RGB;
    for C channels ``optics.wavelengths`` must hold C wavelengths). Returns a dict with the
    model, design, fabrication model and result, and ``figures`` (JSON-able). Plots go to ``out``.
    """
    from neurohw.seeding import seed_everything

    optics = optics or OpticsConfig(grid=144)
    check_layout_fits(model.frontend.layout(spacing), optics)  # before any training
    seed_everything(seed)
    t = {}
    t0 = time.perf_counter()
    if train:
        train_hybrid(model, xtr, ytr, epochs=epochs, batch_size=batch_size, lr=3e-3, seed=seed, progress=progress)
    t["train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    from optics.backend import OpticsBackend

    hw = OpticsBackend().harden(model, optics=optics, iterations=iterations, seed=seed, sensor=sensor, fabrication=fab,
                                spacing=spacing, progress=progress)
    design = hw.design
    t["design_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    modes = evaluate_modes(model, design, xte, yte, sensor, seed=seed, exposure_from=xtr[:200])
    t["evaluate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fab_model = FabricationModel(design, fab or FabricationParams(), sensor=sensor)
    fab_res = evaluate_instances(model.backend, fab_model, xte, yte, n_instances, seed=seed + 1000, progress=progress, exposure_from=xtr[:200])
    t["fabricate_s"] = time.perf_counter() - t0
    figures = {
        "accuracy": modes,
        "fabricated": {k: v for k, v in fab_res.items() if k != "truth"},
        "design": design.summary(),
        "n_train": int(len(xtr)),
        "n_test": int(len(xte)),
        "epochs": epochs,
        "parameters": model.n_parameters(),
        "timings_s": {k: round(v, 2) for k, v in t.items()},
        "fabrication_params": (fab or FabricationParams()).to_dict(),
    }
    figures["design"].pop("config", None)
    figures["optics_config"] = design.config.to_dict()
    if out is not None and plots:
        import matplotlib.pyplot as plt

        from optics.plots import plot_accuracy_distribution, plot_kernels, plot_psf, plot_radius

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for fig in (
            plot_psf(design.psf, out / "optics_psf.png", title="designed PSF"),
            plot_kernels(design.target_kernels, design.signed_kernels, design.fidelity["ncc"], out / "optics_kernels.png", title="trained (top) vs realised by the metasurface (bottom)"),
            plot_accuracy_distribution(fab_res["accuracies"], out / "optics_accuracy_distribution.png", reference={"kernel": modes["kernel"], "wave": modes["wave"]}),
            plot_radius(design.radii, design.config.dx, out / "optics_radius_map.png"),
        ):
            plt.close(fig)
        figures["plots"] = ["optics_psf.png", "optics_kernels.png", "optics_accuracy_distribution.png", "optics_radius_map.png"]
    return {"model": model, "design": design, "hardware": hw, "fab_model": fab_model, "fab_result": fab_res, "figures": figures}
