"""``python -m bench.calibration [--quick] [--parts devices,time,memory]`` — calibration benchmarks.

Part ``devices`` (the default; :mod:`bench.calibration.devices`): one model calibrated on six
virtual devices, three in the twin's family and three with error kinds the twin does not
model; per device and mean: uncalibrated, refit, refit + CE, refit + CE+NTK, CE-only
fine-tune, control, and the misfit test's verdict. Figures (``figures.table``) go to
``results/bench/calibration.json``.

Part ``time``. Builds a small MNIST hybrid optical model, captures the MNIST-5k test digits on
a fabricated instance with the virtual lab, and times a 10 % calibration (refit, twin
adaptation, four fine-tuning arms, no curve) with 1 torch thread. Anchors, run side by side in
the same process: one pass of held-out inference streamed from the file, and the paper's
baseline alone (CE-only fine-tuning of the back-end on the slice).

Part ``memory``. Writes a large capture file (the MNIST-5k captures repeated with fresh sensor-
like noise, inputs as dataset indices) and runs, in a fresh subprocess each, (a) the strict
reader's full validation scan, (b) a calibration with a 1 % slice streaming the held-out rest;
it reports their peak resident memory against the file's size in float32 and float64. The
naive anchor (``np.asarray(frames[:], float64)``) is measured on the small file only and
extrapolated by bytes, never run on the large one.

The time part's three sides are timed in interleaved rounds (``bench.harness``; 3 rounds, 1 in
quick mode; no warm-up: every side is a whole job). The memory part's peaks are the child process's
resident high-water mark, reset after its imports, above its size then (glibc with a fixed
mmap threshold so freed memory is returned, ``bench.harness.memory_env``).

Time and memory figures go to ``results/bench/calibration-resources.json``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _child(args) -> int:
    """Subprocess body: one measured job; prints a JSON line with its peak RSS.

    The peak is the process's resident high-water mark, reset after the imports
    (``bench.harness.peak_rss_growth``), so it covers the job alone.
    """
    import h5py  # noqa: F401  (imports are not part of the measured work)
    import torch

    import calibration.bundle  # noqa: F401
    import calibration.captures  # noqa: F401
    import calibration.loop  # noqa: F401
    import optics  # noqa: F401
    from bench import harness

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    before = harness.rss_mib()
    info: dict = {}
    grow = harness.peak_rss_growth(lambda: info.update(_child_job(args)))
    if grow is None:
        raise SystemExit("peak resident memory cannot be measured on this OS (needs Linux /proc/self/clear_refs)")
    print(json.dumps({"job": args.child, "peak_rss_mib": before + grow, "baseline_rss_mib": before,
                      "wall_s": time.perf_counter() - t0, **info}))
    return 0


def _child_job(args) -> dict:
    import torch

    if args.child == "scan":
        from calibration.captures import open_captures

        open_captures(args.captures, scan=True).close()
        info = {}
    elif args.child == "naive":
        import h5py

        with h5py.File(args.captures, "r") as fh:
            a = np.asarray(fh["measured/frames"][:], dtype=np.float64)
        info = {"bytes": int(a.nbytes)}
    elif args.child == "calibrate":
        from calibration.bundle import load_optical_model
        from calibration.loop import CalibrationConfig, calibrate

        om = load_optical_model(args.model)
        teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
        cfg = CalibrationConfig(fraction=args.fraction, curve=False, twin_steps=100, finetune_max_steps=100)
        res = calibrate(om, args.captures, cfg, teacher=teacher)
        info = {"accuracies": res.accuracies, "n_calib": res.split["n_calib"], "n_held_out": res.split["n_held_out"]}
    else:
        raise SystemExit(f"unknown child job {args.child}")
    return info


def _grow(r: dict) -> float:
    """Peak RSS growth of a child job over its RSS after imports, MiB."""
    return r["peak_rss_mib"] - r["baseline_rss_mib"]


def _run_child(job: str, captures: Path, model: Path | None = None, fraction: float = 0.01) -> dict:
    cmd = [sys.executable, "-m", "bench.calibration", "--child", job, "--captures", str(captures), "--fraction", str(fraction)]
    if model:
        cmd += ["--model", str(model)]
    from bench import harness

    out = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2],
                         env=harness.memory_env())
    if out.returncode != 0:
        raise RuntimeError(f"child {job} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _write_large(src: Path, dst: Path, n: int, seed: int = 0) -> dict:
    """Repeat the captures of ``src`` with fresh Gaussian noise (σ = the dark frames' std) up to ``n``."""
    from calibration.captures import CaptureWriter, open_captures

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with open_captures(src) as cf:
        frames = cf.read("measured/frames")
        sigma = float(cf.read_static("calibration/dark_frames").std())
        m = cf.n
        with CaptureWriter(dst, device_kind="optics", device_id=cf.device_id + "-large", num_classes=cf.num_classes,
                           frame_unit="feature units", wavelengths_nm=cf.wavelengths_nm, dataset=cf.dataset_name,
                           dataset_split=cf.dataset_split, attrs=cf.extra, compression=1) as wr:
            block = 4096
            for s in range(0, n, block):
                k = min(block, n - s)
                src_idx = np.arange(s, s + k) % m
                f = frames[src_idx] + rng.normal(0, sigma, (k, *frames.shape[1:])).astype(np.float32)
                wr.append({"measured/frames": f, "labels": cf.labels[src_idx], "timestamps": cf.timestamps[src_idx] + s,
                           "measured/exposure_s": cf.exposure_s[src_idx], "measured/gain": cf.gain[src_idx],
                           "inputs/dataset_index": cf.dataset_index[src_idx]})
            wr.set_dark_frames(cf.read_static("calibration/dark_frames"), exposure_s=float(cf.exposure_s[0]), gain=float(cf.gain[0]))
    c, h, w = frames.shape[1:]
    return {"n_captures": n, "float32_gib": n * c * h * w * 4 / 2**30, "float64_gib": n * c * h * w * 8 / 2**30,
            "file_gib": dst.stat().st_size / 2**30, "write_s": time.perf_counter() - t0}


PARTS = ("devices", "time", "memory")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.calibration")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parts", default="devices", help=f"comma-separated, of {', '.join(PARTS)} (default devices)")
    p.add_argument("--large", type=int, default=None, help="captures in the large file (default 160000; quick 4000)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--captures", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--fraction", type=float, default=0.01, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None,
                   help="result file (default results/bench/calibration.json; time/memory: calibration-resources.json)")
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    parts = [q.strip() for q in args.parts.split(",") if q.strip()]
    bad = [q for q in parts if q not in PARTS]
    if bad or not parts:
        p.error(f"--parts: unknown part(s) {bad}; choose from {', '.join(PARTS)}")
    if "devices" in parts and len(parts) > 1 and args.out is not None:
        p.error("--out names one file: run the devices part and the time/memory parts separately")
    from bench import harness

    load0, t_start = harness.loadavg(), time.perf_counter()

    import torch

    torch.set_num_threads(1)
    from calibration.bundle import build_optical_model, save_optical_model
    from neurohw.data import load_mnist5k

    quick = args.quick
    argv_list = argv if argv is not None else sys.argv[1:]
    split = load_mnist5k()
    work = Path(tempfile.mkdtemp(prefix="bench_calibration_"))
    try:
        t = time.perf_counter()
        om = build_optical_model(split.x_train[:1000 if quick else None], split.y_train[:1000 if quick else None],
                                 epochs=1 if quick else 4, design_iterations=30 if quick else 100)
        model_path = save_optical_model(work / "model.safetensors", om)
        from neurohw.train import get_teacher

        teacher = get_teacher("lenet5", epochs=1 if quick else 12, progress=False)
        setup_s = time.perf_counter() - t
        if "devices" in parts:
            from bench.calibration import devices

            t = time.perf_counter()
            figs = devices.run(om, split, teacher, work, quick=quick)
            figs.update({"quick": quick, "setup_s": setup_s, "devices_s": time.perf_counter() - t})
            out = harness.write("calibration", figs, config={"quick": quick, "parts": ["devices"]}, argv=argv_list,
                                load_before=load0, wall_time_s=time.perf_counter() - t_start, out=args.out)
            print(f"figures: {out}")
        rest = [q for q in parts if q != "devices"]
        if rest:
            figs = _resources(om, model_path, split, teacher, work, quick, rest, args.large)
            figs["setup_s"] = setup_s
            out = harness.write("calibration", figs, config={"quick": quick, "parts": rest, "large": figs.get("n_large"),
                                                             "repeats": figs.get("repeats")},
                                argv=argv_list, load_before=load0, wall_time_s=time.perf_counter() - t_start,
                                out=args.out or harness.default_out("calibration-resources"))
            print(f"figures: {out}")
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


def _resources(om, model_path, split, teacher, work, quick, parts, large) -> dict:
    """The time and memory parts (module docstring); returns their figures."""
    import copy
    import math

    import torch

    from bench import harness
    from calibration.captures import open_captures
    from calibration.lab import capture_virtual
    from calibration.loop import CalibrationConfig, calibrate, capture_frames, evaluate_frames, train_backend
    from calibration.split import calibration_split

    n_large = large or (4000 if quick else 160_000)
    n_cap = 300 if quick else len(split.x_test)
    cap = capture_virtual(om, split.x_test[:n_cap], split.y_test[:n_cap], work / "captures.h5", dataset="mnist5k",
                          dataset_split="test", indices=np.arange(n_cap), device_seed=2024,
                          exposure_images=split.x_train[:200], progress=False)
    figures: dict = {"quick": quick}
    rows = []
    if "time" in parts:
        cfg = CalibrationConfig.quick(curve=False) if quick else CalibrationConfig(curve=False)
        sp = calibration_split(open_captures(cap).labels, 0.1, 0)
        last: dict = {}

        def calibration_side():
            last["res"] = calibrate(om, cap, cfg, teacher=teacher, dataset_loader=lambda name: split)

        def inference_side():
            with open_captures(cap) as cf:
                evaluate_frames(om.model.backend, cf, sp.held_out)

        with open_captures(cap) as cf:
            fs, ys = capture_frames(cf, sp.calib), torch.from_numpy(cf.labels[sp.calib])
        steps = min(cfg.finetune_max_steps, max(cfg.finetune_epochs, cfg.finetune_epochs * math.ceil(len(fs) / cfg.batch_size)))

        def paper_ce_side():
            train_backend(copy.deepcopy(om.model.backend), steps=steps, lr=cfg.finetune_lr, batch_size=cfg.batch_size,
                          seed=0, slice_data=(fs, ys))

        repeats = 1 if quick else 3
        timing = harness.interleave({"calibration": calibration_side, "inference": inference_side,
                                     "paper_ce": paper_ce_side}, repeats, warmup=0)
        res = last["res"]
        cal_s, infer_s, ce_s = (timing[k]["wall_s"]["median"] for k in ("calibration", "inference", "paper_ce"))
        rows += [
            ("10 % calibration, MNIST-5k captures", f"{cal_s:.1f} s", "target < 120 s on 2 cores"),
            ("  anchor: held-out inference, streamed", f"{infer_s:.2f} s", f"calibration / anchor = {cal_s / infer_s:.0f}×"),
            ("  anchor: paper CE-only fine-tune alone", f"{ce_s:.2f} s", f"calibration / anchor = {cal_s / ce_s:.1f}×"),
        ]
        figures.update({"timing": timing, "repeats": repeats, "calibration_10pct_s": cal_s, "anchor_inference_s": infer_s,
                        "anchor_paper_ce_s": ce_s, "calibration_timings": res.timings, "accuracies_10pct": res.accuracies,
                        "misfit_10pct": res.misfit["verdict"]})
    if "memory" in parts:
        large_path = work / "large.h5"
        big = _write_large(cap, large_path, n_large)
        naive_small = _run_child("naive", cap)
        scan = _run_child("scan", large_path)
        cal_large = _run_child("calibrate", large_path, model=model_path, fraction=0.01)
        naive_bytes_large = big["float64_gib"] * 2**30
        rows += [
            (f"large file: {n_large} captures", f"{big['file_gib']:.2f} GiB on disk",
             f"{big['float32_gib']:.2f} GiB float32, {big['float64_gib']:.2f} GiB float64"),
            ("  validation scan: peak RSS growth", f"{_grow(scan):.0f} MiB",
             f"{_grow(scan) * 2**20 / naive_bytes_large:.4f} × float64 size (process total {scan['peak_rss_mib']:.0f} MiB); "
             f"{scan['wall_s']:.1f} s"),
            ("  1 % calibration: peak RSS growth", f"{_grow(cal_large):.0f} MiB",
             f"{_grow(cal_large) * 2**20 / naive_bytes_large:.4f} × float64 size (process total "
             f"{cal_large['peak_rss_mib']:.0f} MiB); {cal_large['wall_s']:.1f} s"),
            ("  anchor: naive float64 load, small file", f"{_grow(naive_small):.0f} MiB",
             f"for {naive_small['bytes'] / 2**20:.1f} MiB of frames ({n_cap} captures); scaled to the large file: "
             f"{_grow(naive_small) * n_large / n_cap / 1024:.2f} GiB"),
        ]
        figures.update({"n_large": n_large, "large_file": big, "scan": scan, "calibrate_large": cal_large,
                        "naive_small": naive_small})
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'measure':<{w0}}  {'value':>{w1}}  note")
    print("-" * (w0 + w1 + 40))
    for a, b_, c in rows:
        print(f"{a:<{w0}}  {b_:>{w1}}  {c}")
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
