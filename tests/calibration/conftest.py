"""Fixtures shared by the calibration tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def virtual_lab(mnist5k):
    """``make(root, n_train=, epochs=, n_captures=, device_seed=, reload=False) -> dict``: a small
    fabricated MNIST-5k hybrid model (assembly errors larger than the defaults, so that the
    uncalibrated device clearly loses accuracy: misalignment 0.8 µm, rotation 0.8°, brightness
    10 %; 30 design iterations) trained on the first ``n_train`` training digits for ``epochs``,
    and the virtual-lab captures of the first ``n_captures`` test digits on device
    ``device_seed`` in ``root/captures.h5``. ``reload``: save the model to
    ``root/model.safetensors`` and capture with the loaded copy. Keys: ``om``, ``fab``,
    ``captures``, ``model_path`` (None without ``reload``)."""
    import optics
    from calibration.bundle import build_optical_model, load_optical_model, save_optical_model
    from calibration.lab import capture_virtual

    def make(root, *, n_train: int, epochs: int, n_captures: int, device_seed: int, reload: bool = False) -> dict:
        torch.set_num_threads(1)
        fab = optics.FabricationParams(misalign_sigma=0.8e-6, rotation_sigma=math.radians(0.8), brightness_sigma=0.1)
        om = build_optical_model(mnist5k.x_train[:n_train], mnist5k.y_train[:n_train], epochs=epochs,
                                 design_iterations=30, fabrication=fab)
        model_path = None
        if reload:
            model_path = save_optical_model(root / "model.safetensors", om, seed=0)
            om = load_optical_model(model_path)
        cap = capture_virtual(om, mnist5k.x_test[:n_captures], mnist5k.y_test[:n_captures], root / "captures.h5",
                              dataset="mnist5k", dataset_split="test", indices=np.arange(n_captures),
                              device_seed=device_seed, exposure_images=mnist5k.x_train[:200], progress=False)
        return {"om": om, "fab": fab, "captures": cap, "model_path": model_path}

    return make
