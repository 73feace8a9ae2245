"""Memoised teacher logits for KD: the teacher runs once over the training images, not every epoch.

:class:`CachedTeacher` wraps a trained ANN teacher. At construction it computes the teacher's
logits (N, classes) for the reference images ``x_ref`` (N, C, H, W) in eval mode. Called on a
batch (B, C, H, W), it returns, for every image that is bit-for-bit one of the reference images,
the stored logits (the match is found by hashing the image's bytes and then checked with
``torch.equal``), and runs the teacher on the rest (e.g. shifted, augmented images). The output
is therefore exactly what ``teacher(x)`` returns in eval mode, up to the batch composition of
the teacher's own floating-point arithmetic (the stored row was computed in a different batch).
"""
from __future__ import annotations

import torch
from torch import nn


def _key(img: torch.Tensor) -> int:
    return hash(img.contiguous().numpy().tobytes())


class CachedTeacher(nn.Module):
    """``teacher`` with its logits on ``x_ref`` precomputed (see the module docstring)."""

    def __init__(self, teacher: nn.Module, x_ref: torch.Tensor, batch_size: int = 500):
        super().__init__()
        self.teacher = teacher.eval()
        self.x_ref = x_ref.detach().cpu().float()
        dev = next(teacher.parameters()).device
        with torch.no_grad():
            self.logits = torch.cat([teacher(self.x_ref[i:i + batch_size].to(dev)).float().cpu()
                                     for i in range(0, len(self.x_ref), batch_size)])
        self.index: dict[int, int] = {}
        for i in range(len(self.x_ref)):
            self.index.setdefault(_key(self.x_ref[i]), i)
        self.hits = self.misses = 0

    def train(self, mode: bool = True) -> "CachedTeacher":
        """The teacher stays in eval mode (its stored logits were computed in eval mode)."""
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xc = x.detach().cpu().float()
        rows = torch.full((len(xc),), -1, dtype=torch.long)
        for b in range(len(xc)):
            i = self.index.get(_key(xc[b]))
            if i is not None and torch.equal(self.x_ref[i], xc[b]):
                rows[b] = i
        hit = rows >= 0
        out = torch.empty((len(xc), self.logits.shape[1]), dtype=torch.float32)
        out[hit] = self.logits[rows[hit]]
        if not bool(hit.all()):
            miss = ~hit
            out[miss] = self.teacher(x[miss.to(x.device)]).float().cpu()
        self.hits += int(hit.sum())
        self.misses += int((~hit).sum())
        return out.to(x.device)
