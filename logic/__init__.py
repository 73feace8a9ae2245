"""logic — differentiable logic-gate networks and ∂B nets, hardened into exact gate netlists.

Train-time face: :mod:`logic.gates` (the 16 relaxed gates, fast mixture), :mod:`logic.layers`
(dense logic layers, logic tree convolution, OR pooling, GroupSum, thermometer),
:mod:`logic.models` (dense LGN, LogicTreeNet), :mod:`logic.dbnets` (∂B operators, the ∂B
MNIST net). Hardware face: :mod:`logic.netlist` (netlist, counting rule),
:mod:`logic.packed` (64 samples per int64 word). Export: :mod:`logic.export` (C, Verilog).
Design notes and measured figures: ``docs/logic.md``.
"""
from logic import gates
from logic.gates import GATES, GATE_NAMES

__all__ = ["gates", "GATES", "GATE_NAMES"]
