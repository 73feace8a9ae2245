"""Packed-bit inference in pure PyTorch: 64 samples per int64 word.

Sample ``64·w + k`` lives in bit ``k`` of word ``w``. Gates are evaluated on whole words,
one logic level at a time and, inside a level, one gate kind at a time (its bitwise
expression, 1–2 ops), so a level of thousands of gates is a few dozen vectorised tensor ops. Works on CPU and CUDA; all arithmetic is integer.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from logic.netlist import Netlist, NetlistError, _check_bits

WORD = 64


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """(N, n) bool → (n, ceil(N/64)) int64; sample ``i`` goes to bit ``i % 64`` of word ``i // 64`` (pad 0).

    Builds the 8 bytes of every word with uint8 shifts and reinterprets them as one int64
    (little-endian byte order, as on x86/ARM hosts and CUDA); elsewhere it ORs 64 shifted bits.
    """
    if bits.dim() != 2:
        raise NetlistError(f"pack_bits: expected (N, n) bits, got shape {tuple(bits.shape)}")
    n_samples, n = bits.shape
    words = -(-n_samples // WORD)
    if sys.byteorder == "little":
        padded = torch.zeros(words * WORD, n, dtype=torch.uint8, device=bits.device)
        padded[:n_samples] = bits.to(torch.uint8)
        b = padded.view(words, 8, 8, n)  # word, byte, bit, input
        byte = b[:, :, 0].clone()
        for j in range(1, 8):
            byte |= b[:, :, j] << j
        # A fresh buffer, not .contiguous(): with one input the permuted tensor already counts as
        # contiguous but keeps an odd stride on its size-1 dim, which view(int64) rejects.
        packed = torch.empty((n, words, 8), dtype=torch.uint8, device=bits.device)
        packed.copy_(byte.permute(2, 0, 1))
        return packed.view(torch.int64).view(n, words)
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
        dev = self.device
        # Per level, per gate kind: (gate kind, output signal ids, input a ids, input b ids).
        self._levels = []
        for lvl in net.levels():
            ops = net.op[lvl]
            groups = []
            for op in np.unique(ops):
                g = lvl[ops == op]
                groups.append((int(op), *(torch.as_tensor(v, device=dev) for v in (net.n_inputs + g, net.a[g], net.b[g]))))
            self._levels.append(groups)
        self._outputs = torch.as_tensor(net.outputs, device=dev)

    def run_words(self, words: torch.Tensor) -> torch.Tensor:
        """(n_inputs, W) int64 packed inputs → (n_outputs, W) int64 packed outputs."""
        if words.dim() != 2 or words.shape[0] != self.net.n_inputs:
            raise NetlistError(f"packed inputs must have shape ({self.net.n_inputs}, W), got {tuple(words.shape)}")
        vals = torch.empty(self.net.n_signals, words.shape[1], dtype=torch.int64, device=self.device)
        vals[: self.net.n_inputs] = words.to(self.device)
        for groups in self._levels:
            for op, out, a, b in groups:
                vals[out] = _word_op(op, vals, a, b)
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
        """Per-class popcount of packed outputs (n_outputs, W) → (N, num_classes) int64.

        Bit-sliced: the group's words are summed pairwise as multi-bit numbers held in bit
        planes (ripple-carry on whole words, 64 samples at once), ⌈log2 g⌉ rounds; only the
        final planes are unpacked.
        """
        return bitsliced_group_counts(out_words, self.net.num_classes, n_samples)

    def predict(self, bits: torch.Tensor) -> torch.Tensor:
        """Argmax class (ties → lowest class id, like ``torch.argmax`` on the float model)."""
        return self.class_counts(bits).argmax(-1)


def bitsliced_group_counts(out_words: torch.Tensor, num_classes: int, n_samples: int) -> torch.Tensor:
    """(num_classes·g, W) packed bits → (N, num_classes) int64: per-sample count of set bits in each class group."""
    n_out, w = out_words.shape
    planes = [out_words.view(num_classes, n_out // num_classes, w)]  # LSB first, each (C, m, W)
    while planes[0].shape[1] > 1:
        if planes[0].shape[1] % 2:
            planes = [torch.cat([p, torch.zeros_like(p[:, :1])], 1) for p in planes]
        carry = None
        new = []
        for p in planes:
            x, y = p[:, 0::2], p[:, 1::2]
            t = x ^ y
            if carry is None:
                new.append(t)
                carry = x & y
            else:
                new.append(t ^ carry)
                carry = (x & y) | (carry & t)
        new.append(carry)
        planes = new
    stack = torch.stack([p[:, 0] for p in planes])  # (B, C, W)
    shifts = torch.arange(WORD, device=out_words.device, dtype=torch.int64)
    bits = (stack.unsqueeze(-1) >> shifts) & 1  # (B, C, W, 64)
    weights = (1 << torch.arange(len(planes), device=out_words.device, dtype=torch.int64)).view(-1, 1, 1, 1)
    counts = (bits * weights).sum(0).reshape(num_classes, -1)  # (C, W·64)
    return counts[:, :n_samples].T.contiguous()


def _word_op(op: int, vals: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Gate ``op`` on packed words ``vals[a]``, ``vals[b]`` (canonical gate order)."""
    if op == 0:
        return torch.zeros(a.numel(), vals.shape[1], dtype=vals.dtype, device=vals.device)
    if op == 15:
        return torch.full((a.numel(), vals.shape[1]), -1, dtype=vals.dtype, device=vals.device)
    if op in (3, 12):
        va = vals[a]
        return va if op == 3 else ~va
    if op in (5, 10):
        vb = vals[b]
        return vb if op == 5 else ~vb
    va, vb = vals[a], vals[b]
    if op == 1:
        return va & vb
    if op == 2:
        return va & ~vb
    if op == 4:
        return ~va & vb
    if op == 6:
        return va ^ vb
    if op == 7:
        return va | vb
    if op == 8:
        return ~(va | vb)
    if op == 9:
        return ~(va ^ vb)
    if op == 11:
        return va | ~vb
    if op == 13:
        return ~va | vb
    return ~(va & vb)  # 14
