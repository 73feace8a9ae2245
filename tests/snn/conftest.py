"""snn tests run torch on one thread (restored afterwards): on a busy 2-core machine the small
tensors of these tests are several times faster single-threaded than with thread contention."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
