"""``python -m bench.distill [--quick] [--device cpu|cuda] [--threads 1]``

Part A — one optimiser step of a student (the optical-like ``linear_constrained`` student of
``distill.students``, ≈ 0.05 M parameters) on a batch of 128 MNIST-5k images, with
  * ``ce``: cross-entropy (the anchor: every ratio is against this step),
  * ``kd``: CE + logit KD from a LeNet-5 teacher (teacher forward included),
  * ``ntkd/<estimator>``: CE + β·MSE(Θ_T, Θ_S) with the student's kernel from each estimator on
    an NTK batch of N images (teacher kernel precomputed and cached, as in training: its
    one-off cost is reported separately).
Part B — the teacher's (LeNet-5, ≈ 61 k parameters) kernel on N images, no gradient, for
growing N: exact Jacobian contraction next to NTK-vector products and the sketch.

Each measurement runs in its own subprocess so that its peak memory can be read: on CPU the
process's peak resident set size minus its size just before the timed steps; on CUDA
``torch.cuda.max_memory_allocated`` over the steps. Times are medians of the timed steps.
Weights are random (timing does not depend on training). Figures go to
``reports/bench/distill.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(spec: dict) -> dict:
    """Run one measurement (in a fresh process) and return its figures."""
    import torch
    import torch.nn.functional as F

    from distill.losses import NTKDLossConfig, kd_loss, student_kernel_loss, teacher_kernel
    from distill.ntk import empirical_ntk
    from distill.students import build_student
    from neurohw.data import load_mnist5k
    from neurohw.models import LeNet5

    torch.set_num_threads(spec["threads"])
    dev = torch.device(spec["device"])
    torch.manual_seed(0)
    split = load_mnist5k()
    teacher = LeNet5().to(dev).eval()
    cuda = dev.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if spec["part"] == "step":
        student = build_student(spec.get("student", "linear_constrained"), 10, (1, 28, 28), 0).to(dev)
        opt = torch.optim.Adam(student.parameters(), lr=1e-3)
        x = split.x_train[: spec["batch"]].to(dev)
        y = split.y_train[: spec["batch"]].to(dev)
        arm, est, n = spec["arm"], spec.get("estimator"), spec.get("n", 0)
        xa = split.x_train[1000 : 1000 + n].to(dev) if arm == "ntkd" else None
        output = "diag" if est == "perturbation" else "kernel"
        t0 = time.perf_counter()
        k_t = teacher_kernel(teacher, xa, method="exact", output=output, chunk_size=16) if arm == "ntkd" else None
        sync()
        teacher_s = time.perf_counter() - t0
        cfg = NTKDLossConfig(beta=1.0, ntk_method=est or "sketch", ntk_output=output, ntk_loss="mse",
                             n_projections=spec.get("r", 8), chunk_size=spec.get("chunk"))
        gen = torch.Generator().manual_seed(0)

        def step():
            logits = student(x)
            loss = F.cross_entropy(logits, y)
            if arm == "kd":
                with torch.no_grad():
                    t = teacher(x)
                loss = loss + kd_loss(logits, t, 4.0)
            if arm == "ntkd":
                d, _ = student_kernel_loss(student, xa, k_t, cfg, generator=gen)
                loss = loss + d
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        fn, extra = step, {"teacher_kernel_s": teacher_s}
    else:  # kernel cost of the teacher
        x = split.x_train[: spec["n"]].to(dev)
        est = spec["estimator"]

        def fn():
            with torch.no_grad():
                empirical_ntk(teacher, x, est, n_projections=spec.get("r", 32), seed=0, chunk_size=spec.get("chunk"))

        extra = {}
    for _ in range(spec["warmup"]):
        fn()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    base = _rss_bytes()
    times = []
    for _ in range(spec["reps"]):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    mem = None if (spec.get("inprocess") and not cuda) else max(peak, 0) / 2**20
    return {**spec, **extra, "time_s": statistics.median(times), "times_s": times, "peak_mem_mb": mem}


def _run(spec: dict) -> dict:
    if spec.get("inprocess"):
        try:
            return _worker(spec)
        except Exception as exc:  # report the row as failed, keep the others
            return {**spec, "error": f"{type(exc).__name__}: {exc}"}
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-m", "bench.distill", "--worker", json.dumps(spec)],
                       capture_output=True, text=True, cwd=root, env=env)
    if p.returncode != 0:
        return {**spec, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _mb(r: dict) -> str:
    return "-" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.distill", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few configurations and repetitions (smoke run)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("reports/bench/distill.json"))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    q = args.quick
    # --quick runs every row in this process (fast; no CPU memory column then: a process's
    # peak resident size never goes down, so it cannot be attributed to one row).
    common = {"device": args.device, "threads": args.threads, "warmup": 1 if q else 2, "reps": 2 if q else 5, "inprocess": q}
    b = 128
    steps = [
        {"arm": "ce"},
        {"arm": "kd"},
        {"arm": "ntkd", "estimator": "sketch", "n": 128, "r": 4},
        {"arm": "ntkd", "estimator": "sketch", "n": 128, "r": 8},
        {"arm": "ntkd", "estimator": "sketch", "n": 32, "r": 8},
        {"arm": "ntkd", "estimator": "perturbation", "n": 128, "r": 8},
        {"arm": "ntkd", "estimator": "exact", "n": 32, "chunk": 16},
        {"arm": "ntkd", "estimator": "ntvp", "n": 8 if q else 16, "chunk": 40},
    ]
    steps.insert(5, {"arm": "ntkd", "estimator": "sketch", "n": 128, "r": 2})
    steps.insert(6, {"arm": "ntkd", "estimator": "sketch", "n": 64, "r": 4})
    if q:
        steps = [{"arm": "ce"}, {"arm": "kd"}, {"arm": "ntkd", "estimator": "sketch", "n": 32, "r": 8}]
    kernel_ns = [8, 16] if q else [8, 16, 32, 64, 128]
    kernels = []
    for n in kernel_ns:
        kernels.append({"estimator": "exact", "n": n, "chunk": 16})
        kernels.append({"estimator": "sketch", "n": n, "r": 32, "chunk": 16})
        if n <= (0 if q else 32):
            kernels.append({"estimator": "ntvp", "n": n, "chunk": 80})
    results_steps, results_kernels = [], []
    print(f"bench.distill: device {args.device}, torch threads {args.threads}, CE batch {b}, student linear_constrained; "
          + ("all rows in this process (quick)" if q else "each row in its own process"), flush=True)
    for s in steps:
        r = _run({**common, **s, "part": "step", "batch": b})
        results_steps.append(r)
        print(f"  step {s['arm']}/{s.get('estimator', '-')} N={s.get('n', '-')} done", flush=True)
    for s in kernels:
        r = _run({**common, **s, "part": "kernel"})
        results_kernels.append(r)
    ce = next(r for r in results_steps if r["arm"] == "ce")
    print("\nA. training step (CE batch 128); ratio = step time / CE step time (same process kind, same machine)")
    print(f"{'arm':<6} {'estimator':<13} {'N':>4} {'R':>3} {'step ms':>9} {'× CE':>6} {'peak MB':>8} {'teacher kernel ms (once/batch)':>31}")
    for r in results_steps:
        if "error" in r:
            print(f"{r['arm']:<6} {r.get('estimator', '-'):<13} ERROR {r['error']}")
            continue
        ratio = r["time_s"] / ce["time_s"] if "time_s" in ce else float("nan")
        r["ratio_vs_ce"] = ratio
        tk = f"{1e3 * r['teacher_kernel_s']:.1f}" if r["arm"] == "ntkd" else "-"
        print(f"{r['arm']:<6} {r.get('estimator', '-'):<13} {r.get('n', '-'):>4} {r.get('r', '-'):>3} "
              f"{1e3 * r['time_s']:9.1f} {ratio:6.2f} {_mb(r):>8} {tk:>31}")
    sk = next((r for r in results_steps if r.get("estimator") == "sketch" and r.get("n") == 128 and r.get("r") == 8 and "ratio_vs_ce" in r), None)
    if sk:
        verdict = "meets" if sk["ratio_vs_ce"] <= 3 else "misses"
        print(f"target: NTKD with the sketch (N=128, R=8) ≤ 3× a CE step at batch 128 — measured {sk['ratio_vs_ce']:.2f}× ({verdict})")
    print("\nB. teacher (LeNet-5) kernel on N images, no gradient; ratio = time / exact time at the same N")
    print(f"{'N':>4} {'estimator':<10} {'ms':>10} {'× exact':>8} {'peak MB':>8}")
    for n in kernel_ns:
        ex = next((r for r in results_kernels if r["n"] == n and r["estimator"] == "exact"), {})
        for r in [r for r in results_kernels if r["n"] == n]:
            if "error" in r:
                print(f"{n:>4} {r['estimator']:<10} ERROR {r['error']}")
                continue
            r["ratio_vs_exact"] = r["time_s"] / ex["time_s"] if "time_s" in ex else float("nan")
            print(f"{n:>4} {r['estimator'] + (' R=' + str(r['r']) if r['estimator'] == 'sketch' else ''):<10} "
                  f"{1e3 * r['time_s']:10.1f} {r['ratio_vs_exact']:8.2f} {_mb(r):>8}")
    from neurohw.io import atomic_write_json, provenance

    atomic_write_json(args.out, {"provenance": provenance(config={"quick": q, "device": args.device, "threads": args.threads}),
                                 "steps": results_steps, "kernels": results_kernels})
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
