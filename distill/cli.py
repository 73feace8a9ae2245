"""``neurohw distill …`` subcommands: ``compare`` (three-arm table and plots) and ``ntk``."""
from __future__ import annotations

import argparse
from pathlib import Path

from neurohw import argtypes as at


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="teacher→student distillation: logit KD and NTK matching")
    dsub = p.add_subparsers(dest="distill_command", metavar="SUBCOMMAND")

    c = dsub.add_parser("compare", help="three arms with equal budgets (CE, CE+KD, CE+NTKD) over seeds: table and plots")
    c.add_argument("--out", type=Path, default=Path("reports/distill/compare"), help="report folder")
    c.add_argument("--students", default="auto",
                   help="comma-separated students (cnn, linear_constrained, optical, bwsnn) or 'auto' "
                        "(optical if the optics backend is present else cnn, plus bwsnn if snn is present)")
    c.add_argument("--arms", type=at.names, default=("ce", "kd", "ntkd"), help="comma-separated arms (default ce,kd,ntkd)")
    c.add_argument("--seeds", type=at.int_list, default=None, help="comma-separated seeds (default 0,1,2)")
    c.add_argument("--epochs", type=at.count, default=None)
    c.add_argument("--batch-size", type=at.count, default=None)
    c.add_argument("--lr", type=at.positive, default=None)
    c.add_argument("--n-train", type=at.count, default=None, help="use the first N training images")
    c.add_argument("--kd-weight", type=at.nonneg, default=None, help="γ of the KD arm")
    c.add_argument("--temperature", type=at.positive, default=None)
    c.add_argument("--ntk-weight", type=at.nonneg, default=None, help="β of the NTKD arm")
    c.add_argument("--ntkd-kd-weight", type=at.nonneg, default=None, help="γ added to the NTKD arm (default 0)")
    c.add_argument("--ntk-loss", choices=["mse", "normalised", "cka"], default=None)
    c.add_argument("--ntk-method", choices=["exact", "ntvp", "sketch"], default=None, help="student kernel estimator")
    c.add_argument("--n-projections", type=at.count, default=None, help="R of the sketch")
    c.add_argument("--debias", action="store_true", help="debiased sketch MSE (two independent halves)")
    c.add_argument("--ntk-batch", type=at.count, default=None)
    c.add_argument("--ntk-anchors", type=at.count, default=None, help="number of fixed NTK batches (teacher kernels cached)")
    c.add_argument("--teacher", type=Path, default=None,
                   help="teacher artifact (.safetensors or a `neurohw train-teacher` folder); default: the cached LeNet-5 (announced on stderr)")
    c.add_argument("--teacher-epochs", type=at.count, default=None, help="epochs of the cached default LeNet-5 teacher (without --teacher)")
    at.add_device(c, "cpu")
    at.add_threads(c, 1)
    c.add_argument("--quick", action="store_true", help="seconds-scale smoke run (tiny data, 1 epoch, 2 seeds)")
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--data", choices=["mnist5k", "fashion-mnist"], default="mnist5k")
    c.add_argument("--result", default=None, help="also write results/RESULT.json (the committed table, with CIs)")
    c.add_argument("--results-dir", type=Path, default=None, help="results folder (default: the repository's results/)")
    c.set_defaults(func=_compare)

    k = dsub.add_parser("ntk", help="time and compare the NTK estimators of the LeNet-5 teacher on a batch")
    k.add_argument("--n", type=at.count, default=16, help="batch size")
    k.add_argument("--n-projections", type=at.count, default=64)
    k.add_argument("--teacher-epochs", type=at.count, default=12)
    at.add_threads(k, 1)
    k.set_defaults(func=_ntk)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def resolve_students(text: str) -> tuple[str, ...]:
    """``auto`` → the optical student if available else ``cnn``, plus ``bwsnn`` if available."""
    if text != "auto":
        return _names(text)
    from distill.students import student_names

    names = student_names()
    chosen = ["optical" if "optical" in names else "cnn"]
    if "bwsnn" in names:
        chosen.append("bwsnn")
    return tuple(chosen)


def _compare(args) -> int:
    from distill.compare import CompareConfig, quick_config, run_comparison

    over = {}
    mapping = {
        "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "n_train": "n_train", "kd_weight": "kd_weight",
        "temperature": "temperature", "ntk_weight": "ntk_weight", "ntkd_kd_weight": "ntkd_kd_weight",
        "ntk_loss": "ntk_loss", "ntk_method": "ntk_method", "n_projections": "n_projections",
        "ntk_batch": "ntk_batch", "ntk_anchors": "ntk_anchors",
    }
    for a, f in mapping.items():
        v = getattr(args, a)
        if v is not None:
            over[f] = v
    if args.debias:
        over["debias"] = True
    over.update(students=resolve_students(args.students), arms=tuple(args.arms), device=args.device,
                threads=args.threads or None)
    if args.seeds is not None:
        over["seeds"] = args.seeds
    if args.quick:
        cfg = quick_config(**over)
    else:
        cfg = CompareConfig(**over)
    from neurohw.train import resolve_teacher

    teacher_epochs = args.teacher_epochs or (3 if args.quick else 12)
    from neurohw.results import command_line

    command = command_line("neurohw distill compare", args, ("data", "students", "arms", "seeds", "epochs", "batch_size", "lr", "n_train", "kd_weight", "temperature", "ntk_weight", "ntkd_kd_weight", "ntk_loss", "ntk_method", "n_projections", "debias", "ntk_batch", "ntk_anchors", "teacher", "teacher_epochs", "quick", "result"))
    teacher = resolve_teacher(args.teacher, dataset=args.data, epochs=teacher_epochs, progress=not args.no_progress,
                              who="neurohw distill compare")
    res = run_comparison(cfg, args.out, teacher=teacher, teacher_epochs=teacher_epochs, progress=not args.no_progress, dataset=args.data,
                         result=args.result, results_dir=args.results_dir, command=command)
    print(res["table_markdown"])
    print(f"written: {args.out}/table.md, results.json, " + ", ".join(res.get("plots", {}).values()))
    return 0


def _ntk(args) -> int:
    import time

    import torch

    from distill.ntk import empirical_ntk
    from neurohw.data import load_mnist5k
    from neurohw.train import get_teacher

    teacher = get_teacher("lenet5", epochs=args.teacher_epochs)
    x = load_mnist5k().x_test[: args.n]
    ref = None
    print(f"LeNet-5 teacher, N={args.n}: method | seconds (after one warm-up call) | relative Frobenius error vs exact")
    for method in ("exact", "ntvp", "sketch"):
        with torch.no_grad():
            empirical_ntk(teacher, x, method, n_projections=args.n_projections, seed=0, chunk_size=16)
            t0 = time.perf_counter()
            k = empirical_ntk(teacher, x, method, n_projections=args.n_projections, seed=0, chunk_size=16)
        dt = time.perf_counter() - t0
        ref = k if ref is None else ref
        print(f"{method:>8} | {dt:7.3f} | {float((k - ref).norm() / ref.norm()):.2e}")
    return 0
