"""``python -m bench.optics [--quick]``

1. Propagation time of ``optics.propagation.angular_spectrum`` (band-limited ASM, 2× zero
   padding) and ``fresnel_tf`` against the **floor**: one forward and one inverse FFT of the
   padded field (what any FFT propagator must do); target ratio ≤ 2×.
2. The same against **LightPipes** ``Forvard`` (its FFT/spectral propagator) on the same field
   and grid — LightPipes does not pad, so it is given the zero-padded 2N×2N field, i.e. the
   same arithmetic problem. Skipped with a message when LightPipes is not installed
   (``.venv/bin/pip install LightPipes``; it is a benchmark-only dependency).
3. Monte Carlo: fabricated instances drawn per second (wave simulation of the fabricated
   metasurface) and evaluated per second (1,000 MNIST test images through the instance and a back-end).

All sides of one grid size are timed together in interleaved rounds (``bench.harness``:
floor, ASM, ASM, Fresnel, LightPipes, floor, …), so a ratio never mixes two time windows; a
ratio below 1 against the floor would be a measurement artefact (every propagator does the
floor's two FFTs and more). LightPipes is compared in complex128 (its only dtype) with our
propagators in complex128 building their transfer function every call (as ``Forvard``
does); the cached-ASM column is the design-loop case and is compared with the floor only.
Everything runs on one thread by default (``--threads``): numpy's FFT under LightPipes is
single-threaded, and on a shared 2-core machine a 2-thread torch FFT can be many times
slower than a 1-thread one (OpenMP contention). Results go to ``results/bench/optics.json``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch



def bench_propagation(sizes, repeats, dtype=torch.complex128, lightpipes: bool = True) -> list[dict]:
    """Per grid size N, interleaved timings of the floor, our propagators and LightPipes.

    Sides (all on the same N×N field of ``dtype``, padded to 2N×2N where the method pads):
    ``floor`` fft2 + ifft2 of the padded field; ``asm`` angular spectrum with its transfer
    function cached (as in a design loop at fixed z); ``asm_uncached`` the same with the
    cache emptied before each call (the transfer function is built every time, like
    LightPipes does); ``fresnel_tf`` (builds its transfer function every call); and
    ``lightpipes`` ``Forvard`` on the padded field (complex128 only: LightPipes' dtype).
    """
    from bench import harness
    from optics import propagation as prop
    from optics.propagation import angular_spectrum, fresnel_tf

    lp = None
    if lightpipes and dtype == torch.complex128:
        try:
            import LightPipes as lp
        except ImportError:
            print("LightPipes is not installed: skipping the LightPipes anchor (.venv/bin/pip install LightPipes)")
    rows = []
    wl, dx = 532e-9, 1e-6
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        field = torch.complex(torch.randn(n, n, generator=g, dtype=torch.float64), torch.randn(n, n, generator=g, dtype=torch.float64)).to(dtype)
        z = 0.5 * n * dx  # a distance where the band limit keeps most of the band
        padded = torch.nn.functional.pad(field, (n // 2, n // 2, n // 2, n // 2))

        def asm_uncached():
            prop._TF_CACHE.clear()
            return angular_spectrum(field, dx, wl, z, check=False)

        sides = {"floor": lambda: torch.fft.ifft2(torch.fft.fft2(padded)),
                 "asm": lambda: angular_spectrum(field, dx, wl, z, check=False),
                 "asm_uncached": asm_uncached,
                 "fresnel_tf": lambda: fresnel_tf(field, dx, wl, z, check=False)}
        if lp is not None:
            F = lp.Begin(2 * n * dx, wl, 2 * n)
            F.field = padded.numpy().copy()
            sides["lightpipes"] = lambda: lp.Forvard(F, z)
        st = harness.interleave(sides, repeats, warmup=2)
        med = {k: v["wall_s"]["median"] for k, v in st.items()}
        row = {"n": n, "padded": 2 * n, "dtype": str(dtype).replace("torch.", ""), "timing": st,
               **{f"{k}_s": v for k, v in med.items()}}
        for k in ("asm", "asm_uncached", "fresnel_tf"):
            row[f"{k}_over_floor"] = harness.ratio(st, k, "floor")
            row[f"{k}_over_floor_min"] = harness.ratio(st, k, "floor", "min")
        if lp is not None:
            for k in ("asm_uncached", "fresnel_tf"):
                row[f"{k}_over_lightpipes"] = harness.ratio(st, k, "lightpipes")
            # agreement: LightPipes Forvard is a Fresnel transfer-function propagator without padding
            ours = fresnel_tf(padded, dx, wl, z, pad_factor=1, check=False).numpy()
            theirs = lp.Forvard(F, z).field
            row["fresnel_vs_lightpipes_rel_diff"] = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
        rows.append(row)
    return rows


def bench_montecarlo(n_instances: int, grid: int, iterations: int) -> dict:
    from neurohw.data import load_mnist5k
    from optics.design import OpticsConfig, design_metasurface
    from optics.fabrication import FabricationModel, FabricationParams
    from optics.hybrid import HybridMNIST

    torch.manual_seed(0)
    model = HybridMNIST().eval()
    design = design_metasurface(model.frontend.psf_tiles().detach(), model.frontend.layout(), OpticsConfig(grid=grid), iterations=iterations, progress=False)
    fab = FabricationModel(design, FabricationParams())
    x = load_mnist5k().x_test
    t0 = time.perf_counter()
    insts = [fab.draw(i) for i in range(n_instances)]
    t_draw = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        for fe in insts:
            fe.auto_expose(x[:200])
            model.backend(fe(x))
    t_eval = time.perf_counter() - t0
    return {
        "grid": grid,
        "instances": n_instances,
        "draw_per_s": n_instances / t_draw,
        "evaluate_1000_images_per_s": n_instances / t_eval,
        "instances_per_s_total": n_instances / (t_draw + t_eval),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.optics")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="result file (default results/bench/optics.json)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: numpy's FFT, under LightPipes, is single-threaded)")
    args = ap.parse_args(argv)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, argv if argv is not None else sys.argv[1:])
    finally:
        torch.set_num_threads(old_threads)


def _run(args, argv) -> int:
    from bench import harness

    load0, t_start = harness.loadavg(), time.perf_counter()
    sizes = [128, 256] if args.quick else [256, 512, 1024]
    repeats = 5 if args.quick else 15
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} interleaved repeats per side")
    rows = bench_propagation(sizes, repeats)
    rows += bench_propagation(sizes[-1:], repeats, dtype=torch.complex64)
    print("\npropagation, median ms (min, IQR); floor = fft2 + ifft2 of the 2x-padded field; ratios from medians")
    print(f"{'N':>5} {'dtype':>10} {'floor ms':>9} {'ASM/fl':>7} {'ASM(noTF$)/fl':>13} {'FresTF/fl':>9} "
          f"{'LightPipes ms':>13} {'ASM(noTF$)/LP':>13} {'FresTF/LP':>9}")
    for r in rows:
        lp = "lightpipes_s" in r
        lp_ms = f"{1e3 * r['lightpipes_s']:.3g}" if lp else "skipped"
        lp_asm = f"{r['asm_uncached_over_lightpipes']:.2f}" if lp else "-"
        lp_fr = f"{r['fresnel_tf_over_lightpipes']:.2f}" if lp else "-"
        print(f"{r['n']:>5} {r['dtype']:>10} {1e3 * r['floor_s']:>9.3g} {r['asm_over_floor']:>7.2f} "
              f"{r['asm_uncached_over_floor']:>13.2f} {r['fresnel_tf_over_floor']:>9.2f} {lp_ms:>13} {lp_asm:>13} {lp_fr:>9}")
    print("ASM(noTF$) and FresTF build their transfer function every call, like LightPipes; the LightPipes "
          "columns compare complex128 with complex128 (LightPipes' only dtype)")
    for r in rows:
        if "fresnel_vs_lightpipes_rel_diff" in r:
            print(f"N={r['n']} {r['dtype']}: our fresnel_tf vs LightPipes Forvard on the same padded field: relative difference {r['fresnel_vs_lightpipes_rel_diff']:.2e}")
    mc = bench_montecarlo(2 if args.quick else 10, 144, 10 if args.quick else 30)
    print(f"\nMonte Carlo (grid {mc['grid']}², {mc['instances']} instances, one timed pass): draw {mc['draw_per_s']:.2f}/s, "
          f"evaluate on 1000 images {mc['evaluate_1000_images_per_s']:.2f}/s, together {mc['instances_per_s_total']:.2f} instances/s")
    table = {
        "caption": (f"Angular-spectrum propagation (torch, {args.threads} thread(s), {repeats} interleaved repeats): "
                    "floor = fft2 + ifft2 of the 2x-padded field; ASM (uncached) builds its transfer function each "
                    "call like LightPipes; LightPipes ratios compare complex128 with complex128. Ratios of medians."),
        "columns": ["N", "dtype", "floor ms", "ASM / floor", "ASM uncached / floor", "ASM uncached / LightPipes",
                    "Fresnel TF / LightPipes", "Fresnel vs LightPipes rel. diff"],
        "rows": [{"N": r["n"], "dtype": r["dtype"], "floor ms": 1e3 * r["floor_s"], "ASM / floor": r["asm_over_floor"],
                  "ASM uncached / floor": r["asm_uncached_over_floor"],
                  "ASM uncached / LightPipes": r.get("asm_uncached_over_lightpipes"),
                  "Fresnel TF / LightPipes": r.get("fresnel_tf_over_lightpipes"),
                  "Fresnel vs LightPipes rel. diff": (f"{r['fresnel_vs_lightpipes_rel_diff']:.1e}"
                                                      if "fresnel_vs_lightpipes_rel_diff" in r else None)}
                 for r in rows]}
    path = harness.write("optics", {"propagation": rows, "montecarlo": mc, "table": table},
                         config={"quick": args.quick, "sizes": sizes, "repeats": repeats, "threads": args.threads, "seed": 0},
                         argv=argv, load_before=load0, wall_time_s=time.perf_counter() - t_start, out=args.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
