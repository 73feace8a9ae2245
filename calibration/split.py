"""Splitting captures into a calibration slice and a held-out rest.

One seeded, stratified ordering of the captures is drawn; a calibration slice of fraction
``f`` is its first ``round(f·N)`` entries. Because the order interleaves the classes
(round robin over per-class permutations), every prefix is class-balanced, and slices of
increasing fractions are **nested** (the 1 % slice is inside the 2 % slice, …) — so a
sample-efficiency curve compares like with like and a refit can be warm-started from a
smaller slice without ever seeing data outside the current one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Indices into the capture file: ``calib`` (the slice) and ``held_out`` (the rest), both sorted."""

    fraction: float
    calib: np.ndarray
    held_out: np.ndarray

    def to_dict(self) -> dict:
        return {"fraction": self.fraction, "n_calib": int(len(self.calib)), "n_held_out": int(len(self.held_out))}


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of ``range(len(labels))`` whose prefixes are class-balanced.

    Per class (in increasing class order) the indices are permuted with one
    ``numpy.random.default_rng(seed)``; then the classes are interleaved round robin,
    each round in a freshly permuted class order.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    queues = [list(np.flatnonzero(labels == c)[rng.permutation(int((labels == c).sum()))]) for c in classes]
    order: list[int] = []
    while any(queues):
        for qi in rng.permutation(len(queues)):
            if queues[qi]:
                order.append(int(queues[qi].pop(0)))
    return np.asarray(order, dtype=np.int64)


def slice_size(n: int, fraction: float) -> int:
    """Captures in a slice of ``fraction`` of ``n``: ``round(f·n)``, at least 1 and at most ``n − 1``."""
    if not 0 < fraction < 1:
        raise ValueError(f"calibration fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise ValueError(f"need at least 2 captures to split into a slice and a held-out rest, got {n}")
    return int(min(n - 1, max(1, round(fraction * n))))


def calibration_split(labels: np.ndarray, fraction: float, seed: int = 0) -> Split:
    """The calibration slice of ``fraction`` and the held-out rest (see the module docstring)."""
    order = stratified_order(labels, seed)
    k = slice_size(len(order), fraction)
    return Split(float(fraction), np.sort(order[:k]), np.sort(order[k:]))


def nested_splits(labels: np.ndarray, fractions, seed: int = 0) -> list[Split]:
    """Splits for several fractions from the same ordering (slices nested, in increasing fraction)."""
    order = stratified_order(labels, seed)
    out = []
    for f in sorted(float(f) for f in fractions):
        k = slice_size(len(order), f)
        out.append(Split(f, np.sort(order[:k]), np.sort(order[k:])))
    return out
