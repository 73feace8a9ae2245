"""Calibration over several virtual devices, in and out of the twin's family (``--parts devices``).

One MNIST-5k hybrid optical model (trained and designed once, as in the timing part) is shown
the MNIST-5k test digits on each device of :data:`DEVICES`:

* **in family** — fabricated instances of the bundle's ``prototype`` fabrication model (pillar
  radius/height errors, focal error, shift, rotation, brightness): errors the twin can
  represent (gain/offset per tile, shift, rotation, PSF correction);
* **out of family** — a fabricated instance distorted by
  :class:`calibration.virtual_devices.OutOfFamilyDevice` (written independently of the
  fabrication model): field-dependent blur, magnification/anisotropy and vignetting ("lens"),
  a gamma-0.9 response, a pixel gain map, tile cross-talk with a ghost and a black-level
  pattern ("sensor"), all of them ("all").

For each device one 10 % calibration (default :class:`~calibration.loop.CalibrationConfig`,
no curve; the seeded split is the same for every device) reports the held-out accuracy of:
the uncalibrated device, the refit (back-end adapted to the refit twin), refit + CE, refit +
CE+NTK, CE-only fine-tuning of the original back-end on the slice (the paper's baseline), and
the control (the same extra back-end training in simulation, no device), next to the
simulation; plus the misfit test's verdict (does the refit twin fit the held-out captures within
the bench's noise?). The table's last row is the mean ± std over the devices.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

#: (name, fabrication seed, out-of-family errors as keyword arguments or None, description)
DEVICES = (
    ("fab-1", 101, None, "fabricated (prototype errors)"),
    ("fab-2", 102, None, "fabricated (prototype errors)"),
    ("fab-3", 103, None, "fabricated (prototype errors)"),
    ("lens", 104, dict(field_blur_px=1.0, magnification=0.03, anisotropy=0.5, vignetting=0.15),
     "fabricated + field blur 1 px, magnification 3 % (x) / 1.5 % (y), vignetting 15 %"),
    ("sensor", 105, dict(gamma=0.9, gain_nonuniformity=0.03, crosstalk=0.04, black_level=0.01),
     "fabricated + gamma 0.9, pixel gain map 3 %, cross-talk ghost 4 %, black-level pattern"),
    ("all", 106, "strong", "fabricated + all out-of-family kinds (OutOfFamilyErrors.strong)"),
)

#: The twin-terms arm: the same calibration with every optional twin term on (optics.device_terms.TERMS),
#: the gain map per pixel (the out-of-family generators draw an independent gain per pixel).
TERMS_ARM = dict(twin_terms="all", twin_gain_degree="pixel")
TERMS_COLUMN = "refit+terms + CE+NTK"

#: Table columns: arm key in ``CalibrationResult.accuracies`` → column name.
ARM_COLUMNS = (
    ("uncalibrated", "uncalibrated"),
    ("after_refit", "refit"),
    ("refit_ce", "refit + CE"),
    ("refit_ntk", "refit + CE+NTK"),
    ("paper_ce", "CE-only fine-tune"),
    ("simulation_extra", "control"),
    ("simulation", "simulation"),
)


def make_device(om, seed: int, errors, exposure_images):
    """The fabricated instance of ``seed`` (auto-exposed), wrapped with out-of-family ``errors``."""
    from calibration.lab import draw_device
    from calibration.virtual_devices import OutOfFamilyDevice, OutOfFamilyErrors

    inst = draw_device(om, seed, exposure_images)
    if errors is None:
        return inst
    e = OutOfFamilyErrors.strong() if errors == "strong" else OutOfFamilyErrors(**errors)
    return OutOfFamilyDevice(inst, e, seed=seed)


def run(om, split, teacher, work: Path, *, quick: bool, devices=DEVICES, log=print) -> dict:
    """Capture and calibrate every device; returns the figures (``table`` + per-device details)."""
    from calibration.lab import capture_virtual
    from calibration.loop import CalibrationConfig, calibrate
    from neurohw.stats import mean_std

    n_cap = 300 if quick else len(split.x_test)
    cfg = CalibrationConfig.quick(curve=False) if quick else CalibrationConfig(curve=False)
    cfg_terms = (CalibrationConfig.quick(curve=False, **TERMS_ARM) if quick else CalibrationConfig(curve=False, **TERMS_ARM))
    rows, details = [], []
    for name, seed, errors, desc in devices:
        t0 = time.perf_counter()
        dev = make_device(om, seed, errors, split.x_train[:200])
        path = capture_virtual(om, split.x_test[:n_cap], split.y_test[:n_cap], work / f"{name}.h5", dataset="mnist5k",
                               dataset_split="test", indices=np.arange(n_cap), device=dev, progress=False)
        res = calibrate(om, path, cfg, teacher=teacher, dataset_loader=lambda _name: split)
        a, m = res.accuracies, res.misfit
        row = {"device": name, "errors": desc, "twin family": "in" if errors is None else "out"}
        row.update({col: 100 * a[k] for k, col in ARM_COLUMNS})
        row["fits within noise"] = m["fits_within_noise"]
        row["worst bin var. ratio"] = max((b["ratio"] for b in m["bins"]), default=None)
        row["worst χ²/px"] = max((c["chi2_per_pixel"] for c in m["channels"]), default=None)
        t1 = time.perf_counter()
        rt = calibrate(om, path, cfg_terms, teacher=teacher, dataset_loader=lambda _name: split)
        mt = rt.misfit
        row[TERMS_COLUMN] = 100 * rt.accuracies["refit_ntk"]
        row["terms: fits within noise"] = mt["fits_within_noise"]
        row["terms: worst bin var. ratio"] = max((b["ratio"] for b in mt["bins"]), default=None)
        row["terms: worst χ²/px"] = max((c["chi2_per_pixel"] for c in mt["channels"]), default=None)
        rows.append(row)
        details.append({"device": name, "seed": seed, "errors": errors, "accuracies": a, "recovery": res.recovery,
                        "refit_rmse": [res.refit["rmse_before"], res.refit["rmse_after"]],
                        "bench_noise_rms": res.refit["noise_rmse"], "misfit_verdict": m["verdict"],
                        "misfit_bins": [{k: b[k] for k in ("signal_lo", "signal_hi", "ratio", "ok")} for b in m["bins"]],
                        "misfit_channels": [{k: c[k] for k in ("channel", "chi2_per_pixel", "systematic_fraction", "ok")}
                                            for c in m["channels"]],
                        "timings": res.timings, "wall_s": time.perf_counter() - t0,
                        "terms_arm": {"accuracies": rt.accuracies, "refit_rmse": [rt.refit["rmse_before"], rt.refit["rmse_after"]],
                                      "twin_terms": rt.refit["params"].get("twin_terms"), "misfit_verdict": mt["verdict"],
                                      "misfit_bins": [{k: b[k] for k in ("signal_lo", "signal_hi", "ratio", "ok")}
                                                      for b in mt["bins"]],
                                      "misfit_channels": [{k: c[k] for k in ("channel", "chi2_per_pixel",
                                                                             "systematic_fraction", "ok")}
                                                          for c in mt["channels"]],
                                      "timings": rt.timings, "wall_s": time.perf_counter() - t1}})
        log(f"{name:>7}: " + "  ".join(f"{col} {row[col]:.2f}" for _, col in ARM_COLUMNS)
            + f"  {TERMS_COLUMN} {row[TERMS_COLUMN]:.2f}"
            + f"  | {m['verdict'][:90]} | terms: {mt['verdict'][:90]}  ({time.perf_counter() - t0:.0f} s)")
    mean = {"device": f"mean ± std ({len(rows)} devices)", "errors": "", "twin family": ""}
    for col in [c for _, c in ARM_COLUMNS] + [TERMS_COLUMN]:
        mu, sd = mean_std(r[col] for r in rows)
        mean[col] = {"mean": mu, "std": sd}
    for key in ("fits within noise", "terms: fits within noise"):
        fits = [r[key] for r in rows]
        mean[key] = f"{sum(bool(f) for f in fits)} of {len(fits)}"
    for key in ("worst bin var. ratio", "worst χ²/px", "terms: worst bin var. ratio", "terms: worst χ²/px"):
        mean[key] = None
    columns = ["device", "twin family", *[c for _, c in ARM_COLUMNS], TERMS_COLUMN, "fits within noise",
               "worst bin var. ratio", "worst χ²/px", "terms: fits within noise", "terms: worst bin var. ratio",
               "terms: worst χ²/px"]
    caption = (f"10 % calibration of one MNIST-5k hybrid optical model on {len(rows)} virtual devices "
               f"({n_cap} test-digit captures each, {res.split['n_calib']} in the slice, {res.split['n_held_out']} held out, "
               "seeded split shared by all devices); held-out accuracy (%). refit: back-end adapted to the refit twin; "
               "CE-only fine-tune: the original back-end fine-tuned on the slice (paper baseline); control: the same extra "
               "back-end training in simulation, no device. 'fits within noise': the misfit test of the refit twin on "
               f"held-out captures against the bench noise model (dark frames + recorded exposure); worst bin var. ratio: "
               "the largest residual / predicted variance over the intensity bins; worst χ²/px: the largest χ² per pixel "
               "of the mean residual over the channels (1 = pure noise). "
               f"{TERMS_COLUMN} and the 'terms:' columns: the same calibration with every optional twin term on "
               "(blur, cross-talk, magnification, vignetting, response, per-pixel gain map; `--twin-terms all "
               "--twin-gain-map pixel`). Devices: "
               + "; ".join(f"{n}: {d}" for n, _, _, d in devices) + ".")
    return {"table": {"caption": caption, "columns": columns, "rows": [*rows, mean]}, "devices": details,
            "n_captures": n_cap, "config": cfg.to_dict(), "config_terms_arm": cfg_terms.to_dict()}
