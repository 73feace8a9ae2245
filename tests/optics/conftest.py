"""Fixtures shared by the optics tests."""
from __future__ import annotations

import pytest
import torch

from optics.design import OpticsConfig, design_metasurface
from optics.frontend import TileLayout, split_signed


@pytest.fixture(scope="session")
def small_design():
    """A small designed metasurface: two seeded 3×3 kernels (signed → 4 tiles), 48×48 grid at 586 nm
    pitch, z = 20 µm, one wavelength (532 nm), 40 design iterations."""
    kernels = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(3))
    lay = TileLayout(4, 3, 8, spacing=10)
    return design_metasurface(split_signed(kernels), lay, OpticsConfig(grid=48, dx=586e-9, z=20e-6, wavelengths=(532e-9,)),
                              iterations=40, lr=0.08, progress=False, seed=0)
