"""``python -m bench.logic [--quick]``: the logic backend's speed, measured side by side.

1. **C export of trained nets** (:mod:`bench.logic.trained`: dense LGNs of 6 × 8,000 gates —
   difflogic's MNIST model size — and 6 × 16,000, trained on MNIST-5k and cached in the user
   cache). For each net: compile time of the table-form C (``cc -O1``, the default of
   :func:`logic.export.compile_c`; wall and compiler CPU seconds, several compiles), class
   counts of the compiled C on all 1,000 MNIST-5k test images checked equal to the hardened
   float model's and the packed evaluator's, then images/s in interleaved rounds
   (:func:`bench.harness.interleave`) of three sides: the C program on one thread, the C
   program on two threads, the packed PyTorch evaluator (one torch thread) on the test images.
   The anchor is difflogic's published figure: "more than a million MNIST images per second on
   a single CPU core" (Petersen et al., *Deep Differentiable Logic Gate Networks*, NeurIPS
   2022), i.e. 1 M images/s per core. Full mode also compiles the straight-line form
   (``style="code"``) of the 6 × 8,000 net once, for its compile time.
2. **Training step** (forward + backward + AdamW) of a dense LGN with the fast
   affine-bilinear mixture vs the naive explicit 16-gate sum (anchor), interleaved.

Per core = images / process CPU seconds (the C program reads ``CLOCK_PROCESS_CPUTIME_ID``, so
two threads count twice); all cores = images / wall seconds. The C side times itself on
pseudo-random input words: the generated code has no data-dependent branch, so its speed does
not depend on the images. Figures go to ``results/bench/logic.json``; nothing asserts on time,
but the run exits 1 when the C counts differ from the hardened model's.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

#: difflogic's published figure: > 1 M MNIST images/s on one CPU core (NeurIPS 2022).
PUBLISHED_C_IMAGES_PER_S = 1e6
PUBLISHED_SOURCE = ("Petersen et al., Deep Differentiable Logic Gate Networks, NeurIPS 2022: "
                    "> 1 M MNIST images/s on a single CPU core")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _compile(net, d: Path, style: str, repeats: int) -> tuple[Path, dict]:
    """Write ``net`` as C (``style``), compile it ``repeats`` times; the executable and compile-time statistics."""
    from bench import harness
    from logic import export

    src = d / f"net_{style}.c"
    src.write_text(export.to_c(net, style=style))
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = _children_cpu(), time.perf_counter()
        exe = export.compile_c(src, d / f"net_{style}")
        wall.append(time.perf_counter() - t0)
        cpu.append(_children_cpu() - c0)
    return exe, {"wall_s": harness.summary(wall), "cpu_s": harness.summary(cpu), "source_bytes": src.stat().st_size}


def bench_net(model, split, d: Path, quick: bool, code_form: bool) -> dict:
    """Compile time, exactness on the test split, and interleaved images/s of one trained net."""
    from bench import harness
    from logic import export
    from logic.packed import PackedEvaluator, pack_bits

    net = model.to_netlist()
    res = {"widths": list(model.config["widths"]), "gates_raw": model.n_neurons(), "gates_counted": net.gate_count(),
           "n_inputs": net.n_inputs, "n_outputs": int(net.outputs.size), "depth": net.depth}
    x = split.x_test
    bits = model.encode_bits(x)
    with torch.no_grad():
        hard = model.hard_counts(x)
    ev = PackedEvaluator(net)
    packed = ev.class_counts(bits)
    res["n_test"] = len(x)
    res["acc_hard"] = float((hard.argmax(-1) == split.y_test).float().mean())
    res["packed_equal_hard"] = bool(torch.equal(packed, hard))

    exe, res["compile"] = _compile(net, d, "table", 1 if quick else 3)
    c_counts = export.run_c_counts(exe, bits, net.num_classes)
    res["c_equal_hard"] = bool(torch.equal(c_counts, hard))
    res["c_equal_packed"] = bool(torch.equal(c_counts, packed))

    blocks, reps = (64, 4) if quick else (256, 128)  # images per C sample: 64·blocks·reps (per thread)
    runs: dict[str, list[dict]] = {"c_1": [], "c_2": []}
    words = pack_bits(bits)
    sides = {"c_1": lambda: runs["c_1"].append(export.bench_c(exe, blocks, reps, threads=1)),
             "c_2": lambda: runs["c_2"].append(export.bench_c(exe, blocks, reps, threads=2)),
             "packed": lambda: ev.counts_from_words(ev.run_words(words), len(x))}
    st = harness.interleave(sides, 2 if quick else 7, warmup=1)
    runs = {k: v[1:] for k, v in runs.items()}  # drop the warm-up call
    res["timing"] = st
    res["lanes"] = runs["c_1"][0]["lanes"]
    res["c_images_per_core"] = harness.summary([r["images_per_s"] for r in runs["c_1"]])
    res["c_images_per_core_2threads"] = harness.summary([r["images_per_s"] for r in runs["c_2"]])
    res["c_images_all_cores_2threads"] = harness.summary([r["wall_images_per_s"] for r in runs["c_2"]])
    res["packed_images_per_core"] = harness.summary([len(x) / s for s in st["packed"]["cpu_s"]["samples"]])
    res["c_vs_published"] = res["c_images_per_core"]["median"] / PUBLISHED_C_IMAGES_PER_S
    res["c_vs_packed"] = res["c_images_per_core"]["median"] / res["packed_images_per_core"]["median"]
    if code_form:  # the straight-line form: compile once (slow), check, time once
        exe_c, res["code_form_compile"] = _compile(net, d, "code", 1)
        res["code_form_equal_hard"] = bool(torch.equal(export.run_c_counts(exe_c, bits, net.num_classes), hard))
        res["code_form_images_per_core"] = export.bench_c(exe_c, blocks, reps // 4, threads=1)["images_per_s"]
    return res


def bench_training(quick: bool) -> dict:
    from bench import harness
    from logic.models import dense_lgn

    widths = (1000, 1000) if quick else (8000, 8000, 8000, 8000)
    batch = 64 if quick else 128
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    sides = {}
    for naive in (False, True):
        model = dense_lgn(widths=widths, seed=0)
        for m in model.body:
            if hasattr(m, "naive"):
                m.naive = naive
        opt = torch.optim.AdamW(model.parameters(), lr=0.01)

        def step(model=model, opt=opt):
            loss = torch.nn.functional.cross_entropy(model(x, hard=False), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        sides["naive" if naive else "fast"] = step
    st = harness.interleave(sides, 2 if quick else 5)
    return {"widths": list(widths), "batch": batch, "timing": st, "fast_step_s": st["fast"]["cpu_s"]["median"],
            "naive_step_s": st["naive"]["cpu_s"]["median"],
            "speedup_fast_vs_naive": st["naive"]["cpu_s"]["median"] / st["fast"]["cpu_s"]["median"]}


def _name(r: dict) -> str:
    w = r["widths"]
    return f"{len(w)} × {w[0]:,}" if len(set(w)) == 1 else "×".join(map(str, w))


def _row(r: dict, form: str, compile: dict, per_core: float, all_cores, equal: bool) -> dict:
    return {"net": _name(r), "gates counted": r["gates_counted"], "form": form,
            "compile s": compile["wall_s"]["median"], "compile CPU s": compile["cpu_s"]["median"],
            "images/s per core": round(per_core), "vs 1 M/s": per_core / PUBLISHED_C_IMAGES_PER_S,
            "images/s, 2 threads": round(all_cores) if all_cores is not None else "–", "counts = hardened": equal}


def run(quick: bool = False, out: Path | None = None, argv=()) -> dict:
    from bench import harness
    from bench.logic import trained
    from logic import export
    from neurohw.data import load_mnist5k

    load0, t_start = harness.loadavg(), time.perf_counter()
    torch.set_num_threads(1)  # per-core figures
    if export.find_cc() is None:
        print("bench.logic: no C compiler (set CC or install gcc)", file=sys.stderr)
        return {}
    split = load_mnist5k()
    specs = [dict(width=200, layers=2, epochs=1, n_train=500)] if quick else [dict(width=w) for w in trained.WIDTHS]
    nets = []
    with tempfile.TemporaryDirectory() as d:
        for i, spec in enumerate(specs):
            model, _ = trained.trained_model(**spec, progress=False)
            sub = Path(d) / f"net{i}"
            sub.mkdir()
            nets.append(bench_net(model, split, sub, quick, code_form=not quick and i == 0))
    tr = bench_training(quick)

    rows, ok = [], True
    print(f"logic benchmark{' (quick)' if quick else ''}: trained dense LGNs on MNIST-5k, compiled C (cc -O1, table "
          f"form) on {nets[0]['n_test']} test images checked equal to the hardened model; images/s per core = "
          "images / CPU s; medians of interleaved repeats (min in brackets)")
    print(f"{'net':<14}{'gates':>8}{'form':>7}{'compile s (CPU)':>17}{'images/s per core':>28}{'vs 1 M/s':>10}"
          f"{'2 threads, all cores':>24}{'packed eval/core':>18}  exact")
    for r in nets:
        c, cp = r["c_images_per_core"], r["compile"]
        eq = r["c_equal_hard"] and r["c_equal_packed"] and r["packed_equal_hard"]
        ok &= eq
        name = _name(r)
        print(f"{name:<14}{r['gates_counted']:>8,}{'table':>7}{cp['wall_s']['median']:>9.2f} ({cp['cpu_s']['median']:>5.2f})"
              f"{c['median']:>16,.0f} ({c['min']:>9,.0f}){r['c_vs_published']:>9.2f}x"
              f"{r['c_images_all_cores_2threads']['median']:>24,.0f}{r['packed_images_per_core']['median']:>18,.0f}  {eq}")
        rows.append(_row(r, "table", cp, c["median"], r["c_images_all_cores_2threads"]["median"], eq))
        if "code_form_compile" in r:
            cc = r["code_form_compile"]
            ok &= r["code_form_equal_hard"]
            print(f"{name:<14}{r['gates_counted']:>8,}{'code':>7}{cc['wall_s']['median']:>9.2f} ({cc['cpu_s']['median']:>5.2f})"
                  f"{r['code_form_images_per_core']:>16,.0f}"
                  f"{'':>12}{r['code_form_images_per_core'] / PUBLISHED_C_IMAGES_PER_S:>9.2f}x{'–':>24}{'':>18}  "
                  f"{r['code_form_equal_hard']}")
            rows.append(_row(r, "code (straight-line)", cc, r["code_form_images_per_core"], None, r["code_form_equal_hard"]))
    print("compile s: wall time of `cc -O1` (median; CPU seconds of the compiler in brackets); 2 threads: wall-clock images/s of both cores of this shared "
          "2-core machine; anchor: " + PUBLISHED_SOURCE)
    title = "training step (dense LGN " + "x".join(map(str, tr["widths"])) + ", batch " + str(tr["batch"]) + ")"
    print(f"{title:<58}{'CPU s/step':>12}")
    print(f"{'  fast affine-bilinear mixture':<58}{tr['fast_step_s']:>12.4f}")
    print(f"{'  naive 16-gate sum (anchor)':<58}{tr['naive_step_s']:>12.4f}")
    print(f"{'  speed-up fast vs naive':<58}{tr['speedup_fast_vs_naive']:>11.2f}x")

    config = {"quick": quick, "nets": specs, "recipe": {"epochs": trained.EPOCHS, "lr": trained.LR,
              "batch": trained.BATCH, "tau": trained.TAU, "seed": trained.SEED, "data": "mnist5k"},
              "compiler": "cc -O1 -std=c99 (logic.export.compile_c defaults)", "torch_threads": 1,
              "published_anchor": PUBLISHED_SOURCE}
    table = {
        "caption": (f"Compiled C export of trained dense LGNs (MNIST-5k, {'quick' if quick else 'full'} mode): "
                    "compile wall time of `cc -O1` and the compiler's CPU seconds (medians); images/s per core = images / CPU seconds, median of interleaved "
                    "repeats; vs 1 M/s = against difflogic's published > 1 M MNIST images/s per core; 2 threads = "
                    "wall-clock images/s of both cores of the shared 2-core machine; counts = hardened: the C class "
                    "counts equal the hardened float model's (and the packed evaluator's) on all 1,000 test images."),
        "columns": ["net", "gates counted", "form", "compile s", "compile CPU s", "images/s per core", "vs 1 M/s", "images/s, 2 threads",
                    "counts = hardened"],
        "rows": rows, "digits": 2}
    res = {"nets": nets, "training": tr, "published_c_images_per_s": PUBLISHED_C_IMAGES_PER_S, "table": table}
    path = harness.write("logic", res, config=config, argv=argv, load_before=load0,
                         wall_time_s=time.perf_counter() - t_start, out=out)
    print(f"wrote {path}")
    res["ok"] = ok
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.logic", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small quickly trained net, few repeats (smoke run)")
    ap.add_argument("--out", type=Path, default=None, help="result file (default results/bench/logic.json)")
    args = ap.parse_args(argv)
    res = run(quick=args.quick, out=args.out, argv=argv if argv is not None else sys.argv[1:])
    return 0 if res.get("ok", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
