"""Match the bench's laser PSF captures (``calibration/psf``, K of them) to the device's tiles.

A capture file may hold any number K of laser PSFs. They are matched to the ``T`` PSF tiles
of the device (``DeviceFrontEnd.centres``, (T, 2), sensor pixels (y, x) from the optical
axis) by position:

* with ``calibration/psf_positions`` (K, 2) — each PSF goes to the tile whose centre is
  nearest, which must lie within half the smallest tile spacing; two PSFs on one tile or a
  PSF far from every tile is a :class:`PSFMatchError` naming the PSF and its position;
* without positions, K == T PSFs are taken in tile order (what the virtual lab writes); any
  other K cannot be matched and is reported as unmatched (``PSFMatch.note``), never guessed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.captures import CaptureFormatError


class PSFMatchError(CaptureFormatError):
    """The file's laser PSF positions do not fit the device's tile layout."""


@dataclass
class PSFMatch:
    """``tile_to_psf[t]`` is the PSF index of tile ``t`` or -1 (no PSF); ``note`` explains gaps."""

    tile_to_psf: np.ndarray
    n_psf: int
    by: str  # "position", "order" or "none"
    note: str = ""
    distances_px: list = field(default_factory=list)

    @property
    def matched(self) -> int:
        return int((self.tile_to_psf >= 0).sum())

    def to_dict(self) -> dict:
        return {"n_psf": self.n_psf, "n_tiles": int(len(self.tile_to_psf)), "matched": self.matched, "by": self.by,
                "tile_to_psf": self.tile_to_psf.tolist(), "note": self.note,
                "distances_px": [round(float(d), 4) for d in self.distances_px]}

    def per_tile(self, psf: np.ndarray) -> list[np.ndarray | None]:
        """The PSF image for every tile (None where unmatched)."""
        return [psf[k] if k >= 0 else None for k in self.tile_to_psf]


def match_psfs(n_psf: int, centres: np.ndarray, positions: np.ndarray | None = None, *, where: str = "captures") -> PSFMatch:
    """Match ``n_psf`` PSFs to tiles at ``centres`` (T, 2); see the module docstring."""
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    t = len(centres)
    out = np.full(t, -1, dtype=np.int64)
    if positions is None:
        if n_psf == t:
            return PSFMatch(np.arange(t), n_psf, "order")
        return PSFMatch(out, n_psf, "none",
                        note=f"{where}: /calibration/psf holds {n_psf} PSFs but the device has {t} tiles and the file has "
                             "no /calibration/psf_positions to match them by position; laser PSFs not used")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (n_psf, 2):
        raise PSFMatchError(f"{where}: /calibration/psf_positions has shape {pos.shape}, expected ({n_psf}, 2) "
                            "(one (y, x) per PSF in /calibration/psf)")
    if not np.all(np.isfinite(pos)):
        raise PSFMatchError(f"{where}: /calibration/psf_positions has non-finite values")
    if t > 1:
        dd = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
        tol = 0.5 * float(dd[~np.eye(t, dtype=bool)].min())
    else:
        tol = np.inf
    dist = np.linalg.norm(pos[:, None] - centres[None], axis=-1)  # (K, T)
    nearest = dist.argmin(1)
    dists = []
    for k in range(n_psf):
        tile, d = int(nearest[k]), float(dist[k, nearest[k]])
        if d > tol:
            raise PSFMatchError(f"{where}: /calibration/psf_positions[{k}] = ({pos[k, 0]:g}, {pos[k, 1]:g}) px is {d:.2f} px "
                                f"from the nearest tile centre (tile {tile}); tiles are matched within {tol:.2f} px")
        if out[tile] >= 0:
            raise PSFMatchError(f"{where}: /calibration/psf_positions[{k}] and [{out[tile]}] both match tile {tile}")
        out[tile] = k
        dists.append(d)
    missing = np.flatnonzero(out < 0)
    note = "" if not len(missing) else f"{where}: tiles {missing.tolist()} have no laser PSF"
    return PSFMatch(out, n_psf, "position", note=note, distances_px=dists)


#: Values of ``CalibrationConfig.use_laser_psfs``.
LASER_PSF_MODES = ("off", "replace", "correct")


def psf_response(psf: np.ndarray, design: np.ndarray, image_size: int, *, where: str) -> np.ndarray:
    """One laser PSF capture, checked, as the tile's response image ``(H', W')`` to a unit point.

    ``psf``: the tile's response to a unit point at image pixel ``(image_size // 2,)*2``, either
    the full tile image ``(H', W')`` (``H' = image_size - k + 1``, what the virtual lab writes) or
    the ``(k, k)`` window of it that holds the point's response (placed back into a zero image).
    Negative values (dark subtraction leaves small negative noise) are clipped at zero (light
    intensity). ``design``: the matched design tile ``(C, k, k)``. The twin turns the response
    into a tile kernel through its own geometry
    (:meth:`calibration.device_refit.OpticsTwin.laser_kernels_from_responses`).

    Raises :class:`PSFMatchError` naming ``where`` (the file and ``/calibration/psf[i]``) on a
    shape that is neither, a non-finite value, or no positive energy in the response window.
    """
    _, k, _ = design.shape
    out = image_size - k + 1
    c = image_size // 2
    a = np.asarray(psf, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise PSFMatchError(f"{where} has non-finite values (NaN or inf); the laser PSF cannot be used")
    if a.shape == (k, k):
        full = np.zeros((out, out))
        full[c - k + 1:c + 1, c - k + 1:c + 1] = a
        a = full
    elif a.shape != (out, out):
        raise PSFMatchError(f"{where} has shape {a.shape}; expected the tile image ({out}, {out}) or its response "
                            f"window ({k}, {k}) for tiles of {k}x{k} on {image_size}x{image_size} images")
    a = np.clip(a, 0.0, None)
    energy = float(a[c - k + 1:c + 1, c - k + 1:c + 1].sum())
    if not energy > 0:
        raise PSFMatchError(f"{where} has no positive energy in its {k}x{k} response window (sum of the positive part "
                            f"{energy:g}); the laser PSF cannot be used")
    if not float(design.sum()) > 0:
        raise PSFMatchError(f"{where}: the matched design tile has no positive energy to normalise to")
    return a


def psf_responses(psf: np.ndarray, match: PSFMatch, design: np.ndarray, image_size: int, *, where: str = "captures"
                  ) -> list[np.ndarray | None]:
    """:func:`psf_response` for every matched tile (None for unmatched tiles); ``design`` (T, C, k, k)."""
    psf = np.asarray(psf)
    if psf.ndim != 3:
        raise PSFMatchError(f"{where}: /calibration/psf has shape {psf.shape}; expected (K, h, w) laser PSF images")
    if len(match.tile_to_psf) != len(design):
        raise PSFMatchError(f"{where}: the PSF match covers {len(match.tile_to_psf)} tiles but the device has {len(design)}")
    return [None if i < 0 else psf_response(psf[i], design[t], image_size, where=f"{where}: /calibration/psf[{i}]")
            for t, i in enumerate(match.tile_to_psf)]
