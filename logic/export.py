"""Netlist export: C (bit-sliced, 64 samples per ``uint64_t``) and Verilog (combinational), with runners.

C (:func:`to_c`) — one translation unit, no dependencies beyond ``<stdint.h>``/``<string.h>``;
a *table* form (default: the netlist as slot tables, fixed gate loops, compiles in about a
second) or a straight-line *code* form. A block is ``NH_BLOCK`` = 64·``NH_LANES`` samples
(default 256, see ``nh_w``):

* ``void <name>_eval(const uint64_t *x, uint64_t *y)``: ``x[i·NH_LANES + l]`` = input i of
  samples 64l … 64l+63 (bit k = sample 64l+k), ``y`` likewise for the NO outputs;
* ``void <name>_counts(const uint64_t *x, int32_t *counts)``: per-class popcounts of the
  block's samples, ``counts[k·NC + c]``, computed with bit-sliced carry-save counters;
* with ``-DNH_MAIN`` a ``main``: ``prog IN OUT NBLOCKS`` reads NBLOCKS blocks of NI
  native-endian 64-sample uint64 words and writes NBLOCKS·64·NC int32 counts; ``prog --bench
  NBLOCKS REPEATS [THREADS]`` times ``_counts`` on pseudo-random inputs and prints
  ``images_per_s`` (per core) and ``wall_images_per_s`` (all threads).

Verilog (:func:`to_verilog`) — ``module <name>(input [NI-1:0] x, output [NO-1:0] y,
output [NC·CW-1:0] counts)``: one ``assign`` per gate, class ``c``'s count in
``counts[c·CW +: CW]`` (CW = bits to hold the group size). :func:`verilog_testbench`
writes a testbench reading vectors with ``$readmemb`` and printing the counts.
``pipeline=K`` (:func:`to_verilog`, :func:`write_verilog`, :func:`simulate_verilog`) gives the
pipelined module of :mod:`logic.pipeline` instead (registers every K logic levels, a pipelined
GroupSum tree, ``clk``/``rst``/``valid_in``/``valid_out`` ports).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from logic.identifiers import check_identifier
from logic.netlist import Netlist
from logic.packed import pack_bits

_C_EXPR = {
    0: "NH_ZERO", 1: "{a} & {b}", 2: "{a} & ~{b}", 3: "{a}", 4: "~{a} & {b}", 5: "{b}", 6: "{a} ^ {b}", 7: "{a} | {b}",
    8: "~({a} | {b})", 9: "~({a} ^ {b})", 10: "~{b}", 11: "{a} | ~{b}", 12: "~{a}", 13: "~{a} | {b}",
    14: "~({a} & {b})", 15: "~NH_ZERO",
}  # fmt: skip
#: Gates per generated C function (see :func:`to_c`, ``style="code"``).
C_CHUNK = 400
#: Forms of the C export (see :func:`to_c`); the first is the default.
C_STYLES = ("table", "code")
C_STYLE = C_STYLES[0]

_V_EXPR = {**_C_EXPR, 0: "1'b0", 15: "1'b1"}


class ExportError(RuntimeError):
    """A toolchain step (compiler, simulator) failed; the message carries its output."""


def _count_bits(group: int) -> int:
    return max(1, int(group).bit_length())


def _schedule(net: Netlist, chunk: int):
    """Liveness schedule of the gates for :func:`to_c`.

    Gates keep their (topological) order and go into functions of ``chunk`` gates. A gate whose
    value is read only inside its own function stays a local; one read by a later function gets
    a workspace slot, reused (lowest free slot first) once its last reader has run.
    Returns ``(part_of_gate, slot_of_gate (-1: local), n_slots)``.
    """
    import heapq

    ni, ng = net.n_inputs, net.n_gates
    part = np.arange(ng) // chunk
    last = np.full(ng, -1, dtype=np.int64)  # last reading gate
    for arr in (net.a, net.b):
        g = arr - ni
        m = g >= 0
        np.maximum.at(last, g[m], np.flatnonzero(m))
    needs_slot = (last >= 0) & (part[np.maximum(last, 0)] != part)
    slot = np.full(ng, -1, dtype=np.int64)
    free: list[int] = []
    n_slots = 0
    # Free a slot at the start of the function after the one holding its last read.
    release: dict[int, list[int]] = {}
    for p in range(int(part[-1]) + 1 if ng else 0):
        for s in release.pop(p, []):
            heapq.heappush(free, s)
        for g in range(p * chunk, min(ng, (p + 1) * chunk)):
            if needs_slot[g]:
                s = heapq.heappop(free) if free else n_slots
                n_slots = max(n_slots, s + 1)
                slot[g] = s
                release.setdefault(int(part[last[g]]) + 1, []).append(s)
    return part, slot, n_slots



def _table_schedule(net: Netlist):
    """Level schedule of the gates for the table form of :func:`to_c`.

    Gates run level by level (a level reads only earlier levels), sorted by gate kind within a
    level so that each (level, kind) run is one loop. Every value (inputs first, slots
    ``0..NI-1``) gets a workspace slot for the levels it is live in; a slot is reused (lowest
    free first) from the level after the last one reading it; outputs stay live to the end.
    Returns ``(order, slot_of_signal, n_slots)`` (``order``: gate indices in run order).
    """
    import heapq

    ni, ng = net.n_inputs, net.n_gates
    levels = [g[np.argsort(net.op[g], kind="stable")] for g in net.levels()]
    lv = np.zeros(ni + ng, dtype=np.int64)
    for d, g in enumerate(levels, start=1):
        lv[ni + g] = d
    last = lv.copy()  # level of the last reader (at least the value's own level)
    for arr in (net.a, net.b):
        np.maximum.at(last, arr, lv[ni:])
    last[net.outputs] = len(levels) + 1
    slot = np.full(ni + ng, -1, dtype=np.int64)
    slot[:ni] = np.arange(ni)
    release: dict[int, list[int]] = {}
    for i in range(ni):
        release.setdefault(int(last[i]) + 1, []).append(i)
    free: list[int] = []
    n_slots = ni
    for d, g in enumerate(levels, start=1):
        for s in release.pop(d, []):
            heapq.heappush(free, s)
        for gate in g.tolist():
            s = heapq.heappop(free) if free else n_slots
            n_slots = max(n_slots, s + 1)
            slot[ni + gate] = s
            release.setdefault(int(last[ni + gate]) + 1, []).append(s)
    order = np.concatenate(levels) if levels else np.zeros(0, dtype=np.int64)
    return order, slot, n_slots

_C_PRELUDE = r"""#include <stdint.h>
#include <string.h>
/* nh_w: one word of bit-sliced samples. GCC/Clang vector extensions give NH_LANES x 64 samples
 * per word (default 4: 256 bit); -DNH_NO_VECTOR (or another compiler) falls back to uint64_t. */
#if defined(__GNUC__) && !defined(NH_NO_VECTOR)
#ifndef NH_LANES
#define NH_LANES 4
#endif
typedef uint64_t nh_w __attribute__((vector_size(8 * NH_LANES)));
typedef uint64_t nh_wu __attribute__((vector_size(8 * NH_LANES), aligned(8), may_alias));
#define NH_ZERO ((nh_w){0})
#define NH_NOINLINE __attribute__((noinline))
#define NH_INLINE static inline __attribute__((always_inline))
#define NH_TLS __thread
#else
#undef NH_LANES
#define NH_LANES 1
typedef uint64_t nh_w;
typedef uint64_t nh_wu;
#define NH_ZERO ((nh_w)0)
#define NH_NOINLINE
#define NH_INLINE static
#define NH_TLS
#endif
#define NH_BLOCK (64 * NH_LANES)
/* NH_CLONES: GCC on x86-64 with glibc (ifunc) builds the gate loop and the counter twice, for
 * AVX2 and for the baseline ISA, and picks one at load time (target_clones); -DNH_NO_CLONES
 * turns this off. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(NH_NO_CLONES) \
    && !defined(NH_NO_VECTOR)
#define NH_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NH_CLONES
#endif
"""


def to_c(net: Netlist, name: str = "nh_logic", chunk: int = C_CHUNK, style: str = C_STYLE) -> str:
    """C source for ``net`` (see the module docstring for the interface).

    ``style="table"`` (default): the netlist is data — per gate a destination and two source
    slots (``uint16_t`` or ``uint32_t``) in level order, grouped into runs of one gate kind, and
    one fixed loop per kind evaluates a run (:func:`_table_schedule`). The source size is
    linear in the gates but the code is not, so it compiles in about a second for any net.

    ``style="code"``: straight-line code. Gates are emitted in functions of ``chunk`` gates
    (``noinline``: one huge function makes the compiler's passes super-linear); inside a
    function every gate is a ``const`` local (SSA form), and only values read by a later
    function go through a small workspace whose slots are reused by liveness
    (:func:`_schedule`). Compile time grows with the gates (about a minute at -O1 for 55 k).
    """
    check_identifier(name, "name")
    if chunk < 1:
        raise ValueError(f"to_c: chunk must be ≥ 1, got {chunk}")
    if style not in C_STYLES:
        raise ValueError(f"to_c: style must be one of {', '.join(C_STYLES)}, got {style!r}")
    ni, no, nc, grp = net.n_inputs, net.outputs.size, net.num_classes, net.group_size
    header = [
        f"#define NI {ni}", f"#define NO {no}", f"#define NC {nc}", f"#define NG {grp}", f"#define NB {_count_bits(grp)}",
    ]
    if style == "table":
        comment, body = _c_table_body(net, name)
    else:
        comment, body = _c_code_body(net, name, chunk)
    lines = [
        f"/* Generated by neurohw.logic ({style} form): {net.n_gates} gates, {ni} inputs, {no} outputs, {nc} classes, "
        f"{comment}. */",
        _C_PRELUDE,
        *header,
        *body,
    ]
    lines += [
        "",
        "/* x[i*NH_LANES + l]: input i of samples 64l..64l+63 (bit k = sample 64l+k); y likewise. */",
        f"void {name}_eval(const uint64_t *restrict x, uint64_t *restrict y) {{",
        "  nh_w w[NO];",
        f"  {name}_eval_words((const nh_wu *)x, w);",
        "  memcpy(y, w, sizeof w);",
        "}",
        "",
        "NH_INLINE void nh_add_bit(nh_w *plane, int p, nh_w c) {",
        "  for (; p < NB; p++) { nh_w t = plane[p] & c; plane[p] ^= c; c = t; }",
        "}",
        "#define NH_CSA(h, l, a, b, c) do { nh_w u_ = (a) ^ (b); h = ((a) & (b)) | (u_ & (c)); l = u_ ^ (c); } while (0)",
        "/* plane[0..NB-1] = bit planes of the count of set bits among y[0..n-1] (carry-save, Harley-Seal). */",
        "NH_INLINE void nh_popcount(const nh_w *y, int n, nh_w *plane) {",
        "  nh_w ones = NH_ZERO, twos = NH_ZERO, fours = NH_ZERO, ta, tb, fa, fb, eights;",
        "  for (int p = 0; p < NB; p++) plane[p] = NH_ZERO;",
        "  int i = 0;",
        "  for (; i + 8 <= n; i += 8) {",
        "    NH_CSA(ta, ones, ones, y[i], y[i + 1]); NH_CSA(tb, ones, ones, y[i + 2], y[i + 3]);",
        "    NH_CSA(fa, twos, twos, ta, tb);",
        "    NH_CSA(ta, ones, ones, y[i + 4], y[i + 5]); NH_CSA(tb, ones, ones, y[i + 6], y[i + 7]);",
        "    NH_CSA(fb, twos, twos, ta, tb);",
        "    NH_CSA(eights, fours, fours, fa, fb);",
        "    if (NB > 3) nh_add_bit(plane, 3, eights);",
        "  }",
        "  for (; i < n; i++) nh_add_bit(plane, 0, y[i]);",
        "  nh_add_bit(plane, 0, ones);",
        "  if (NB > 1) nh_add_bit(plane, 1, twos);",
        "  if (NB > 2) nh_add_bit(plane, 2, fours);",
        "}",
        "",
        "/* counts[k*NC + c]: set outputs of class c for sample k of the block (k < NH_BLOCK). */",
        f"NH_CLONES void {name}_counts(const uint64_t *restrict x, int32_t *restrict counts) {{",
        "  static const uint64_t spread[16] = {0x0ull, 0x1ull, 0x10000ull, 0x10001ull, 0x100000000ull, 0x100000001ull,",
        "    0x100010000ull, 0x100010001ull, 0x1000000000000ull, 0x1000000000001ull, 0x1000000010000ull, 0x1000000010001ull,",
        "    0x1000100000000ull, 0x1000100000001ull, 0x1000100010000ull, 0x1000100010001ull};",
        "  nh_w y[NO];",
        f"  {name}_eval_words((const nh_wu *)x, y);",
        "  for (int c = 0; c < NC; c++) {",
        "    nh_w plane[NB];",
        "    nh_popcount(y + c * NG, NG, plane);",
        "    for (int l = 0; l < NH_LANES; l++) {",
        "      uint64_t acc[16] = {0};  /* 4 samples of 16-bit counts per word */",
        "      for (int p = 0; p < NB; p++) {",
        "        uint64_t w; memcpy(&w, (const uint64_t *)&plane[p] + l, 8);",
        "        for (int j = 0; j < 16; j++) acc[j] |= spread[(w >> (4 * j)) & 15u] << p;",
        "      }",
        "      int32_t *out = counts + (64 * l) * NC + c;",
        "      for (int j = 0; j < 16; j++)",
        "        for (int q = 0; q < 4; q++) out[(4 * j + q) * NC] = (int32_t)((acc[j] >> (16 * q)) & 0xFFFFu);",
        "    }",
        "  }",
        "}",
    ]
    lines += _C_MAIN.replace("NAME", name).splitlines()
    return "\n".join(lines) + "\n"


def _c_code_body(net: Netlist, name: str, chunk: int) -> tuple[str, list[str]]:
    """Straight-line ``<name>_eval_words`` (see :func:`to_c`, ``style="code"``)."""
    ni = net.n_inputs
    part, slot, n_slots = _schedule(net, chunk)
    out_of: dict[int, list[int]] = {}
    for i, s in enumerate(net.outputs.tolist()):
        out_of.setdefault(int(s), []).append(i)

    def ref(sig: int, p: int) -> str:
        if sig < ni:
            return f"x[{sig}]"
        g = sig - ni
        return f"g{g}" if part[g] == p else f"s[{slot[g]}]"

    lines = [f"#define NS {max(n_slots, 1)}", ""]
    n_parts = int(part[-1]) + 1 if net.n_gates else 0
    ops, aa, bb = net.op.tolist(), net.a.tolist(), net.b.tolist()
    for p in range(n_parts):
        lines.append(f"static NH_NOINLINE void {name}_part{p}(const nh_wu *restrict x, nh_w *restrict s, nh_w *restrict y) {{")
        lines.append("  (void)x; (void)s; (void)y;")
        for g in range(p * chunk, min(net.n_gates, (p + 1) * chunk)):
            lines.append(f"  const nh_w g{g} = {_C_EXPR[ops[g]].format(a=ref(aa[g], p), b=ref(bb[g], p))};")
            if slot[g] >= 0:
                lines.append(f"  s[{slot[g]}] = g{g};")
            for i in out_of.get(ni + g, ()):
                lines.append(f"  y[{i}] = g{g};")
        lines.append("}")
    lines += [
        "",
        "/* x: NI words of NH_BLOCK samples, y: NO words. */",
        f"void {name}_eval_words(const nh_wu *restrict x, nh_w *restrict y) {{",
        "  static NH_TLS nh_w s[NS];",
        *(f"  {name}_part{p}(x, s, y);" for p in range(n_parts)),
        *(f"  y[{i}] = x[{s}];" for i, s in enumerate(net.outputs.tolist()) if s < ni),
        "}",
    ]
    return f"{n_slots} workspace slots", lines


def _c_array(ctype: str, name: str, values) -> list[str]:
    """``static const ctype name[] = {...};`` with 24 values a line (at least one element)."""
    vals = [str(int(v)) for v in values] or ["0"]
    body = [",".join(vals[i : i + 24]) + "," for i in range(0, len(vals), 24)]
    return [f"static const {ctype} {name}[{len(vals)}] = {{", *body, "};"]


def _c_table_case(op: int) -> str:
    """The ``switch`` case of one gate kind: a loop over a run of ``n`` gates, ``v[d[k]] = f(v[a[k]], v[b[k]])``."""
    expr = _C_EXPR[op].format(a="v[a[k]]", b="v[b[k]]")
    return f"    case {op}: for (long k = 0; k < n; k++) v[d[k]] = {expr}; break;"


def _c_table_body(net: Netlist, name: str) -> tuple[str, list[str]]:
    """Table-driven ``<name>_eval_words`` (see :func:`to_c`, ``style="table"``)."""
    order, slot, n_slots = _table_schedule(net)
    ni = net.n_inputs
    itype = "uint16_t" if n_slots <= 1 << 16 else "uint32_t"
    ops = net.op[order]
    lvl_of = np.zeros(net.n_gates, dtype=np.int64)
    for d, g in enumerate(net.levels()):
        lvl_of[g] = d
    lvls = lvl_of[order]
    # runs: maximal stretches of one kind within one level
    if ops.size:
        starts = np.concatenate([[0], np.flatnonzero((np.diff(ops) != 0) | (np.diff(lvls) != 0)) + 1])
    else:
        starts = np.zeros(0, dtype=np.int64)
    lens = np.diff(np.concatenate([starts, [ops.size]]))
    lines = [
        f"#define NV {n_slots}",
        f"#define NR {len(starts)}",
        "",
        *_c_array(itype, f"{name}_dst", slot[ni + order]),
        *_c_array(itype, f"{name}_src_a", slot[net.a[order]]),
        *_c_array(itype, f"{name}_src_b", slot[net.b[order]]),
        *_c_array("uint8_t", f"{name}_run_op", ops[starts]),
        *_c_array("uint32_t", f"{name}_run_len", lens),
        *_c_array(itype, f"{name}_out", slot[net.outputs]),
        "",
        "/* x: NI words of NH_BLOCK samples, y: NO words. Workspace v: NV slots, inputs in 0..NI-1. */",
        f"NH_CLONES void {name}_eval_words(const nh_wu *restrict x, nh_w *restrict y) {{",
        "  static NH_TLS nh_w ws[NV];",
        "  nh_w *restrict v = ws;  /* one thread-local address lookup per call */",
        "  for (long i = 0; i < NI; i++) v[i] = x[i];",
        f"  const {itype} *d = {name}_dst, *a = {name}_src_a, *b = {name}_src_b;",
        "  for (long r = 0; r < NR; r++) {",
        f"    const long n = {name}_run_len[r];",
        f"    switch ({name}_run_op[r]) {{",
        *(_c_table_case(op) for op in range(16)),
        "    }",
        "    d += n; a += n; b += n;",
        "  }",
        f"  for (long i = 0; i < NO; i++) y[i] = v[{name}_out[i]];",
        "}",
    ]
    return f"{n_slots} workspace slots, {len(starts)} runs", lines


_C_MAIN = r"""
#ifdef NH_MAIN
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef NH_PTHREADS
#include <pthread.h>
typedef struct { const uint64_t *xs; long n, reps; uint64_t chk; } nh_job;
static void *nh_worker(void *arg) {
  nh_job *j = arg; int32_t counts[NH_BLOCK * NC];
  for (long r = 0; r < j->reps; r++) for (long i = 0; i < j->n; i++) {
    NAME_counts(j->xs + i * NI * NH_LANES, counts); j->chk += (uint64_t)counts[(i + r) % (NH_BLOCK * NC)];
  }
  return NULL;
}
#endif
static double nh_seconds(clockid_t id) { struct timespec t; clock_gettime(id, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
/* prog IN OUT NBLOCKS: NBLOCKS blocks of NI words (64 samples each) in, NBLOCKS*64*NC int32 counts out.
 * prog --bench NBLOCKS REPEATS [THREADS]: time NAME_counts on ceil(NBLOCKS/NH_LANES) pseudo-random calls. */
int main(int argc, char **argv) {
  if ((argc == 4 || argc == 5) && strcmp(argv[1], "--bench") == 0) {
    long nb = atol(argv[2]), reps = atol(argv[3]), threads = argc == 5 ? atol(argv[4]) : 1;
    long calls = (nb + NH_LANES - 1) / NH_LANES; if (calls < 1) calls = 1;
    if (threads < 1) threads = 1;
    uint64_t *xs = malloc(sizeof(uint64_t) * NI * NH_LANES * calls * threads), s = 88172645463325252ull, chk = 0;
    if (!xs) { fprintf(stderr, "out of memory\n"); return 1; }
    for (long i = 0; i < NI * NH_LANES * calls * threads; i++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; xs[i] = s; }
    double w0 = nh_seconds(CLOCK_MONOTONIC), c0 = nh_seconds(CLOCK_PROCESS_CPUTIME_ID);
    if (threads == 1) {
      int32_t counts[NH_BLOCK * NC];
      for (long r = 0; r < reps; r++) for (long i = 0; i < calls; i++) {
        NAME_counts(xs + i * NI * NH_LANES, counts); chk += (uint64_t)counts[(i + r) % (NH_BLOCK * NC)];
      }
    } else {
#ifdef NH_PTHREADS
      pthread_t tid[256]; nh_job job[256]; if (threads > 256) threads = 256;
      for (long t = 0; t < threads; t++) {
        job[t] = (nh_job){xs + t * calls * NI * NH_LANES, calls, reps, 0};
        pthread_create(&tid[t], NULL, nh_worker, &job[t]);
      }
      for (long t = 0; t < threads; t++) { pthread_join(tid[t], NULL); chk += job[t].chk; }
#else
      fprintf(stderr, "threads > 1 needs -DNH_PTHREADS -pthread\n"); return 2;
#endif
    }
    double cpu = nh_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0, wall = nh_seconds(CLOCK_MONOTONIC) - w0;
    double images = (double)NH_BLOCK * calls * reps * threads;
    printf("images_per_s %.6e seconds %.6f wall_images_per_s %.6e wall_seconds %.6f threads %ld lanes %d checksum %llu\n",
           images / cpu, cpu, images / wall, wall, threads, NH_LANES, (unsigned long long)chk);
    free(xs); return 0;
  }
  if (argc != 4) { fprintf(stderr, "usage: %s IN OUT NBLOCKS | --bench NBLOCKS REPEATS [THREADS]\n", argv[0]); return 2; }
  long nb = atol(argv[3]);
  FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
  if (!fi || !fo) { fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]); return 1; }
  static uint64_t blk[NH_LANES][NI], x[NI * NH_LANES]; static int32_t counts[NH_BLOCK * NC];
  for (long i = 0; i < nb; i += NH_LANES) {
    int m = nb - i < NH_LANES ? (int)(nb - i) : NH_LANES;
    memset(blk, 0, sizeof blk);
    for (int l = 0; l < m; l++)
      if (fread(blk[l], sizeof(uint64_t), NI, fi) != NI) { fprintf(stderr, "short read at block %ld\n", i + l); return 1; }
    for (int k = 0; k < NI; k++) for (int l = 0; l < NH_LANES; l++) x[k * NH_LANES + l] = blk[l][k];
    NAME_counts(x, counts);
    fwrite(counts, sizeof(int32_t), (size_t)64 * m * NC, fo);
  }
  fclose(fi); fclose(fo); return 0;
}
#endif
"""


def to_verilog(net: Netlist, name: str = "nh_logic", pipeline: int | None = None) -> str:
    """Verilog-2001 source for ``net`` (see the module docstring for the ports).

    Every gate is its own scalar ``wire`` (simulators and synthesis tools handle scalar nets
    far better than thousands of single-bit drivers of one vector). ``pipeline``: K logic
    levels per register stage (:func:`logic.pipeline.to_verilog_pipelined`); None: combinational.
    """
    if pipeline is not None:
        from logic.pipeline import check_k, to_verilog_pipelined

        return to_verilog_pipelined(net, check_k(pipeline), name)
    check_identifier(name, "name")
    ni, no, nc, grp = net.n_inputs, net.outputs.size, net.num_classes, net.group_size
    cw = _count_bits(grp)
    sig = lambda s: f"x[{s}]" if s < ni else f"g{s - ni}"  # noqa: E731
    lines = [
        f"// Generated by neurohw.logic: {net.n_gates} gates, {ni} inputs, {no} outputs, {nc} classes.",
        f"module {name} (",
        f"  input  wire [{ni - 1}:0] x,",
        f"  output wire [{no - 1}:0] y,",
        f"  output wire [{nc * cw - 1}:0] counts  // class c: counts[c*{cw} +: {cw}]",
        ");",
    ]
    for gi, (op, a, b) in enumerate(zip(net.op.tolist(), net.a.tolist(), net.b.tolist())):
        lines.append(f"  wire g{gi} = {_V_EXPR[op].format(a=sig(a), b=sig(b))};")
    outs = [sig(s) for s in net.outputs.tolist()]
    lines.append(f"  assign y = {{{', '.join(reversed(outs))}}};")
    for c in range(nc):
        grp_sig = outs[c * grp : (c + 1) * grp]
        terms = " + ".join(f"{{{{{cw - 1}{{1'b0}}}}, {t}}}" if cw > 1 else t for t in grp_sig)
        lines.append(f"  wire [{cw - 1}:0] count{c} = {terms};")
    lines.append(f"  assign counts = {{{', '.join(f'count{c}' for c in reversed(range(nc)))}}};")
    lines += ["endmodule", ""]
    return "\n".join(lines)


def testbench_frame(net: Netlist, n_vectors: int, vectors_file: str, *, wires: list[str], integers: str,
                    instance: str, body: list[str], clock: list[str] = ()) -> str:
    """The Verilog testbench frame the combinational and pipelined testbenches share.

    Declares ``mem`` (``n_vectors`` words of ``net.n_inputs`` bits, filled from ``vectors_file``
    by ``$readmemb``), ``x``, the extra ``wires`` (declaration lines), ``counts``
    (``num_classes`` fields of :func:`_count_bits` bits), the ``integer`` variables ``integers``,
    the ``instance`` line and ``clock`` lines; ``body`` runs inside ``initial`` after the read,
    followed by ``$finish``.
    """
    ni, nc = net.n_inputs, net.num_classes
    cw = _count_bits(net.group_size)
    return "\n".join([
        "`timescale 1ns/1ps",
        "module tb;",
        f"  reg [{ni - 1}:0] mem [0:{n_vectors - 1}];",
        f"  reg [{ni - 1}:0] x;",
        *wires,
        f"  wire [{nc * cw - 1}:0] counts;",
        f"  integer {integers};",
        instance,
        *clock,
        "  initial begin",
        f"    $readmemb(\"{vectors_file}\", mem);",
        *body,
        "    $finish;",
        "  end",
        "endmodule",
        "",
    ])  # fmt: skip


def write_counts_line(net: Netlist, indent: str) -> str:
    """Verilog: ``$write`` each class count of ``counts`` (loop variable ``c``) followed by a space."""
    cw = _count_bits(net.group_size)
    return f"{indent}for (c = 0; c < {net.num_classes}; c = c + 1) $write(\"%0d \", counts[c*{cw} +: {cw}]);"


def verilog_testbench(net: Netlist, n_vectors: int, vectors_file: str, name: str = "nh_logic") -> str:
    """Testbench: reads ``n_vectors`` lines of ``$readmemb`` input bits, prints one line of class counts per vector."""
    return testbench_frame(
        net, n_vectors, vectors_file,
        wires=[f"  wire [{net.outputs.size - 1}:0] y;"],
        integers="i, c",
        instance=f"  {name} dut (.x(x), .y(y), .counts(counts));",
        body=[
            f"    for (i = 0; i < {n_vectors}; i = i + 1) begin",
            "      x = mem[i]; #1;",
            write_counts_line(net, "      "),
            "      $write(\"\\n\");",
            "    end",
        ],
    )  # fmt: skip


def write_c(net: Netlist, path: str | Path, name: str = "nh_logic") -> Path:
    from neurohw.io import atomic_write_text

    return atomic_write_text(path, to_c(net, name))


def write_verilog(net: Netlist, path: str | Path, name: str = "nh_logic", pipeline: int | None = None) -> Path:
    from neurohw.io import atomic_write_text

    return atomic_write_text(path, to_verilog(net, name, pipeline=pipeline))


# ---------------------------------------------------------------------------------- runners
def find_cc() -> str | None:
    """The system C compiler (``$CC``, ``cc``, ``gcc`` or ``clang``), or None."""
    for c in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


def _run(cmd: list[str], what: str, timeout: float = 900, cwd: str | None = None) -> str:
    """Run a tool; on failure or timeout raise :class:`ExportError` (the whole process group is killed on timeout)."""
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True)
    except OSError as exc:
        raise ExportError(f"{what}: {cmd[0]} could not be started: {exc}") from exc
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        os.killpg(p.pid, 9)
        p.communicate()
        raise ExportError(f"{what}: timed out after {timeout} s") from exc
    if p.returncode != 0:
        raise ExportError(f"{what} failed (exit {p.returncode}): {(err or out)[-2000:]}")
    return out


def compile_c(src: str | Path, exe: str | Path, opt: str = "-O1", extra: tuple[str, ...] = (), threads: bool = True) -> Path:
    """Compile a file written by :func:`write_c` with its ``main`` (``-DNH_MAIN``).

    ``threads``: build the multi-threaded ``--bench`` loop (``-DNH_PTHREADS -pthread``).
    ``extra``: e.g. ``("-march=native",)``, ``("-DNH_NO_VECTOR",)`` (portable 64-bit words) or
    ``("-DNH_LANES=8",)`` (512-bit words).
    """
    cc = find_cc()
    if cc is None:
        raise ExportError("no C compiler found (set CC or install gcc)")
    thr = ["-DNH_PTHREADS", "-pthread"] if threads else []
    _run([cc, opt, "-std=c99", "-D_POSIX_C_SOURCE=200112L", "-DNH_MAIN", *thr, *extra, "-o", str(exe), str(src)], "C compile")
    return Path(exe)


def run_c_counts(exe: str | Path, bits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Run a compiled C export on (N, NI) bits; returns (N, num_classes) int64 counts."""
    n = bits.shape[0]
    words = pack_bits(bits.cpu()).T.contiguous().numpy()  # (blocks, NI)
    with tempfile.TemporaryDirectory() as d:
        fin, fout = Path(d) / "in.bin", Path(d) / "out.bin"
        words.astype("<i8").tofile(fin)
        _run([str(exe), str(fin), str(fout), str(words.shape[0])], "C run")
        counts = np.fromfile(fout, dtype="<i4").reshape(-1, num_classes)[:n]
    return torch.from_numpy(counts.astype(np.int64))


def bench_c(exe: str | Path, blocks: int, repeats: int, threads: int = 1) -> dict:
    """Time the compiled ``_counts`` on ``blocks``×64 pseudo-random images, ``repeats`` times, on ``threads`` threads.

    ``images_per_s``: per core (images / process CPU seconds); ``wall_images_per_s``: all
    threads together (images / wall seconds).
    """
    out = _run([str(exe), "--bench", str(blocks), str(repeats), str(threads)], "C bench").split()
    f = dict(zip(out[0::2], out[1::2]))
    return {"images_per_s": float(f["images_per_s"]), "seconds": float(f["seconds"]),
            "wall_images_per_s": float(f["wall_images_per_s"]), "wall_seconds": float(f["wall_seconds"]),
            "threads": int(f["threads"]), "lanes": int(f["lanes"])}


def have_iverilog() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def simulate_verilog(net: Netlist, bits: torch.Tensor, workdir: str | Path | None = None, *,
                     verilog: str | None = None, name: str = "nh_logic", pipeline: int | None = None) -> torch.Tensor:
    """Simulate Verilog with Icarus Verilog on (N, NI) bits → (N, classes) int64 counts.

    ``verilog``: the module source to test (default: ``to_verilog(net)``; e.g. a synthesised
    netlist of the same ports), ``name`` its module name; the testbench is ``net``'s.
    ``pipeline``: K — the pipelined module (:func:`logic.pipeline.simulate_pipelined`: one
    vector per cycle with bubbles, every result checked after the pipeline latency)."""
    if pipeline is not None:
        from logic.pipeline import check_k, simulate_pipelined

        return simulate_pipelined(net, bits, check_k(pipeline), workdir, verilog=verilog, name=name)
    out, n = run_icarus(bits, workdir, to_verilog(net) if verilog is None else verilog,
                        lambda n_vectors: verilog_testbench(net, n_vectors, "vectors.txt", name=name))
    rows = [list(map(int, ln.split())) for ln in out.splitlines() if ln.strip() and ln.strip()[0].isdigit()]
    if len(rows) != n:
        raise ExportError(f"vvp printed {len(rows)} result lines for {n} vectors")
    return torch.tensor(rows, dtype=torch.int64)


def run_icarus(bits: torch.Tensor, workdir: str | Path | None, verilog: str,
               testbench: Callable[[int], str]) -> tuple[str, int]:
    """Run a module under test in Icarus Verilog: write the (N, NI) ``bits`` as ``$readmemb``
    vectors (``vectors.txt``, most significant bit first), the module source ``verilog``
    (``net.v``) and ``testbench(N)`` (``tb.v``) into ``workdir`` (None: a temporary folder),
    compile and run. Returns ``(vvp's stdout, N)``; a missing or failing tool raises ExportError."""
    if not have_iverilog():
        raise ExportError("Icarus Verilog (iverilog, vvp) is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(workdir or tmp)
        d.mkdir(parents=True, exist_ok=True)
        b = bits.cpu().bool().numpy()
        lines = ["".join("1" if v else "0" for v in row[::-1]) for row in b]
        (d / "vectors.txt").write_text("\n".join(lines) + "\n")
        (d / "net.v").write_text(verilog)
        (d / "tb.v").write_text(testbench(len(lines)))
        _run(["iverilog", "-g2005", "-o", "sim", "tb.v", "net.v"], "iverilog", cwd=str(d))
        out = _run(["vvp", "-n", "sim"], "vvp", cwd=str(d))
    return out, len(lines)
