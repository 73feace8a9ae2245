"""``python -m bench.distill [--quick] [--device cpu|cuda] [--threads 1]``

Part A — one optimiser step (forward, backward, Adam) of a student on a CE batch of MNIST-5k
images, with
  * ``ce``: cross-entropy (the anchor: every ratio is against the CE step of the same student
    and CE batch, timed in the same rounds),
  * ``kd``: CE + logit KD from a LeNet-5 teacher (teacher forward included),
  * ``ntkd/<estimator>``: CE + D(Θ_T, Θ_S) with the student's kernel from each estimator on
    an NTK batch of N images (teacher kernel precomputed and cached, as in training: its
    one-off cost is reported separately).
Students: ``optical`` (``optics.HybridMNIST``, what ``neurohw distill compare --students
optical`` trains: 8 signed 7×7 kernels, 2-FC back-end, ≈ 0.047 M parameters) and
``linear_constrained`` (the optics-free optical-like student, ≈ 0.05 M). "front-end":
``factored`` — the student's linear front-end computed once per NTK batch as pooled patches
(:mod:`distill.frontend_ntk`, the default); ``as is`` — the same estimator on the model
unchanged (``structured=False``, the previous computation), for the before/after ratio.
The issue's target row: optical, CE batch 128, sketch N = 128, R = 8, ≤ 3× CE. The comparison's
own setting (CE batch 64, sketch N = 32, R = 8, CKA loss) is timed too.
Part B — the teacher's (LeNet-5, ≈ 61 k parameters) kernel on N images, no gradient, for
growing N: exact Jacobian contraction next to NTK-vector products and the sketch.

Times: every row of a part is built in this process and all are timed together in
interleaved rounds (``bench.harness``); a ratio is a median over a median from the same
rounds (and a min over a min). Memory (full mode): each row again in a fresh process, warmed
up, then the peak resident memory of **one call alone** above the resident size just before
it (the process's high-water mark is reset first, ``bench.harness.peak_rss_growth``); on
CUDA ``torch.cuda.max_memory_allocated`` over that call above the allocation before it.
Weights are random (timing does not depend on training). Figures go to
``results/bench/distill.json`` (``figures.table``: the rows shown in docs/distill.md).
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
        student = build_student(spec.get("student", "optical"), 10, (1, 28, 28), 0).to(dev)
        opt = torch.optim.Adam(student.parameters(), lr=1e-3)
        x = split.x_train[: spec["batch"]].to(dev)
        y = split.y_train[: spec["batch"]].to(dev)
        arm, est, n = spec["arm"], spec.get("estimator"), spec.get("n", 0)
        xa = split.x_train[1000 : 1000 + n].to(dev) if arm == "ntkd" else None
        output = "diag" if est == "perturbation" else "kernel"
        if est is not None and spec.get("loss", "mse") == "cka" and output != "kernel":
            raise ValueError("the CKA loss needs the (N, N) kernel")
        t0 = time.perf_counter()
        k_t = teacher_kernel(teacher, xa, method="exact", output=output, chunk_size=16) if arm == "ntkd" else None
        _sync(dev)
        teacher_s = time.perf_counter() - t0
        cfg = NTKDLossConfig(beta=1.0, ntk_method=est or "sketch", ntk_output=output, ntk_loss=spec.get("loss", "mse"),
                             n_projections=spec.get("r", 8), chunk_size=spec.get("chunk"),
                             structured=spec.get("structured", True))
        gen = torch.Generator().manual_seed(0)

        student.train()  # as in training (the optical front-end adds its sensor noise)

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
    opt, lc = "optical", "linear_constrained"
    sk = {"arm": "ntkd", "estimator": "sketch"}
    steps = [
        {"student": opt, "arm": "ce"},
        {"student": opt, "arm": "kd"},
        {"student": opt, **sk, "n": 128, "r": 8},
        {"student": opt, **sk, "n": 128, "r": 8, "structured": False},
        {"student": opt, **sk, "n": 128, "r": 4},
        {"student": opt, **sk, "n": 32, "r": 8},
        {"student": opt, "arm": "ntkd", "estimator": "perturbation", "n": 128, "r": 8},
        {"student": opt, "arm": "ntkd", "estimator": "exact", "n": 32, "chunk": 16},
        {"student": opt, "arm": "ntkd", "estimator": "ntvp", "n": 16, "chunk": 40},
        {"student": lc, "arm": "ce"},
        {"student": lc, "arm": "kd"},
        {"student": lc, **sk, "n": 128, "r": 8},
        {"student": lc, **sk, "n": 128, "r": 8, "structured": False},
        {"student": opt, "arm": "ce", "batch": 64},
        {"student": opt, **sk, "n": 32, "r": 8, "loss": "cka", "batch": 64},
        {"student": opt, **sk, "n": 32, "r": 8, "loss": "cka", "batch": 64, "structured": False},
    ]
    if q:
        steps = [{"student": opt, "arm": "ce"}, {"student": opt, "arm": "kd"}, {"student": opt, **sk, "n": 32, "r": 8}]
    kernel_ns = [8, 16] if q else [8, 16, 32, 64, 128]
    kernels = []
    for n in kernel_ns:
        kernels.append({"estimator": "exact", "n": n, "chunk": 16})
        kernels.append({"estimator": "sketch", "n": n, "r": 32, "chunk": 16})
        if n <= (0 if q else 32):
            kernels.append({"estimator": "ntvp", "n": n, "chunk": 80})
    print(f"bench.distill: device {args.device}, torch threads {args.threads}, students {opt} and {lc}; "
          f"{repeats} interleaved repeats per row; memory " + ("per row in a fresh process" if memory else "not measured"),
          flush=True)
    split, teacher = _setup()
    step_specs = [{**common, "part": "step", "batch": 128, "loss": "mse", "structured": True, **s} for s in steps]
    for sp in step_specs:
        if sp["arm"] != "ntkd":
            for k in ("loss", "structured"):
                sp.pop(k)
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
    print("\nA. training step; × CE = median step time / median CE step time of the same student and CE batch "
          "(interleaved, same process); (min): from minima")
    print(f"{'student':<18} {'arm':<5} {'estimator':<12} {'front-end':<9} {'B':>4} {'N':>4} {'R':>3} {'loss':<5} "
          f"{'step ms':>9} {'min ms':>8} {'× CE':>6} {'(min)':>6} {'peak MB':>8} {'teacher kernel ms':>18}")
    for r in results_steps:
        if "error" in r:
            print(f"{r['student']:<18} {r['arm']:<5} {r.get('estimator', '-'):<12} ERROR {r['error']}")
            continue
        ce = next((c for c in results_steps if c["arm"] == "ce" and c["student"] == r["student"]
                   and c["batch"] == r["batch"] and "time_s" in c), None)
        r["ratio_vs_ce"] = r["time_s"] / ce["time_s"] if ce else float("nan")
        r["ratio_vs_ce_min"] = r["time_min_s"] / ce["time_min_s"] if ce else float("nan")
        tk = f"{1e3 * r['teacher_kernel_s']:.1f}" if r["arm"] == "ntkd" else "-"
        print(f"{r['student']:<18} {r['arm']:<5} {r.get('estimator', '-'):<12} {_front(r):<9} {r['batch']:>4} "
              f"{r.get('n', '-'):>4} {r.get('r', '-'):>3} {r.get('loss', '-'):<5} {1e3 * r['time_s']:9.1f} "
              f"{1e3 * r['time_min_s']:8.1f} {r['ratio_vs_ce']:6.2f} {r['ratio_vs_ce_min']:6.2f} {_mb(r):>8} {tk:>18}")
    target = _find(results_steps, student=opt, batch=128, estimator="sketch", n=128, r=8, structured=True)
    before = _find(results_steps, student=opt, batch=128, estimator="sketch", n=128, r=8, structured=False)
    if target:
        verdict = "meets" if target["ratio_vs_ce"] <= 3 else "misses"
        print(f"target: NTKD of the optical student with the sketch (N=128, R=8) ≤ 3× a CE step at batch 128 — measured "
              f"{target['ratio_vs_ce']:.2f}× (min {target['ratio_vs_ce_min']:.2f}×; {verdict})"
              + (f"; the model as is: {before['ratio_vs_ce']:.2f}×" if before else ""))
    print("\nB. teacher (LeNet-5) kernel on N images, no gradient; × exact = median time / median exact time at the same N")
    print(f"{'N':>4} {'estimator':<10} {'ms':>10} {'min ms':>8} {'× exact':>8} {'peak MB':>8}")
    for n in kernel_ns:
        ex = next((r for r in results_kernels if r["n"] == n and r["estimator"] == "exact"), {})
        for r in [r for r in results_kernels if r["n"] == n]:
            if "error" in r:
                print(f"{n:>4} {r['estimator']:<10} ERROR {r['error']}")
                continue
            r["ratio_vs_exact"] = r["time_s"] / ex["time_s"] if "time_s" in ex else float("nan")
            r["ratio_vs_exact_min"] = r["time_min_s"] / ex["time_min_s"] if "time_min_s" in ex else float("nan")
            print(f"{n:>4} {r['estimator'] + (' R=' + str(r['r']) if r['estimator'] == 'sketch' else ''):<10} "
                  f"{1e3 * r['time_s']:10.1f} {1e3 * r['time_min_s']:8.1f} {r['ratio_vs_exact']:8.2f} {_mb(r):>8}")
    table = {
        "caption": (f"Part A: one training step (forward, backward, Adam), × CE against the CE step of the same student "
                    f"and CE batch; part B: the LeNet-5 teacher's kernel, × exact against the exact kernel at the same N. "
                    f"Device {args.device}, {args.threads} torch thread(s), {repeats} interleaved repeats per row; ratios "
                    f"from medians (min: from minima); peak MB: one call alone in a fresh process"
                    + (" (not measured)" if not memory else "") + "."),
        "columns": ["part", "student", "arm", "estimator", "front-end", "CE batch", "N", "R", "loss", "median ms", "min ms",
                    "ratio", "ratio (min)", "peak MB"],
        "digits": 2,
        "rows": [_table_row(r) for r in results_steps + results_kernels if "error" not in r],
    }
    path = harness.write("distill", {"steps": results_steps, "kernels": results_kernels, "table": table},
                         config={"quick": q, "device": args.device, "threads": args.threads, "repeats": repeats,
                                 "memory": memory, "seed": 0},
                         argv=argv if argv is not None else sys.argv[1:], load_before=load0,
                         wall_time_s=time.perf_counter() - t_start, out=args.out)
    print(f"\nwritten {path}")
    return 0


def _front(r: dict) -> str:
    if r.get("arm") != "ntkd":
        return "-"
    return "factored" if r.get("structured", True) else "as is"


def _find(rows: list[dict], **want) -> dict | None:
    """The first timed step row with ``want`` (``structured`` defaults to True)."""
    for r in rows:
        if "ratio_vs_ce" in r and all(r.get(k, True if k == "structured" else None) == v for k, v in want.items()):
            return r
    return None


def _table_row(r: dict) -> dict:
    """One row of ``figures.table`` (times in ms)."""
    step = r["part"] == "step"
    est = r.get("estimator")
    return {"part": "A" if step else "B", "student": r.get("student") if step else "teacher LeNet-5",
            "arm": r["arm"] if step else None, "estimator": est,
            "front-end": (_front(r) if r["arm"] == "ntkd" else None) if step else None,
            "CE batch": r["batch"] if step else None, "N": r.get("n"), "R": r.get("r"),
            "loss": r.get("loss") if step else None,
            "median ms": 1e3 * r["time_s"], "min ms": 1e3 * r["time_min_s"],
            "ratio": r.get("ratio_vs_ce" if step else "ratio_vs_exact"),
            "ratio (min)": r.get("ratio_vs_ce_min" if step else "ratio_vs_exact_min"),
            "peak MB": r.get("peak_mem_mb")}


if __name__ == "__main__":
    raise SystemExit(main())
