"""Packed-bit inference in pure PyTorch: 64 samples per int64 word.

Sample ``64·w + k`` lives in bit ``k`` of word ``w``. Every gate is evaluated on whole
words with its GF(2) normal form ``k0 ⊕ (k1 ∧ a) ⊕ (k2 ∧ b) ⊕ (k3 ∧ a ∧ b)`` (``k_i`` are
all-zero / all-one masks), one logic level at a time, so a level of thousands of gates is a
handful of vectorised tensor ops. Works on CPU and CUDA; all arithmetic is integer.
"""
from __future__ import annotations

import torch

from logic.netlist import Netlist, NetlistError, _check_bits, anf_masks

WORD = 64


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """(N, n) bool → (n, ceil(N/64)) int64; sample ``i`` goes to bit ``i % 64`` of word ``i // 64`` (pad 0)."""
    if bits.dim() != 2:
        raise NetlistError(f"pack_bits: expected (N, n) bits, got shape {tuple(bits.shape)}")
    n_samples, n = bits.shape
    words = -(-n_samples // WORD)
    padded = torch.zeros(words * WORD, n, dtype=torch.int64, device=bits.device)
    padded[:n_samples] = bits.to(torch.int64)
    padded = padded.view(words, WORD, n)
    out = torch.zeros(words, n, dtype=torch.int64, device=bits.device)
    for k in range(WORD):
        out |= padded[:, k] << k
    return out.T.contiguous()


def unpack_bits(words: torch.Tensor, n_samples: int) -> torch.Tensor:
    """(n, W) int64 → (N, n) bool, the inverse of :func:`pack_bits`."""
    shifts = torch.arange(WORD, device=words.device, dtype=torch.int64)
    bits = (words.unsqueeze(-1) >> shifts) & 1  # (n, W, 64)
    return bits.reshape(words.shape[0], -1)[:, :n_samples].T.bool()


class PackedEvaluator:
    """Evaluates a :class:`Netlist` on packed words. Build once, call many times."""

    def __init__(self, net: Netlist, device: str | torch.device = "cpu"):
        self.net = net
        self.device = torch.device(device)
        masks = torch.as_tensor(anf_masks(net.op), device=self.device)
        a = torch.as_tensor(net.a, device=self.device)
        b = torch.as_tensor(net.b, device=self.device)
        self._levels = []
        for lvl in net.levels():
            g = torch.as_tensor(lvl, device=self.device)
            m = masks[g]
            self._levels.append((net.n_inputs + g, a[g], b[g], *(m[:, i : i + 1] for i in range(4))))
        self._outputs = torch.as_tensor(net.outputs, device=self.device)

    def run_words(self, words: torch.Tensor) -> torch.Tensor:
        """(n_inputs, W) int64 packed inputs → (n_outputs, W) int64 packed outputs."""
        if words.dim() != 2 or words.shape[0] != self.net.n_inputs:
            raise NetlistError(f"packed inputs must have shape ({self.net.n_inputs}, W), got {tuple(words.shape)}")
        vals = torch.empty(self.net.n_signals, words.shape[1], dtype=torch.int64, device=self.device)
        vals[: self.net.n_inputs] = words.to(self.device)
        for out, a, b, k0, k1, k2, k3 in self._levels:
            va, vb = vals[a], vals[b]
            vals[out] = k0 ^ (k1 & va) ^ (k2 & vb) ^ (k3 & va & vb)
        return vals[self._outputs]

    def class_counts(self, bits: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
        """(N, n_inputs) bits → (N, num_classes) int64 popcounts per class group."""
        bits = _check_bits(bits, self.net.n_inputs).to(self.device)
        res = []
        for s in range(0, bits.shape[0], chunk):
            part = bits[s : s + chunk]
            out_words = self.run_words(pack_bits(part))
            res.append(self.counts_from_words(out_words, part.shape[0]))
        return torch.cat(res) if res else torch.zeros(0, self.net.num_classes, dtype=torch.int64)

    def counts_from_words(self, out_words: torch.Tensor, n_samples: int) -> torch.Tensor:
        """Per-class popcount of packed outputs (n_outputs, W) → (N, num_classes) int64."""
        bits = unpack_bits(out_words, n_samples).to(torch.int64)  # (N, n_outputs)
        return bits.view(n_samples, self.net.num_classes, self.net.group_size).sum(-1)

    def predict(self, bits: torch.Tensor) -> torch.Tensor:
        """Argmax class (ties → lowest class id, like ``torch.argmax`` on the float model)."""
        return self.class_counts(bits).argmax(-1)
