"""Fixtures shared by the distillation tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_teacher(mnist5k):
    """A LeNet-5 trained one epoch on 512 MNIST-5k images (seeded): a real, quick teacher."""
    from neurohw.models import LeNet5
    from neurohw.train import fit

    torch.manual_seed(0)
    t = LeNet5()
    fit(t, mnist5k.subset(512).train(), epochs=1, lr=2e-3, seed=0, device="cpu", progress=False)
    return t.eval()
