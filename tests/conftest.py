"""Shared test fixtures. Tests use small data and few steps; slow end-to-end ones are marked."""
from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

HAVE_LAVA = importlib.util.find_spec("lava") is not None and importlib.util.find_spec("lava.lib.dl") is not None


def pytest_collection_modifyitems(config, items):
    skip_lava = pytest.mark.skip(reason="Lava (lava-nc 0.10 / lava-dl 0.6, Python 3.10) is not installed")
    for item in items:
        if "lava" in item.keywords and not HAVE_LAVA:
            item.add_marker(skip_lava)


@pytest.fixture(scope="session")
def mnist5k():
    from neurohw.data import load_mnist5k

    return load_mnist5k()


@pytest.fixture
def rng_seed():
    from neurohw.seeding import seed_everything

    seed_everything(1234)
    return 1234
