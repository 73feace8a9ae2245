"""distill tests run torch on one intra-op thread.

With ``pytest -n 2`` on a 2-core machine, two OpenMP threads per worker oversubscribe the
cores, and small matrix products then spend most of their time spinning (measured here: a
tiny NTK sketch step 0.34 s with 2 threads under load vs 0.005 s with 1). The previous value is
restored after each test.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
