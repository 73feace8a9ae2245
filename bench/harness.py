"""The one benchmark harness every ``bench/*`` uses.

* :func:`interleave` times several *sides* (callables doing the compared work) in rounds,
  A B A B … (never A A A B B B), so that a load spike on the shared machine hits every side
  alike. Each sample records wall time (``time.perf_counter``) and CPU time of the whole
  process (``time.process_time``, all threads), both in seconds per call.
* :func:`summary` reduces samples to min, median, first/third quartile and IQR.
* :func:`conditions` records what the figures depend on: load average before and after,
  torch intra-/inter-op threads, ``OMP_NUM_THREADS``, the OS thread count of the process.
* :func:`write` saves ``results/bench/<name>.json`` atomically through
  :func:`neurohw.results.save_result` (versions, git commit, machine, UTC date, command);
  :func:`finish` does it at the end of a run and says where; :func:`arg_parser` is the
  command line's parser with the common ``--out``.
* :func:`peak_rss_growth` measures the peak resident memory of one piece of work alone
  (Linux: the process's high-water mark is reset first), for use in a fresh process.

Ratios are formed from medians of interleaved samples (``ratio(a, b)``); the min is printed
next to them because on a loaded machine the min is the less disturbed figure.
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

#: Where benchmark results go, below the results folder (``results/bench/<name>.json``).
BENCH_SUBDIR = "bench"


def summary(samples: Sequence[float]) -> dict:
    """``{"min", "median", "q1", "q3", "iqr", "n", "samples"}`` of ``samples`` (seconds)."""
    xs = sorted(float(x) for x in samples)
    if not xs:
        raise ValueError("summary of no samples")
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    return {"min": xs[0], "median": statistics.median(xs), "q1": q1, "q3": q3, "iqr": q3 - q1,
            "n": len(xs), "samples": [float(x) for x in samples]}


def interleave(sides: Mapping[str, Callable[[], Any]], repeats: int, *, warmup: int = 1, inner: int = 1,
               sync: Callable[[], None] | None = None) -> dict[str, dict]:
    """Time every side ``repeats`` times in interleaved rounds; returns per-side statistics.

    ``sides``: name → zero-argument callable (all set up beforehand: only the call is timed).
    ``warmup``: untimed calls of each side before the first round (also interleaved).
    ``inner``: calls per sample (for very short work); figures are per call.
    ``sync``: called after each call inside the timed region (e.g. ``torch.cuda.synchronize``).
    Returns ``{name: {"wall_s": summary, "cpu_s": summary, "inner": inner}}``.
    """
    if repeats < 1 or inner < 1:
        raise ValueError("repeats and inner must be ≥ 1")
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name]()
            if sync:
                sync()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(repeats):
        for name in names:
            fn = sides[name]
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(inner):
                fn()
                if sync:
                    sync()
            t1, c1 = time.perf_counter(), time.process_time()
            wall[name].append((t1 - t0) / inner)
            cpu[name].append((c1 - c0) / inner)
    return {n: {"wall_s": summary(wall[n]), "cpu_s": summary(cpu[n]), "inner": inner} for n in names}


def ratio(stats: Mapping[str, dict], a: str, b: str, key: str = "median") -> float:
    """Wall-time ``key`` (median or min) of side ``a`` over that of side ``b``."""
    return stats[a]["wall_s"][key] / stats[b]["wall_s"][key]


def loadavg() -> list[float] | None:
    """The 1/5/15-minute load average (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def os_threads() -> int:
    """Threads of this process as the OS counts them (OpenMP/MKL pools included)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:  # pragma: no cover - non-Linux
        pass
    return threading.active_count()


def conditions(load_before: list[float] | None = None) -> dict:
    """What the timings depend on, recorded at the end of a benchmark."""
    import torch

    return {"loadavg_before": load_before, "loadavg_after": loadavg(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"), "os_threads": os_threads(),
            "cuda": torch.cuda.is_available(), "shared_machine_note":
                "timed on a shared machine; compare sides within one file, not across files"}


def default_out(name: str) -> Path:
    """``results/bench/<name>.json`` (the results folder honours ``$NEUROHW_RESULTS``)."""
    from neurohw.results import results_dir

    return results_dir() / BENCH_SUBDIR / f"{name}.json"


def write(name: str, figures: Mapping[str, Any], *, config: Mapping[str, Any], argv: Sequence[str],
          load_before: list[float] | None, wall_time_s: float, out: str | os.PathLike | None = None) -> Path:
    """Save a benchmark's figures atomically (default ``results/bench/<name>.json``).

    ``figures`` get ``conditions`` added; ``argv`` (the benchmark's arguments) makes the
    recorded command ``python -m bench.<name> <argv>``.
    """
    from neurohw.results import save_result

    out = Path(out) if out is not None else default_out(name)
    if out.suffix != ".json":
        raise ValueError(f"{out}: a benchmark result file must end in .json")
    figs = {**figures, "conditions": conditions(load_before)}
    command = " ".join(["python", "-m", f"bench.{name}", *map(str, argv)])
    return save_result(out.stem, figs, config=config, command=command, wall_time_s=wall_time_s, results=out.parent)


def finish(name: str, figures: Mapping[str, Any], *, config: Mapping[str, Any], argv: Sequence[str],
           load_before: list[float] | None, started: float, out: str | os.PathLike | None = None) -> Mapping[str, Any]:
    """:func:`write` the figures of a run that began at ``time.perf_counter() == started``,
    print where they went and return them."""
    path = write(name, figures, config=config, argv=argv, load_before=load_before,
                 wall_time_s=time.perf_counter() - started, out=out)
    print(f"wrote {path}")
    return figures


def arg_parser(name: str, doc: str | None):
    """The ``python -m bench.<name>`` argument parser: ``doc``'s first line as description and
    the ``--out`` option every benchmark has (default ``results/bench/<name>.json``)."""
    import argparse

    ap = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=doc.splitlines()[0] if doc else None)
    ap.add_argument("--out", type=Path, default=None, help=f"result file (default results/bench/{name}.json)")
    return ap


def fmt_stats(s: dict, scale: float = 1e3) -> str:
    """``median [min, IQR]`` of a summary in ms (``scale`` 1e3) for a printed table."""
    return f"{s['median'] * scale:.3g} (min {s['min'] * scale:.3g}, IQR {s['iqr'] * scale:.2g})"


def _vm_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:  # pragma: no cover
        return None
    return None


def rss_mib() -> float | None:
    """Current resident size of this process, MiB (Linux; None elsewhere)."""
    kib = _vm_kib("VmRSS")
    return None if kib is None else kib / 1024.0


#: glibc keeps freed heap memory and reuses it silently, so a process's resident size would
#: not grow for work whose memory an earlier call freed. With a fixed mmap threshold every
#: allocation above 64 KiB is its own mapping, returned to the OS when freed.
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def memory_env(threads: int | None = None) -> dict:
    """Environment for a fresh process that measures memory (``MEMORY_ENV``, the repository on
    ``PYTHONPATH``, ``OMP_NUM_THREADS`` when ``threads`` is given)."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, **MEMORY_ENV, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def peak_rss_growth(fn: Callable[[], Any]) -> float | None:
    """Peak resident memory reached while ``fn()`` runs, above the resident size before it, MiB.

    Resets the process's high-water mark (Linux ``/proc/self/clear_refs``, value 5) so that
    nothing that ran before ``fn`` counts. Returns None where that is not possible. Run it in a
    fresh process started with :func:`memory_env`: memory freed earlier but kept by the
    allocator would otherwise hide new allocations.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        fn()
        return None
    before = _vm_kib("VmRSS")
    fn()
    peak = _vm_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0) / 1024.0
