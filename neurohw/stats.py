"""Summary statistics for experiment tables: mean ± std over seeds and a bootstrap CI.

Conventions (used by every table in the project):

- ``std`` is the sample standard deviation over seeds, ``ddof = 1``; it is NaN for a
  single seed (there is no spread to estimate).
- The 95 % confidence interval of an accuracy includes test-sampling error: given the
  per-image correctness of every seed (a boolean array ``(S, N)``: S seeds, N test images),
  each bootstrap replicate draws S seeds with replacement *and* N test images with
  replacement (the same images for every seed: the seeds were evaluated on one test set)
  and takes the mean accuracy. The interval is the 2.5 / 97.5 percentiles of the
  replicates. :func:`bootstrap_diff_ci` does the same for the paired difference of two
  methods evaluated on the same images (e.g. "KD's gain over CE").

Accuracies are fractions in [0, 1] here; tables multiply by 100.
"""
from __future__ import annotations

import base64
from typing import Iterable, Sequence

import numpy as np

#: Bootstrap replicates used by the tables (percentile CI; the CI's own Monte-Carlo error
#: at this count is about ±0.05 points for a 1,000-image test set).
N_BOOT = 2000


def mean_std(values: Iterable[float], ddof: int = 1) -> tuple[float, float]:
    """Mean and standard deviation (``ddof = 1`` by default) of ``values``, ignoring ``None``.

    Returns ``(nan, nan)`` for no values and ``(mean, nan)`` when fewer than ``ddof + 1`` values.
    """
    a = np.asarray([v for v in values if v is not None], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    if a.size <= ddof:
        return float(a.mean()), float("nan")
    return float(a.mean()), float(a.std(ddof=ddof))


def _as_correct(correct, name: str = "correct") -> np.ndarray:
    c = np.asarray(correct)
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2 or c.shape[1] == 0 or c.shape[0] == 0:
        raise ValueError(f"{name}: need per-image correctness shaped (seeds, images), got shape {np.shape(correct)}")
    return c.astype(np.float64)


def _replicates(per_image: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of the seed-mean of ``per_image`` (S, N): seeds and images resampled."""
    s, n = per_image.shape
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)  # (b, N) image counts
        acc = per_image @ w.T / n  # (S, b): each seed's accuracy on each resampled test set
        pick = rng.integers(0, s, size=(b, s))  # seeds drawn with replacement
        out[start : start + b] = np.take_along_axis(acc.T, pick, axis=1).mean(1)
    return out


def bootstrap_ci(correct, level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean accuracy over seeds, resampling seeds and test images.

    ``correct``: per-image correctness, bool or 0/1, shape (S, N) (or (N,) for one seed).
    Returns ``(low, high)`` as fractions.
    """
    reps = _replicates(_as_correct(correct), n_boot, seed)
    a = (1 - level) / 2
    return float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def bootstrap_diff_ci(correct_a, correct_b, level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """CI of mean accuracy(A) − mean accuracy(B) on the same test images (images resampled jointly).

    Seeds are paired by position (row i of A with row i of B) and resampled jointly, so
    both arms must have the same number of seeds and images.
    """
    a, b = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs equal shapes (seeds, images), got {a.shape} and {b.shape}")
    reps = _replicates(a - b, n_boot, seed)
    q = (1 - level) / 2
    return float(np.quantile(reps, q)), float(np.quantile(reps, 1 - q))


def paired_difference(correct_a, correct_b, level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Accuracy(A) − accuracy(B) in points, seeds paired by row, for a table of differences.

    ``correct_a``, ``correct_b``: per-image correctness (S, N) on the same test images. Returns
    ``{"mean", "std"`` (over seeds, ddof 1), ``"ci95"`` ([low, high], the paired bootstrap of
    :func:`bootstrap_diff_ci`, in points), ``"excludes_0"`` (the interval lies on one side of 0)``}``.
    """
    a, b = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
    lo, hi = bootstrap_diff_ci(a, b, level=level, n_boot=n_boot, seed=seed)  # checks the shapes first
    m, sd = mean_std(100 * (a.mean(1) - b.mean(1)))
    return {"mean": m, "std": sd, "ci95": [100 * lo, 100 * hi], "excludes_0": bool(lo > 0 or hi < 0)}


def summarize(values: Sequence[float], correct=None, n_boot: int = N_BOOT) -> dict:
    """``{"mean", "std", "n", "values"[, "ci95"]}`` for a table cell (fractions, std with ddof 1).

    With ``correct`` (S, N) the CI is the seed × test-image bootstrap of :func:`bootstrap_ci`.
    """
    vals = [float(v) for v in values]
    m, s = mean_std(vals)
    out = {"mean": m, "std": s, "n": len(vals), "values": vals}
    if correct is not None:
        out["ci95"] = list(bootstrap_ci(correct, n_boot=n_boot))
    return out


def pack_correct(correct) -> str:
    """Per-image correctness (bool, shape (N,)) as base64 of the packed bits (N/8 bytes)."""
    c = np.asarray(correct, dtype=bool).ravel()
    return base64.b64encode(np.packbits(c).tobytes()).decode("ascii")


def unpack_correct(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_correct`: the first ``n`` bits as a bool array (N,)."""
    raw = np.frombuffer(base64.b64decode(text.encode("ascii")), dtype=np.uint8)
    if raw.size * 8 < n:
        raise ValueError(f"packed correctness holds {raw.size * 8} bits, need {n}")
    return np.unpackbits(raw)[:n].astype(bool)
