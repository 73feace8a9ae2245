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
    c.add_argument("--kernels", type=at.count, default=None, help="student capacity: front-end kernels (optical default 8)")
    c.add_argument("--hidden", type=at.count, default=None, help="student capacity: back-end hidden width (optical default 48)")
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

    m = dsub.add_parser("map", help="the NTKD map: CE / KD / NTKD over capacity, NTK loss and estimator settings "
                                    "(resumable; writes results/NAME.json and results/NAME/ per run)")
    m.add_argument("--data", choices=["mnist5k", "fashion-mnist"], default="fashion-mnist")
    m.add_argument("--student", default="optical", help="the student (default optical)")
    m.add_argument("--settings", type=at.names, default=None,
                   help="comma-separated setting keys (default: all; 'base' is always run): "
                        "base,k2,k4,mse,mse-scaled,normalised,r32,h16,h128,mse-scaled-debiased,k1,k2-h16,k2-n2700,k2-n54000")
    m.add_argument("--seeds", type=at.int_list, default=None, help="comma-separated seeds (default 0,1,2)")
    m.add_argument("--epochs", type=at.count, default=None, help="epochs of every run (default 6)")
    m.add_argument("--n-train", type=at.count, default=None, help="first N training images (default: the whole split)")
    m.add_argument("--n-test", type=at.count, default=None, help="first N test images (default: all)")
    m.add_argument("--teacher", type=Path, default=None, help="teacher artifact (default: the cached LeNet-5)")
    m.add_argument("--teacher-epochs", type=at.count, default=None, help="epochs of the cached default teacher (default 12)")
    m.add_argument("--result", default=None, help="result name (default distill-map-DATA-nN)")
    m.add_argument("--results-dir", type=Path, default=None, help="results folder (default: the repository's results/)")
    m.add_argument("--quick", action="store_true", help="seconds-scale smoke run (the quick comparison preset)")
    at.add_threads(m, 1)
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(func=_map)

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
        "ntk_batch": "ntk_batch", "ntk_anchors": "ntk_anchors", "kernels": "kernels", "hidden": "hidden",
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

    command = command_line("neurohw distill compare", args, ("data", "students", "arms", "seeds", "epochs", "batch_size", "lr", "n_train", "kd_weight", "temperature", "ntk_weight", "ntkd_kd_weight", "ntk_loss", "ntk_method", "n_projections", "debias", "kernels", "hidden", "ntk_batch", "ntk_anchors", "teacher", "teacher_epochs", "quick", "result"))
    teacher = resolve_teacher(args.teacher, dataset=args.data, epochs=teacher_epochs, progress=not args.no_progress,
                              who="neurohw distill compare")
    res = run_comparison(cfg, args.out, teacher=teacher, teacher_epochs=teacher_epochs, progress=not args.no_progress, dataset=args.data,
                         result=args.result, results_dir=args.results_dir, command=command)
    print(res["table_markdown"])
    print(f"written: {args.out}/table.md, results.json, " + ", ".join(res.get("plots", {}).values()))
    return 0


def _map(args) -> int:
    import time

    from distill.compare import CompareConfig
    from distill.ntkd_map import map_figures, run_map, select_settings
    from neurohw.data import load_dataset
    from neurohw.results import RunStore, command_line, save_result
    from neurohw.train import resolve_teacher

    over = {k: getattr(args, k) for k in ("epochs", "n_train", "n_test") if getattr(args, k) is not None}
    if args.seeds is not None:
        over["seeds"] = tuple(args.seeds)
    over.update(students=(args.student,), threads=args.threads or None)
    cfg = CompareConfig.quick(**over) if args.quick else CompareConfig(**over)
    settings = select_settings(args.settings)
    split = load_dataset(args.data)
    n_train = len(split.subset(cfg.n_train, cfg.n_test).x_train)
    name = args.result or f"distill-map-{args.data}-n{n_train}" + ("-quick" if args.quick else "")
    teacher_epochs = args.teacher_epochs or (3 if args.quick else 12)
    teacher = resolve_teacher(args.teacher, dataset=args.data, epochs=teacher_epochs, progress=not args.no_progress,
                              who="neurohw distill map")
    store = RunStore(name, args.results_dir)
    t0 = time.perf_counter()
    runs = run_map(cfg, settings, store=store, teacher=teacher, split=split, student=args.student, dataset=args.data,
                   progress=not args.no_progress)
    from neurohw.train import accuracy

    test = split.subset(cfg.n_train, cfg.n_test)
    teacher_acc = accuracy(teacher.eval(), test.x_test, test.y_test)
    figs = map_figures(settings, runs, dataset=args.data, cfg=cfg, teacher_accuracy=teacher_acc, n_train=n_train)
    per_seed = {f"{k}/{arm}": [r["test_accuracy"] for r in recs] for k, by in runs.items() for arm, recs in by.items()}
    run_wall = sum(r["wall_s"] for by in runs.values() for recs in by.values() for r in recs)
    command = command_line("neurohw distill map", args, ("data", "student", "settings", "seeds", "epochs", "n_train",
                                                          "n_test", "teacher", "teacher_epochs", "quick", "result"))
    from dataclasses import asdict

    path = save_result(name, figs, config={**asdict(cfg), "dataset": args.data, "student": args.student,
                                            "settings": [asdict(s) for s in settings], "teacher_epochs": teacher_epochs,
                                            "teacher_accuracy": teacher_acc, "runs_folder": f"results/{name}/"},
                       seeds=list(cfg.seeds), per_seed=per_seed, command=command, wall_time_s=run_wall,
                       results=args.results_dir)
    from neurohw.results import load_result, render_table

    print(render_table(load_result(path)), end="")
    print(f"written: {path} (runs in {store.folder}; this call {time.perf_counter() - t0:.0f} s; the file's wall time "
          "is the sum of the runs' own)")
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
