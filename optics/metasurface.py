"""Metasurface unit cells: pillar radius → (phase, transmission) per wavelength, and a height-map DOE.

Pillar proxy
------------
:class:`PillarProxy` maps a pillar radius (metres) to the transmitted phase (radians,
unwrapped) and amplitude at each design wavelength through a **smooth fitted function**: a
polynomial of degree ``degree`` in the normalised radius ``u = (r - r_lo)/(r_hi - r_lo)``,
one set of coefficients per wavelength for the phase and one for the amplitude
(``phase_coef``/``amp_coef``, shape ``(L, degree+1)``, highest power first as in
``numpy.polyfit``). The fit is made by :meth:`PillarProxy.from_table` from any lookup table
— load your own (e.g. from an RCWA solver) with :meth:`from_csv` / :meth:`from_hdf5`.

The **default table** (:func:`effective_index_table`) is a physics-motivated stand-in, not an
RCWA result: silicon-nitride pillars (n = 2.02, 750 nm tall) on a 293 nm square lattice in
air; the effective index of a cell is the area-weighted permittivity
``n_eff² = f n_p² + (1 - f)`` with fill factor ``f = π r²/P²``, the phase is
``2π h (n_eff − 1)/λ`` and the amplitude the two-interface Fresnel transmission
``4 n_eff/(1 + n_eff)²``. It reproduces the qualitative behaviour (monotone phase, > 2π
coverage at 450–532 nm, ~1.2·2π at 635 nm) that the design needs.

Fabrication constraints
-----------------------
:class:`FabConstraints`: minimum feature (pillar diameter and gap between pillars, 60 nm by
default) gives the radius limits ``[min_feature/2, (P - min_feature)/2]``; optional
quantisation to ``levels`` radii; :meth:`FabConstraints.apply` projects radii onto what can be
made (straight-through gradient for the quantisation).

Height-map DOE
--------------
:class:`HeightMapDOE`: a diffractive element of one material (refractive index ``n`` per
wavelength, default fused silica) whose phase is ``2π (n − 1) h/λ``; heights limited to
``[0, max_height]`` and quantised to ``levels`` etching levels.
"""
from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "DEFAULT_WAVELENGTHS",
    "FabConstraints",
    "HeightMapDOE",
    "PillarProxy",
    "effective_index_table",
    "fused_silica_index",
]

#: R, G, B design wavelengths of the related public design code (metres).
DEFAULT_WAVELENGTHS = (635e-9, 532e-9, 450e-9)


@dataclass
class FabConstraints:
    """What the fab can make. Lengths in metres."""

    period: float = 293e-9
    height: float = 750e-9
    min_feature: float = 60e-9
    levels: int | None = None  # None: continuous radii

    @property
    def r_min(self) -> float:
        return self.min_feature / 2

    @property
    def r_max(self) -> float:
        return (self.period - self.min_feature) / 2

    def __post_init__(self):
        if self.r_max <= self.r_min:
            raise ValueError(f"FabConstraints: min_feature {self.min_feature} leaves no radius range in a {self.period} period")

    def level_values(self, device=None, dtype=torch.float32) -> torch.Tensor:
        if not self.levels:
            raise ValueError("FabConstraints.levels is not set")
        return torch.linspace(self.r_min, self.r_max, int(self.levels), device=device, dtype=dtype)

    def apply(self, radius: torch.Tensor) -> torch.Tensor:
        """Clip to the radius limits and (if ``levels``) snap to the nearest level (STE gradient)."""
        r = radius.clamp(self.r_min, self.r_max)
        if self.levels:
            step = (self.r_max - self.r_min) / (int(self.levels) - 1)
            q = torch.round((r - self.r_min) / step) * step + self.r_min
            r = r + (q - r).detach()
        return r

    def to_dict(self) -> dict:
        return asdict(self)


def effective_index_table(
    wavelengths: Sequence[float] = DEFAULT_WAVELENGTHS,
    constraints: FabConstraints | None = None,
    n_pillar: float = 2.02,
    n_points: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The default lookup table (see the module docstring): ``radii (R,)``, ``phase (L, R)``, ``amplitude (L, R)``."""
    fc = constraints or FabConstraints()
    r = np.linspace(fc.r_min, fc.r_max, n_points)
    f = np.pi * r**2 / fc.period**2
    neff = np.sqrt(f * n_pillar**2 + (1 - f))
    wl = np.asarray(wavelengths, dtype=float).reshape(-1, 1)
    phase = 2 * np.pi * fc.height * (neff - 1) / wl
    amp = np.broadcast_to(4 * neff / (1 + neff) ** 2, phase.shape).copy()
    return r, phase, amp


class PillarProxy(nn.Module):
    """Smooth radius → phase/amplitude proxy (see the module docstring).

    ``forward(radius)`` with radius ``(..., Ny, Nx)`` (metres) returns ``(phase, amplitude)``
    of shape ``(..., L, Ny, Nx)``. ``height_scale`` (broadcastable to radius) multiplies the
    phase delay — the effective-index model's first-order effect of a pillar height error.
    """

    def __init__(self, wavelengths: Sequence[float], r_lo: float, r_hi: float, phase_coef: np.ndarray, amp_coef: np.ndarray):
        super().__init__()
        self.wavelengths = tuple(float(w) for w in wavelengths)
        self.r_lo, self.r_hi = float(r_lo), float(r_hi)
        pc, ac = np.asarray(phase_coef, dtype=float), np.asarray(amp_coef, dtype=float)
        if pc.shape[0] != len(self.wavelengths) or ac.shape[0] != len(self.wavelengths):
            raise ValueError("PillarProxy: one row of coefficients per wavelength is needed")
        self.register_buffer("phase_coef", torch.tensor(pc, dtype=torch.float64))
        self.register_buffer("amp_coef", torch.tensor(ac, dtype=torch.float64))

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_table(cls, radii, phase, amplitude=None, wavelengths=DEFAULT_WAVELENGTHS, degree: int = 6) -> "PillarProxy":
        """Fit the proxy to a table: ``radii (R,)`` metres, ``phase (L, R)`` rad (unwrapped along R
        here), ``amplitude (L, R)`` (default 1)."""
        r = np.asarray(radii, dtype=float)
        ph = np.atleast_2d(np.asarray(phase, dtype=float))
        amp = np.ones_like(ph) if amplitude is None else np.atleast_2d(np.asarray(amplitude, dtype=float))
        if ph.shape != amp.shape or ph.shape[1] != r.shape[0]:
            raise ValueError(f"PillarProxy.from_table: radii {r.shape}, phase {ph.shape}, amplitude {amp.shape} do not agree")
        if ph.shape[0] != len(wavelengths):
            raise ValueError(f"PillarProxy.from_table: {ph.shape[0]} phase rows for {len(wavelengths)} wavelengths")
        if r.size < degree + 1:
            raise ValueError(f"PillarProxy.from_table: {r.size} radii are too few for a degree-{degree} fit")
        order = np.argsort(r)
        r, ph, amp = r[order], np.unwrap(ph[:, order], axis=1), amp[:, order]
        lo, hi = r[0], r[-1]
        u = (r - lo) / (hi - lo)
        pc = np.stack([np.polyfit(u, row, degree) for row in ph])
        ac = np.stack([np.polyfit(u, row, min(degree, 4)) for row in amp])
        ac = np.pad(ac, ((0, 0), (pc.shape[1] - ac.shape[1], 0)))
        return cls(wavelengths, lo, hi, pc, ac)

    @classmethod
    def default(cls, wavelengths: Sequence[float] = DEFAULT_WAVELENGTHS, constraints: FabConstraints | None = None) -> "PillarProxy":
        """The proxy fitted to :func:`effective_index_table`."""
        r, ph, amp = effective_index_table(wavelengths, constraints)
        return cls.from_table(r, ph, amp, wavelengths)

    @classmethod
    def from_csv(cls, path, degree: int = 6) -> "PillarProxy":
        """Load a table from CSV with header ``wavelength_nm,radius_nm,phase_rad[,transmission]``
        (one row per (wavelength, radius); transmission is the amplitude, default 1)."""
        path = Path(path)
        try:
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read pillar table ({exc})") from exc
        need = {"wavelength_nm", "radius_nm", "phase_rad"}
        if not rows or not need <= set(rows[0]):
            raise ValueError(f"{path}: pillar table needs columns {sorted(need)} (+ optional transmission)")
        by_wl: dict[float, list[tuple[float, float, float]]] = {}
        for i, row in enumerate(rows, start=2):
            try:
                wl, r, p = float(row["wavelength_nm"]), float(row["radius_nm"]), float(row["phase_rad"])
                t = float(row["transmission"]) if row.get("transmission") not in (None, "") else 1.0
            except ValueError as exc:
                raise ValueError(f"{path}:{i}: not a number ({exc})") from exc
            if not all(math.isfinite(v) for v in (wl, r, p, t)):
                raise ValueError(f"{path}:{i}: non-finite value")
            by_wl.setdefault(wl, []).append((r, p, t))
        wls = sorted(by_wl, reverse=True)
        radii = sorted({r for r, _, _ in by_wl[wls[0]]})
        ph, am = [], []
        for wl in wls:
            table = {r: (p, t) for r, p, t in by_wl[wl]}
            if sorted(table) != radii:
                raise ValueError(f"{path}: wavelength {wl} nm has a different set of radii than {wls[0]} nm")
            ph.append([table[r][0] for r in radii])
            am.append([table[r][1] for r in radii])
        return cls.from_table(np.array(radii) * 1e-9, np.array(ph), np.array(am), [w * 1e-9 for w in wls], degree)

    @classmethod
    def from_hdf5(cls, path, degree: int = 6) -> "PillarProxy":
        """Load a table from HDF5 datasets ``wavelengths`` (L,) m, ``radii`` (R,) m,
        ``phase`` (L, R) rad and optional ``transmission`` (L, R)."""
        import h5py

        path = Path(path)
        with h5py.File(path, "r") as f:
            for name in ("wavelengths", "radii", "phase"):
                if name not in f:
                    raise ValueError(f"{path}: missing dataset '{name}' (need wavelengths, radii, phase[, transmission])")
            wl, r, ph = f["wavelengths"][()], f["radii"][()], f["phase"][()]
            amp = f["transmission"][()] if "transmission" in f else None
        for name, arr in (("wavelengths", wl), ("radii", r), ("phase", ph)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{path}: dataset '{name}' has non-finite values")
        return cls.from_table(r, ph, amp, list(np.atleast_1d(wl)), degree)

    def to_csv(self, path, n_points: int = 64) -> Path:
        """Write the proxy sampled at ``n_points`` radii in the CSV format :meth:`from_csv` reads."""
        from neurohw.io import atomic_path

        r = torch.linspace(self.r_lo, self.r_hi, n_points, dtype=torch.float64)
        with torch.no_grad():
            ph, amp = self(r)
        with atomic_path(path, suffix=".csv") as tmp:
            with tmp.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["wavelength_nm", "radius_nm", "phase_rad", "transmission"])
                for li, wl in enumerate(self.wavelengths):
                    for ri in range(n_points):
                        w.writerow([f"{wl * 1e9:.6g}", f"{float(r[ri]) * 1e9:.9g}", f"{float(ph[li, ri]):.12g}", f"{float(amp[li, ri]):.12g}"])
        return Path(path)

    # -- evaluation ------------------------------------------------------------------------
    def _poly(self, coef: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((coef.shape[0],) + u.shape, dtype=u.dtype, device=u.device)
        for j in range(coef.shape[1]):
            out = out * u + coef[:, j].to(u).reshape((-1,) + (1,) * u.ndim)
        return out

    def forward(self, radius: torch.Tensor, height_scale: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        u = (radius - self.r_lo) / (self.r_hi - self.r_lo)
        ph = self._poly(self.phase_coef, u)  # (L, ...)
        amp = self._poly(self.amp_coef, u).clamp(0.0, 1.0)
        ph = ph * height_scale if not isinstance(height_scale, float) or height_scale != 1.0 else ph
        lead = radius.ndim - 2
        if lead > 0:  # move the wavelength axis to -3
            perm = list(range(1, lead + 1)) + [0, lead + 1, lead + 2]
            ph, amp = ph.permute(perm), amp.permute(perm)
        return ph, amp

    def phase_range(self) -> torch.Tensor:
        """Phase coverage (rad) per wavelength over the proxy's radius range."""
        r = torch.linspace(self.r_lo, self.r_hi, 256, dtype=torch.float64)
        with torch.no_grad():
            ph, _ = self(r)
        return ph.max(dim=-1).values - ph.min(dim=-1).values

    def radius_for_phase(self, phase: torch.Tensor, wavelength_index: int = 0, n_grid: int = 512) -> torch.Tensor:
        """Invert the proxy at one wavelength: the radius whose phase is closest to ``phase`` modulo 2π."""
        r = torch.linspace(self.r_lo, self.r_hi, n_grid, dtype=torch.float64, device=phase.device)
        with torch.no_grad():
            ph, _ = self(r)
        table = ph[wavelength_index]
        d = torch.remainder(phase.double().unsqueeze(-1) - table, 2 * math.pi)
        d = torch.minimum(d, 2 * math.pi - d)
        return r[d.argmin(dim=-1)].to(torch.float32)


def fused_silica_index(wavelength: float) -> float:
    """Refractive index of fused silica (Malitson's Sellmeier equation), wavelength in metres."""
    l2 = (wavelength * 1e6) ** 2
    n2 = 1 + 0.6961663 * l2 / (l2 - 0.0684043**2) + 0.4079426 * l2 / (l2 - 0.1162414**2) + 0.8974794 * l2 / (l2 - 9.896161**2)
    return math.sqrt(n2)


class HeightMapDOE(nn.Module):
    """Height-map diffractive element: ``phase = 2π (n(λ) − 1) h / λ``, amplitude 1.

    ``forward(height)`` with heights ``(..., Ny, Nx)`` in metres → ``(phase, amplitude)`` of shape
    ``(..., L, Ny, Nx)``. ``max_height`` defaults to one 2π wave at the longest wavelength;
    ``levels`` quantises heights (straight-through gradient).
    """

    def __init__(self, wavelengths: Sequence[float] = DEFAULT_WAVELENGTHS, index=None, max_height: float | None = None, levels: int | None = None):
        super().__init__()
        self.wavelengths = tuple(float(w) for w in wavelengths)
        idx = [fused_silica_index(w) for w in self.wavelengths] if index is None else list(np.broadcast_to(index, len(self.wavelengths)))
        self.register_buffer("index", torch.tensor(idx, dtype=torch.float64))
        lmax = max(self.wavelengths)
        self.max_height = float(max_height if max_height is not None else lmax / (idx[int(np.argmax(self.wavelengths))] - 1))
        self.levels = levels

    def radius_for_phase(self, phase: torch.Tensor, wavelength_index: int = 0) -> torch.Tensor:
        """The height (within ``[0, max_height]``) giving ``phase`` modulo 2π at one wavelength."""
        wl = self.wavelengths[wavelength_index]
        per_rad = wl / (2 * math.pi * (float(self.index[wavelength_index]) - 1))
        h = torch.remainder(phase.double(), 2 * math.pi) * per_rad
        return h.clamp(0.0, self.max_height).to(torch.float32)

    def constrain(self, height: torch.Tensor) -> torch.Tensor:
        h = height.clamp(0.0, self.max_height)
        if self.levels:
            step = self.max_height / (int(self.levels) - 1)
            h = h + (torch.round(h / step) * step - h).detach()
        return h

    def forward(self, height: torch.Tensor, height_scale: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.constrain(height) * height_scale
        wl = torch.tensor(self.wavelengths, dtype=h.dtype, device=h.device)
        n = self.index.to(h)
        shape = (-1,) + (1,) * 2
        ph = 2 * math.pi * (n.reshape(shape) - 1) * h.unsqueeze(-3) / wl.reshape(shape)
        return ph, torch.ones_like(ph)
