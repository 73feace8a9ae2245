"""The virtual lab: show a dataset to a simulated fabricated optical device and write captures.

The stand-in for a lab bench. A fabricated instance is drawn from the model bundle's
fabrication model with a **hidden seed** (random unless given, and never written to the
file), its camera is auto-exposed once on the first images shown, and every image's
measured feature maps are written with :class:`~calibration.captures.CaptureWriter` —
exactly the file a real bench would produce, read back by the same strict reader.

Exposure bookkeeping. The simulated sensor's exposure is its photo-electrons per feature
unit (``electrons_per_unit``); the virtual light source delivers
:data:`SOURCE_FLUX` photo-electrons per feature unit per second, so the recorded exposure
time is ``electrons_per_unit / SOURCE_FLUX`` seconds, and the flux is written to the root
attribute ``extra`` (a lab knows its source). ``measured/gain`` is the conversion gain in
DN/e⁻.

Besides the captures, the bench records ``dark_frames`` (no light; feature units) and,
with ``psf=True``, laser PSF captures: a single bright input pixel at the image centre,
averaged over ``psf_frames`` exposures taken with their own exposure setting, one response
per PSF tile (dark-subtracted, divided by the point's intensity: ``(2K, h, w)``).

``frame_kind="sensor_frame"`` writes the raw per-tile sensor images ``(N, 2K, H, W)`` (and
dark frames likewise) instead of the digitally combined feature maps; ``device=`` captures
with a given device (e.g. :class:`calibration.virtual_devices.OutOfFamilyDevice`, anything
with ``tile_images``, ``sensor``, ``generator``, ``centres``, ``image_size``, ``in_channels``)
instead of drawing one from the bundle's fabrication model.
"""
from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path

import numpy as np
import torch

from calibration.captures import CaptureWriter

#: Photo-electrons per feature unit per second delivered by the virtual lab's light source.
SOURCE_FLUX = 1.0e6


def draw_device(om, device_seed: int | None = None, exposure_images: torch.Tensor | None = None):
    """Draw a fabricated instance (hidden seed) and auto-expose its camera on ``exposure_images``."""
    seed = secrets.randbelow(2**31 - 1) if device_seed is None else int(device_seed)
    inst = om.fabrication_model().draw(seed)
    if exposure_images is not None:
        inst.auto_expose(exposure_images)
    return inst


@torch.no_grad()
def measure_psf(inst, n_frames: int = 8, fill: float = 0.8) -> np.ndarray:
    """Laser PSF captures of every tile ``(2K, h, w)``: mean of ``n_frames`` dark-subtracted frames.

    A point of intensity 1 at the image centre is shown with an exposure chosen so that the
    brightest tile response fills ``fill`` of the well (saved and restored afterwards).
    """
    size = inst.image_size
    point = torch.zeros(1, inst.in_channels, size, size)
    point[..., size // 2, size // 2] = 1.0
    irr = inst.tile_images(point)
    dark_in = inst.tile_images(torch.zeros_like(point))
    cfg = inst.sensor.config
    saved = cfg.electrons_per_unit
    try:
        inst.sensor.set_exposure(float((irr - dark_in).amax().clamp_min(1e-12)), fill)
        frames = torch.stack([inst.sensor(irr, noise=True, generator=inst.generator)[0] for _ in range(n_frames)])
        darks = torch.stack([inst.sensor(dark_in, noise=True, generator=inst.generator)[0] for _ in range(n_frames)])
    finally:
        cfg.electrons_per_unit = saved
    return (frames.mean(0) - darks.mean(0)).numpy()


@torch.no_grad()
def capture_virtual(
    om,
    x: torch.Tensor,
    y: torch.Tensor,
    out: str | os.PathLike,
    *,
    dataset: str | None = None,
    dataset_split: str | None = None,
    indices: np.ndarray | None = None,
    device_seed: int | None = None,
    exposure_images: torch.Tensor | None = None,
    dark_frames: int = 16,
    psf: bool = True,
    batch_size: int = 250,
    store_images: bool = True,
    progress: bool = True,
    provenance: dict | None = None,
    frame_kind: str = "feature_map",
    device=None,
    extra: dict | None = None,
    repeats: int = 0,
) -> Path:
    """Show images ``x`` (N, C, H, W) with labels ``y`` to a fabricated instance; write ``out``.

    ``indices``: the images' indices in ``dataset``/``dataset_split`` (recorded as
    ``inputs/dataset_index``). ``exposure_images``: what the camera is auto-exposed on
    (default the first 200 of ``x``). ``repeats``: after the N captures, this many more exposures
    of the first image (same label and dataset index) — the repeated exposures the noise model
    can measure the shot noise from (:func:`calibration.misfit.repeat_groups`). Returns the path.
    """
    from tqdm.auto import tqdm

    from optics.frontend import merge_pairs

    if frame_kind not in ("feature_map", "sensor_frame"):
        raise ValueError(f"capture_virtual: frame_kind must be 'feature_map' or 'sensor_frame', got {frame_kind!r}")
    if device is not None and device_seed is not None:
        raise ValueError("capture_virtual: give device or device_seed, not both")
    inst = device if device is not None else draw_device(om, device_seed, exposure_images if exposure_images is not None else x[:200])
    del device_seed  # hidden: nothing below records it

    def measure(xb):
        tiles = inst.sensor(inst.tile_images(xb), noise=True, generator=inst.generator)
        return tiles if frame_kind == "sensor_frame" else merge_pairs(tiles)
    cfg = inst.sensor.config
    exposure_s = cfg.electrons_per_unit / SOURCE_FLUX
    gain = cfg.gain_dn_per_e
    n = len(x)
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    extra = {
        "virtual_lab": True,
        "source_flux_e_per_unit_s": SOURCE_FLUX,
        "sensor": {k: v for k, v in cfg.to_dict().items() if k != "electrons_per_unit"},
        "fabrication_error_magnitudes": om.fabrication.to_dict(),
        "frame_readout_s": 0.01,
        **(extra or {}),
    }
    wl = [w * 1e9 for w in om.design.config.wavelengths]
    t0 = time.time()
    with CaptureWriter(out, device_kind="optics", device_id=f"virtual-{uuid.uuid4().hex[:10]}",
                       num_classes=int(om.model.backend[-1].out_features) if hasattr(om.model.backend[-1], "out_features") else int(y.max()) + 1,
                       frame_unit="feature units", frame_kind=frame_kind, gain_unit="DN/e-",
                       wavelengths_nm=wl, dataset=dataset, dataset_split=dataset_split, attrs=extra,
                       provenance=provenance) as wr:
        for s in tqdm(range(0, n, batch_size), desc="lab capture", disable=not progress, leave=False):
            xb = x[s:s + batch_size]
            m = len(xb)
            feats = measure(xb)
            block = {
                "measured/frames": feats.numpy(),
                "labels": y[s:s + m].numpy(),
                "timestamps": t0 + (np.arange(s, s + m) * (exposure_s + extra["frame_readout_s"])),
                "measured/exposure_s": np.full(m, exposure_s),
                "measured/gain": np.full(m, gain),
                "inputs/dataset_index": idx[s:s + m],
            }
            if store_images:
                block["inputs/images"] = xb.numpy()
            wr.append(block)
        for s in range(0, int(repeats), batch_size):
            m = min(batch_size, int(repeats) - s)
            k = n + s
            block = {
                "measured/frames": measure(x[:1].expand(m, *x.shape[1:]).contiguous()).numpy(),
                "labels": y[:1].numpy().repeat(m),
                "timestamps": t0 + (np.arange(k, k + m) * (exposure_s + extra["frame_readout_s"])),
                "measured/exposure_s": np.full(m, exposure_s),
                "measured/gain": np.full(m, gain),
                "inputs/dataset_index": idx[:1].repeat(m),
            }
            if store_images:
                block["inputs/images"] = x[:1].numpy().repeat(m, axis=0)
            wr.append(block)
        if dark_frames:
            zeros = torch.zeros(int(dark_frames), *x.shape[1:])
            wr.set_dark_frames(measure(zeros).numpy(), exposure_s=exposure_s, gain=gain)
        if psf:
            wr.set_psf(measure_psf(inst), wavelength_nm=wl[0], pixel_pitch_um=om.design.config.pixel_pitch * 1e6,
                       positions=inst.centres.numpy())
    return Path(out)
