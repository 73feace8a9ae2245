"""Refit a device model to measured frames by differentiable simulation, behind one interface.

Two device models implement :class:`DeviceTwin`:

* :class:`OpticsTwin` — the optics backend's own ``DeviceFrontEnd`` built from the nominal
  design (``design.device_frontend(sensor)``): refits per-tile ``gain``/``offset``, the
  optic-vs-sensor ``shift`` (sensor pixels) and ``rotation``, the per-tile
  ``psf_correction``. This is the physical model of the device.
* :class:`GenericTwin` — any frozen front-end plus the backend-agnostic
  :class:`~calibration.device_model.DeviceCorrection` (per-channel gain/offset, shift,
  rotation, PSF correction, Poisson–Gaussian noise): for devices without a simulator.

The twins' **noise** is never fitted to the refit residual (a noise level fitted to the
residual equals the refit RMSE by construction and hides any misfit). It comes from the bench
— dark frames, the recorded exposure, repeated exposures (:mod:`calibration.misfit`) — through
``set_noise(NoiseModel)``; without dark frames the optics twin keeps its nominal sensor's
data-sheet read noise.

Both offer ``ideal(x)`` (the simulation the back-end was trained with), ``refit(x, frames)``,
``predict(x)`` (noiseless refit device) and ``sample(x, generator)`` (a noisy draw of the
refit device: the digital twin used to adapt the back-end).
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from calibration.device_model import DeviceCorrection, RefitConfig, refit_device, torch_threads


@dataclass
class TwinRefit:
    """Summary of a refit: errors in frame units, fitted parameters, loss history."""

    rmse_before: float
    rmse_after: float
    params: dict
    history: list = field(default_factory=list)
    noise_rmse: float | None = None  # RMS noise the *bench* noise model predicts on the slice (set by the loop)
    noise_source: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"rmse_before": self.rmse_before, "rmse_after": self.rmse_after, "noise_rmse": self.noise_rmse,
                "noise_source": self.noise_source,
                "final_loss": self.history[-1] if self.history else None, "steps": len(self.history), "params": self.params}


class DeviceTwin(ABC):
    """Interface (see the module docstring): a refittable digital twin of a measured device."""

    @abstractmethod
    def ideal(self, x: torch.Tensor) -> torch.Tensor:
        """Noise-free feature maps of the nominal (designed) device for inputs ``x``."""

    @abstractmethod
    def refit(self, x: torch.Tensor, frames: torch.Tensor, config: RefitConfig, **kw) -> TwinRefit:
        """Fit the twin's device parameters to measured ``frames`` of inputs ``x``."""

    @abstractmethod
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Noise-free feature maps of the refit twin."""

    @abstractmethod
    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noisy feature maps of the refit twin (its fitted noise model)."""

    @abstractmethod
    def noise_signal(self, x: torch.Tensor) -> torch.Tensor:
        """The signal the noise variance grows with, per feature pixel ``(N, C, H, W)``, feature units."""

    @abstractmethod
    def set_noise(self, noise) -> dict:
        """Set the twin's noise from a bench :class:`~calibration.misfit.NoiseModel` (None: keep the
        nominal); returns where the noise now comes from."""

    def noise_rms(self, x: torch.Tensor, noise) -> float | None:
        """RMS noise standard deviation the bench model predicts for inputs ``x`` (feature units)."""
        if noise is None:
            return None
        with torch.no_grad():
            return float(noise.variance(self.noise_signal(x).double()).mean().sqrt())

    @abstractmethod
    def sampler(self, x: torch.Tensor, batch_size: int = 500):
        """A fast noisy sampler over a fixed image pool: ``fn(idx, generator) → frames``.

        The noiseless part is computed once for the whole pool; every call draws fresh noise.
        """


class OpticsTwin(DeviceTwin):
    """The optics ``DeviceFrontEnd`` as a refittable digital twin.

    Args:
        simulation: the front-end the back-end was trained with (``model.frontend``).
        device: a nominal ``DeviceFrontEnd`` (``design.device_frontend(sensor)``); it is
            deep-copied, never modified.
        electrons_per_unit: the camera exposure of the captures (photo-electrons per feature
            unit), or None to auto-expose on the first refit inputs.
        laser_responses: per tile, the matched laser PSF capture as the tile's response image to a
            unit point at the image centre (:func:`calibration.psf_match.psf_responses`,
            ``(H', W')``) or None (no PSF): used according to ``laser_mode``.
        laser_mode: ``"off"`` (design PSFs), ``"replace"`` (a tile with a laser PSF uses the
            kernel measured from it) or ``"correct"`` (tile = (1 − α)·design + α·measured,
            α ∈ [0, 1] fitted per tile by least squares on the refit frames, see
            :meth:`fit_laser_mix`). Applied during the first refit, after its geometry phase
            (:meth:`laser_kernels_from_responses` needs the fitted shift/rotation).
        terms: optional device terms (:data:`optics.device_terms.TERMS`: blur, crosstalk,
            magnification, vignetting, response, gain), fitted in the refit
            (:mod:`calibration.twin_terms`); empty (default): the plain twin, exactly as without them.
        gain_degree: the gain map's Legendre degree per tile, or None for one value per pixel.
        ghost_search_px: the cross-talk ghost shift search radius (px).
    """

    def __init__(self, simulation: torch.nn.Module, device: torch.nn.Module, electrons_per_unit: float | None = None,
                 laser_responses: list | None = None, laser_mode: str = "off", terms=(), gain_degree: int | None = 2,
                 ghost_search_px: int = 4):
        from calibration.psf_match import LASER_PSF_MODES

        if laser_mode not in LASER_PSF_MODES:
            raise ValueError(f"OpticsTwin: laser_mode must be one of {LASER_PSF_MODES}, got {laser_mode!r}")
        self.simulation = simulation
        self.device = copy.deepcopy(device)
        self.device.generator = None
        n = self.device.tiles.shape[0]
        if laser_responses is not None and len(laser_responses) != n:
            raise ValueError(f"OpticsTwin: laser_responses has {len(laser_responses)} entries for {n} tiles")
        self.laser_mode = laser_mode
        self.laser_responses = list(laser_responses) if laser_responses is not None else [None] * n
        self.laser_kernels: list = [None] * n  # measured kernels (C, k, k), set by the first refit
        self._design_tiles = self.device.tiles.detach().clone()
        self.laser_alpha: list = [None] * n  # per tile: weight of the measured PSF (1 replace, fitted for correct)
        self._laser_applied = laser_mode == "off"
        if electrons_per_unit is not None:
            self.device.sensor.config.electrons_per_unit = float(electrons_per_unit)
        self._exposed = electrons_per_unit is not None
        self.noise_source = {"read_noise_e": "nominal sensor data sheet (no bench noise model set)"}
        from calibration.twin_terms import attach_terms

        self.terms = attach_terms(self.device, terms, gain_degree)
        self.ghost_search_px = int(ghost_search_px)
        self._terms_init = False

    def ideal(self, x):
        with torch.no_grad():
            return self.simulation(x)

    def predict(self, x):
        with torch.no_grad():
            return self.device(x, noise=False)

    def sample(self, x, generator=None):
        with torch.no_grad():
            return self.device(x, noise=True, generator=generator)

    def sampler(self, x, batch_size: int = 500):
        """Pool sampler: tile irradiance computed once; per call, the sensor chain with its shot
        noise in the Gaussian approximation ``e + sqrt(e + read²)·n`` (e ≫ 1 photo-electrons
        here), then the sensor's own ADC (``digitize``) and unit conversion (``to_units``)."""
        from optics.frontend import merge_pairs

        with torch.no_grad():
            irr = torch.cat([self.device.tile_images(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])
        sensor = self.device.sensor
        read = float(sensor.config.read_noise_e)
        physical = sensor.config.noise_model == "physical"

        def sample(idx, generator=None):
            with torch.no_grad():
                if not physical:
                    return merge_pairs(sensor(irr[idx], noise=True, generator=generator))
                e = sensor.electrons(irr[idx], noise=False)
                n = torch.randn(e.shape, generator=generator, dtype=e.dtype)
                e = e + torch.sqrt(e.clamp_min(0) + read * read) * n
                return merge_pairs(sensor.to_units(sensor.digitize(e)))

        return sample

    def _set_mix(self, alpha: list) -> None:
        """Tiles = (1 − α)·design + α·measured for tiles with a measured kernel (α None: design)."""
        tiles = self._design_tiles.clone()
        for t, (a, k) in enumerate(zip(alpha, self.laser_kernels)):
            if a is not None and k is not None:
                tiles[t] = (1 - a) * self._design_tiles[t] + a * k
        self.device.tiles.copy_(tiles)
        self.laser_alpha = [None if k is None else float(a) for a, k in zip(alpha, self.laser_kernels)]

    def laser_kernels_from_responses(self) -> list:
        """Tile kernels ``(C, k, k)`` from the laser point responses, through the twin's geometry.

        The capture is the device's response to a unit point: the tile kernel seen through the
        device's misalignment (shift, rotation: a sub-pixel bilinear resampling). With the twin's
        current (fitted) shift and rotation, ``kernel → misalign(conv(point, kernel))`` is linear;
        the kernel is its non-negative least-squares inverse (``scipy.optimize.nnls``) on the
        response image, scaled to the design tile's total energy (brightness is the per-tile
        ``gain``). With ``C > 1`` input channels the point lit all channels, so each pixel's
        weight is split over channels in the design tile's proportions.
        """
        from scipy.optimize import nnls

        d = self.device
        design = self._design_tiles
        n, c_in, k, _ = design.shape
        size = d.image_size
        point = torch.zeros(1, c_in, size, size)
        point[..., size // 2, size // 2] = 1.0
        tot = design.sum(1, keepdim=True)
        share = torch.where(tot > 0, design / torch.where(tot > 0, tot, torch.ones_like(tot)), torch.full_like(design, 1.0 / c_in))
        cols = []
        with torch.no_grad():
            for j in range(k * k):
                basis = torch.zeros_like(design)
                basis[:, :, j // k, j % k] = share[:, :, j // k, j % k]
                cols.append(d._misalign(torch.nn.functional.conv2d(point, basis))[0].reshape(n, -1))
        a_all = torch.stack(cols, -1).double().numpy()  # (T, H'W', k²)
        out = []
        for t, r in enumerate(self.laser_responses):
            if r is None:
                out.append(None)
                continue
            w, _ = nnls(a_all[t], np.asarray(r, dtype=np.float64).reshape(-1))
            if not w.sum() > 0:
                raise ValueError(f"OpticsTwin: the laser PSF of tile {t} gives no positive kernel through the twin's geometry")
            w = torch.from_numpy(w.reshape(k, k)).float() * (float(design[t].sum()) / float(w.sum()))
            out.append(share[t] * w[None])
        self.laser_kernels = out
        return out

    def apply_laser_psfs(self, x: torch.Tensor, frames: torch.Tensor) -> None:
        """Measured kernels from the laser PSFs (current geometry), then ``replace`` or ``correct``."""
        self.laser_kernels_from_responses()
        if self.laser_mode == "replace":
            self._set_mix([None if k is None else 1.0 for k in self.laser_kernels])
        else:
            self.fit_laser_mix(x, frames)
        self._laser_applied = True

    def fit_laser_mix(self, x: torch.Tensor, frames: torch.Tensor) -> list:
        """Fit the per-tile mixing weight α of ``"correct"`` on measured ``frames`` of ``x``.

        The noiseless feature map is linear in each tile's kernel, so with the current
        geometry and gains ``frames − f(design) ≈ α₊·Δ₊ − α₋·Δ₋`` per channel (Δ the tile image
        of laser − design kernel): a 2 × 2 least-squares problem per tile pair; α clipped to
        [0, 1] (a tile without a laser PSF keeps α = None).
        """
        from optics.frontend import merge_pairs

        d = self.device
        alpha = [None] * len(self.laser_kernels)
        with torch.no_grad():
            self._set_mix([0.0 if k is not None else None for k in self.laser_kernels])
            base = merge_pairs(d.tile_images(x))
            self._set_mix([1.0 if k is not None else None for k in self.laser_kernels])
            full = d.tile_images(x)
            self._set_mix([0.0 if k is not None else None for k in self.laser_kernels])
            delta = full - d.tile_images(x)  # (N, 2K, H, W): laser − design tile images
            r = frames.to(base.dtype) - base
            for ch in range(d.n_kernels):
                cols = [t for t in (2 * ch, 2 * ch + 1) if self.laser_kernels[t] is not None]
                if not cols:
                    continue
                a = torch.stack([(1.0 if t % 2 == 0 else -1.0) * delta[:, t].flatten() for t in cols], 1).double()
                sol = torch.linalg.lstsq(a, r[:, ch].flatten().double()[:, None]).solution.flatten()
                for t, v in zip(cols, sol.tolist()):
                    alpha[t] = min(1.0, max(0.0, v))
        self._set_mix(alpha)
        return alpha

    def laser_psf_info(self) -> dict:
        """Per tile: which PSF the twin uses (``design``, ``laser``, ``blend``) and the laser weight α."""
        used = []
        for t, (k, a) in enumerate(zip(self.laser_kernels, self.laser_alpha)):
            kind = "design" if k is None or a is None or a == 0 else ("laser" if a == 1 else "blend")
            used.append({"tile": t, "psf": kind, "laser_available": self.laser_responses[t] is not None,
                         "alpha": None if a is None else round(float(a), 5)})
        return {"mode": self.laser_mode, "tiles": used}

    def nominal_tiles(self) -> torch.Tensor:
        return self.device.tiles.detach().clone()

    def effective_tiles(self) -> torch.Tensor:
        return self.device.effective_tiles().detach().clone()

    def parameters_dict(self) -> dict:
        d = self.device
        return {
            "gain": d.gain.detach().tolist(),
            "offset": d.offset.detach().tolist(),
            "shift_px_yx": d.shift.detach().tolist(),
            "rotation_deg": math.degrees(float(d.rotation.detach())),
            "psf_correction_rel": float(d.psf_correction.detach().norm() / d.tiles.norm().clamp_min(1e-30)),
            "electrons_per_unit": float(d.sensor.config.electrons_per_unit),
            "read_noise_e": float(d.sensor.config.read_noise_e),
            "laser_psfs": self.laser_psf_info(),
            **({"twin_terms": self.terms.params_dict()} if self.terms is not None else {}),
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The refit device parameters as tensors (for the calibrated checkpoint).

        The checkpoint rebuilds the device from the design tiles, so a laser-PSF tile change is
        folded into ``psf_correction`` (``design + correction'`` = ``tiles + correction``: the same
        effective tiles)."""
        p = self.device.device_parameters()
        p["psf_correction"] = p["psf_correction"] + (self.device.tiles.detach() - self._design_tiles)
        out = {f"device.{k}": v for k, v in p.items()}
        if self.terms is not None:  # rebuilt by optics.hardware.load_hardware from the sidecar's twin_terms
            out.update({f"device.terms.{k}": v.detach().clone() for k, v in self.terms.state_dict().items()})
        return out

    def terms_config(self) -> dict | None:
        """The sidecar entry that rebuilds the terms (None without terms)."""
        return None if self.terms is None else self.terms.config()

    def refit(self, x, frames, config: RefitConfig, **kw) -> TwinRefit:
        with torch_threads(config.num_threads):
            return self._refit(x, frames, config)

    def _loss(self, xb, mb, scale, psf_weight, tiles_e):
        d = self.device
        pred = d(xb, noise=False)
        loss = (pred - mb).pow(2).mean() / scale
        if psf_weight:
            loss = loss + psf_weight * d.psf_correction.pow(2).mean() / tiles_e
        return loss

    def _refit(self, x, frames, cfg: RefitConfig) -> TwinRefit:
        from tqdm.auto import tqdm

        d = self.device
        x = x.float()
        frames = frames.float()
        if not self._exposed:
            d.auto_expose(x[:200])
            self._exposed = True
        if self.terms is not None and not self._terms_init:  # the response curve's reference: the sensor's saturation
            self.terms.response_ref.fill_(float(d.sensor.saturation_level()))
        n = len(x)
        gen = torch.Generator().manual_seed(cfg.seed)
        scale = frames.var().clamp_min(1e-12)
        tiles_e = d.tiles.pow(2).mean().clamp_min(1e-20)
        with torch.no_grad():
            rmse_before = float((d(x, noise=False) - frames).pow(2).mean().sqrt())
            # coarse search of the lateral shift on a subset (the loss is not convex beyond ~1 px)
            if cfg.fit_shift and cfg.shift_search_px > 0:
                sub = slice(0, min(n, 64))
                best, best_s = float("inf"), d.shift.detach().clone()
                r = float(cfg.shift_search_px)
                grid = torch.arange(-r, r + 1e-9, 0.5)
                for sy in grid:
                    for sx in grid:
                        d.shift.copy_(torch.stack([sy, sx]))
                        l = float((d(x[sub], noise=False) - frames[sub]).pow(2).mean())
                        if l < best:
                            best, best_s = l, d.shift.detach().clone()
                d.shift.copy_(best_s)
        history: list[float] = []

        def phase(groups, steps, psf_weight):
            if steps <= 0:
                return
            opt = torch.optim.Adam(groups)
            for _ in tqdm(range(steps), desc="refit device", disable=not cfg.progress, leave=False):
                if cfg.batch_size and cfg.batch_size < n:
                    idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
                    xb, mb = x[idx], frames[idx]
                else:
                    xb, mb = x, frames
                loss = self._loss(xb, mb, scale, psf_weight, tiles_e)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history.append(float(loss.detach()))

        for p in d.parameters():
            p.requires_grad_(False)
        geo = [{"params": [d.gain, d.offset], "lr": cfg.lr}]
        if cfg.fit_shift:
            geo.append({"params": [d.shift], "lr": cfg.lr})
        if cfg.fit_rotation:
            geo.append({"params": [d.rotation], "lr": cfg.lr * 0.05})
        for g in geo:
            for p in g["params"]:
                p.requires_grad_(True)
        phase(geo, cfg.steps_geometry, 0.0)
        if not self._laser_applied:  # the laser PSFs, read through the fitted geometry
            for p in d.parameters():
                p.requires_grad_(False)
            self.apply_laser_psfs(x, frames)
            for g in geo:
                for p in g["params"]:
                    p.requires_grad_(True)
        joint = list(geo)
        if cfg.fit_psf:
            d.psf_correction.requires_grad_(True)
            joint.append({"params": [d.psf_correction], "lr": cfg.lr_psf * float(d.tiles.abs().max())})
        psf_w = cfg.psf_l2 if cfg.fit_psf else 0.0
        if self.terms is None:
            phase(joint, cfg.steps_joint, psf_w)
        else:
            from calibration import twin_terms as tt

            groups = tt.adam_groups(self.terms, cfg.lr)
            for g in groups:
                for p in g["params"]:
                    p.requires_grad_(True)
            if not self._terms_init:  # first refit: ghost search and gain map on the geometry-phase residual
                with torch.no_grad():
                    if "crosstalk" in self.terms.terms:
                        tt.init_crosstalk(d, x, frames, self.ghost_search_px)
                    if "gain" in self.terms.terms:
                        tt.fit_gain_map(d, x, frames)
                self._terms_init = True
            phase(joint + groups, cfg.steps_joint, psf_w)
        for p in d.parameters():
            p.requires_grad_(False)
        if self.terms is not None and "gain" in self.terms.terms:
            tt.fit_gain_map(d, x, frames)
        with torch.no_grad():
            rmse_after = float((frames - d(x, noise=False)).pow(2).mean().sqrt())
        return TwinRefit(rmse_before, rmse_after, self.parameters_dict(), history)

    def noise_signal(self, x):
        """Positive + negative tile irradiance of the refit twin: the shot noise of one feature pixel
        is that of both tiles."""
        with torch.no_grad():
            ti = self.device.tile_images(x)
            return (ti[:, 0::2] + ti[:, 1::2]).clamp_min(0)

    def set_noise(self, noise) -> dict:
        """The sensor's exposure and read noise from the bench noise model ``var = a·s + b``.

        Physical sensor: ``a = 1/electrons_per_unit`` (``a = 0``, shot noise unknown, keeps the
        exposure the twin has); the read noise is the one at which the twin's own sensor chain
        (dark current, read noise, clipping at zero electrons, ADC rounding) gives a feature pixel
        (two tiles) the dark-frame variance ``b`` (mean over channels) — found by bisection on a
        seeded simulation of dark pixels, because the clipping makes the closed form
        ``b = 2·(read² + dark + 1/(12·g²))/epu²`` underestimate the read noise.
        """
        cfg = self.device.sensor.config
        if noise is None:
            return self.noise_source
        src = dict(noise.source)
        if cfg.noise_model != "physical":
            self.noise_source = {**src, "note": f"sensor noise model {cfg.noise_model!r}: bench noise not applied"}
            return self.noise_source
        if noise.a > 0:
            cfg.electrons_per_unit = 1.0 / noise.a
            self._exposed = True
        cfg.read_noise_e = dark_matched_read_noise(self.device.sensor, float(np.mean(noise.b)))
        self.noise_source = {**src, "electrons_per_unit": cfg.electrons_per_unit, "read_noise_e": cfg.read_noise_e}
        return self.noise_source


def dark_matched_read_noise(sensor, b: float, n: int = 200_000, seed: int = 0, iters: int = 40) -> float:
    """Read noise (e⁻ rms) at which ``sensor`` gives a dark feature pixel (pos − neg tile) variance ``b``.

    Bisection over [0, read_hi], each candidate simulated on the same ``n`` seeded dark pixel
    pairs (so the variance is a monotone function of the candidate); 0 when even zero read
    noise exceeds ``b``. ``sensor.config`` is restored.
    """
    from optics.frontend import merge_pairs

    cfg = sensor.config
    saved = cfg.read_noise_e
    zeros = torch.zeros(1, 2, n, 1, dtype=torch.float64)

    def var(read: float) -> float:
        cfg.read_noise_e = read
        with torch.no_grad():
            return float(merge_pairs(sensor(zeros, noise=True, generator=torch.Generator().manual_seed(seed))).var())

    try:
        if var(0.0) >= b:
            return 0.0
        hi = math.sqrt(max(b, 1e-30)) * cfg.electrons_per_unit + 1.0
        while var(hi) < b and hi < 1e9:
            hi *= 2
        lo = 0.0
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if var(mid) < b else (lo, mid)
        return 0.5 * (lo + hi)
    finally:
        cfg.read_noise_e = saved


class GenericTwin(DeviceTwin):
    """A frozen front-end followed by :class:`DeviceCorrection` (backend-agnostic)."""

    def __init__(self, simulation: torch.nn.Module, psf_size: int = 9):
        self.simulation = simulation
        self.psf_size = psf_size
        self.model: DeviceCorrection | None = None

    def ideal(self, x):
        with torch.no_grad():
            return self.simulation(x)

    def refit(self, x, frames, config: RefitConfig, dark_frames=None, **kw) -> TwinRefit:
        res = refit_device(x, self.ideal(x), frames, config, psf_size=self.psf_size, dark_frames=dark_frames, model=self.model)
        self.model = res.model
        self.noise_source = {"a": "fitted to the refit residual (no bench noise model set): not evidence of fit",
                             "b": "dark-frame variance" if dark_frames is not None and len(dark_frames) > 1 else
                             "fitted to the refit residual"}
        return TwinRefit(res.rmse_before, res.rmse_after, res.model.params_dict(), res.history)

    def noise_signal(self, x):
        """|prediction − offset|: the generic model knows only the signed feature, so where the
        positive and negative tiles overlap this underestimates the shot-noise signal."""
        with torch.no_grad():
            p = self.predict(x)
            off = 0.0 if self.model is None else self.model.offset.to(p.dtype)[None, :, None, None]
            return (p - off).abs()

    def set_noise(self, noise) -> dict:
        """``var = a·|signal| + b`` from the bench (b averaged over channels)."""
        if noise is None or self.model is None:
            return getattr(self, "noise_source", {})
        with torch.no_grad():
            self.model.noise_a.fill_(float(noise.a))
            self.model.noise_b.fill_(float(np.mean(noise.b)))
        self.noise_source = dict(noise.source)
        return self.noise_source

    def predict(self, x):
        if self.model is None:
            return self.ideal(x)
        with torch.no_grad():
            return self.model(x, self.ideal(x))

    def sample(self, x, generator=None):
        if self.model is None:
            return self.ideal(x)
        with torch.no_grad():
            return self.model.sample(x, self.ideal(x), generator=generator)

    def sampler(self, x, batch_size: int = 500):
        with torch.no_grad():
            if self.model is None:
                pred = torch.cat([self.ideal(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])
                std = torch.zeros_like(pred[:1])
            else:
                pred = torch.cat([self.model(x[s:s + batch_size], self.ideal(x[s:s + batch_size]))
                                  for s in range(0, len(x), batch_size)])
                std = None
        model = self.model

        def sample(idx, generator=None):
            p = pred[idx]
            sd = std if std is not None else model.noise_std(p)
            return p + sd * torch.randn(p.shape, generator=generator, dtype=p.dtype)

        return sample

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.model is None else {f"device.{k}": v.detach() for k, v in self.model.state_dict().items()}

    def parameters_dict(self) -> dict:
        return {} if self.model is None else self.model.params_dict()
