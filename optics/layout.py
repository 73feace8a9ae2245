"""Metasurface layout export: GDSII (gdstk) of pillars, HDF5 and PNG radius maps.

GDSII layout
------------
* units: 1 µm user unit, 1 nm database precision; pillars are circles (polygons with the
  ``tolerance`` chord error, default 1 nm) on ``layer``/``datatype``;
* one cell ``PILLAR_R<nm>`` per distinct radius (radii snapped to ``radius_grid``, default
  1 nm, below the fab's resolution) and one ``Reference`` per pillar in the top cell
  ``METASURFACE`` — compact even for 10⁶ pillars; flatten the top cell to get polygons;
* positions: grid cell (row i, column j) of the radius map holds ``p × p`` pillars on the
  lattice (``p = dx/period``, which must be an integer), centred on the cell; cell centres are
  ``x = (j − (N−1)/2)·dx``, ``y = ((N−1)/2 − i)·dx`` (row 0 at the top, optical axis at 0);
* pillars whose radius is below ``min_radius`` (half the minimum feature) are left out.

HDF5 radius map: dataset ``radii`` (N, N) float64 metres with attributes ``dx``, ``period``,
``height``, ``units = "m"``, ``wavelengths`` and ``provenance`` (JSON).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from neurohw.io import atomic_path, provenance

__all__ = ["pillar_positions", "export_gds", "read_gds_pillars", "save_radius_map", "load_radius_map", "plot_radius_map"]


def _pillars_per_cell(dx: float, period: float) -> int:
    p = dx / period
    if abs(p - round(p)) > 1e-6 or round(p) < 1:
        raise ValueError(f"layout: cell pitch {dx} m is not an integer multiple of the pillar period {period} m")
    return int(round(p))


def pillar_positions(radii, dx: float, period: float, min_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pillar centres ``(P, 2)`` (x, y) metres and radii ``(P,)`` metres for a radius map ``(N, N)``."""
    r = radii.detach().cpu().numpy() if isinstance(radii, torch.Tensor) else np.asarray(radii)
    if r.ndim != 2:
        raise ValueError(f"layout: radius map must be 2-D, got shape {r.shape}")
    n_y, n_x = r.shape
    p = _pillars_per_cell(dx, period)
    cy = ((n_y - 1) / 2 - np.arange(n_y)) * dx
    cx = (np.arange(n_x) - (n_x - 1) / 2) * dx
    off = (np.arange(p) - (p - 1) / 2) * period
    xs = (cx[None, :, None, None] + off[None, None, None, :]) + 0 * cy[:, None, None, None]
    ys = (cy[:, None, None, None] - off[None, None, :, None]) + 0 * cx[None, :, None, None]
    rr = np.broadcast_to(r[:, :, None, None], (n_y, n_x, p, p))
    xs, ys = np.broadcast_to(xs, rr.shape), np.broadcast_to(ys, rr.shape)
    # order: cell rows, sub-rows, cell columns, sub-columns (raster order of the pillar lattice)
    xs, ys, rr = (a.transpose(0, 2, 1, 3).reshape(-1) for a in (xs, ys, rr))
    keep = rr >= min_radius
    return np.stack([xs[keep], ys[keep]], axis=1), rr[keep].copy()


def export_gds(
    path,
    radii,
    dx: float,
    period: float,
    *,
    min_radius: float = 0.0,
    layer: int = 1,
    datatype: int = 0,
    radius_grid: float = 1e-9,
    tolerance: float = 1e-9,
) -> dict:
    """Write the pillars of a radius map to a GDSII file; returns counts and the file path."""
    import gdstk

    xy, rr = pillar_positions(radii, dx, period, min_radius)
    lib = gdstk.Library(name="NEUROHW_METASURFACE", unit=1e-6, precision=1e-9)
    top = lib.new_cell("METASURFACE")
    snapped = np.round(rr / radius_grid).astype(np.int64)
    cells = {}
    for q in np.unique(snapped):
        rad_um = float(q) * radius_grid * 1e6
        c = lib.new_cell(f"PILLAR_R{int(round(q * radius_grid * 1e12))}pm")
        c.add(gdstk.ellipse((0, 0), rad_um, tolerance=tolerance * 1e6, layer=layer, datatype=datatype))
        cells[int(q)] = c
    for (x, y), q in zip(xy * 1e6, snapped):
        top.add(gdstk.Reference(cells[int(q)], (float(x), float(y))))
    path = Path(path)
    with atomic_path(path, suffix=".gds") as tmp:
        lib.write_gds(str(tmp))
    return {"path": str(path), "pillars": int(len(rr)), "distinct_radii": len(cells), "layer": layer}


def read_gds_pillars(path, layer: int = 1, datatype: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Read a GDS written by :func:`export_gds` back: pillar centres ``(P, 2)`` m and radii ``(P,)`` m
    (from the flattened polygons' bounding boxes)."""
    import gdstk

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such GDS file")
    lib = gdstk.read_gds(str(path))
    tops = [c for c in lib.top_level() if c.name == "METASURFACE"]
    if not tops:
        raise ValueError(f"{path}: no top cell named METASURFACE")
    polys = tops[0].get_polygons(layer=layer, datatype=datatype)
    if not polys:
        return np.zeros((0, 2)), np.zeros(0)
    bb = np.array([np.concatenate(p.bounding_box()) for p in polys])  # x0, y0, x1, y1 (µm)
    centres = np.stack([(bb[:, 0] + bb[:, 2]) / 2, (bb[:, 1] + bb[:, 3]) / 2], 1) * 1e-6
    radii = ((bb[:, 2] - bb[:, 0]) + (bb[:, 3] - bb[:, 1])) / 4 * 1e-6
    return centres, radii


def save_radius_map(path, radii, dx: float, period: float, height: float, wavelengths=(), config: dict | None = None, seed: int | None = None) -> Path:
    """Write the radius map to HDF5 (atomic)."""
    import h5py

    r = radii.detach().cpu().double().numpy() if isinstance(radii, torch.Tensor) else np.asarray(radii, dtype=float)
    path = Path(path)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            d = f.create_dataset("radii", data=r, compression="gzip")
            d.attrs["units"] = "m"
            f.attrs["dx"] = dx
            f.attrs["period"] = period
            f.attrs["height"] = height
            f.attrs["wavelengths"] = np.asarray(wavelengths, dtype=float)
            f.attrs["provenance"] = json.dumps(provenance(seed=seed, config=config or {}))
    return path


def load_radius_map(path) -> tuple[torch.Tensor, dict]:
    """Read a radius map written by :func:`save_radius_map` → (radii (N, N) float64 m, attributes)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        if "radii" not in f:
            raise ValueError(f"{path}: missing dataset 'radii'")
        r = f["radii"][()]
        if r.ndim != 2 or not np.all(np.isfinite(r)):
            raise ValueError(f"{path}: dataset 'radii' must be a finite 2-D array, got shape {r.shape}")
        attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
    return torch.from_numpy(r), attrs


def plot_radius_map(path, radii, dx: float, title: str = "pillar radius") -> Path:
    """PNG of the radius map in nm (axes in µm)."""
    import matplotlib.pyplot as plt

    from optics.plots import plot_radius

    plt.close(plot_radius(radii, dx, path=path, title=title))
    return Path(path)
