"""Built-in data: the MNIST-5k split is fixed, stratified, disjoint; encoders behave."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from neurohw.data import direct_current, latency_encode, load_digits8x8, load_mnist5k, rate_encode, thermometer_encode


def _disjoint(*parts):
    seen = set()
    for xs in parts:
        h = {hash(x.numpy().tobytes()) for x in xs}
        if h & seen:
            return False
        seen |= h
    return True


def test_mnist5k_split(mnist5k):
    s = mnist5k
    assert s.x_train.shape == (3500, 1, 28, 28) and s.x_val.shape == (500, 1, 28, 28)
    assert s.x_test.shape == (1000, 1, 28, 28)
    assert s.x_train.dtype == torch.float32 and 0 <= float(s.x_train.min()) and float(s.x_train.max()) <= 1
    assert torch.bincount(s.y_test).tolist() == [100] * 10
    assert torch.bincount(s.y_val).tolist() == [50] * 10
    assert torch.bincount(s.y_train).tolist() == [350] * 10
    # disjoint: no image is in two of train / validation / test (content hash)
    assert _disjoint(s.x_train, s.x_val, s.x_test)
    # deterministic across calls
    again = load_mnist5k()
    assert torch.equal(again.y_test, s.y_test) and torch.equal(again.x_train[:50], s.x_train[:50])
    assert torch.equal(again.x_val, s.x_val)
    sub = s.subset(100, 50, 20)
    assert (len(sub.x_train), len(sub.x_test), len(sub.x_val)) == (100, 50, 20) and len(sub.val()) == 20
    # prefixes are class-balanced enough to use as small subsets
    assert torch.bincount(s.y_train[:500], minlength=10).min() >= 30


def test_digits8x8():
    s = load_digits8x8()
    assert s.x_train.shape[1:] == (1, 8, 8) and len(s.x_train) + len(s.x_val) + len(s.x_test) == 1797
    assert float(s.x_train.max()) == 1.0


def test_rate_encode_mean_matches_intensity():
    x = torch.full((1, 4), 0.25)
    g = torch.Generator().manual_seed(0)
    s = rate_encode(x, 4000, generator=g)
    assert s.shape == (1, 4000, 4) and set(s.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(s.mean()) - 0.25) < 0.02


def test_direct_and_latency():
    x = torch.tensor([[0.0, 0.5, 1.0]])
    d = direct_current(x, 3)
    assert d.shape == (1, 3, 3) and torch.equal(d[:, 2], x)
    lat = latency_encode(x, 5)
    assert lat.sum(1).tolist() == [[0.0, 1.0, 1.0]]
    assert lat[0, 0, 2] == 1 and lat[0, 2, 1] == 1  # brighter spikes earlier


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.integers(1, 8))
def test_thermometer_is_monotone_and_counts(vals, levels):
    x = torch.tensor(vals, dtype=torch.float64).view(1, len(vals), 1)
    bits = thermometer_encode(x, levels)  # (1, C*levels, 1)
    b = bits.view(len(vals), levels)
    # thermometer: once a bit is 0, all higher bits are 0
    assert torch.all(b[:, 1:] <= b[:, :-1])
    expected = np.floor(np.array(vals) * (levels + 1) - 1e-12).clip(0, levels)
    thr = np.arange(1, levels + 1) / (levels + 1)
    expected = (np.array(vals)[:, None] > thr[None]).sum(1)
    assert b.sum(1).tolist() == expected.tolist()


def test_torchvision_dataset_adapter():
    tvd = __import__("pytest").importorskip("torchvision.datasets")
    from neurohw.data import tensors_from_dataset

    ds = tvd.FakeData(size=5, image_size=(3, 12, 10), num_classes=4, random_offset=3)
    x, y = tensors_from_dataset(ds)
    assert x.shape == (5, 3, 12, 10) and x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert y.dtype == torch.int64 and int(y.max()) < 4
    ref = np.asarray(ds[2][0], dtype=np.float32) / 255.0
    np.testing.assert_allclose(x[2].permute(1, 2, 0).numpy(), ref)
