"""Does the refit twin fit the device within noise? A test that can fail.

The refit residual cannot answer this: a noise model fitted to the refit residual makes the
"noise RMS" equal the refit RMSE by construction. Here the noise is predicted independently
of the refit and compared with the residual on *held-out* captures:

* **noise model** (:func:`noise_from_bench`): the Poisson–Gaussian variance per feature pixel
  ``var = a·s + b`` (feature units²), with ``s`` the twin's positive + negative tile
  irradiance (feature units) — ``b`` from the dark frames (per channel, variance over the
  dark exposures), ``a = 1/electrons_per_unit`` from the exposure the file records
  (``exposure_s`` × source flux), or from repeated exposures of one input when given
  (variance vs mean over the repeats); never from the refit residual;
* **variance test**: held-out residual variance ``measured − twin`` against the predicted
  variance per intensity bin (quantiles of ``s``); a bin fails when the excess is both
  significant (ratio above ``1 + z·sqrt(2/n)``, the standard error of a sample variance) and
  large: ``(observed − predicted) / max(predicted, median pixel variance) > tol``;
* **spatial test**: the mean residual per channel (tile pair) over the held-out captures,
  as χ²/pixel against ``var/N``; a channel fails when χ² is significant (above
  ``1 + z·sqrt(2/P)``) and the systematic power ``(χ² − 1)/N`` exceeds ``tol`` of the noise
  variance — structure (a blur, a ghost, vignetting) the twin does not produce.

:func:`misfit_test` returns a :class:`MisfitReport` whose ``verdict`` is
``"twin fits within noise"`` or names the bins and channels where it does not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class NoiseModel:
    """``var = a·s + b`` in feature units²; ``source`` says where a and b came from."""

    a: float
    b: np.ndarray  # (C,) per channel
    source: dict

    def variance(self, signal: torch.Tensor) -> torch.Tensor:
        b = torch.as_tensor(self.b, dtype=signal.dtype).reshape(1, -1, 1, 1)
        return self.a * signal.clamp_min(0) + b

    def to_dict(self) -> dict:
        return {"a": self.a, "b": [float(v) for v in self.b], "source": self.source}


def noise_from_bench(dark: torch.Tensor | np.ndarray | None, *, electrons_per_unit: float | None = None,
                     repeats: tuple | None = None, n_channels: int | None = None) -> NoiseModel:
    """The noise model from bench data only (module docstring).

    ``dark``: (D, C, H, W) dark frames, D ≥ 2. ``electrons_per_unit``: photo-electrons per
    feature unit of the exposure. ``repeats``: ``(frames (R, C, H, W), signal (C, H, W))``,
    R ≥ 2 exposures of one input and the twin's signal for it; a = slope of the per-pixel
    variance over the repeats against the signal (least squares, b fixed by the dark frames).
    """
    if dark is None or len(dark) < 2:
        raise ValueError("the noise model needs at least 2 dark frames (/calibration/dark_frames)")
    d = torch.as_tensor(np.asarray(dark), dtype=torch.float64)
    b = d.var(dim=0, unbiased=True).mean(dim=(1, 2)).numpy()
    src = {"b": f"variance over {len(d)} dark frames, per channel"}
    if repeats is not None:
        frames, signal = (torch.as_tensor(np.asarray(v), dtype=torch.float64) for v in repeats)
        if len(frames) < 2:
            raise ValueError("repeated exposures: need at least 2 frames of the same input")
        v = frames.var(dim=0, unbiased=True) - torch.as_tensor(b).reshape(-1, 1, 1)
        s = signal.clamp_min(0)
        a = float((v * s).sum() / (s * s).sum().clamp_min(1e-30))
        src["a"] = f"repeated exposures ({len(frames)} of one input): variance slope vs signal"
    elif electrons_per_unit:
        a = 1.0 / float(electrons_per_unit)
        src["a"] = "1/electrons_per_unit from the recorded exposure (exposure_s × source flux)"
    else:
        a = 0.0
        src["a"] = "unknown (no exposure flux and no repeated exposures): shot noise not predicted"
    return NoiseModel(max(a, 0.0), b, src)


@dataclass
class MisfitReport:
    bins: list
    channels: list
    verdict: str
    fits: bool
    noise: dict
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"fits_within_noise": self.fits, "verdict": self.verdict, "bins": self.bins, "channels": self.channels,
                "noise_model": self.noise, "settings": self.settings}


def misfit_test(measured: torch.Tensor, predicted: torch.Tensor, signal: torch.Tensor, noise: NoiseModel, *,
                n_bins: int = 8, tol: float = 0.25, z: float = 4.0) -> MisfitReport:
    """Held-out residual vs the noise model (module docstring).

    ``measured``, ``predicted``: (N, C, H, W) frames and the twin's noiseless prediction for
    held-out captures; ``signal``: (N, C, H, W) pos + neg irradiance in feature units.
    ``tol``: the excess variance tolerated (0.25 = 25 %); ``z``: standard errors beyond it.
    """
    r = (measured.double() - predicted.double())
    var = noise.variance(signal.double())
    s = signal.double().flatten()
    edges = torch.quantile(s[torch.randperm(len(s), generator=torch.Generator().manual_seed(0))[:200000]],
                           torch.linspace(0, 1, n_bins + 1, dtype=torch.float64))
    which = torch.bucketize(s, edges[1:-1])
    rf, vf = r.flatten(), var.flatten()
    ref_var = float(vf.median())  # the noise variance of a typical pixel: excess is measured against it
    bins, bad_bins = [], []
    for i in range(n_bins):
        m = which == i
        n = int(m.sum())
        if n < 10:
            continue
        obs = float(rf[m].pow(2).mean())  # residual mean is tested spatially; here the total power
        pred = float(vf[m].mean())
        ratio = obs / max(pred, 1e-30)
        excess = (obs - pred) / max(pred, ref_var, 1e-30)  # effect size vs the larger of this bin's and a typical noise variance
        ok = ratio <= 1 + z * (2.0 / n) ** 0.5 or excess <= tol
        limit = tol
        bins.append({"signal_lo": float(edges[i]), "signal_hi": float(edges[i + 1]), "n": n, "observed_var": obs,
                     "predicted_var": pred, "ratio": ratio, "excess_vs_typical_noise": excess, "limit": limit, "ok": ok})
        if not ok:
            bad_bins.append(i)
    n_cap = r.shape[0]
    mean_r = r.mean(0)  # (C, H, W)
    mean_var = var.mean(0) / n_cap
    chans, bad_ch = [], []
    for c in range(r.shape[1]):
        p = mean_r[c].numel()
        chi2 = float((mean_r[c].pow(2) / mean_var[c].clamp_min(1e-30)).mean())
        systematic = max(chi2 - 1.0, 0.0) / n_cap  # mean-residual power / noise variance
        limit = tol
        ok = chi2 <= 1 + z * (2.0 / p) ** 0.5 or systematic <= tol
        chans.append({"channel": c, "chi2_per_pixel": chi2, "systematic_fraction": systematic, "limit": limit, "mean_abs_residual": float(mean_r[c].abs().mean()),
                      "ok": ok})
        if not ok:
            bad_ch.append(c)
    fits = not bad_bins and not bad_ch
    if fits:
        verdict = "twin fits within noise"
    else:
        parts = []
        if bad_bins:
            worst = max((b for b in bins if not b["ok"]), key=lambda b: b["ratio"])
            parts.append(f"residual variance exceeds the noise model in intensity bins {bad_bins} of {n_bins} "
                         f"(worst ×{worst['ratio']:.2f} at signal {worst['signal_lo']:.3g}–{worst['signal_hi']:.3g})")
        if bad_ch:
            worst = max((c for c in chans if not c["ok"]), key=lambda c: c["chi2_per_pixel"])
            parts.append(f"mean residual has spatial structure in channels {bad_ch} "
                         f"(worst χ²/pixel {worst['chi2_per_pixel']:.2f} in channel {worst['channel']})")
        verdict = "twin does not fit within noise: " + "; ".join(parts)
    return MisfitReport(bins, chans, verdict, fits, noise.to_dict(), {"n_bins": n_bins, "tol": tol, "z": z, "n_captures": n_cap})


# --------------------------------------------------------------------------------------
# from a capture file
# --------------------------------------------------------------------------------------


def repeat_groups(cf, min_size: int = 2) -> list[np.ndarray]:
    """Groups of captures showing the same input (equal ``inputs/dataset_index``), largest first.

    A bench that re-exposes one input several times records it as several captures with the
    same dataset index; their spread is the sensor's noise at that input's signal.
    """
    if cf.dataset_index is None:
        return []
    _, inv, counts = np.unique(cf.dataset_index, return_inverse=True, return_counts=True)
    big = np.flatnonzero(counts >= min_size)
    big = big[np.argsort(-counts[big], kind="stable")]
    return [np.flatnonzero(inv == g) for g in big]


def noise_from_captures(cf, frames_of, signal_of=None, *, electrons_per_unit: float | None = None) -> NoiseModel | None:
    """The bench noise model of capture file ``cf``, or None when it has < 2 dark frames.

    ``frames_of(key, indices)`` returns feature frames (sensor frames already combined) for a
    per-capture dataset, or the dark frames when ``key`` is ``"calibration/dark_frames"``;
    ``signal_of(indices)`` the twin's pos + neg signal for captures ``indices`` (needed only
    when the file holds repeated exposures of one input, see :func:`repeat_groups`).
    """
    if not cf.has("calibration/dark_frames"):
        return None
    dark = frames_of("calibration/dark_frames", None)
    if len(dark) < 2:
        return None
    repeats = None
    groups = repeat_groups(cf)
    if groups and signal_of is not None:
        g = groups[0]
        repeats = (frames_of("measured/frames", g), signal_of(g[:1])[0])
    nm = noise_from_bench(dark, electrons_per_unit=electrons_per_unit, repeats=repeats)
    if repeats is not None:
        nm.source["repeats"] = f"{len(groups[0])} captures of dataset index {int(cf.dataset_index[groups[0][0]])}"
    return nm
