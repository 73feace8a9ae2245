"""``python -m bench.logic [--quick]``: logic backend speed, measured side by side in one process.

1. Training step (forward + backward + AdamW) of a dense LGN with the fast affine-bilinear
   mixture vs the naive explicit 16-gate sum (anchor).
2. Inference of a ≈64 k-gate hardened net on MNIST-sized input (thermometer, 1,568 bits):
   the packed-bit PyTorch evaluator vs the compiled C export, both on one core. The target
   from difflogic's published claim is ≥ 1 M images/s per core for the C export, and the
   packed evaluator within 10× of the C export.

Times are CPU seconds of one thread (``time.process_time``; the C program uses
``CLOCK_PROCESS_CPUTIME_ID``): figures per core that stay meaningful on a shared machine.
Figures go to ``reports/bench/logic.json``. Nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

PUBLISHED_C_IMAGES_PER_S = 1e6  # difflogic's claim (> 1 M MNIST images/s per CPU core), METHODS.md §3


def _time(fn, repeats: int) -> float:
    """CPU seconds per call of ``fn`` (one torch thread: CPU time = time on one core, robust to a busy machine)."""
    fn()  # warm-up
    t0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - t0) / repeats


def bench_training(quick: bool) -> dict:
    from logic.models import dense_lgn

    widths = (1000, 1000) if quick else (8000, 8000, 8000, 8000)
    batch = 64 if quick else 128
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    res = {"widths": list(widths), "batch": batch}
    for naive in (False, True):
        model = dense_lgn(widths=widths, seed=0)
        for m in model.body:
            if hasattr(m, "naive"):
                m.naive = naive
        opt = torch.optim.AdamW(model.parameters(), lr=0.01)

        def step():
            loss = torch.nn.functional.cross_entropy(model(x, hard=False), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        res["naive_step_s" if naive else "fast_step_s"] = _time(step, 2 if quick else 5)
    res["speedup_fast_vs_naive"] = res["naive_step_s"] / res["fast_step_s"]
    return res


def bench_inference(quick: bool) -> dict:
    from logic import export
    from logic.models import dense_lgn
    from logic.packed import PackedEvaluator, pack_bits

    widths = (1000, 1000, 500) if quick else (24000, 24000, 24000, 24000, 24000, 16000)
    model = dense_lgn(levels=2, widths=widths, seed=0).eval()  # Gaussian init: argmax gates uniform over the 16
    net = model.to_netlist()
    n_img = 1024 if quick else 16384
    bits = model.encode_bits(torch.rand(n_img, 1, 28, 28))
    res = {"widths": list(widths), "gates_raw": model.n_neurons(), "gates_counted": net.gate_count(),
           "n_inputs": net.n_inputs, "depth": net.depth, "n_images": n_img}  # fmt: skip
    ev = PackedEvaluator(net)
    words = pack_bits(bits)
    t = _time(lambda: ev.counts_from_words(ev.run_words(words), n_img), 2 if quick else 5)
    res["packed_images_per_s"] = n_img / t
    t_pack = _time(lambda: pack_bits(bits), 2)
    res["packed_images_per_s_incl_packing"] = n_img / (t + t_pack)
    if export.find_cc():
        with tempfile.TemporaryDirectory() as d:
            src = export.write_c(net, Path(d) / "net.c")
            t0 = time.perf_counter()
            exe = export.compile_c(src, Path(d) / "net", opt="-O1")
            res["c_compile_s"] = time.perf_counter() - t0
            assert torch.equal(export.run_c_counts(exe, bits[:256], net.num_classes), ev.class_counts(bits[:256]))
            res["c_images_per_s"] = export.bench_c(exe, 64 if quick else 512, 3 if quick else 10)["images_per_s"]
        res["packed_vs_c"] = res["c_images_per_s"] / res["packed_images_per_s"]
        res["c_vs_published_claim"] = res["c_images_per_s"] / PUBLISHED_C_IMAGES_PER_S
    else:
        res["c_images_per_s"] = None
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.logic")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("reports/bench/logic.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # per-core figures
    from neurohw.io import atomic_write_json, provenance

    tr = bench_training(args.quick)
    inf = bench_inference(args.quick)
    print(f"logic benchmark{' (quick)' if args.quick else ''}, 1 thread, CPU time per core")
    title = "training step (dense LGN " + "x".join(map(str, tr["widths"])) + ", batch " + str(tr["batch"]) + ")"
    print(f"{title:<58}{'s/step':>12}")
    print(f"{'  fast affine-bilinear mixture':<58}{tr['fast_step_s']:>12.4f}")
    print(f"{'  naive 16-gate sum (anchor)':<58}{tr['naive_step_s']:>12.4f}")
    print(f"{'  speed-up fast vs naive':<58}{tr['speedup_fast_vs_naive']:>11.2f}x")
    print(f"inference: {inf['gates_counted']:,} counted gates (raw {inf['gates_raw']:,}), depth {inf['depth']}, "
          f"{inf['n_inputs']} input bits")
    print(f"{'  packed PyTorch evaluator':<58}{inf['packed_images_per_s']:>14,.0f} images/s")
    print(f"{'  packed PyTorch evaluator incl. bit packing':<58}{inf['packed_images_per_s_incl_packing']:>14,.0f} images/s")
    if inf["c_images_per_s"]:
        print(f"{'  compiled C export (-O1)':<58}{inf['c_images_per_s']:>14,.0f} images/s")
        print(f"{'  C / packed evaluator (target ≤ 10)':<58}{inf['packed_vs_c']:>13.2f}x")
        print(f"{'  C / published 1 M images/s claim (target ≥ 1)':<58}{inf['c_vs_published_claim']:>13.2f}x")
    else:
        print("  compiled C export: skipped (no C compiler)")
    atomic_write_json(args.out, {"provenance": provenance(config={"quick": args.quick}), "training": tr, "inference": inf})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
