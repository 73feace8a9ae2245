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

All anchors run in this process, side by side, on one thread by default (``--threads``):
numpy's FFT under LightPipes is single-threaded, and on a shared 2-core machine a 2-thread
torch FFT can be many times slower than a 1-thread one (OpenMP contention). Figures are
medians over repeats. Results go
to ``reports/bench/optics.json``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from neurohw.io import atomic_write_json, provenance


def _median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_propagation(sizes, repeats, dtype=torch.complex128) -> list[dict]:
    from optics.propagation import angular_spectrum, fresnel_tf

    try:
        import LightPipes as lp
    except ImportError:
        lp = None
        print("LightPipes is not installed: skipping the LightPipes anchor (.venv/bin/pip install LightPipes)")
    rows = []
    wl, dx = 532e-9, 1e-6
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        field = torch.complex(torch.randn(n, n, generator=g, dtype=torch.float64), torch.randn(n, n, generator=g, dtype=torch.float64)).to(dtype)
        z = 0.5 * n * dx  # a distance where the band limit keeps most of the band
        padded = torch.nn.functional.pad(field, (n // 2, n // 2, n // 2, n // 2))
        angular_spectrum(field, dx, wl, z, check=False)  # fill the transfer-function cache
        t_floor = _median_time(lambda: torch.fft.ifft2(torch.fft.fft2(padded)), repeats)
        t_asm = _median_time(lambda: angular_spectrum(field, dx, wl, z, check=False), repeats)
        t_asm_cold = _median_time(lambda: angular_spectrum(field, dx, wl, z * (1 + 1e-9 * time.perf_counter()), check=False), max(3, repeats // 2), warmup=1)
        t_fr = _median_time(lambda: fresnel_tf(field, dx, wl, z, check=False), repeats)
        row = {
            "n": n,
            "padded": 2 * n,
            "dtype": str(dtype).replace("torch.", ""),
            "floor_two_ffts_s": t_floor,
            "asm_s": t_asm,
            "asm_uncached_tf_s": t_asm_cold,
            "fresnel_tf_s": t_fr,
            "asm_over_floor": t_asm / t_floor,
            "asm_uncached_over_floor": t_asm_cold / t_floor,
            "fresnel_over_floor": t_fr / t_floor,
        }
        if lp is not None:
            pn = padded.numpy()
            F = lp.Begin(2 * n * dx, wl, 2 * n)
            F.field = pn.copy()
            t_lp = _median_time(lambda: lp.Forvard(F, z), repeats)
            row["lightpipes_forvard_s"] = t_lp
            row["asm_over_lightpipes"] = t_asm / t_lp
            row["fresnel_over_lightpipes"] = t_fr / t_lp
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
    ap.add_argument("--out", type=Path, default=Path("reports/bench/optics.json"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: numpy's FFT, under LightPipes, is single-threaded)")
    args = ap.parse_args(argv)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(old_threads)


def _run(args) -> int:
    sizes = [128, 256] if args.quick else [256, 512, 1024]
    repeats = 5 if args.quick else 15
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = bench_propagation(sizes, repeats)
    rows += bench_propagation(sizes[-1:], repeats, dtype=torch.complex64)
    print("\npropagation (median seconds; floor = fft2 + ifft2 of the 2x-padded field)")
    hdr = f"{'N':>5} {'dtype':>10} {'floor':>9} {'ASM':>9} {'ASM/floor':>9} {'ASM(noTF$)/fl':>13} {'FresnelTF/fl':>12} {'LightPipes':>10} {'ASM/LP':>7} {'Fres/LP':>7}"
    print(hdr)
    for r in rows:
        lp_t = f"{r['lightpipes_forvard_s']:.4g}" if "lightpipes_forvard_s" in r else "skipped"
        lp_r = f"{r['asm_over_lightpipes']:.2f}" if "asm_over_lightpipes" in r else "-"
        lp_f = f"{r['fresnel_over_lightpipes']:.2f}" if "fresnel_over_lightpipes" in r else "-"
        print(
            f"{r['n']:>5} {r['dtype']:>10} {r['floor_two_ffts_s']:>9.4g} {r['asm_s']:>9.4g} {r['asm_over_floor']:>9.2f} "
            f"{r['asm_uncached_over_floor']:>13.2f} {r['fresnel_over_floor']:>12.2f} {lp_t:>10} {lp_r:>7} {lp_f:>7}"
        )
    for r in rows:
        if "fresnel_vs_lightpipes_rel_diff" in r:
            print(f"N={r['n']} {r['dtype']}: our fresnel_tf vs LightPipes Forvard on the same padded field: relative difference {r['fresnel_vs_lightpipes_rel_diff']:.2e}")
    mc = bench_montecarlo(2 if args.quick else 10, 144, 10 if args.quick else 30)
    print(f"\nMonte Carlo (grid {mc['grid']}², {mc['instances']} instances): draw {mc['draw_per_s']:.2f}/s, "
          f"evaluate on 1000 images {mc['evaluate_1000_images_per_s']:.2f}/s, together {mc['instances_per_s_total']:.2f} instances/s")
    atomic_write_json(args.out, {"provenance": provenance(0, {"quick": args.quick, "sizes": sizes, "repeats": repeats, "threads": args.threads}), "propagation": rows, "montecarlo": mc})
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
