"""A device model from a PSF measured in the lab (or imported from another simulator).

A **PSF stack** file holds the sensor-pixel PSF of the whole metasurface for an on-axis point
source, one image per wavelength — what :func:`optics.design.simulate_psf` computes for a
design:

* ``.npz`` — array ``psf`` ``(L, M, M)`` (or ``(M, M)`` for one wavelength), optional arrays
  ``wavelengths_nm`` ``(L,)`` and ``pixel_pitch_um`` (scalar);
* ``.h5`` / ``.hdf5`` — dataset ``psf`` of the same shape, optional attributes
  ``wavelengths_nm`` and ``pixel_pitch_um`` on it.

Values: relative intensity per sensor pixel, dark-subtracted (small negative values from the
subtraction, down to ``−1e-3 × max``, are clipped to 0; anything more negative is an error).
:func:`measured_frontend` cuts the design's tile windows out of it
(:func:`optics.design.extract_tiles`) and scales them to kernel units with the design's
``scale``; with ``normalise="design"`` (default; a bench rarely knows the absolute power) the
stack is first rescaled to the design PSF's total power, with ``"absolute"`` it is taken as the
fraction of incident power per pixel. ``kind="wave"`` gives a
:class:`~optics.design.WaveFrontEnd` instead (full-field convolution with the measured PSF, so
light that falls between or across tile windows — cross-talk — is kept).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["PSFStackError", "load_psf_stack", "save_psf_stack", "measured_frontend", "auto_expose"]


class PSFStackError(ValueError):
    """A PSF stack file is missing, malformed or does not fit the design (message names the file)."""


def load_psf_stack(path: str | os.PathLike) -> dict:
    """Read a PSF stack file (module docstring) → ``{"psf": (L, M, M) float32 tensor,
    "wavelengths_nm": list | None, "pixel_pitch_um": float | None, "path": str}``."""
    p = Path(path)
    if not p.exists():
        raise PSFStackError(f"{p}: no such PSF stack file")
    suffix = p.suffix.lower()
    wl = pitch = None
    try:
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "psf" not in z.files:
                    raise PSFStackError(f"{p}: no array 'psf' (arrays: {', '.join(z.files) or 'none'})")
                psf = np.asarray(z["psf"])
                wl = np.asarray(z["wavelengths_nm"]).reshape(-1).tolist() if "wavelengths_nm" in z.files else None
                pitch = float(np.asarray(z["pixel_pitch_um"]).reshape(())) if "pixel_pitch_um" in z.files else None
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(p, "r") as fh:
                if "psf" not in fh or not isinstance(fh["psf"], h5py.Dataset):
                    raise PSFStackError(f"{p}: no dataset /psf")
                d = fh["psf"]
                psf = np.asarray(d[()])
                wl = np.asarray(d.attrs["wavelengths_nm"]).reshape(-1).tolist() if "wavelengths_nm" in d.attrs else None
                pitch = float(np.asarray(d.attrs["pixel_pitch_um"]).reshape(())) if "pixel_pitch_um" in d.attrs else None
        else:
            raise PSFStackError(f"{p}: a PSF stack is .npz or .h5/.hdf5, not {suffix or 'no suffix'}")
    except PSFStackError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise PSFStackError(f"{p}: cannot read the PSF stack ({e})") from e
    if psf.ndim == 2:
        psf = psf[None]
    if psf.ndim != 3 or psf.shape[-1] != psf.shape[-2] or 0 in psf.shape:
        raise PSFStackError(f"{p}: /psf must be (L, M, M) or (M, M), got {tuple(psf.shape)}")
    if not np.issubdtype(psf.dtype, np.floating) and not np.issubdtype(psf.dtype, np.integer):
        raise PSFStackError(f"{p}: /psf has dtype {psf.dtype}, expected a real number type")
    psf = psf.astype(np.float64)
    if not np.isfinite(psf).all():
        raise PSFStackError(f"{p}: /psf contains NaN or Inf")
    peak = float(psf.max())
    if peak <= 0:
        raise PSFStackError(f"{p}: /psf has no positive value")
    if float(psf.min()) < -1e-3 * peak:
        raise PSFStackError(f"{p}: /psf has values down to {psf.min():.4g} (below −1e-3 × max {peak:.4g}); "
                            "a PSF is an intensity — check the dark subtraction")
    if wl is not None and len(wl) != psf.shape[0]:
        raise PSFStackError(f"{p}: wavelengths_nm has {len(wl)} entries for {psf.shape[0]} PSF images")
    return {"psf": torch.from_numpy(psf.clip(min=0.0)).float(), "wavelengths_nm": wl, "pixel_pitch_um": pitch, "path": str(p)}


def save_psf_stack(path: str | os.PathLike, psf, *, wavelengths_nm=None, pixel_pitch_um: float | None = None) -> Path:
    """Write a PSF stack (``.npz`` or ``.h5``), atomically (temporary file, then rename)."""
    from neurohw.io import atomic_path

    p = Path(path)
    a = np.asarray(psf.detach().cpu() if isinstance(psf, torch.Tensor) else psf, dtype=np.float32)
    suffix = p.suffix.lower()
    if suffix not in (".npz", ".h5", ".hdf5"):
        raise PSFStackError(f"{p}: a PSF stack is .npz or .h5/.hdf5, not {suffix or 'no suffix'}")
    with atomic_path(p, suffix=suffix) as tmp:
        if suffix == ".npz":
            extra = {}
            if wavelengths_nm is not None:
                extra["wavelengths_nm"] = np.asarray(wavelengths_nm, dtype=np.float64)
            if pixel_pitch_um is not None:
                extra["pixel_pitch_um"] = np.asarray(float(pixel_pitch_um))
            with open(tmp, "wb") as fh:
                np.savez(fh, psf=a, **extra)
        else:
            import h5py

            with h5py.File(tmp, "w") as fh:
                d = fh.create_dataset("psf", data=a)
                if wavelengths_nm is not None:
                    d.attrs["wavelengths_nm"] = np.asarray(wavelengths_nm, dtype=np.float64)
                if pixel_pitch_um is not None:
                    d.attrs["pixel_pitch_um"] = float(pixel_pitch_um)
    return p


def measured_frontend(design, stack: dict | str | os.PathLike, sensor=None, *, normalise: str = "design",
                      kind: str = "tiles", image_size: int | None = None):
    """A device front-end of ``design`` whose PSF is the measured ``stack`` (module docstring).

    ``stack``: a :func:`load_psf_stack` dict or a path. Checks the stack against the design:
    PSF size M = the design's sensor pixels, L = its wavelengths, and — when the file records
    them — the wavelengths (0.5 nm) and pixel pitch (1 %). Returns a
    :class:`~optics.frontend.DeviceFrontEnd` (``kind="tiles"``) or a
    :class:`~optics.design.WaveFrontEnd` (``kind="wave"``).
    """
    from optics.design import WaveFrontEnd, extract_tiles

    st = load_psf_stack(stack) if not isinstance(stack, dict) else stack
    where = st.get("path", "PSF stack")
    psf = st["psf"]
    cfg = design.config
    m = cfg.sensor_pixels
    if psf.shape[-1] != m:
        raise PSFStackError(f"{where}: /psf is {psf.shape[-1]}×{psf.shape[-1]} pixels but the design's sensor is {m}×{m}")
    if psf.shape[0] != len(cfg.wavelengths):
        raise PSFStackError(f"{where}: /psf has {psf.shape[0]} wavelength image(s), the design {len(cfg.wavelengths)}")
    if st.get("wavelengths_nm") is not None:
        want = [w * 1e9 for w in cfg.wavelengths]
        if any(abs(a - b) > 0.5 for a, b in zip(st["wavelengths_nm"], want)):
            raise PSFStackError(f"{where}: wavelengths_nm {st['wavelengths_nm']} differ from the design's {want}")
    if st.get("pixel_pitch_um") is not None:
        want = cfg.pixel_pitch * 1e6
        if abs(st["pixel_pitch_um"] - want) > 0.01 * want:
            raise PSFStackError(f"{where}: pixel_pitch_um {st['pixel_pitch_um']} differs from the design's {want:.4g}")
    if normalise == "design":
        psf = psf * (design.psf.sum() / psf.sum().clamp_min(1e-30))
    elif normalise != "absolute":
        raise ValueError(f"measured_frontend: normalise must be 'design' or 'absolute', got {normalise!r}")
    size = image_size or design.layout.image_size
    if kind == "tiles":
        from optics.frontend import DeviceFrontEnd

        return DeviceFrontEnd(extract_tiles(psf, design.layout) * design.scale, design.layout, sensor=sensor, image_size=size)
    if kind == "wave":
        return WaveFrontEnd(psf * design.scale, design.layout, sensor=sensor, image_size=size)
    raise ValueError(f"measured_frontend: kind must be 'tiles' or 'wave', got {kind!r}")


def auto_expose(fe, x: torch.Tensor, fill: float = 0.8, quantile: float = 0.999) -> float:
    """Set ``fe``'s sensor exposure so the ``quantile`` of tile irradiance over ``x`` fills ``fill``
    of the well (as :meth:`optics.frontend.DeviceFrontEnd.auto_expose`, for either front-end kind)."""
    with torch.no_grad():
        y = fe.tile_images(x)
        peak = float(torch.quantile(y.flatten()[:: max(1, y.numel() // 1_000_000)].float(), quantile))
    fe.sensor.set_exposure(peak, fill)
    return fe.sensor.config.electrons_per_unit
