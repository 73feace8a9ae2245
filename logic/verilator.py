"""Verilator simulation of the Verilog export, for thousands of vectors (Icarus stays the small-case reference).

:func:`simulate_verilator` verilates the module (combinational :func:`logic.export.to_verilog`,
or pipelined :func:`logic.pipeline.to_verilog_pipelined` with ``pipeline=K``) together with a
generated C++ driver, builds it, and runs it on a binary vector file:

* combinational: per vector, set ``x``, ``eval()``, read ``counts``;
* pipelined: one vector per clock cycle with a bubble (``valid_in = 0``, inverted ``x``) every
  :data:`logic.pipeline.BUBBLE` cycles, like the Icarus testbench; the driver reads ``counts``
  whenever ``valid_out`` is high after a rising edge and exits with an error unless every
  result comes exactly ``latency`` cycles after its input.

Vectors go in as ``ceil(NI/32)`` little-endian uint32 words each (bit ``i`` of ``x`` = bit
``i % 32`` of word ``i // 32``); counts come back as ``NC`` int32 per vector.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from logic.netlist import Netlist


def have_verilator() -> bool:
    return shutil.which("verilator") is not None


def _copy_port(port: str, width: int, buf: str, into_port: bool) -> list[str]:
    """C++ lines that copy ``width`` bits between uint32 array ``buf`` and ``top.<port>``:
    into the (input) port when ``into_port``, else out of the (output) port. Verilator holds
    ports of ≤ 32 bits in a uint32, ≤ 64 in a uint64, wider ones as uint32 words."""
    top = f"top.{port}"
    if width > 64:
        dst, src = (f"{top}[w]", f"{buf}[w]") if into_port else (f"{buf}[w]", f"{top}[w]")
        return [f"    for (int w = 0; w < {-(-width // 32)}; w++) {dst} = {src};"]
    if width > 32:
        if into_port:
            return [f"    {top} = (uint64_t){buf}[0] | ((uint64_t){buf}[1] << 32);"]
        return [f"    {{ uint64_t v = {top}; {buf}[0] = (uint32_t)v; {buf}[1] = (uint32_t)(v >> 32); }}"]
    return [f"    {top} = {buf}[0];"] if into_port else [f"    {buf}[0] = (uint32_t){top};"]


def driver_cpp(net: Netlist, name: str = "nh_logic", latency: int | None = None) -> str:
    """The C++ driver (``prog IN OUT N``); ``latency``: the pipelined module's (None: combinational)."""
    from logic.export import _count_bits
    from logic.pipeline import BUBBLE

    ni, nc = net.n_inputs, net.num_classes
    cw = _count_bits(net.group_size)
    xw, ow = -(-ni // 32), max(2, -(-(nc * cw) // 32))
    head = [
        f'#include "V{name}.h"', '#include "verilated.h"', "#include <cstdio>", "#include <cstdint>", "#include <cstdlib>",
        "#include <deque>", "#include <vector>",
        f"static const int XW = {xw}, OW = {ow}, NC = {nc}, CW = {cw};",
        "static void decode(const uint32_t *o, int32_t *c) {",
        "  for (int k = 0; k < NC; k++) { int32_t v = 0;",
        "    for (int j = 0; j < CW; j++) { int b = k * CW + j; v |= (int32_t)((o[b / 32] >> (b % 32)) & 1u) << j; }",
        "    c[k] = v; }",
        "}",
        "int main(int argc, char **argv) {",
        '  if (argc != 4) { fprintf(stderr, "usage: %s IN OUT N\\n", argv[0]); return 2; }',
        "  FILE *fi = fopen(argv[1], \"rb\"), *fo = fopen(argv[2], \"wb\"); long n = atol(argv[3]);",
        '  if (!fi || !fo) { fprintf(stderr, "cannot open %s or %s\\n", argv[1], argv[2]); return 1; }',
        "  VerilatedContext ctx;",
        f"  V{name} top(&ctx);",
        "  std::vector<uint32_t> in(XW + 2, 0), out(OW, 0); std::vector<int32_t> c(NC);",
    ]
    if latency is None:
        body = [
            "  for (long i = 0; i < n; i++) {",
            '    if (fread(in.data(), 4, XW, fi) != (size_t)XW) { fprintf(stderr, "short read at vector %ld\\n", i); return 1; }',
            *_copy_port("x", ni, "in", into_port=True),
            "    top.eval();",
            *_copy_port("counts", nc * cw, "out", into_port=False),
            "    decode(out.data(), c.data()); fwrite(c.data(), 4, NC, fo);",
            "  }",
        ]
    else:
        body = [
            "  top.clk = 0; top.rst = 1; top.valid_in = 0; top.eval(); top.clk = 1; top.eval(); top.rst = 0;",
            "  std::deque<long> entered; long i = 0, got = 0, last_in = 0;",
            "  for (long cyc = 0; got < n; cyc++) {",
            f"    if (i < n && cyc % {BUBBLE} != {BUBBLE - 1}) {{",
            '      if (fread(in.data(), 4, XW, fi) != (size_t)XW) { fprintf(stderr, "short read at vector %ld\\n", i); return 1; }',
            "      top.valid_in = 1; entered.push_back(cyc); i++; last_in = cyc;",
            "    } else {",
            "      for (int w = 0; w < XW; w++) in[w] = ~in[w];",
            "      top.valid_in = 0;",
            "    }",
            *_copy_port("x", ni, "in", into_port=True),
            "    top.clk = 0; top.eval(); top.clk = 1; top.eval();",
            "    if (top.valid_out) {",
            "      if (entered.empty()) { fprintf(stderr, \"valid_out without an input at cycle %ld\\n\", cyc + 1); return 3; }",
            f"      long lat = cyc + 1 - entered.front(); entered.pop_front();",
            f"      if (lat != {latency}) {{ fprintf(stderr, \"vector %ld came out after %ld cycles, expected {latency}\\n\", got, lat); return 3; }}",
            *["  " + ln for ln in _copy_port("counts", nc * cw, "out", into_port=False)],
            "      decode(out.data(), c.data()); fwrite(c.data(), 4, NC, fo); got++;",
            "    }",
            f"    if (i == n && cyc > last_in + {latency + 20}) {{ fprintf(stderr, \"%ld of %ld results before the timeout\\n\", got, n); return 3; }}",
            "  }",
        ]
    return "\n".join(head + body + ["  top.final(); fclose(fi); fclose(fo); return 0;", "}", ""])


def build_verilator(net: Netlist, workdir: str | Path, *, pipeline: int | None = None, verilog: str | None = None,
                    name: str = "nh_logic", jobs: int = 1, opt: str = "-O0", timeout: float = 1800) -> Path:
    """Verilate and build the simulator in ``workdir``; returns the executable. ``verilog`` overrides the module source;
    ``opt``: the C++ optimisation level of the whole build (Verilator's ``OPT_FAST``/``OPT_SLOW``/``OPT_GLOBAL``)."""
    from logic.export import ExportError, _run, to_verilog
    from logic.identifiers import check_identifier
    from logic.pipeline import plan_pipeline

    if not have_verilator():
        raise ExportError("Verilator is not installed (apt-get install verilator; tools/system_deps.sh does)")
    check_identifier(name, "name")
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    latency = None if pipeline is None else plan_pipeline(net, pipeline).latency
    (d / "net.v").write_text(to_verilog(net, name, pipeline=pipeline) if verilog is None else verilog)
    (d / "main.cpp").write_text(driver_cpp(net, name, latency))
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(int(jobs)), "--top-module", name, "-Wno-fatal", "-Wno-lint",
           "-Wno-style", "-fno-const-bit-op-tree", "--x-assign", "fast", "--x-initial", "fast", "-MAKEFLAGS", f"OPT_FAST={opt} OPT_SLOW={opt} OPT_GLOBAL={opt}",
           "--Mdir", "obj", "-o", "simv",
           "net.v", "main.cpp"]
    _run(cmd, "verilator build", timeout=timeout, cwd=str(d))
    return d / "obj" / "simv"


def run_verilator(exe: str | Path, net: Netlist, bits: torch.Tensor, timeout: float = 1800) -> torch.Tensor:
    """Run a simulator from :func:`build_verilator` on (N, NI) bits → (N, classes) int64 counts."""
    from logic.export import _run

    b = bits.cpu().bool().numpy()
    n, ni = b.shape
    xw = -(-ni // 32)
    padded = np.zeros((n, xw * 32), dtype=bool)
    padded[:, :ni] = b
    words = np.packbits(padded.reshape(n, xw, 4, 8), axis=-1, bitorder="little").reshape(n, xw * 4)
    with tempfile.TemporaryDirectory() as tmp:
        fin, fout = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        words.tofile(fin)  # bytes in little-endian order = little-endian uint32 words
        _run([str(exe), str(fin), str(fout), str(n)], "Verilator simulation", timeout=timeout)
        counts = np.fromfile(fout, dtype="<i4").reshape(n, net.num_classes)
    return torch.from_numpy(counts.astype(np.int64))


def simulate_verilator(net: Netlist, bits: torch.Tensor, workdir: str | Path | None = None, *,
                       pipeline: int | None = None, verilog: str | None = None, name: str = "nh_logic",
                       jobs: int = 1, opt: str = "-O0") -> torch.Tensor:
    """Build (:func:`build_verilator`) and run (:func:`run_verilator`) in one call: (N, NI) bits → (N, classes) int64."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_verilator(net, workdir or tmp, pipeline=pipeline, verilog=verilog, name=name, jobs=jobs, opt=opt)
        return run_verilator(exe, net, bits)
