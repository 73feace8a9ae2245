"""Demo stage ``calibration``: virtual-lab captures of a fabricated meta-optic, then a 10 % calibration.

Uses the optics stage's trained hybrid model and design when they are in ``ctx.shared``
(``"optics_hybrid_mnist"``, ``"optics_design"``), otherwise trains a small one; the NTK
teacher is ``ctx.shared["teacher_lenet5"]`` (or the cached LeNet-5). Shows the MNIST-5k test
digits to a fabricated instance (the virtual lab), calibrates with 10 % of the captures, and
reports the four accuracies and the sample-efficiency curve.
"""
from __future__ import annotations

import time

import numpy as np

from calibration.device_model import RefitConfig, torch_threads


def run(ctx) -> dict:
    with torch_threads(1):
        return _run(ctx)


def _optical_model(ctx, split):
    import optics

    from calibration.bundle import OpticalModel, build_optical_model, fabrication_preset

    model, design = ctx.shared.get("optics_hybrid_mnist"), ctx.shared.get("optics_design")
    if model is not None and design is not None:
        return OpticalModel(model.eval(), design, optics.SensorConfig(), fabrication_preset("prototype"),
                            meta={"source": "optics demo stage"}), "the optics stage's model"
    n = 1000 if ctx.quick else None
    om = build_optical_model(split.x_train[:n], split.y_train[:n], epochs=1 if ctx.quick else 4, seed=ctx.seed,
                             design_iterations=30 if ctx.quick else 100)
    return om, "a HybridMNIST trained here (no optics stage in this run)"


def _run(ctx) -> dict:
    from calibration.lab import capture_virtual
    from calibration.loop import ARM_LABELS, CalibrationConfig, calibrate
    from calibration.output import save_calibrated
    from calibration.report import write_report

    t0 = time.perf_counter()
    split = ctx.shared.get("mnist5k")
    if split is None:
        from neurohw.data import load_mnist5k

        split = load_mnist5k()
    om, source = _optical_model(ctx, split)
    teacher = ctx.shared.get("teacher_lenet5")
    if teacher is None:
        from neurohw.train import get_teacher

        teacher = get_teacher("lenet5", epochs=2 if ctx.quick else 12, seed=ctx.seed, progress=False)
    n_test = 300 if ctx.quick else len(split.x_test)
    out = ctx.path("calibration/captures.h5")
    capture_virtual(om, split.x_test[:n_test], split.y_test[:n_test], out, dataset="mnist5k", dataset_split="test",
                    indices=np.arange(n_test), device_seed=10_000 + ctx.seed, exposure_images=split.x_train[:200],
                    progress=False)
    t_capture = time.perf_counter() - t0
    if ctx.quick:
        cfg = CalibrationConfig.quick(seed=ctx.seed, fractions=(0.1, 0.2), twin_steps=60, twin_pool=800)
    else:
        cfg = CalibrationConfig(seed=ctx.seed, twin_steps=200, twin_pool=2000, curve_refit_steps=30,
                                refit=RefitConfig(steps_geometry=40, steps_joint=80, lr=0.02, lr_psf=0.01,
                                                  psf_l2=1e-3, shift_search_px=1, batch_size=64))
    loader = lambda name: split  # noqa: E731  (the split already in memory)
    result = calibrate(om, out, cfg, teacher=teacher, dataset_loader=loader)
    folder = ctx.path("calibration/report.md").parent
    save_calibrated(folder / "calibrated.safetensors", om, result, cfg, source=source)
    write_report(result, folder, seed=ctx.seed)
    a, r = result.accuracies, result.recovery
    rows = "\n".join(f"| {ARM_LABELS[k]} | {100 * a[k]:.1f} | {'—' if r.get(k) is None else f'{100 * r[k]:.0f}'} |"
                     for k in ARM_LABELS if k in a)
    curve = " · ".join(f"{100 * c['fraction']:g} %: {100 * c['refit_ntk']:.1f}" for c in result.curve)
    ctx.section(
        "Calibration: virtual lab and 10 % calibration",
        f"""Model: {source}. The virtual lab showed {n_test} MNIST-5k test digits to a fabricated instance
(hidden seed; fabrication errors: the `prototype` preset of `calibration.bundle.fabrication_preset`) and wrote `calibration/captures.h5` (schema in docs/captures.md). Calibration slice:
{result.split['n_calib']} captures; held-out rest: {result.split['n_held_out']}.

| | held-out accuracy (%) | loss recovered (%) |
|---|---|---|
{rows}

Refit: frame RMSE {result.refit['rmse_before']:.4f} → {result.refit['rmse_after']:.4f} (bench noise model
predicts {_rms(result.refit['noise_rmse'])}). Misfit test on held-out captures: {result.misfit['verdict']}. Sample efficiency (refit + CE+NTK, held-out accuracy): {curve}.
Full report: `calibration/report.md`.

![accuracies](calibration/accuracies.png) ![curve](calibration/sample_efficiency.png)
![frames](calibration/frames.png) ![psfs](calibration/psfs.png)
""",
    )
    return {"accuracies": a, "recovery": r, "split": result.split, "curve": result.curve,
            "refit_rmse": [result.refit["rmse_before"], result.refit["rmse_after"]],
            "fits_within_noise": result.misfit["fits_within_noise"],
            "timings": {**{k: round(v, 2) for k, v in result.timings.items()}, "capture_s": round(t_capture, 2)}}


def _rms(v) -> str:
    return "— (no dark frames)" if v is None else f"{v:.4f}"
