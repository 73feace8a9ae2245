"""Calibration reports: Markdown + JSON + PNG plots in one folder.

:func:`write_report` takes a :class:`~calibration.loop.CalibrationResult` and writes

* ``report.md`` — the accuracy table (simulation, uncalibrated, after refit, fine-tuning
  arms) with the recovered fraction of the simulation→device loss, the sample-efficiency
  table, the refit parameters and errors, the misfit test (does the refit twin fit the
  held-out captures within the bench's noise? where not: intensity bins, channels), timings;
* ``results.json`` — the same figures plus provenance (seed, versions, configuration);
* ``accuracies.png``, ``sample_efficiency.png``, ``frames.png`` (measured vs refit vs ideal
  feature maps), ``psfs.png`` (nominal vs refit PSF tiles, and the laser PSF captures).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from neurohw.io import atomic_path, atomic_write_json, atomic_write_text, provenance


def _savefig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def _panel(ax, img, cmap: str, vmin: float, vmax: float, ylabel: str | None, title: str | None) -> None:
    """One image of a panel grid: no ticks, the row's label on the first column, the column's title on the first row."""
    ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=7)
    if title is not None:
        ax.set_title(title, fontsize=8)


def plot_accuracies(result, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from calibration.loop import ARM_LABELS

    keys = [k for k in ARM_LABELS if k in result.accuracies]
    vals = [100 * result.accuracies[k] for k in keys]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colors = ["#4c72b0", "#c44e52", "#8172b2", "#dd8452", "#ccb974", "#64b5cd", "#55a868"][: len(keys)]
    ax.barh(range(len(keys)), vals, color=colors)
    ax.set_yticks(range(len(keys)), [ARM_LABELS[k] for k in keys], fontsize=8)
    ax.invert_yaxis()
    lo = min(vals) - 5
    ax.set_xlim(max(0, lo), 100)
    for i, v in enumerate(vals):
        ax.text(v + 0.1, i, f"{v:.1f}", va="center", fontsize=8)
    ax.set_xlabel("held-out accuracy (%)")
    ax.set_title(f"calibration with {100 * result.split['fraction']:.0f} % of the captures")
    return _savefig(fig, path)


def plot_sample_efficiency(curve: list[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt

    from calibration.loop import ARM_LABELS

    fig, ax = plt.subplots(figsize=(6, 3.5))
    fr = [100 * r["fraction"] for r in curve]
    for key, style in (("simulation", "k--"), ("uncalibrated", "r:")):
        ax.plot(fr, [100 * r[key] for r in curve], style, label=ARM_LABELS[key])
    for key in ("after_refit", "paper_ce", "paper_ntk", "refit_ce", "refit_ntk"):
        if key in curve[0]:
            ax.plot(fr, [100 * r[key] for r in curve], "o-", label=ARM_LABELS[key], ms=4)
    ax.set_xscale("log")
    ax.set_xticks(fr, [f"{f:g}" for f in fr])
    ax.set_xlabel("calibration slice (% of captures)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _savefig(fig, path)


def plot_frames(data: dict, path: Path, channels: int = 4) -> Path | None:
    import matplotlib.pyplot as plt

    if "refit" not in data:
        return None
    rows = [("measured", data["measured"]), ("refit twin", data["refit"]), ("ideal (simulation)", data["ideal"]),
            ("measured − refit", data["measured"] - data["refit"])]
    c = min(channels, data["measured"].shape[1])
    fig, axes = plt.subplots(len(rows), c, figsize=(1.6 * c, 1.6 * len(rows)), squeeze=False)
    for i, (name, arr) in enumerate(rows):
        for j in range(c):
            ref = data["measured"][0, j]
            lim = float(np.abs(ref).max()) or 1.0
            if i == 3:
                lim = float(np.abs(arr[0, j]).max()) or 1.0
            _panel(axes[i, j], arr[0, j], "RdBu_r", -lim, lim, name if j == 0 else None, f"kernel {j}" if i == 0 else None)
    fig.suptitle("held-out capture 0: measured vs refit feature maps", fontsize=9)
    return _savefig(fig, path)


def plot_psfs(data: dict, path: Path, tiles: int = 6) -> Path | None:
    import matplotlib.pyplot as plt

    if "tiles_nominal" not in data:
        return None
    rows = [("nominal tile", data["tiles_nominal"][:, 0]), ("refit tile", data["tiles_refit"][:, 0]),
            ("refit − nominal", data["tiles_refit"][:, 0] - data["tiles_nominal"][:, 0])]
    if "psf_measured" in data:
        rows.append(("laser PSF capture", data["psf_measured"]))
    t = min(tiles, data["tiles_nominal"].shape[0])
    fig, axes = plt.subplots(len(rows), t, figsize=(1.5 * t, 1.5 * len(rows)), squeeze=False)
    for i, (name, arr) in enumerate(rows):
        for j in range(t):
            a = arr[j]
            if a is None:  # a tile without a matched laser PSF
                axes[i, j].axis("off")
                continue
            cmap = "RdBu_r" if i == 2 else "magma"
            lim = float(np.abs(a).max()) or 1.0
            _panel(axes[i, j], a, cmap, -lim if i == 2 else 0, lim, name if j == 0 else None,
                   f"tile {j} ({'+' if j % 2 == 0 else '−'})" if i == 0 else None)
    fig.suptitle("PSF tiles: nominal design vs refit (effective) vs laser captures", fontsize=9)
    return _savefig(fig, path)


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def markdown(result, plots: dict[str, Path | None]) -> str:
    from calibration.loop import ARM_LABELS

    a, r = result.accuracies, result.recovery
    rows = "\n".join(f"| {ARM_LABELS[k]} | {100 * a[k]:.2f} | {_pct(r.get(k))} |" for k in ARM_LABELS if k in a)
    sp = result.split
    lines = [
        "# Calibration report",
        "",
        f"Captures: `{result.capture['path']}` — device `{result.capture['device_id']}`, {result.capture['n_captures']} captures "
        f"({result.capture.get('dataset') or 'inputs stored in the file'} {result.capture.get('dataset_split') or ''}).",
        f"Calibration slice: {sp['n_calib']} captures ({100 * sp['fraction']:g} %); held-out rest: {sp['n_held_out']}.",
        "",
        "| | held-out accuracy (%) | loss recovered (%) |",
        "|---|---|---|",
        rows,
        "",
        "Loss recovered = (accuracy − uncalibrated) / (simulation − uncalibrated). Simulation is the trained",
        "model with its ideal kernels on the same held-out inputs.",
        "",
    ]
    if plots.get("accuracies"):
        lines += ["![accuracies](accuracies.png)", ""]
    if result.curve:
        keys = [k for k in ("after_refit", "paper_ce", "paper_ntk", "refit_ce", "refit_ntk") if k in result.curve[0]]
        lines += ["## Sample efficiency", "",
                  f"Nested slices, one common held-out set ({result.curve[0]['n_held_out']} captures, the complement of the "
                  "largest slice).", "",
                  "| slice (%) | captures | " + " | ".join(ARM_LABELS[k] for k in keys) + " | refit RMSE | wall (s) |",
                  "|---" * (len(keys) + 4) + "|"]
        for row in result.curve:
            lines.append(f"| {100 * row['fraction']:g} | {row['n_calib']} | " + " | ".join(f"{100 * row[k]:.2f}" for k in keys)
                         + f" | {row['refit_rmse']:.4f} | {row['wall_s']:.1f} |")
        lines += ["", f"Simulation {100 * result.curve[0]['simulation']:.2f} %, uncalibrated {100 * result.curve[0]['uncalibrated']:.2f} % "
                  "on this held-out set.", ""]
        if plots.get("sample_efficiency"):
            lines += ["![sample efficiency](sample_efficiency.png)", ""]
    rf = result.refit
    noise = ("no bench noise model (fewer than 2 dark frames)" if rf.get("noise_rmse") is None else
             f"the bench noise model predicts an RMS noise of {rf['noise_rmse']:.4f} on the slice")
    lines += ["## Device refit", "",
              f"Frame RMSE against the measured slice: nominal device {rf['rmse_before']:.4f} → refit {rf['rmse_after']:.4f}, "
              f"{rf['steps']} steps; {noise}. The refit RMSE is not evidence of fit (see the misfit test below). "
              f"Twin data: {rf['twin_pool']}.", "",
              "```json", _json({k: v for k, v in rf["params"].items() if k not in ("laser_psfs", "twin_terms")}), "```", ""]
    lines += laser_psf_markdown(rf["params"].get("laser_psfs"))
    lines += twin_terms_markdown(rf["params"].get("twin_terms"))
    lines += misfit_markdown(result.misfit)
    if plots.get("frames"):
        lines += ["![frames](frames.png)", ""]
    lp = result.capture.get("laser_psfs")
    if lp:
        lines += [f"Laser PSFs: {lp['n_psf']} in the file, {lp['matched']} of {lp['n_tiles']} tiles matched "
                  f"(by {lp['by']}).", ""]
        if lp.get("note"):
            lines += [f"Note: {lp['note']}", ""]
    if plots.get("psfs"):
        lines += ["![psfs](psfs.png)", ""]
    lines += ["## Timings (s)", "", "| step | wall (s) |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in result.timings.items()]
    return "\n".join(lines) + "\n"


def laser_psf_markdown(info: dict | None) -> list[str]:
    """Which PSF the optics twin used per tile (design, laser or blend) and the laser weight α."""
    if not info:
        return []
    mode = info["mode"]
    lines = ["### PSFs in the twin", "",
             f"`use_laser_psfs = {mode!r}`: " + {"off": "every tile uses its design PSF.",
                                                 "replace": "a tile with a matched laser PSF uses it (α = 1), the others "
                                                            "their design PSF.",
                                                 "correct": "tile = (1 − α)·design + α·laser PSF, α fitted per tile on the "
                                                            "calibration slice before the refit."}[mode], ""]
    if mode == "off":
        return lines
    lines += ["| tile | laser PSF matched | PSF used | α (laser weight) |", "|---|---|---|---|"]
    for t in info["tiles"]:
        a = "—" if t["alpha"] is None else f"{t['alpha']:.3f}"
        lines.append(f"| {t['tile']} | {'yes' if t['laser_available'] else 'no'} | {t['psf']} | {a} |")
    return lines + [""]


def _num(v, fmt: str = ".4g") -> str:
    return "—" if v is None else format(v, fmt)


def twin_terms_rows(info: dict) -> list[tuple[str, str, str]]:
    """(term, fitted value, unit / meaning) per switched-on twin term (``params["twin_terms"]``)."""
    rows = []
    if "blur" in info:
        sy, sx = info["blur"]["sigma_edge_px_yx"]
        rows.append(("blur", f"σ_y {sy:.3f}, σ_x {sx:.3f}", "px, Gaussian σ at the outermost tile (∝ field radius)"))
    if "crosstalk" in info:
        for name, c in info["crosstalk"].items():
            dy, dx = c["ghost_shift_px_yx"]
            rows.append((f"crosstalk from the {name} neighbour", f"{c['fraction']:.4f} (ghost shift {dy:+d}, {dx:+d})",
                         "fraction of the neighbour tile's light; shift px (y, x)"))
    if "magnification" in info:
        my, mx = info["magnification"]["scale_minus_1_yx"]
        rows.append(("magnification", f"y {100 * my:+.3f} %, x {100 * mx:+.3f} %", "image scale − 1 per axis, about each tile's centre"))
    if "vignetting" in info:
        rows.append(("vignetting", f"{100 * info['vignetting']['falloff_at_field_edge']:.2f} %",
                     "irradiance falloff at the field edge, ∝ r²"))
    if "response" in info:
        r = info["response"]
        rows.append(("response: gamma", f"{r['gamma']:.4f}", "u = s·(y/s)^γ, s = sensor saturation irradiance"))
        rows.append(("response: saturation κ", f"{r['saturation_kappa']:.4g}",
                     f"u/(1 + κ·u/s); half response at {_num(r['half_response_irradiance'])} feature units"))
    if "gain" in info:
        g = info["gain"]
        rows.append(("pixel gain map", f"rms {100 * g['rms']:.2f} %, range {100 * g['min']:+.1f} … {100 * g['max']:+.1f} %",
                     f"gain − 1 per tile pixel ({g['basis']})"))
    return rows


def twin_terms_markdown(info: dict | None) -> list[str]:
    """The optional twin terms the refit fitted, with their values (none: nothing)."""
    if not info:
        return []
    lines = ["### Optional twin terms", "", "Fitted in the device refit (`twin_terms`); see docs/calibration.md.", "",
             "| term | fitted value | unit / meaning |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in twin_terms_rows(info)]
    return lines + [""]


def misfit_markdown(m: dict | None) -> list[str]:
    """The "fits within noise?" section: verdict, noise source, failing bins and channels."""
    if not m:
        return []
    lines = ["## Does the twin fit within noise?", "", f"**{m['verdict']}**", ""]
    nm = m.get("noise_model")
    if nm is None:
        return lines
    src = "; ".join(f"{k}: {v}" for k, v in nm["source"].items())
    st = m.get("settings", {})
    lines += [f"Noise model `var = a·s + b` from the bench only (a = {nm['a']:.4g}, b = {np.mean(nm['b']):.4g} mean over "
              f"channels; {src}), s the refit twin's positive + negative signal. Tested on {m.get('held_out_captures', '?')} "
              f"held-out captures: residual variance per intensity bin vs the prediction, and the mean residual per channel "
              f"(kernel = tile pair) for spatial structure; a bin or channel fails when the excess is significant "
              f"(z = {st.get('z')}) and larger than {100 * st.get('tol', 0):.0f} % of the noise variance.", "",
              "| signal bin (feature units) | pixels | residual var | predicted var | ratio | |", "|---|---|---|---|---|---|"]
    for b in m["bins"]:
        lines.append(f"| {b['signal_lo']:.3g} – {b['signal_hi']:.3g} | {b['n']} | {b['observed_var']:.3g} | "
                     f"{b['predicted_var']:.3g} | {b['ratio']:.2f} | {'ok' if b['ok'] else '**fails**'} |")
    lines += ["", "| channel (tiles) | χ²/pixel of the mean residual | systematic / noise variance | mean abs residual | |",
              "|---|---|---|---|---|"]
    for c in m["channels"]:
        k = c["channel"]
        lines.append(f"| {k} ({2 * k}, {2 * k + 1}) | {c['chi2_per_pixel']:.2f} | {c['systematic_fraction']:.3f} | "
                     f"{c['mean_abs_residual']:.3g} | {'ok' if c['ok'] else '**fails**'} |")
    return lines + [""]


def _json(obj) -> str:
    import json

    def short(o):
        if isinstance(o, float):
            return round(o, 5)
        if isinstance(o, list):
            return [short(v) for v in o]
        if isinstance(o, dict):
            return {k: short(v) for k, v in o.items()}
        return o

    obj = short(obj)
    if isinstance(obj, dict):
        return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()) + "\n}"
    return json.dumps(obj)


def write_report(result, out: str | Path, *, seed: int | None = None, extra: dict | None = None) -> dict[str, Path]:
    """Write the report folder ``out``; returns the paths written by name."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path | None] = {
        "accuracies": plot_accuracies(result, out / "accuracies.png"),
        "sample_efficiency": plot_sample_efficiency(result.curve, out / "sample_efficiency.png") if result.curve else None,
        "frames": plot_frames(result.plot_data, out / "frames.png"),
        "psfs": plot_psfs(result.plot_data, out / "psfs.png"),
    }
    paths = {k: v for k, v in plots.items() if v is not None}
    paths["report"] = atomic_write_text(out / "report.md", markdown(result, plots))
    payload = result.to_dict()
    payload["provenance"] = provenance(seed=seed, config=result.config)
    payload.update(extra or {})
    paths["results"] = atomic_write_json(out / "results.json", payload)
    return paths
