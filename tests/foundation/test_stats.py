"""neurohw.stats: ddof-1 std, the seed × test-image bootstrap CI, packed correctness."""
from __future__ import annotations

import math

import numpy as np
import pytest

from neurohw.stats import bootstrap_ci, bootstrap_diff_ci, mean_std, pack_correct, summarize, unpack_correct


def test_mean_std_is_sample_std():
    m, s = mean_std([1.0, 2.0, 4.0])
    assert m == pytest.approx(7 / 3)
    assert s == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert s > np.std([1.0, 2.0, 4.0])  # not the population std
    m1, s1 = mean_std([0.5])
    assert m1 == 0.5 and math.isnan(s1)
    assert all(math.isnan(v) for v in mean_std([]))
    assert mean_std([1.0, None, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_bootstrap_ci_covers_binomial_error():
    rng = np.random.default_rng(1)
    n, p = 1000, 0.9
    correct = rng.random((3, n)) < p  # three seeds, independent errors
    lo, hi = bootstrap_ci(correct, n_boot=1000)
    acc = correct.mean()
    assert lo < acc < hi
    # the test-sampling part alone: ±1.96·sqrt(p(1-p)/n) ≈ ±1.9 points; the interval must be at least that order
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    assert hi - lo > 1.2 * half
    assert hi - lo < 4 * half


def test_bootstrap_ci_includes_test_sampling_even_with_identical_seeds():
    # identical seeds: no seed spread, yet a 1,000-image test set has ≈ ±1.9 points of sampling error
    row = np.random.default_rng(2).random(1000) < 0.9
    lo, hi = bootstrap_ci(np.stack([row, row, row]), n_boot=1000)
    assert hi - lo > 0.025
    lo1, hi1 = bootstrap_ci(row, n_boot=1000)  # one seed given as (N,)
    assert hi1 - lo1 == pytest.approx(hi - lo, abs=0.01)


def test_paired_difference_ci():
    rng = np.random.default_rng(3)
    a = rng.random((3, 2000)) < 0.9
    b = a.copy()
    flip = rng.random((3, 2000)) < 0.05
    b[flip] = False  # b is a strictly worse copy of a
    lo, hi = bootstrap_diff_ci(a, b, n_boot=500)
    assert lo > 0 and hi > lo
    lo0, hi0 = bootstrap_diff_ci(a, a, n_boot=200)
    assert lo0 == hi0 == 0.0
    with pytest.raises(ValueError, match="equal shapes"):
        bootstrap_diff_ci(a, b[:2])
    with pytest.raises(ValueError, match="per-image correctness"):
        bootstrap_ci(np.zeros((2, 0)))


def test_summarize_and_pack_roundtrip():
    c = np.random.default_rng(4).random((2, 123)) < 0.7
    s = summarize(c.mean(1), c, n_boot=200)
    assert s["n"] == 2 and s["ci95"][0] < s["mean"] < s["ci95"][1]
    for row in c:
        assert np.array_equal(unpack_correct(pack_correct(row), 123), row)
    with pytest.raises(ValueError, match="need 200"):
        unpack_correct(pack_correct(c[0]), 200)


def test_paired_difference_is_the_seed_mean_difference_with_the_paired_ci():
    from neurohw.stats import bootstrap_diff_ci, paired_difference

    rng = np.random.default_rng(3)
    a = rng.random((3, 200)) < 0.9
    b = rng.random((3, 200)) < 0.7
    d = paired_difference(a, b, n_boot=400)
    per_seed = 100 * (a.mean(1) - b.mean(1))
    assert d["mean"] == pytest.approx(per_seed.mean()) and d["std"] == pytest.approx(per_seed.std(ddof=1))
    lo, hi = bootstrap_diff_ci(a, b, n_boot=400)
    assert d["ci95"] == pytest.approx([100 * lo, 100 * hi]) and d["excludes_0"] == (lo > 0 or hi < 0)
    assert d["excludes_0"]  # 20 points apart on 600 images
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference(a, b[:2])
