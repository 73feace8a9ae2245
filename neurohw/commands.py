"""Hub subcommands: ``neurohw demo``, ``train-teacher``, ``notebooks``, ``results``."""
from __future__ import annotations

import argparse
from pathlib import Path

from neurohw import argtypes as at


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on built-in data and write a report folder")
    p.add_argument("--out", type=Path, default=Path("reports/demo"), help="report folder (default reports/demo)")
    p.add_argument("--quick", action="store_true", help="few epochs/steps: a smoke run in about a minute")
    p.add_argument("--seed", type=at.seed, default=0)
    p.add_argument("--stages", default=None, help="comma-separated subset of stages to run (default: all available)")
    p.set_defaults(func=_demo)

    t = sub.add_parser("train-teacher", help="train a teacher (lenet5, alexnet_small, resnet8) with checkpoint/resume")
    t.add_argument("model", choices=["lenet5", "alexnet_small", "resnet8"])
    t.add_argument("--data", default="mnist5k", help="dataset name (mnist5k, digits8x8, or a path to .npz/.h5)")
    t.add_argument("--epochs", type=at.count, default=10)
    t.add_argument("--batch-size", type=at.count, default=64)
    t.add_argument("--lr", type=at.positive, default=1e-3)
    t.add_argument("--seed", type=at.seed, default=0)
    t.add_argument("--out", type=Path, required=True, help="folder for checkpoints and metrics")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    t.add_argument("--limit", type=at.count, default=None, help="train on the first N training examples only (quick runs)")
    t.add_argument("--augment-shift", type=at.nonneg_int, default=0, help="random translation of up to N pixels")
    t.set_defaults(func=_train_teacher)

    n = sub.add_parser("notebooks", help="execute the workflow notebooks (needs nbclient)")
    n.add_argument("names", nargs="*", help="notebook names (default: all in notebooks/)")
    n.add_argument("--out", type=Path, default=None, help="folder for each notebook's outputs and executed copy (default: a temporary folder)")
    n.add_argument("--quick", action="store_true", help="small data and few steps (NEUROHW_NOTEBOOK_QUICK=1)")
    n.set_defaults(func=_notebooks)

    r = sub.add_parser("results", help="committed results (results/*.json) and the tables generated from them")
    rs = r.add_subparsers(dest="results_command", metavar="ACTION")
    rt = rs.add_parser("table", help="regenerate the tables between <!-- results:NAME --> markers in README.md/docs")
    rt.add_argument("files", nargs="*", type=Path, help="Markdown files (default: README.md and docs/*.md)")
    rt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from its JSON")
    rt.add_argument("--results", type=Path, default=None, help="results folder (default: results/ or $NEUROHW_RESULTS)")
    rt.set_defaults(func=_results_table)
    rw = rs.add_parser("show", help="print one result's table")
    rw.add_argument("name")
    rw.add_argument("--results", type=Path, default=None)
    rw.set_defaults(func=_results_show)
    r.set_defaults(func=lambda args: (r.print_help(), 2)[1])


def _demo(args) -> int:
    from neurohw.demo import run_demo

    stages = args.stages.split(",") if args.stages else None
    run_demo(out=args.out, quick=args.quick, seed=args.seed, stages=stages)
    return 0


def _train_teacher(args) -> int:
    from neurohw.train import train_teacher_cli

    return train_teacher_cli(args)


def _results_table(args) -> int:
    from neurohw.results import cli_table

    return cli_table(args)


def _results_show(args) -> int:
    from neurohw.results import cli_show

    return cli_show(args)


def _notebooks(args) -> int:
    from neurohw.notebook_runner import run_notebooks

    return run_notebooks(args.names, args.out, args.quick)
