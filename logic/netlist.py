"""Gate netlists: the hardened form of a logic-gate network.

A :class:`Netlist` is a topologically ordered list of two-input gates. Signal ids
``0 .. n_inputs-1`` are the input bits; gate ``g`` drives signal ``n_inputs + g`` and reads
signals ``a[g]``, ``b[g]`` (always earlier signals). ``outputs`` lists the output signals
in order; with ``num_classes`` groups of equal size they are summed per class (GroupSum),
class ``c`` owning ``outputs[c·g : (c+1)·g]``.

Gate counting (:func:`simplify` + :meth:`Netlist.gate_count`) — the rule, so that counts
compare with the papers' (which exclude trivial gates):

1. constants propagate: gates 0/15 are constants; a gate with a constant input is reduced
   to a constant, a pass-through or a NOT of its other input;
2. pass-through gates (``a``, ``b``, or a gate whose two inputs are the same signal and
   whose output equals it) are removed by wiring their input straight through;
3. duplicates are merged: two gates with the same function of the same two signals
   (after putting the inputs in canonical order, swapping the gate's truth table) are one;
4. gates that no output depends on are removed.

What remains are non-constant gates of fan-in 1 (NOT) or 2; :meth:`gate_count` counts them
all (NOT included; ``counts_by_kind`` reports NOTs separately). Output constants are kept as
single constant gates that are not counted. GroupSum's popcount adders are not gates here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from logic.gates import CONSTANT_GATES, NOT_GATES, PASS_THROUGH_GATES, TRUTH, swap_inputs, truth_value

NETLIST_FORMAT = "neurohw-logic-netlist"
NETLIST_VERSION = 1


class NetlistError(ValueError):
    """A netlist is malformed (bad indices, shapes, unknown ops) — the message names the field."""


@dataclass
class Netlist:
    """A combinational gate netlist with GroupSum outputs. Arrays are numpy int64 (``op``: 0..15)."""

    n_inputs: int
    op: np.ndarray
    a: np.ndarray
    b: np.ndarray
    outputs: np.ndarray
    num_classes: int = 1
    _levels: list[np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.op = np.asarray(self.op, dtype=np.int64).reshape(-1)
        self.a = np.asarray(self.a, dtype=np.int64).reshape(-1)
        self.b = np.asarray(self.b, dtype=np.int64).reshape(-1)
        self.outputs = np.asarray(self.outputs, dtype=np.int64).reshape(-1)
        self.validate()

    # ------------------------------------------------------------------ structure
    @property
    def n_gates(self) -> int:
        return int(self.op.size)

    @property
    def n_signals(self) -> int:
        return self.n_inputs + self.n_gates

    @property
    def group_size(self) -> int:
        return self.outputs.size // self.num_classes

    def validate(self) -> None:
        if self.n_inputs < 1:
            raise NetlistError(f"n_inputs must be ≥ 1, got {self.n_inputs}")
        if not (self.op.size == self.a.size == self.b.size):
            raise NetlistError(f"op/a/b lengths differ: {self.op.size}, {self.a.size}, {self.b.size}")
        if self.op.size and (self.op.min() < 0 or self.op.max() > 15):
            raise NetlistError("op: gate ids must lie in 0..15")
        own = self.n_inputs + np.arange(self.op.size)
        for name, arr in (("a", self.a), ("b", self.b)):
            if arr.size and (arr.min() < 0 or np.any(arr >= own)):
                raise NetlistError(f"{name}: every gate must read an input or an earlier gate")
        if self.outputs.size and (self.outputs.min() < 0 or self.outputs.max() >= self.n_signals):
            raise NetlistError(f"outputs: signal ids must lie in 0..{self.n_signals - 1}")
        if self.num_classes < 1 or self.outputs.size % self.num_classes:
            raise NetlistError(f"outputs: {self.outputs.size} outputs do not split into {self.num_classes} equal groups")

    def levels(self) -> list[np.ndarray]:
        """Gate indices grouped by logic depth (level 1 reads only inputs); each level can run in parallel."""
        if self._levels is None:
            depth = np.zeros(self.n_signals, dtype=np.int64)
            n = self.n_inputs
            for g in range(self.n_gates):  # topological order: one pass
                depth[n + g] = 1 + max(depth[self.a[g]], depth[self.b[g]])
            gd = depth[n:]
            order = np.argsort(gd, kind="stable")
            bounds = np.searchsorted(gd[order], np.arange(1, gd.max(initial=0) + 2))
            self._levels = [order[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
        return self._levels

    @property
    def depth(self) -> int:
        return len(self.levels())

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, bits: torch.Tensor) -> torch.Tensor:
        """Reference evaluation on booleans: ``bits`` (N, n_inputs) bool/0-1 → outputs (N, n_outputs) bool."""
        bits = _check_bits(bits, self.n_inputs)
        dev = bits.device
        vals = torch.zeros(self.n_signals, bits.shape[0], dtype=torch.int64, device=dev)
        vals[: self.n_inputs] = bits.T.to(torch.int64)
        truth = TRUTH.to(dev)
        op, a, b = (torch.as_tensor(x, device=dev) for x in (self.op, self.a, self.b))
        for lvl in self.levels():
            g = torch.as_tensor(lvl, device=dev)
            idx = 2 * vals[a[g]] + vals[b[g]]
            vals[self.n_inputs + g] = truth[op[g]].gather(1, idx)
        return vals[torch.as_tensor(self.outputs, device=dev)].T.bool()

    def class_counts(self, bits: torch.Tensor) -> torch.Tensor:
        """GroupSum of the boolean outputs: (N, num_classes) int64."""
        out = self.evaluate(bits)
        return out.view(out.shape[0], self.num_classes, self.group_size).sum(-1)

    # ------------------------------------------------------------------ statistics
    def gate_count(self) -> int:
        """Number of non-constant gates (run :func:`simplify` first for the documented rule)."""
        return int(np.count_nonzero(~np.isin(self.op, CONSTANT_GATES)))

    def counts_by_kind(self) -> dict:
        ops = self.op
        return {
            "total": self.n_gates,
            "constant": int(np.isin(ops, CONSTANT_GATES).sum()),
            "pass_through": int(np.isin(ops, PASS_THROUGH_GATES).sum()),
            "not": int(np.isin(ops, NOT_GATES).sum()),
            "two_input": int((~np.isin(ops, CONSTANT_GATES + PASS_THROUGH_GATES + NOT_GATES)).sum()),
            "depth": self.depth,
        }

    def histogram(self) -> np.ndarray:
        """How often each of the 16 gates occurs: (16,) int64."""
        return np.bincount(self.op, minlength=16)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write as ``.npz`` (plain integer arrays, no pickle), atomically."""
        from neurohw.io import atomic_path

        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh, format=np.array(NETLIST_FORMAT), version=np.array(NETLIST_VERSION),
                    n_inputs=np.array(self.n_inputs), num_classes=np.array(self.num_classes),
                    op=self.op, a=self.a, b=self.b, outputs=self.outputs,
                )  # fmt: skip
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Netlist":
        path = Path(path)
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise NetlistError(f"{path}: not a readable .npz netlist ({exc})") from exc
        with z:
            for key in ("format", "version", "n_inputs", "num_classes", "op", "a", "b", "outputs"):
                if key not in z.files:
                    raise NetlistError(f"{path}: missing array {key!r}")
            if str(z["format"]) != NETLIST_FORMAT or int(z["version"]) != NETLIST_VERSION:
                raise NetlistError(f"{path}: format {z['format']} v{z['version']} is not {NETLIST_FORMAT} v{NETLIST_VERSION}")
            return cls(int(z["n_inputs"]), z["op"], z["a"], z["b"], z["outputs"], int(z["num_classes"]))


def _check_bits(bits: torch.Tensor, n_inputs: int) -> torch.Tensor:
    if bits.dim() != 2 or bits.shape[1] != n_inputs:
        raise NetlistError(f"input bits must have shape (N, {n_inputs}), got {tuple(bits.shape)}")
    if bits.dtype != torch.bool:
        if bits.is_floating_point() and bool(((bits != 0) & (bits != 1)).any()):
            raise NetlistError("input bits must be 0/1")
        bits = bits != 0
    return bits


class NetlistBuilder:
    """Appends gates in topological order; layers call :meth:`add` with vectorised arrays."""

    def __init__(self, n_inputs: int):
        self.n_inputs = int(n_inputs)
        self._op: list[np.ndarray] = []
        self._a: list[np.ndarray] = []
        self._b: list[np.ndarray] = []
        self._n = 0
        self._const: dict[int, int] = {}

    def add(self, op, a, b) -> np.ndarray:
        """Add gates ``op[i](a[i], b[i])`` (broadcast arrays); returns their signal ids with the broadcast shape."""
        op, a, b = np.broadcast_arrays(np.asarray(op, np.int64), np.asarray(a, np.int64), np.asarray(b, np.int64))
        ids = self.n_inputs + self._n + np.arange(op.size, dtype=np.int64)
        self._op.append(op.reshape(-1).copy())
        self._a.append(a.reshape(-1).copy())
        self._b.append(b.reshape(-1).copy())
        self._n += op.size
        return ids.reshape(op.shape)

    def const(self, value: int) -> int:
        """Signal id of a constant 0/1 (one gate, created on first use)."""
        v = int(bool(value))
        if v not in self._const:
            self._const[v] = int(self.add(15 if v else 0, 0, 0))
        return self._const[v]

    def build(self, outputs, num_classes: int = 1) -> Netlist:
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
        return Netlist(self.n_inputs, cat(self._op), cat(self._a), cat(self._b), np.asarray(outputs).reshape(-1), num_classes)


def simplify(net: Netlist) -> Netlist:
    """Apply the documented counting rule (module docstring): constants, pass-throughs, duplicates, dead gates.

    The result computes the same outputs as ``net`` for every input (tested exhaustively
    and on random inputs).
    """
    n_in = net.n_inputs
    # Representation of every old signal: ("c", value) constant or ("s", new signal id).
    rep_kind = np.zeros(net.n_signals, dtype=np.int8)  # 0 = signal, 1 = constant
    rep_val = np.zeros(net.n_signals, dtype=np.int64)
    rep_val[:n_in] = np.arange(n_in)
    builder = NetlistBuilder(n_in)
    table: dict[tuple[int, int, int], int] = {}

    def emit(op: int, x: int, y: int) -> int:
        key = (op, x, y)
        if key not in table:
            table[key] = int(builder.add(op, x, y))
        return table[key]

    ops, aa, bb = net.op.tolist(), net.a.tolist(), net.b.tolist()
    for g in range(net.n_gates):
        s = n_in + g
        op, a, b = ops[g], aa[g], bb[g]
        ka, va, kb, vb = rep_kind[a], int(rep_val[a]), rep_kind[b], int(rep_val[b])
        # Restrict to a function of the remaining free inputs.
        if ka and kb:
            rep_kind[s], rep_val[s] = 1, truth_value(op, va, vb)
            continue
        if ka or kb or va == vb:
            if ka:
                f0, f1, x = truth_value(op, va, 0), truth_value(op, va, 1), vb
            elif kb:
                f0, f1, x = truth_value(op, 0, vb), truth_value(op, 1, vb), va
            else:
                f0, f1, x = truth_value(op, 0, 0), truth_value(op, 1, 1), va
            _unary(rep_kind, rep_val, s, f0, f1, x, emit)
            continue
        if va > vb:
            op, va, vb = swap_inputs(op), vb, va
        t = [truth_value(op, p >> 1, p & 1) for p in range(4)]
        if t[0] == t[1] and t[2] == t[3]:  # depends on a only
            _unary(rep_kind, rep_val, s, t[0], t[2], va, emit)
        elif t[0] == t[2] and t[1] == t[3]:  # depends on b only
            _unary(rep_kind, rep_val, s, t[0], t[1], vb, emit)
        else:
            rep_kind[s], rep_val[s] = 0, emit(op, va, vb)
    outs = []
    for o in net.outputs.tolist():
        outs.append(builder.const(rep_val[o]) if rep_kind[o] else int(rep_val[o]))
    return _remove_dead(builder.build(outs, net.num_classes))


def _unary(rep_kind, rep_val, s, f0, f1, x, emit) -> None:
    """Represent signal ``s`` = f(x) with f(0)=f0, f(1)=f1."""
    if f0 == f1:
        rep_kind[s], rep_val[s] = 1, f0
    elif f1 == 1:  # identity
        rep_kind[s], rep_val[s] = 0, x
    else:  # NOT: gate 12 (¬a) reading x on both inputs
        rep_kind[s], rep_val[s] = 0, emit(12, x, x)


def _remove_dead(net: Netlist) -> Netlist:
    n_in = net.n_inputs
    live = np.zeros(net.n_signals, dtype=bool)
    live[net.outputs] = True
    for g in range(net.n_gates - 1, -1, -1):
        if live[n_in + g]:
            live[net.a[g]] = True
            live[net.b[g]] = True
    keep = np.flatnonzero(live[n_in:])
    remap = np.arange(net.n_signals, dtype=np.int64)
    remap[n_in + keep] = n_in + np.arange(keep.size)
    return Netlist(n_in, net.op[keep], remap[net.a[keep]], remap[net.b[keep]], remap[net.outputs], net.num_classes)
