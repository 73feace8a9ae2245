"""Fitting the optics twin's optional terms (:mod:`optics.device_terms`) in the device refit.

``CalibrationConfig.twin_terms`` (CLI ``neurohw calibrate --twin-terms``) lists which of
:data:`~optics.device_terms.TERMS` the optics twin gets; none by default (the plain twin). The
refit (:meth:`calibration.device_refit.OpticsTwin.refit`) fits them as follows:

* the geometry phase runs with every term at its neutral value (the identity);
* after it (and after the laser PSFs, before the PSF corrections), **cross-talk** is initialised
  on the residual by
  :func:`init_crosstalk`: per direction, the integer ghost shift within ``±ghost_search_px``
  whose ghost image best explains the residual (largest least-squares reduction with a positive
  fraction), then the four fractions jointly by least squares (clipped at 0); the **gain map**
  by :func:`fit_gain_map` (linear least squares, the map enters the prediction linearly);
* the joint Adam phase trains the continuous parameters of the switched-on terms (blur
  variances, cross-talk fractions, magnification, vignetting, gamma and saturation) with the
  geometry and PSF corrections, each at its own learning rate (:data:`TERM_LR`, relative to
  ``RefitConfig.lr``);
* the gain map is then refitted by least squares given everything else.

Degeneracy: a ghost displaced by less than the kernel size is, over the kernel's support, the
same as a change of the tile's own PSF (``x ⋆ shift(k_u) = shift(x ⋆ k_u)``), so the per-tile PSF
correction can take up part of it; with PSF errors the ghost search is also confounded by the
PSF residual. The fitted fraction is then a lower bound of the device's cross-talk (see
docs/calibration.md for the bench's figures).
"""
from __future__ import annotations

from typing import Iterable

import torch

from optics.device_terms import DIRECTIONS, TERMS, TileTerms, shift_zero

#: Adam learning rate of each term's parameters, as a multiple of ``RefitConfig.lr``.
TERM_LR = {"blur": 1.0, "crosstalk": 0.05, "magnification": 0.05, "vignetting": 0.5, "response": 0.25}


def parse_twin_terms(spec, where: str = "twin_terms") -> tuple[str, ...]:
    """``"blur,crosstalk"`` / a sequence / ``"all"`` / ``"none"`` or ``""`` → the terms in application order.

    Raises ``ValueError`` naming ``where`` and the unknown names."""
    if spec is None:
        return ()
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    items = [s for s in items if s]
    if items in (["none"], []):
        return ()
    if items == ["all"]:
        return TERMS
    bad = [s for s in items if s not in TERMS]
    if bad:
        raise ValueError(f"{where}: unknown twin term(s) {bad}; choose from {', '.join(TERMS)} (or 'all', 'none')")
    return tuple(t for t in TERMS if t in items)


def parse_gain_degree(spec, where: str = "twin_gain_degree") -> int | None:
    """An integer ≥ 1 (Legendre degree of the smooth gain map) or ``"pixel"``/None (one value per pixel)."""
    if spec is None or spec == "pixel":
        return None
    try:
        d = int(spec)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected an integer >= 1 or 'pixel', got {spec!r}") from None
    if d < 1:
        raise ValueError(f"{where}: the gain map degree must be >= 1 (or 'pixel'), got {d}")
    return d


def attach_terms(device, terms: Iterable[str], gain_degree: int | None) -> TileTerms | None:
    """Give the ``DeviceFrontEnd`` ``device`` a neutral :class:`TileTerms` with ``terms`` (None when empty)."""
    terms = tuple(terms)
    if not terms:
        device.terms = None
        return None
    h = device.out_size
    device.terms = TileTerms(terms, device.centres, (h, h), gain_degree=gain_degree)
    return device.terms


def _base_images(device, x: torch.Tensor) -> torch.Tensor:
    """Tile irradiance before the terms ``(N, 2K, H, W)``."""
    terms, device.terms = device.terms, None
    try:
        return device.tile_images(x)
    finally:
        device.terms = terms


def _merge(t: torch.Tensor) -> torch.Tensor:
    return t[:, 0::2] - t[:, 1::2]


@torch.no_grad()
def init_crosstalk(device, x: torch.Tensor, frames: torch.Tensor, radius: int) -> dict:
    """Ghost shifts and fractions of ``device.terms`` from the residual of ``frames`` (module docstring).

    ``x``: inputs ``(N, C, H_in, W_in)``; ``frames``: measured feature maps ``(N, K, H, W)``.
    The ghosts are built from the images just before the cross-talk term. The per-tile gains and
    offsets fitted without cross-talk have taken up the ghosts' mean, so each channel's residual
    and ghost images are first projected off that channel's own two tile images and a constant
    (what a gain/offset change can explain). Returns, per direction, the shift found and the
    fraction of the (projected) residual power its ghost explains."""
    terms = device.terms
    terms.crosstalk.zero_()
    r = (frames.double() - device(x, noise=False).double())  # (N, K, H, W)
    y = terms(_base_images(device, x).double(), until="crosstalk")  # (N, 2K, H, W)
    k_ch = r.shape[1]
    qs = []
    for k in range(k_ch):  # orthonormal basis of what gain/offset changes of channel k can explain
        a = torch.stack([y[:, 2 * k].flatten(), y[:, 2 * k + 1].flatten(), torch.ones_like(y[:, 0]).flatten()], 1)
        qs.append(torch.linalg.qr(a).Q)

    def project(t: torch.Tensor) -> torch.Tensor:  # (N, K, H, W) → the same, off the nuisance span per channel
        out = torch.empty_like(t)
        for k, q in enumerate(qs):
            v = t[:, k].flatten()
            out[:, k] = (v - q @ (q.T @ v)).reshape(t[:, k].shape)
        return out

    r = project(r)
    power = float(r.pow(2).sum())
    shifts, gains = [], []
    for j in range(len(DIRECTIONS)):
        nb = terms.neighbour[:, j]
        if not bool((nb >= 0).any()):
            shifts.append((0, 0))
            gains.append(0.0)
            continue
        src = y[:, nb.clamp_min(0)] * (nb >= 0).double().view(1, -1, 1, 1)
        best = (0.0, (0, 0))
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                g = project(_merge(shift_zero(src, dy, dx)))
                gg = float(g.pow(2).sum())
                if gg <= 0:
                    continue
                gr = float((g * r).sum())
                if gr > 0 and gr * gr / gg > best[0]:
                    best = (gr * gr / gg, (dy, dx))
        shifts.append(best[1])
        gains.append(best[0] / max(power, 1e-30))
    terms.ghost_shift.copy_(torch.tensor(shifts, dtype=torch.long))
    basis = torch.stack([project(_merge(g)).flatten() for g in terms.ghosts(y)], 1)  # (P, 4)
    sol = torch.linalg.lstsq(basis, r.flatten()[:, None]).solution.flatten()
    terms.crosstalk.copy_(sol.clamp_min(0))
    return {name: {"shift": list(s), "explained": v} for (name, _), s, v in zip(DIRECTIONS, shifts, gains)}


@torch.no_grad()
def fit_gain_map(device, x: torch.Tensor, frames: torch.Tensor, ridge: float = 0.05) -> None:
    """Least-squares gain-map coefficients of ``device.terms`` given everything else.

    The measured feature map is ``G⁺·z⁺ − G⁻·z⁻`` per tile pair (``z`` the irradiance before the
    gain map, the sensor linear in between), so with ``G = 1 + Σ_j a_j·B_j`` the residual of the
    map-free prediction is linear in ``a``: per channel one ``2J × 2J`` normal-equation system
    (per-pixel sums over the captures), solved with a relative ridge ``ridge``."""
    terms = device.terms
    basis = terms.gain_basis  # (J, H, W)
    j = len(basis)
    terms.gain_coef.zero_()
    z = terms(_base_images(device, x).double(), until="gain")  # (N, 2K, H, W)
    r = frames.double() - device(x, noise=False).double()  # gain map = 1 here
    b = basis.reshape(j, -1)
    coef = torch.zeros_like(terms.gain_coef)
    for k in range(z.shape[1] // 2):
        zp, zn = z[:, 2 * k].flatten(1), z[:, 2 * k + 1].flatten(1)  # (N, P)
        rk = r[:, k].flatten(1)
        spp, snn, spn = (zp * zp).sum(0), (zn * zn).sum(0), (zp * zn).sum(0)
        m = torch.cat([torch.cat([(b * spp) @ b.T, -(b * spn) @ b.T], 1),
                       torch.cat([-(b * spn) @ b.T, (b * snn) @ b.T], 1)], 0)
        rhs = torch.cat([b @ (zp * rk).sum(0), -(b @ (zn * rk).sum(0))])
        lam = ridge * float(m.diagonal().mean().clamp_min(1e-30))
        sol = torch.linalg.solve(m + lam * torch.eye(2 * j, dtype=m.dtype), rhs)
        coef[2 * k], coef[2 * k + 1] = sol[:j], sol[j:]
    terms.gain_coef.copy_(coef)


def adam_groups(terms: TileTerms, lr: float) -> list[dict]:
    """Adam parameter groups for the switched-on terms trained by gradient (not the gain map)."""
    return [{"params": ps, "lr": lr * TERM_LR[t]} for t, ps in terms.trainable().items() if t in TERM_LR]
