"""Shared test fixtures. Tests use small data and few steps; slow end-to-end ones are marked."""
from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# Property tests run the same examples on every run, so `make test` (and CI) is reproducible: a
# failure found once stays found and a green run stays green. To explore new inputs, run with
# HYPOTHESIS_PROFILE=explore (random examples, more of them); turn what it finds into a test.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("suite", derandomize=True)
    _hyp_settings.register_profile("explore", derandomize=False, max_examples=500)
    _hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
except ImportError:  # hypothesis is a test dependency; without it the property tests are skipped
    pass

HAVE_LAVA = importlib.util.find_spec("lava") is not None and importlib.util.find_spec("lava.lib.dl") is not None


def pytest_collection_modifyitems(config, items):
    skip_lava = pytest.mark.skip(reason="Lava (lava-nc 0.10 / lava-dl 0.6, Python 3.10) is not installed")
    for item in items:
        if "lava" in item.keywords and not HAVE_LAVA:
            item.add_marker(skip_lava)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Every test runs torch on one intra-op thread (the previous value is restored after).

    ``make test`` runs two xdist workers on a 2-core machine; two OpenMP threads per worker
    oversubscribe the cores, and small tensor ops then spend most of their time spinning
    (measured here: a tiny NTK sketch step 0.34 s with 2 threads under load vs 0.005 s with 1).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _lava_runtime_importable(request):
    """Lava-marked tests may import Lava modules directly: make its runtime importable first.

    (Lava fixes the multiprocessing start method at import; see
    ``neurohw.loihi.lava_bridge.import_lava_runtime``.)
    """
    if HAVE_LAVA and request.node.get_closest_marker("lava") is not None:
        from neurohw.loihi.lava_bridge import import_lava_runtime

        import_lava_runtime()
    yield


@pytest.fixture(scope="session")
def mnist5k():
    from neurohw.data import load_mnist5k

    return load_mnist5k()


@pytest.fixture
def rng_seed():
    from neurohw.seeding import seed_everything

    seed_everything(1234)
    return 1234
