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

Times: every row of a part is built in this process and all are timed together in
interleaved rounds (``bench.harness``); a ratio is a median over a median from the same
rounds. Memory (full mode): each row again in a fresh process, warmed up, then the peak
resident memory of **one call alone** above the resident size just before it (the
process's high-water mark is reset first, ``bench.harness.peak_rss_growth``); on CUDA
``torch.cuda.max_memory_allocated`` over that call above the allocation before it.
Weights are random (timing does not depend on training). Figures go to
``results/bench/distill.json``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _setup():
    """The data split and the (random-weight) LeNet-5 teacher shared by every row."""
    import torch

    from neurohw.data import load_mnist5k
    from neurohw.models import LeNet5

    torch.manual_seed(0)
    return load_mnist5k(), LeNet5().eval()


def _build(spec: dict, split, teacher):
    """One row's work as a zero-argument callable, and its one-off figures (``extra``)."""
    import torch
    import torch.nn.functional as F

    from distill.losses import NTKDLossConfig, kd_loss, student_kernel_loss, teacher_kernel
    from distill.ntk import empirical_ntk
    from distill.students import build_student

    dev = torch.device(spec["device"])
    teacher = teacher.to(dev)
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
        _sync(dev)
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

        return step, {"teacher_kernel_s": teacher_s}
    x = split.x_train[: spec["n"]].to(dev)
    est = spec["estimator"]

    def kernel():
        with torch.no_grad():
            empirical_ntk(teacher, x, est, n_projections=spec.get("r", 32), seed=0, chunk_size=spec.get("chunk"))

    return kernel, {}


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def _time_rows(specs: list[dict], repeats: int, warmup: int, split, teacher) -> list[dict]:
    """Build every row in this process and time them all in interleaved rounds."""
    import torch

    from bench import harness

    rows, sides = [], {}
    for i, spec in enumerate(specs):
        try:
            fn, extra = _build(spec, split, teacher)
        except Exception as exc:  # report the row as failed, keep the others
            rows.append({**spec, "error": f"{type(exc).__name__}: {exc}"})
            continue
        rows.append({**spec, **extra})
        sides[str(i)] = fn
    dev = torch.device(specs[0]["device"])
    st = harness.interleave(sides, repeats, warmup=warmup, sync=(lambda: _sync(dev)) if dev.type == "cuda" else None)
    for i, r in enumerate(rows):
        if str(i) in st:
            r.update(timing=st[str(i)], time_s=st[str(i)]["wall_s"]["median"], time_min_s=st[str(i)]["wall_s"]["min"])
    return rows


def _memory_worker(spec: dict) -> dict:
    """In a fresh process: the peak memory of one call of the row's work alone, MiB.

    CPU: peak resident size during the call above the size before it (the high-water mark
    is reset first, see ``bench.harness.peak_rss_growth``); CUDA: ``max_memory_allocated``
    over the call above the allocation before it.
    """
    import torch

    from bench import harness

    torch.set_num_threads(spec["threads"])
    split, teacher = _setup()
    fn, _ = _build(spec, split, teacher)
    for _ in range(spec["warmup"]):  # optimiser state and caches exist before the measured call
        fn()
    dev = torch.device(spec["device"])
    if dev.type == "cuda":
        _sync(dev)
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        _sync(dev)
        return {"peak_mem_mb": (torch.cuda.max_memory_allocated() - base) / 2**20}
    return {"peak_mem_mb": harness.peak_rss_growth(fn)}


def _memory(spec: dict) -> dict:
    """Run :func:`_memory_worker` for ``spec`` in a fresh interpreter."""
    from bench import harness

    p = subprocess.run([sys.executable, "-m", "bench.distill", "--worker", json.dumps(spec)], capture_output=True,
                       text=True, cwd=Path(__file__).resolve().parents[2], env=harness.memory_env(spec["threads"]))
    if p.returncode != 0:
        return {"peak_mem_mb": None, "memory_error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _mb(r: dict) -> str:
    return "-" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.distill", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few configurations and repetitions (smoke run)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true", help="skip the per-row fresh-process memory measurement")
    ap.add_argument("--out", type=Path, default=None, help="result file (default results/bench/distill.json)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_memory_worker(json.loads(args.worker))))
        return 0
    import torch

    from bench import harness

    load0, t_start = harness.loadavg(), time.perf_counter()
    torch.set_num_threads(args.threads)
    q = args.quick
    # --quick: no memory column (each row's memory needs a fresh process: a process's peak
    # resident size never goes down, and freed memory kept by the allocator hides new use).
    memory = not (q or args.no_memory)
    common = {"device": args.device, "threads": args.threads, "warmup": 1 if q else 2}
    repeats = 2 if q else 7
    b = 128
    steps = [
        {"arm": "ce"},
        {"arm": "kd"},
        {"arm": "ntkd", "estimator": "sketch", "n": 128, "r": 4},
        {"arm": "ntkd", "estimator": "sketch", "n": 128, "r": 8},
        {"arm": "ntkd", "estimator": "sketch", "n": 32, "r": 8},
        {"arm": "ntkd", "estimator": "sketch", "n": 128, "r": 2},
        {"arm": "ntkd", "estimator": "sketch", "n": 64, "r": 4},
        {"arm": "ntkd", "estimator": "perturbation", "n": 128, "r": 8},
        {"arm": "ntkd", "estimator": "exact", "n": 32, "chunk": 16},
        {"arm": "ntkd", "estimator": "ntvp", "n": 8 if q else 16, "chunk": 40},
    ]
    if q:
        steps = [{"arm": "ce"}, {"arm": "kd"}, {"arm": "ntkd", "estimator": "sketch", "n": 32, "r": 8}]
    kernel_ns = [8, 16] if q else [8, 16, 32, 64, 128]
    kernels = []
    for n in kernel_ns:
        kernels.append({"estimator": "exact", "n": n, "chunk": 16})
        kernels.append({"estimator": "sketch", "n": n, "r": 32, "chunk": 16})
        if n <= (0 if q else 32):
            kernels.append({"estimator": "ntvp", "n": n, "chunk": 80})
    print(f"bench.distill: device {args.device}, torch threads {args.threads}, CE batch {b}, student linear_constrained; "
          f"{repeats} interleaved repeats per row; memory " + ("per row in a fresh process" if memory else "not measured"),
          flush=True)
    split, teacher = _setup()
    step_specs = [{**common, **s, "part": "step", "batch": b} for s in steps]
    results_steps = _time_rows(step_specs, repeats, common["warmup"], split, teacher)
    print(f"  {len(step_specs)} training-step rows timed", flush=True)
    results_kernels = []
    for n in kernel_ns:  # rows of one N are compared with each other: interleave them
        specs = [{**common, **s, "part": "kernel"} for s in kernels if s["n"] == n]
        results_kernels += _time_rows(specs, repeats, common["warmup"], split, teacher)
    print(f"  {len(results_kernels)} kernel rows timed", flush=True)
    for r in results_steps + results_kernels:
        if memory and "error" not in r:
            r.update(_memory({k: v for k, v in r.items() if k not in ("timing", "time_s", "time_min_s", "teacher_kernel_s")}))
        else:
            r.setdefault("peak_mem_mb", None)
    ce = next(r for r in results_steps if r["arm"] == "ce")
    print("\nA. training step (CE batch 128); ratio = median step time / median CE step time (interleaved, same process)")
    print(f"{'arm':<6} {'estimator':<13} {'N':>4} {'R':>3} {'step ms':>9} {'min ms':>8} {'× CE':>6} {'peak MB':>8} "
          f"{'teacher kernel ms (once/batch)':>31}")
    for r in results_steps:
        if "error" in r:
            print(f"{r['arm']:<6} {r.get('estimator', '-'):<13} ERROR {r['error']}")
            continue
        ratio = r["time_s"] / ce["time_s"] if "time_s" in ce else float("nan")
        r["ratio_vs_ce"] = ratio
        tk = f"{1e3 * r['teacher_kernel_s']:.1f}" if r["arm"] == "ntkd" else "-"
        print(f"{r['arm']:<6} {r.get('estimator', '-'):<13} {r.get('n', '-'):>4} {r.get('r', '-'):>3} "
              f"{1e3 * r['time_s']:9.1f} {1e3 * r['time_min_s']:8.1f} {ratio:6.2f} {_mb(r):>8} {tk:>31}")
    sk = next((r for r in results_steps if r.get("estimator") == "sketch" and r.get("n") == 128 and r.get("r") == 8 and "ratio_vs_ce" in r), None)
    if sk:
        verdict = "meets" if sk["ratio_vs_ce"] <= 3 else "misses"
        print(f"target: NTKD with the sketch (N=128, R=8) ≤ 3× a CE step at batch 128 — measured {sk['ratio_vs_ce']:.2f}× ({verdict})")
    print("\nB. teacher (LeNet-5) kernel on N images, no gradient; ratio = median time / median exact time at the same N")
    print(f"{'N':>4} {'estimator':<10} {'ms':>10} {'min ms':>8} {'× exact':>8} {'peak MB':>8}")
    for n in kernel_ns:
        ex = next((r for r in results_kernels if r["n"] == n and r["estimator"] == "exact"), {})
        for r in [r for r in results_kernels if r["n"] == n]:
            if "error" in r:
                print(f"{n:>4} {r['estimator']:<10} ERROR {r['error']}")
                continue
            r["ratio_vs_exact"] = r["time_s"] / ex["time_s"] if "time_s" in ex else float("nan")
            print(f"{n:>4} {r['estimator'] + (' R=' + str(r['r']) if r['estimator'] == 'sketch' else ''):<10} "
                  f"{1e3 * r['time_s']:10.1f} {1e3 * r['time_min_s']:8.1f} {r['ratio_vs_exact']:8.2f} {_mb(r):>8}")
    path = harness.write("distill", {"steps": results_steps, "kernels": results_kernels},
                         config={"quick": q, "device": args.device, "threads": args.threads, "repeats": repeats,
                                 "memory": memory, "batch": b, "seed": 0},
                         argv=argv if argv is not None else sys.argv[1:], load_before=load0,
                         wall_time_s=time.perf_counter() - t_start, out=args.out)
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
