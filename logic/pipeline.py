"""Pipelined Verilog for a gate netlist: registers every K logic levels and a balanced, pipelined GroupSum tree.

:func:`to_verilog_pipelined` writes ``module <name>(input clk, input rst, input valid_in,
input [NI-1:0] x, output valid_out, output [NC·CW-1:0] counts)`` (class ``c``'s count in
``counts[c·CW +: CW]``, CW = bits to hold the group size, as in the combinational export).
There is no ``y`` port: the output bits live inside the adder tree.

Where the registers go (:func:`plan_pipeline` computes it, :class:`PipelinePlan` holds it):

* gate ``g`` at logic level ``d`` (1 = reads only inputs) runs in stage ``(d − 1) // K``; the
  gate logic has ``S = max(1, ⌈depth / K⌉)`` stages and a register bank after each one;
* a signal made in stage ``p`` and last needed in stage ``q`` (a reader's stage, or ``S`` for
  a GroupSum output) is carried through banks ``p+1 … q`` — one flip-flop per bank;
* constant signals (gates 0 and 15) are never registered; in GroupSum they are folded into a
  per-class constant that is added at the output;
* each class's non-constant output bits are summed by a balanced binary tree of adders (a
  node of ``n`` leaves is ``bit_length(n)`` bits wide), ``T = ⌈log2 m⌉`` levels (``m`` = most
  non-constant leaves of any class), with a register bank after every ``tree_k``-th level
  (default ``tree_k = K``) and after the last one: ``R = ⌈T / tree_k⌉`` tree banks; a class
  with fewer leaves carries its partial sums through the remaining levels;
* ``valid_in`` travels through an ``L``-bit shift register (cleared by the synchronous
  ``rst``) next to the data; ``valid_out`` is its last bit.

Latency ``L = S + R`` clock cycles: the counts of the input present before rising edge ``n``
appear at ``counts`` right after rising edge ``n + L − 1`` (during cycle ``n + L``), with
``valid_out`` high. A new input can enter every cycle.

Every register bank is one ``(* keep *) always`` block, so yosys keeps each inserted
flip-flop (without it, registers whose inputs abc proves equal would be merged) and the
synthesised flip-flop count equals :attr:`PipelinePlan.flip_flops` (tested). yosys still
removes a register whose input it proves constant: the plan never registers constant gates,
and the tree ordering keeps equal signals apart, but a signal that is constant without being a
constant gate (``simplify`` does not prove every constant; random nets have such) loses its
register in yosys. On the trained nets tested, and on the 7,624-gate net of docs/logic.md, the
counts agree.

:func:`pipelined_testbench` and :func:`simulate_pipelined` run the module in Icarus Verilog,
feeding one vector per cycle with a bubble (``valid_in = 0``, junk ``x``) every few cycles,
and check every result's latency.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from logic.identifiers import check_identifier
from logic.netlist import Netlist

_CONST_OPS = (0, 15)


@dataclass
class TreeNode:
    """A GroupSum tree node: ``leaves`` non-constant output bits summed, ``width`` bits, held in register ``name``."""

    name: str
    leaves: int
    width: int
    parts: tuple = ()  # names of the (one or two) previous-level values it is made from


@dataclass
class PipelinePlan:
    """Where :func:`to_verilog_pipelined` puts registers (see the module docstring)."""

    k: int
    gate_stages: int  #: S
    tree_levels: int  #: T
    stage_of_gate: np.ndarray  #: (n_gates,) stage of each gate
    banks: list[np.ndarray]  #: banks[r-1] = signal ids held in gate bank r (1 … S), sorted
    leaves: list[list[int]]  #: per class, the non-constant output signals in tree order
    offsets: list[int]  #: per class, the number of constant-1 outputs
    tree: list[list[list[TreeNode]]] = field(default_factory=list)  #: tree[t-1][c] = nodes of class c after level t
    tree_k: int = 1  #: tree levels per register bank
    tree_registered: list[bool] = field(default_factory=list)  #: per tree level: a register bank after it

    @property
    def tree_banks(self) -> int:
        """R: register banks in the GroupSum tree."""
        return int(sum(self.tree_registered))

    @property
    def latency(self) -> int:
        """Clock cycles from input to counts (= register banks)."""
        return self.gate_stages + self.tree_banks

    @property
    def gate_flip_flops(self) -> int:
        return int(sum(b.size for b in self.banks))

    @property
    def tree_flip_flops(self) -> int:
        return int(sum(n.width for level, reg in zip(self.tree, self.tree_registered) if reg for nodes in level for n in nodes))

    @property
    def flip_flops(self) -> int:
        """All inserted flip-flops: gate banks, tree banks and the ``L``-bit valid shift register."""
        return self.gate_flip_flops + self.tree_flip_flops + self.latency

    def summary(self) -> dict:
        return {"k": self.k, "tree_k": self.tree_k, "latency": self.latency, "gate_stages": self.gate_stages,
                "tree_levels": self.tree_levels, "tree_banks": self.tree_banks,
                "flip_flops": self.flip_flops, "gate_flip_flops": self.gate_flip_flops,
                "tree_flip_flops": self.tree_flip_flops, "valid_flip_flops": self.latency}


def check_k(k) -> int:
    """``k`` as a positive int, else ValueError naming ``pipeline``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 1:
        raise ValueError(f"pipeline: K (logic levels per register stage) must be a positive integer, got {k!r}")
    return int(k)


def _signal_levels(net: Netlist) -> np.ndarray:
    depth = np.zeros(net.n_signals, dtype=np.int64)
    for lvl_i, gates in enumerate(net.levels()):
        depth[net.n_inputs + gates] = lvl_i + 1
    return depth


def _tree_order(signals: list[int]) -> list[int]:
    """Order a class's leaves so equal signals are not summed together early: first occurrences, then second ones …"""
    seen: dict[int, int] = {}
    keyed = []
    for i, s in enumerate(signals):
        r = seen.get(s, 0)
        seen[s] = r + 1
        keyed.append((r, i, s))
    return [s for _, _, s in sorted(keyed)]


def plan_pipeline(net: Netlist, k: int, tree_k: int | None = None) -> PipelinePlan:
    """Register placement for ``net`` with a bank every ``k`` logic levels and every ``tree_k``
    (default ``k``) GroupSum tree levels (see the module docstring)."""
    k = check_k(k)
    tree_k = k if tree_k is None else check_k(tree_k)
    ni = net.n_inputs
    const = np.zeros(net.n_signals, dtype=bool)
    const[ni:] = np.isin(net.op, _CONST_OPS)
    level = _signal_levels(net)
    stage = np.where(level > 0, (level - 1) // k, 0)  # stage that makes each signal (inputs: 0)
    s_count = max(1, -(-net.depth // k))
    need = stage.copy()  # last stage that reads each signal
    gstage = stage[ni:]
    for arr in (net.a, net.b):
        np.maximum.at(need, arr, gstage)
    outs = net.outputs.reshape(net.num_classes, net.group_size)
    need[outs.reshape(-1)] = s_count
    need[const] = stage[const]  # constants are literals everywhere
    banks = [np.flatnonzero((stage < r) & (need >= r)) for r in range(1, s_count + 1)]
    leaves, offsets = [], []
    for c in range(net.num_classes):
        row = outs[c].tolist()
        offsets.append(int(sum(1 for s in row if const[s] and s >= ni and net.op[s - ni] == 15)))
        leaves.append(_tree_order([s for s in row if not const[s]]))
    plan = PipelinePlan(k, s_count, 0, gstage.copy(), banks, leaves, offsets, tree_k=tree_k)
    # balanced tree: level 0 = the leaves; level t pairs neighbours of level t-1
    cur = [[TreeNode(f"L{c}_{j}", 1, 1) for j in range(len(lv))] for c, lv in enumerate(leaves)]
    t = 0
    while max((len(nodes) for nodes in cur), default=0) > 1:
        t += 1
        nxt = []
        for c, nodes in enumerate(cur):
            level_nodes = []
            for j in range(0, len(nodes), 2):
                pair = nodes[j:j + 2]
                n = sum(p.leaves for p in pair)
                level_nodes.append(TreeNode(f"t{t}_{c}_{j // 2}", n, n.bit_length(), tuple(p.name for p in pair)))
            nxt.append(level_nodes)
        plan.tree.append(nxt)
        cur = nxt
    plan.tree_levels = t
    plan.tree_registered = [lv % tree_k == 0 or lv == t for lv in range(1, t + 1)]
    return plan


def _lit(net: Netlist, s: int) -> str:
    return "1'b1" if net.op[s - net.n_inputs] == 15 else "1'b0"


def to_verilog_pipelined(net: Netlist, k: int, name: str = "nh_logic", plan: PipelinePlan | None = None,
                         tree_k: int | None = None) -> str:
    """Verilog-2001 source of the pipelined module (ports and timing: the module docstring)."""
    from logic.export import _V_EXPR, _count_bits

    check_identifier(name, "name")
    plan = plan or plan_pipeline(net, k, tree_k)
    ni, nc = net.n_inputs, net.num_classes
    cw = _count_bits(net.group_size)
    lat = plan.latency
    const = np.zeros(net.n_signals, dtype=bool)
    const[ni:] = np.isin(net.op, _CONST_OPS)
    level = _signal_levels(net)
    made = np.where(level > 0, (level - 1) // plan.k, 0)
    pos = [None] + [{int(s): i for i, s in enumerate(b.tolist())} for b in plan.banks]

    def ref(s: int, st: int) -> str:
        """Signal ``s`` as seen in stage ``st``."""
        if s >= ni and const[s]:
            return _lit(net, s)
        if made[s] == st:
            return f"x[{s}]" if s < ni else f"g{s - ni}"
        return f"p{st}[{pos[st][s]}]"

    lines = [
        f"// Generated by neurohw.logic: {net.n_gates} gates, {ni} inputs, {nc} classes; pipelined every {plan.k} "
        f"logic level(s).",
        f"// Latency {lat} cycles ({plan.gate_stages} gate stage(s) + {plan.tree_banks} register bank(s) in the "
        f"{plan.tree_levels}-level GroupSum tree); "
        f"{plan.flip_flops} flip-flops.",
        f"module {name} (",
        "  input  wire clk,",
        "  input  wire rst,  // synchronous: clears the valid pipeline",
        "  input  wire valid_in,",
        f"  input  wire [{ni - 1}:0] x,",
        "  output wire valid_out,",
        f"  output wire [{nc * cw - 1}:0] counts  // class c: counts[c*{cw} +: {cw}]",
        ");",
    ]
    ops, aa, bb = net.op.tolist(), net.a.tolist(), net.b.tolist()
    gates_by_stage: list[list[int]] = [[] for _ in range(plan.gate_stages)]
    for g, st in enumerate(plan.stage_of_gate.tolist()):
        gates_by_stage[st].append(g)
    for st in range(plan.gate_stages):
        lines.append(f"  // stage {st}")
        for g in gates_by_stage[st]:
            lines.append(f"  wire g{g} = {_V_EXPR[ops[g]].format(a=ref(aa[g], st), b=ref(bb[g], st))};")
        bank = plan.banks[st]
        if bank.size:
            lines.append(f"  reg [{bank.size - 1}:0] p{st + 1};")
            lines.append("  (* keep *) always @(posedge clk) begin")
            lines += [f"    p{st + 1}[{i}] <= {ref(int(s), st)};" for i, s in enumerate(bank.tolist())]
            lines.append("  end")
    # GroupSum tree: level-0 values are the leaves as seen after the last gate bank
    s_last = plan.gate_stages
    value = {f"L{c}_{j}": ref(s, s_last) for c, lv in enumerate(plan.leaves) for j, s in enumerate(lv)}
    width = {f"L{c}_{j}": 1 for c, lv in enumerate(plan.leaves) for j in range(len(lv))}
    for t, (level_nodes, registered) in enumerate(zip(plan.tree, plan.tree_registered), start=1):
        lines.append(f"  // GroupSum tree level {t}" + ("" if registered else " (no register)"))
        regs = []
        for nodes in level_nodes:
            for n in nodes:
                ext = [f"{{{n.width - width[p]}'b0, {value[p]}}}" if n.width > width[p] else value[p] for p in n.parts]
                if registered:
                    lines.append(f"  reg [{n.width - 1}:0] {n.name};")
                    regs.append(f"    {n.name} <= {' + '.join(ext)};")
                else:
                    lines.append(f"  wire [{n.width - 1}:0] {n.name} = {' + '.join(ext)};")
        if registered:
            lines.append("  (* keep *) always @(posedge clk) begin")
            lines += regs
            lines.append("  end")
        for nodes in level_nodes:
            for n in nodes:
                value[n.name], width[n.name] = n.name, n.width
    final = plan.tree[-1] if plan.tree else [[TreeNode(f"L{c}_0", 1, 1)] if lv else [] for c, lv in enumerate(plan.leaves)]
    counts = []
    for c in range(nc):
        off = plan.offsets[c]
        if final[c]:
            n = final[c][0]
            term = f"{{{cw - width[n.name]}'b0, {value[n.name]}}}" if cw > width[n.name] else value[n.name]
            counts.append(f"({term} + {cw}'d{off})" if off else term)
        else:
            counts.append(f"{cw}'d{off}")
    for c in range(nc):
        lines.append(f"  wire [{cw - 1}:0] count{c} = {counts[c]};")
    lines.append(f"  assign counts = {{{', '.join(f'count{c}' for c in reversed(range(nc)))}}};")
    lines.append(f"  reg [{lat - 1}:0] valid_pipe;")
    shift = "valid_in" if lat == 1 else f"{{valid_pipe[{lat - 2}:0], valid_in}}"
    lines += ["  (* keep *) always @(posedge clk) begin",
              f"    if (rst) valid_pipe <= {lat}'b0; else valid_pipe <= {shift};",
              "  end",
              f"  assign valid_out = valid_pipe[{lat - 1}];",
              "endmodule", ""]
    return "\n".join(lines)


#: Every BUBBLE-th cycle the testbench drives valid_in = 0 and junk x.
BUBBLE = 5


def pipelined_testbench(net: Netlist, n_vectors: int, vectors_file: str, latency: int, name: str = "nh_logic") -> str:
    """Testbench for :func:`to_verilog_pipelined`: one vector per cycle (a bubble every :data:`BUBBLE` cycles).

    Prints ``i CYCLE`` when vector ``i`` enters (the cycle before the edge that samples it) and
    ``o CYCLE c0 c1 …`` whenever ``valid_out`` is high after an edge (CYCLE = the cycle that
    edge starts); ends when ``n_vectors`` results came or, as an error, ``latency + 20`` cycles
    after the last input.
    """
    from logic.export import testbench_frame, write_counts_line

    ni = net.n_inputs
    return testbench_frame(
        net, n_vectors, vectors_file,
        wires=["  reg clk, rst, valid_in;", "  wire valid_out;"],
        integers="i, c, cyc, got, last_in",
        instance=f"  {name} dut (.clk(clk), .rst(rst), .valid_in(valid_in), .x(x), .valid_out(valid_out), .counts(counts));",
        clock=["  always #5 clk = ~clk;"],
        body=[
            f"    clk = 0; rst = 1; valid_in = 0; x = {ni}'b0; i = 0; got = 0; last_in = 0;",
            "    @(posedge clk); #1 rst = 0;",
            f"    for (cyc = 0; got < {n_vectors}; cyc = cyc + 1) begin",
            f"      if (i < {n_vectors} && cyc % {BUBBLE} != {BUBBLE - 1}) begin",
            "        x = mem[i]; valid_in = 1; $write(\"i %0d\\n\", cyc); i = i + 1; last_in = cyc;",
            "      end else begin",
            "        x = ~x; valid_in = 0;",
            "      end",
            "      @(posedge clk); #1;",
            "      if (valid_out) begin",
            "        $write(\"o %0d \", cyc + 1);",
            write_counts_line(net, "        "),
            "        $write(\"\\n\"); got = got + 1;",
            "      end",
            f"      if (i == {n_vectors} && cyc > last_in + {latency + 20}) begin",
            "        $write(\"timeout\\n\"); $finish;",
            "      end",
            "    end",
        ],
    )  # fmt: skip


def parse_pipelined_output(out: str, n_vectors: int, latency: int) -> torch.Tensor:
    """Counts from the testbench's lines; raises ExportError unless every vector came out after exactly ``latency`` cycles."""
    from logic.export import ExportError

    ins, outs, rows = [], [], []
    for ln in out.splitlines():
        p = ln.split()
        if not p:
            continue
        if p[0] == "i":
            ins.append(int(p[1]))
        elif p[0] == "o":
            outs.append(int(p[1]))
            rows.append(list(map(int, p[2:])))
        elif p[0] == "timeout":
            raise ExportError(f"pipelined testbench: {len(rows)} of {n_vectors} results before the timeout")
    if len(rows) != n_vectors or len(ins) != n_vectors:
        raise ExportError(f"pipelined testbench: {len(ins)} inputs and {len(rows)} results for {n_vectors} vectors")
    lat = np.asarray(outs) - np.asarray(ins)
    if not np.all(lat == latency):
        bad = int(np.flatnonzero(lat != latency)[0])
        raise ExportError(f"pipelined testbench: vector {bad} came out after {lat[bad]} cycles, expected {latency}")
    return torch.tensor(rows, dtype=torch.int64)


def simulate_pipelined(net: Netlist, bits: torch.Tensor, k: int, workdir: str | Path | None = None, *,
                       verilog: str | None = None, name: str = "nh_logic", tree_k: int | None = None) -> torch.Tensor:
    """Simulate the pipelined module (``k`` levels per stage) in Icarus on (N, NI) bits → (N, classes) int64 counts.

    ``verilog``: the module source to test (default :func:`to_verilog_pipelined`; e.g. a
    synthesised netlist of it, same ports and latency)."""
    from logic.export import run_icarus

    plan = plan_pipeline(net, k, tree_k)
    out, n = run_icarus(bits, workdir, to_verilog_pipelined(net, k, name, plan) if verilog is None else verilog,
                        lambda n_vectors: pipelined_testbench(net, n_vectors, "vectors.txt", plan.latency, name=name))
    return parse_pipelined_output(out, n, plan.latency)
