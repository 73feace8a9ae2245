"""Fixtures shared by the logic tests."""
from __future__ import annotations

import pytest
import torch

from logic.models import logic_tree_net
from logic.train import fit_logic


@pytest.fixture(scope="session")
def train_tree_net(mnist5k):
    """``make(n_train, n_test, dense, seed) -> (model, data)``: a small conv LogicTreeNet (k = 2 tree
    convolutions + OR pooling, τ = 5, residual init, dense head widths ``dense``) trained one epoch
    on ``n_train`` MNIST-5k digits on one torch thread, in eval mode, and the ``mnist5k.subset``."""

    def make(n_train: int, n_test: int, dense: tuple[int, ...], seed: int):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # module-scoped users run before the per-test one-thread fixture
        try:
            d = mnist5k.subset(n_train, n_test)
            model = logic_tree_net(k=2, dense=dense, tau=5, init="residual", seed=seed)
            fit_logic(model, d.x_train, d.y_train, epochs=1, progress=False, seed=seed)
        finally:
            torch.set_num_threads(threads)
        return model.eval(), d

    return make
