"""A differentiable device-correction model and the loop that refits it to measured frames.

The model says how a fabricated, mis-aligned, noisy device departs from the ideal front-end
the network was trained with::

    pred_c(x) = gain_c · W_c[ F_c(x) + (x ⋆ δ_c) ] + offset_c          measured ≈ pred + noise

* ``F(x)`` — the ideal (simulated) front-end output, ``(B, C, H, W)``, e.g. the optical
  convolution of the hybrid model; it is frozen and only evaluated once per input.
* ``δ_c`` — a per-kernel PSF correction: a small extra kernel applied to the *input*,
  so for a linear optical front-end ``F(x) + x ⋆ δ = x ⋆ (k + δ)`` (kernel error).
* ``W_c`` — a sub-pixel shift per channel (pixels, content displacement ``(dx, dy)``) and
  one rotation (radians, about the frame centre), done with ``grid_sample`` (bicubic).
* ``gain_c``, ``offset_c`` — per-channel brightness scale and offset (frame units).
* noise — a Poisson–Gaussian variance ``var = a·max(signal, 0) + b`` fitted to the
  residuals after the refit (``signal = pred − offset``, frame units).

:func:`refit_device` fits it to (inputs, measured frames) pairs by Adam in three phases:
closed-form per-channel gain/offset and an integer-shift search (initialisation), then the
geometric and photometric parameters with δ frozen, then everything with an L2 penalty on
δ (so translation is explained by the shift, not by δ). The same model works for any
device whose measurement is a per-channel map of an ideal front-end (a neuromorphic
device's rates can use it with the spatial parts switched off).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from neurohw.runtime import torch_threads  # noqa: F401  (re-exported)


@dataclass
class RefitConfig:
    """Settings of :func:`refit_device`. Steps are full-batch Adam steps (minibatch if ``batch_size``)."""

    steps_geometry: int = 150
    steps_joint: int = 250
    lr: float = 0.03
    lr_psf: float = 3e-3
    psf_l2: float = 1e-3  # penalty on the energy of x⋆δ relative to the ideal maps, see refit_device
    shift_search_px: int = 3  # integer shift search radius for the initial alignment
    fit_shift: bool = True
    fit_rotation: bool = True
    fit_psf: bool = True
    batch_size: int | None = None  # None: full batch
    seed: int = 0
    progress: bool = False
    num_threads: int | None = 1  # torch intra-op threads during the refit (small tensors: 1 is fastest)

    def to_dict(self) -> dict:
        return asdict(self)


class DeviceCorrection(nn.Module):
    """Differentiable model of a device's departure from the ideal front-end (see module doc).

    Args:
        n_channels: C, the number of measured channels (kernels).
        in_channels: channels of the input images.
        in_size: ``(H_in, W_in)`` of the input images.
        out_size: ``(H, W)`` of the frames.
        psf_size: side of the PSF-correction kernel δ (pixels of the input grid).
        psf_correction: learn δ at all (False: δ is absent).
    """

    def __init__(self, n_channels: int, in_channels: int, in_size: tuple[int, int], out_size: tuple[int, int],
                 psf_size: int = 9, psf_correction: bool = True):
        super().__init__()
        self.n_channels = int(n_channels)
        self.in_size = tuple(int(s) for s in in_size)
        self.out_size = tuple(int(s) for s in out_size)
        c = self.n_channels
        self.log_gain = nn.Parameter(torch.zeros(c))
        self.offset = nn.Parameter(torch.zeros(c))
        self.shift = nn.Parameter(torch.zeros(c, 2))  # (dx, dy) in output pixels, content displacement
        self.rotation = nn.Parameter(torch.zeros(()))  # radians, counter-clockwise in (x right, y down) coordinates
        self.psf_correction = bool(psf_correction)
        # Padding so that a psf_size conv of the input lands on the output grid (centre-cropped).
        self.psf_size = int(psf_size)
        self.delta = nn.Parameter(torch.zeros(c, in_channels, self.psf_size, self.psf_size)) if psf_correction else None
        self.register_buffer("noise_a", torch.zeros(()))  # frame units per frame unit of signal
        self.register_buffer("noise_b", torch.zeros(()))  # frame units²

    # -- parameters in physical units --------------------------------------------------------
    @property
    def gain(self) -> torch.Tensor:
        return self.log_gain.exp()

    def params_dict(self) -> dict:
        """Fitted parameters as plain lists (JSON-able)."""
        d = {
            "gain": self.gain.detach().cpu().tolist(),
            "offset": self.offset.detach().cpu().tolist(),
            "shift_px": self.shift.detach().cpu().tolist(),
            "rotation_deg": math.degrees(float(self.rotation.detach())),
            "noise_a": float(self.noise_a),
            "noise_b": float(self.noise_b),
            "noise_sigma_dark": math.sqrt(max(float(self.noise_b), 0.0)),
        }
        if self.delta is not None:
            d["psf_delta_l2"] = self.delta.detach().flatten(1).norm(dim=1).cpu().tolist()
        return d

    # -- pieces --------------------------------------------------------------------------
    def psf_term(self, x: torch.Tensor) -> torch.Tensor:
        """``x ⋆ δ`` on the output grid, ``(B, C, H, W)``; zeros without PSF correction."""
        b = x.shape[0]
        if self.delta is None:
            return x.new_zeros(b, self.n_channels, *self.out_size)
        k = self.psf_size
        h_in, w_in = x.shape[-2:]
        h, w = self.out_size
        ph = max(0, (h - (h_in - k + 1) + 1) // 2)
        pw = max(0, (w - (w_in - k + 1) + 1) // 2)
        y = F.conv2d(x, self.delta.to(x.dtype), padding=(ph, pw))
        # centre-crop to the output grid (valid conv larger than the frame, or odd padding)
        top = (y.shape[-2] - h) // 2
        left = (y.shape[-1] - w) // 2
        if top < 0 or left < 0:
            raise ValueError(f"PSF correction of size {k} cannot cover frames {self.out_size} from inputs {(h_in, w_in)}")
        return y[..., top:top + h, left:left + w]

    def _theta(self, inverse: bool, dtype, device) -> torch.Tensor:
        """Affine matrices ``(C, 2, 3)`` for ``affine_grid`` (normalised coords, align_corners=False)."""
        h, w = self.out_size
        r = self.rotation.to(dtype)
        cos, sin = torch.cos(r), torch.sin(r)
        # Work in pixel units then convert: p_src = R^-1 (p_out - s)  (content moves by +s, rotates by +r)
        s = self.shift.to(dtype)
        if not inverse:
            rinv = torch.stack([torch.stack([cos, sin]), torch.stack([-sin, cos])])  # R(-r)
            t = -(rinv @ s.T).T  # (C, 2)
            a = rinv
        else:  # p_src = R p_out + s
            a = torch.stack([torch.stack([cos, -sin]), torch.stack([sin, cos])])
            t = s
        # pixel → normalised: u = 2 p / W (x), v = 2 p / H (y); with non-square frames scale A.
        scale = torch.tensor([2.0 / w, 2.0 / h], dtype=dtype, device=device)
        a_n = a * scale[:, None] / scale[None, :]
        t_n = t * scale[None, :]
        return torch.cat([a_n.expand(self.n_channels, 2, 2), t_n[:, :, None]], dim=2)

    def warp(self, maps: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """Shift/rotate each channel of ``maps`` ``(B, C, H, W)`` (or undo it with ``inverse``)."""
        if not bool(self.shift.detach().abs().sum() > 0) and not bool(self.rotation.detach() != 0) and not self.training:
            return maps
        b, c, h, w = maps.shape
        theta = self._theta(inverse, maps.dtype, maps.device)  # (C, 2, 3)
        theta = theta.unsqueeze(0).expand(b, c, 2, 3).reshape(b * c, 2, 3)
        grid = F.affine_grid(theta, (b * c, 1, h, w), align_corners=False)
        out = F.grid_sample(maps.reshape(b * c, 1, h, w), grid, mode="bicubic", padding_mode="border", align_corners=False)
        return out.reshape(b, c, h, w)

    def forward(self, x: torch.Tensor, ideal: torch.Tensor) -> torch.Tensor:
        """Predicted measured frames ``(B, C, H, W)`` for inputs ``x`` and ideal maps ``ideal = F(x)``."""
        maps = ideal + self.psf_term(x)
        maps = self.warp(maps)
        return maps * self.gain.to(maps.dtype)[None, :, None, None] + self.offset.to(maps.dtype)[None, :, None, None]

    def correct(self, frames: torch.Tensor) -> torch.Tensor:
        """Map measured frames back towards the ideal front-end's frame: undo offset, gain and warp.

        δ (kernel error) is not invertible frame by frame and stays in; fine-tuning handles it.
        """
        maps = (frames - self.offset.to(frames.dtype)[None, :, None, None]) / self.gain.to(frames.dtype)[None, :, None, None]
        return self.warp(maps, inverse=True)

    def noise_std(self, pred: torch.Tensor) -> torch.Tensor:
        """Per-pixel noise standard deviation for predicted frames (Poisson–Gaussian fit)."""
        signal = (pred - self.offset.to(pred.dtype)[None, :, None, None]).clamp_min(0)
        return (self.noise_a * signal + self.noise_b).clamp_min(0).sqrt()

    def sample(self, x: torch.Tensor, ideal: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Simulated measurements: prediction plus noise drawn from the fitted noise model."""
        pred = self.forward(x, ideal)
        noise = torch.randn(pred.shape, generator=generator, dtype=pred.dtype, device="cpu").to(pred.device)
        return pred + self.noise_std(pred) * noise


@dataclass
class RefitResult:
    """What :func:`refit_device` returns: the model, the loss history and summary errors."""

    model: DeviceCorrection
    history: list[float] = field(default_factory=list)
    rmse_before: float = float("nan")  # frame units, measured vs best per-channel affine of the ideal maps
    rmse_after: float = float("nan")  # frame units, measured vs refit prediction
    noise_rmse: float = float("nan")  # the fitted noise model's RMS standard deviation

    def summary(self) -> dict:
        return {"rmse_before": self.rmse_before, "rmse_after": self.rmse_after, "noise_rmse": self.noise_rmse,
                "final_loss": self.history[-1] if self.history else None, "params": self.model.params_dict()}


def _affine_init(ideal: torch.Tensor, measured: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel least-squares ``measured ≈ g·ideal + o``; returns (g, o), each ``(C,)``."""
    c = ideal.shape[1]
    xi = ideal.transpose(0, 1).reshape(c, -1).double()
    yi = measured.transpose(0, 1).reshape(c, -1).double()
    xm, ym = xi.mean(1), yi.mean(1)
    var = ((xi - xm[:, None]) ** 2).mean(1)
    cov = ((xi - xm[:, None]) * (yi - ym[:, None])).mean(1)
    g = torch.where(var > 0, cov / var.clamp_min(1e-30), torch.ones_like(var))
    g = g.clamp_min(1e-6)  # a device channel cannot invert contrast; keeps log-gain defined
    return g.float(), (ym - g * xm).float()


def _integer_shift_search(ideal: torch.Tensor, measured: torch.Tensor, radius: int) -> torch.Tensor:
    """Per-channel integer shift ``(C, 2)`` (dx, dy) maximising correlation of centred maps."""
    c = ideal.shape[1]
    best = torch.zeros(c, 2)
    if radius <= 0:
        return best
    a = ideal - ideal.mean(dim=(0, 2, 3), keepdim=True)
    b = measured - measured.mean(dim=(0, 2, 3), keepdim=True)
    h, w = a.shape[-2:]
    r = radius
    scores = torch.full((c, 2 * r + 1, 2 * r + 1), -float("inf"))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            # content displaced by (dx, dy): measured[y, x] ≈ ideal[y - dy, x - dx]
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            pa, pb = a[..., ys, xs], b[..., yd, xd]
            num = (pa * pb).sum(dim=(0, 2, 3))
            den = (pa.pow(2).sum(dim=(0, 2, 3)) * pb.pow(2).sum(dim=(0, 2, 3))).sqrt().clamp_min(1e-30)
            scores[:, dy + r, dx + r] = num / den
    flat = scores.reshape(c, -1).argmax(1)
    best[:, 1] = (flat // (2 * r + 1) - r).float()
    best[:, 0] = (flat % (2 * r + 1) - r).float()
    return best




def refit_device(
    x: torch.Tensor,
    ideal: torch.Tensor,
    measured: torch.Tensor,
    config: RefitConfig | None = None,
    *,
    psf_size: int = 9,
    dark_frames: torch.Tensor | None = None,
    model: DeviceCorrection | None = None,
) -> RefitResult:
    """Fit a :class:`DeviceCorrection` so that ``model(x, ideal) ≈ measured``.

    Args:
        x: inputs shown to the device, ``(N, C_in, H_in, W_in)``.
        ideal: the ideal front-end output for ``x``, ``(N, C, H, W)`` (frozen).
        measured: the measured frames, ``(N, C, H, W)``, frame units.
        config: :class:`RefitConfig`.
        psf_size: side of δ.
        dark_frames: optional ``(D, C, H, W)``; their per-channel mean initialises the offset
            and their variance the read-noise floor ``b``.
        model: continue from this model instead of a fresh one (its parameters are updated).

    The loss is the mean squared residual divided by the measured frames' variance (so it
    is unit-free), plus ``psf_l2 · mean((x ⋆ δ)²) / mean(ideal²)`` (the PSF-correction
    term's energy relative to the ideal maps).
    Returns a :class:`RefitResult`; the noise model is fitted from the final residuals.
    """
    cfg = config or RefitConfig()
    with torch_threads(cfg.num_threads):
        return _refit(x, ideal, measured, cfg, psf_size, dark_frames, model)


def _refit(x, ideal, measured, cfg: RefitConfig, psf_size, dark_frames, model) -> RefitResult:
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    dev = measured.device
    x = x.to(dev, torch.float32)
    ideal = ideal.to(dev, torch.float32)
    measured = measured.to(dev, torch.float32)
    n, c, h, w = measured.shape
    if ideal.shape != measured.shape:
        raise ValueError(f"ideal maps {tuple(ideal.shape)} and measured frames {tuple(measured.shape)} differ in shape")
    if len(x) != n:
        raise ValueError(f"{len(x)} inputs but {n} measured frames")
    if model is None:
        model = DeviceCorrection(c, x.shape[1], x.shape[-2:], (h, w), psf_size=psf_size, psf_correction=cfg.fit_psf).to(dev)
        with torch.no_grad():
            if cfg.fit_shift:
                model.shift.copy_(_integer_shift_search(ideal, measured, cfg.shift_search_px).to(dev))
            model.eval()
            warped = model.warp(ideal)
            g, o = _affine_init(warped, measured)
            model.log_gain.copy_(g.log().to(dev))
            model.offset.copy_(o.to(dev))
            if dark_frames is not None:
                model.offset.copy_(dark_frames.to(dev).float().mean(dim=(0, 2, 3)))
                g2, _ = _affine_init(warped, measured - model.offset[None, :, None, None])
                model.log_gain.copy_(g2.log().to(dev))
    g0, o0 = _affine_init(ideal, measured)
    rmse_before = float((measured - (ideal * g0.to(dev)[None, :, None, None] + o0.to(dev)[None, :, None, None])).pow(2).mean().sqrt())

    scale = measured.var().clamp_min(1e-12)
    kscale = ideal.pow(2).mean().clamp_min(1e-12)
    history: list[float] = []
    gen = torch.Generator().manual_seed(cfg.seed)

    def run_phase(params, steps: int, with_psf: bool) -> None:
        if steps <= 0 or not params:
            return
        opt = torch.optim.Adam(params)
        model.train()
        for _ in tqdm(range(steps), disable=not cfg.progress, desc="refit", leave=False):
            if cfg.batch_size and cfg.batch_size < n:
                idx = torch.randperm(n, generator=gen)[: cfg.batch_size].to(dev)
                xb, ib, mb = x[idx], ideal[idx], measured[idx]
            else:
                xb, ib, mb = x, ideal, measured
            if with_psf and model.delta is not None:
                psf = model.psf_term(xb)
                maps = model.warp(ib + psf)
                pred = maps * model.gain[None, :, None, None] + model.offset[None, :, None, None]
                # unit-free penalty: energy of the PSF-correction term relative to the ideal maps
                penalty = cfg.psf_l2 * psf.pow(2).mean() / kscale
            else:
                pred = _forward_no_psf(model, ib)
                penalty = 0.0
            loss = (pred - mb).pow(2).mean() / scale + penalty
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))

    geo = [{"params": [model.log_gain, model.offset], "lr": cfg.lr}]
    if cfg.fit_shift:
        geo.append({"params": [model.shift], "lr": cfg.lr})
    if cfg.fit_rotation:
        geo.append({"params": [model.rotation], "lr": cfg.lr * 0.1})
    run_phase(geo, cfg.steps_geometry, with_psf=False)
    joint = list(geo)
    if model.delta is not None:
        joint = joint + [{"params": [model.delta], "lr": cfg.lr_psf}]
    run_phase(joint, cfg.steps_joint, with_psf=True)

    model.eval()
    with torch.no_grad():
        pred = model(x, ideal)
        resid = measured - pred
        rmse_after = float(resid.pow(2).mean().sqrt())
        _fit_noise(model, pred, resid, dark_frames)
        noise_rmse = float(model.noise_std(pred).pow(2).mean().sqrt())
    return RefitResult(model, history, rmse_before, rmse_after, noise_rmse)


def _forward_no_psf(model: DeviceCorrection, ideal: torch.Tensor) -> torch.Tensor:
    maps = model.warp(ideal)
    return maps * model.gain[None, :, None, None] + model.offset[None, :, None, None]


def _fit_noise(model: DeviceCorrection, pred: torch.Tensor, resid: torch.Tensor, dark: torch.Tensor | None) -> None:
    """Least-squares fit of ``resid² ≈ a·signal + b`` (a, b ≥ 0); dark frames pin the floor b."""
    signal = (pred - model.offset[None, :, None, None]).clamp_min(0).flatten().double()
    r2 = resid.pow(2).flatten().double()
    if dark is not None and dark.shape[0] > 1:
        b = float(dark.double().var(dim=0, unbiased=True).mean())
        a = float(((r2 - b) * signal).sum() / signal.pow(2).sum().clamp_min(1e-30))
    else:
        design = torch.stack([signal, torch.ones_like(signal)], 1)
        sol = torch.linalg.lstsq(design, r2[:, None]).solution.flatten()
        a, b = float(sol[0]), float(sol[1])
        if b < 0:
            a, b = float((r2 * signal).sum() / signal.pow(2).sum().clamp_min(1e-30)), 0.0
        if a < 0:
            a, b = 0.0, float(r2.mean())
    model.noise_a.fill_(max(a, 0.0))
    model.noise_b.fill_(max(b, 0.0))
