"""Calibration slices: sizes, class balance, nesting, disjointness, determinism."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.split import calibration_split, nested_splits, slice_size, stratified_order


@settings(max_examples=50, deadline=None)
@given(n_per=st.lists(st.integers(1, 40), min_size=1, max_size=10), seed=st.integers(0, 10**6),
       fractions=st.lists(st.floats(0.005, 0.95), min_size=1, max_size=6))
def test_nested_disjoint_complete(n_per, seed, fractions):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(n_per)])
    if len(labels) < 2:
        return
    splits = nested_splits(labels, fractions, seed)
    prev = set()
    for sp in splits:
        calib, held = set(sp.calib.tolist()), set(sp.held_out.tolist())
        assert not calib & held and calib | held == set(range(len(labels)))
        assert len(calib) == slice_size(len(labels), sp.fraction)
        assert prev <= calib  # nested
        prev = calib


@settings(max_examples=30, deadline=None)
@given(n_per=st.lists(st.integers(5, 60), min_size=2, max_size=10), seed=st.integers(0, 10**6), k=st.integers(1, 50))
def test_prefixes_are_class_balanced(n_per, seed, k):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(n_per)])
    order = stratified_order(labels, seed)
    assert sorted(order.tolist()) == list(range(len(labels)))
    k = min(k, len(labels))
    counts = np.bincount(labels[order[:k]], minlength=len(n_per))
    # round robin: while every class still has items, counts differ by at most one
    full_rounds = min(n_per)
    if k <= full_rounds * len(n_per):
        assert counts.max() - counts.min() <= 1


def test_deterministic_and_seed_dependent():
    y = np.repeat(np.arange(10), 100)
    a = calibration_split(y, 0.1, seed=3)
    b = calibration_split(y, 0.1, seed=3)
    c = calibration_split(y, 0.1, seed=4)
    np.testing.assert_array_equal(a.calib, b.calib)
    assert not np.array_equal(a.calib, c.calib)
    assert len(a.calib) == 100 and np.all(np.bincount(y[a.calib]) == 10)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        calibration_split(np.zeros(10, int), fraction)
