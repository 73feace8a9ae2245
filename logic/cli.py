"""``neurohw logic …``: train a logic-gate net, export it (C / Verilog), run the experiments table."""
from __future__ import annotations

import argparse
from pathlib import Path

from neurohw import argtypes as at


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logic", help="differentiable logic-gate networks: train, export (C/Verilog), experiments")
    lsub = p.add_subparsers(dest="logic_command", metavar="ACTION")

    t = lsub.add_parser("train", help="train a dense LGN or a LogicTreeNet on MNIST-5k, harden and evaluate")
    t.add_argument("--model", choices=["dense", "tree"], default="dense")
    t.add_argument("--init", choices=["gaussian", "residual"], default=None, help="default: gaussian (dense), residual (tree)")
    t.add_argument("--epochs", type=at.count, default=None)
    t.add_argument("--lr", type=at.positive, default=None)
    t.add_argument("--seed", type=at.seed, default=0)
    t.add_argument("--quick", action="store_true", help="small model and data (smoke run)")
    at.add_threads(t, 1)
    t.add_argument("--out", type=Path, required=True, help="folder: model.safetensors (+ .json), netlist.npz, metrics.json")
    t.set_defaults(func=_train)

    e = lsub.add_parser("export", help="export a trained model (or a netlist .npz) as C or Verilog")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="model.safetensors written by `neurohw logic train`")
    src.add_argument("--netlist", type=Path, help="netlist.npz written by `neurohw logic train`")
    e.add_argument("--format", choices=["c", "verilog"], required=True)
    e.add_argument("--out", type=Path, required=True, help="output file (.c / .v)")
    e.add_argument("--name", type=_identifier, default="nh_logic",
                   help="C function prefix / Verilog module name: a C and Verilog identifier, no keyword")
    e.add_argument("--no-simplify", action="store_true", help="export every gate as built (no counting-rule simplification)")
    e.add_argument("--pipeline", type=at.count, default=None, metavar="K",
                   help="Verilog only: registers every K logic levels, pipelined GroupSum tree, clk/rst/valid ports")
    e.set_defaults(func=_export)

    y = lsub.add_parser("synth", help="synthesise a net with yosys (lut6 / ice40): LUTs, flip-flops, logic depth")
    y.add_argument("net", type=Path, help="model.safetensors or netlist.npz written by `neurohw logic train`")
    y.add_argument("--target", choices=["lut6", "ice40"], default="lut6")
    y.add_argument("--timeout", type=at.positive, default=900.0, help="yosys time limit, s")
    y.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    y.add_argument("--pipeline", type=at.count, default=None, metavar="K",
                   help="synthesise the pipelined export (registers every K logic levels)")
    y.set_defaults(func=_synth)

    f = lsub.add_parser("synth-figures", help="yosys figures for every target, with and without pipelining → results/logic-synth.json")
    f.add_argument("net", type=Path, help="model.safetensors or netlist.npz written by `neurohw logic train`")
    f.add_argument("--pipeline", type=_k_list, default=(1,), metavar="K[,K…]",
                   help="pipeline settings to synthesise besides the combinational export (default 1)")
    f.add_argument("--targets", type=_target_list, default=("lut6", "ice40"), metavar="T[,T…]")
    f.add_argument("--timeout", type=at.positive, default=900.0, help="yosys time limit per run, s")
    f.add_argument("--net-command", default=None, help="the command that made NET (recorded in the result)")
    f.add_argument("--results", type=Path, default=None, help="results folder (default: the repository's results/)")
    f.set_defaults(func=_synth_figures)

    v = lsub.add_parser("simulate", help="simulate the Verilog export (Verilator or Icarus) on MNIST-5k test images "
                                         "and compare with the packed evaluator")
    v.add_argument("checkpoint", type=Path, help="model.safetensors written by `neurohw logic train` (gives the encoding)")
    v.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    v.add_argument("--pipeline", type=at.count, default=None, metavar="K", help="simulate the pipelined export")
    v.add_argument("--n", type=at.count, default=None, help="first N test images (default: all 1,000)")
    v.add_argument("--json", type=Path, default=None, help="also write the outcome to this JSON file")
    v.set_defaults(func=_simulate)

    x = lsub.add_parser("experiments", help="dense LGN, LogicTreeNet (residual/Gaussian init) and ∂B net; writes results/logic-<data>.json")
    x.add_argument("--seeds", type=at.count, default=3)
    x.add_argument("--data", choices=["mnist5k", "fashion-mnist"], default="mnist5k")
    x.add_argument("--n-train", type=at.count, default=None, help="train on the first N training images (default all)")
    x.add_argument("--results", type=Path, default=None,
                   help="results folder (default: the repository's results/; --quick: OUT/results)")
    x.add_argument("--out", type=Path, default=Path("reports/logic_experiments"))
    x.add_argument("--quick", action="store_true")
    at.add_threads(x, 1)
    x.add_argument("--models", default=None, help="comma-separated subset of dense_lgn,tree_residual,tree_gaussian,db_mnist,db_mnist_ste,db_mnist_sat,db_mnist_hard,db_mnist_long")
    x.add_argument("--config", type=Path, default=None, metavar="JSON",
                   help="settings over the full-mode defaults: a JSON object of groups (dense, tree, db, db_sat, db_hard, db_long) "
                        "whose keys replace the defaults' (e.g. {\"tree\": {\"epochs\": 2}}); "
                        "recorded in the result file")
    x.add_argument("--result", default=None, metavar="NAME",
                   help="result name (default logic-DATA[-nN]); give a new one with --config, or runs stored under the "
                        "default name are retrained with the new settings and replaced")
    x.set_defaults(func=_experiments)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _k_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated positive pipeline depths K."""
    try:
        ks = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers K separated by ','")
    return ks


def _target_list(text: str) -> tuple[str, ...]:
    from logic.synth import TARGETS

    ts = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in ts if t not in TARGETS]
    if not ts or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: targets are {', '.join(TARGETS)} (comma-separated)")
    return ts


def _identifier(text: str) -> str:
    """argparse type: an export name that is safe to paste into C and Verilog (else exit 2 before any work)."""
    from logic.identifiers import IdentifierError, check_identifier

    try:
        return check_identifier(text, what="name")
    except IdentifierError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _train(args) -> int:
    from logic.experiments import LogicExperimentConfig
    from logic.models import dense_lgn, logic_tree_net, save_model
    from logic.train import evaluate_logic, fit_logic
    from neurohw.data import load_mnist5k
    from neurohw.io import atomic_write_json, provenance
    from neurohw.seeding import seed_everything

    cfg = LogicExperimentConfig.quick() if args.quick else LogicExperimentConfig()
    seed_everything(args.seed)
    split = load_mnist5k().subset(cfg.n_train, cfg.n_test)
    if args.model == "dense":
        c = cfg.dense
        model = dense_lgn(levels=c["levels"], widths=c["widths"], tau=c["tau"], init=args.init or "gaussian", seed=args.seed)
    else:
        c = cfg.tree
        model = logic_tree_net(levels=c["levels"], k=c["k"], dense=c["dense"], tau=c["tau"], init=args.init or "residual",
                               seed=args.seed, residual_logit=c.get("residual_logit", 5.0))
    tr = fit_logic(model, split.x_train, split.y_train, epochs=args.epochs or c["epochs"], lr=args.lr or c["lr"],
                   batch_size=c["batch_size"], schedule=c.get("schedule", "constant"),
                   augment_shift=c.get("augment_shift", 0), seed=args.seed)
    metrics = evaluate_logic(model, split.x_test, split.y_test)
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out / "model.safetensors", extra={"metrics": metrics, "history": tr.history})
    model.to_netlist().save(args.out / "netlist.npz")
    atomic_write_json(args.out / "metrics.json", {"provenance": provenance(args.seed, model.config), "history": tr.history,
                                                  **metrics})
    print(f"float {metrics['acc_float']:.4f}  hard {metrics['acc_hard']:.4f}  packed {metrics['acc_packed']:.4f}  "
          f"counts equal: {metrics['counts_equal']}  gates {metrics['gates']:,} (raw {metrics['gates_raw']:,})")
    print(f"wrote {args.out}/model.safetensors, netlist.npz, metrics.json")
    return 0 if metrics["counts_equal"] else 1


def _export(args) -> int:
    from logic.export import write_c, write_verilog
    from logic.models import load_model
    from logic.netlist import Netlist, simplify

    if args.checkpoint:
        net = load_model(args.checkpoint).to_netlist(simplified=not args.no_simplify)
    else:
        net = Netlist.load(args.netlist)
        net = net if args.no_simplify else simplify(net)
    if args.pipeline is not None and args.format != "verilog":
        import sys

        print("error: --pipeline applies to --format verilog only", file=sys.stderr)
        return 2
    if args.format == "c":
        write_c(net, args.out, name=args.name)
    else:
        write_verilog(net, args.out, name=args.name, pipeline=args.pipeline)
    print(f"wrote {args.out}: {net.gate_count():,} gates, {net.n_inputs} inputs, {net.outputs.size} outputs, "
          f"{net.num_classes} classes")
    if args.pipeline is not None:
        from logic.pipeline import plan_pipeline

        p = plan_pipeline(net, args.pipeline).summary()
        print(f"pipelined every {p['k']} level(s): latency {p['latency']} cycles, {p['flip_flops']:,} flip-flops")
    return 0


def _load_net(path: Path):
    """A simplified netlist from a model checkpoint (.safetensors) or a netlist (.npz); exit-2 errors name the file."""
    from logic.models import load_model
    from logic.netlist import Netlist, simplify

    if not path.is_file():
        return None
    if path.suffix == ".npz":
        return simplify(Netlist.load(path))
    return load_model(path).to_netlist()


def _on_net(args, run) -> int:
    """``run(net)`` on the netlist of ``args.net``: exit 2 when the file is missing, 1 when the
    external tool fails (an :class:`~logic.export.ExportError`)."""
    import sys

    from logic.export import ExportError

    net = _load_net(args.net)
    if net is None:
        print(f"error: {args.net}: no such file", file=sys.stderr)
        return 2
    try:
        return run(net)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _synth(args) -> int:
    from logic.synth import synthesize
    from neurohw.io import atomic_write_json

    def run(net) -> int:
        fig = synthesize(net, args.target, timeout=args.timeout, pipeline=args.pipeline)
        fig.pop("netlist_verilog")
        fig["gates"] = net.gate_count()
        print(f"{args.target}: {fig['luts']:,} LUTs, {fig['flip_flops']:,} flip-flops, logic depth {fig['logic_depth']} cells "
              f"({fig['gates']:,} gates, gate depth {net.depth})" + (f", {fig['carry_cells']:,} SB_CARRY" if args.target == "ice40" else ""))
        if fig["pipeline"] is not None:
            p = fig["pipeline"]
            print(f"pipelined every {p['k']} level(s): latency {p['latency']} cycles, {p['flip_flops']:,} flip-flops inserted "
                  f"(depth = longest path between registers)")
        print(f"max frequency: not estimated — {fig['fmax_note']}")
        if args.json:
            atomic_write_json(args.json, fig)
            print(f"wrote {args.json}")
        return 0

    return _on_net(args, run)


def _synth_figures(args) -> int:
    from logic.synth_figures import RESULT_NAME, synth_table
    from neurohw.results import RunStore, save_result

    def run(net) -> int:
        figs = synth_table(net, args.targets, (None, *args.pipeline), timeout=args.timeout,
                           store=RunStore(RESULT_NAME, args.results))
        figs.pop("wall_time_s")
        wall = sum(r["yosys_wall_s"] for r in figs["runs"])  # runs reused from results/logic-synth/ count their own time
        cmd = f"neurohw logic synth-figures {args.net} --pipeline {','.join(map(str, args.pipeline))} --targets {','.join(args.targets)}"
        if args.net_command:
            cmd = f"{args.net_command} && {cmd}"
        path = save_result(RESULT_NAME, figs, config={"targets": list(args.targets), "pipelines": [None, *args.pipeline],
                                                      "net_command": args.net_command, "net": figs["net"]},
                           command=cmd, wall_time_s=wall, results=args.results)
        print(f"wrote {path}")
        return 0

    return _on_net(args, run)


def _simulate(args) -> int:
    import sys
    import time

    import torch

    from logic.export import ExportError, simulate_verilog
    from logic.models import load_model
    from logic.packed import PackedEvaluator
    from logic.verilator import build_verilator, run_verilator
    from neurohw.data import load_mnist5k
    from neurohw.io import atomic_write_json

    if not args.checkpoint.is_file():
        print(f"error: {args.checkpoint}: no such file", file=sys.stderr)
        return 2
    model = load_model(args.checkpoint).eval()
    net = model.to_netlist()
    x = load_mnist5k().x_test[: args.n]
    bits = model.encode_bits(x)
    ref = PackedEvaluator(net).class_counts(bits)
    t0 = time.perf_counter()
    try:
        if args.simulator == "verilator":
            import tempfile

            with tempfile.TemporaryDirectory() as d:
                exe = build_verilator(net, d, pipeline=args.pipeline)
                t1 = time.perf_counter()
                counts = run_verilator(exe, net, bits)
        else:
            t1 = t0
            counts = simulate_verilog(net, bits, pipeline=args.pipeline)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    t2 = time.perf_counter()
    equal = bool(torch.equal(counts, ref))
    hard = bool(torch.equal(ref, model.hard_counts(x)))
    out = {"simulator": args.simulator, "pipeline": args.pipeline, "images": len(x), "gates": net.gate_count(),
           "counts_equal_packed": equal, "packed_equal_hard_model": hard, "build_s": round(t1 - t0, 1),
           "simulate_s": round(t2 - t1, 1)}
    print(f"{args.simulator}{'' if args.pipeline is None else f' (pipelined every {args.pipeline} levels)'}: "
          f"{len(x):,} MNIST-5k test images, {net.gate_count():,} gates; class counts equal the packed evaluator's on "
          f"every image: {equal} (packed = hardened model: {hard}); build {out['build_s']} s, simulation {out['simulate_s']} s")
    if args.json:
        atomic_write_json(args.json, out)
    return 0 if equal and hard else 1


def _experiment_config(path: Path, quick: bool):
    """The experiments' settings: ``path``'s JSON groups merged key by key over the full-mode (or,
    with ``--quick``, the quick) defaults, checked by :meth:`LogicExperimentConfig.from_dict`."""
    from logic.experiments import LogicExperimentConfig
    from neurohw.errors import UsageError
    from neurohw.io import read_json_object

    where = f"--config {path}"
    if not path.is_file():
        raise UsageError(where, "no such file")
    raw = read_json_object(path, lambda msg: UsageError("--config", msg), "logic experiments config")
    base = (LogicExperimentConfig.quick() if quick else LogicExperimentConfig()).to_dict()
    merged = {k: ({**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v)
              for k, v in raw.items()}
    unknown = sorted(set(raw) - set(base))
    if unknown:
        raise UsageError(where, f"unknown key(s) {unknown}; known: {sorted(base)}")
    return LogicExperimentConfig.from_dict({**base, **merged}, where=where)


def _experiments(args) -> int:
    from logic.experiments import MODELS, experiment_command, run_experiments

    from neurohw.io import check_writable

    if args.results is not None:  # checked before any training (it is first written after the first run)
        check_writable(args.results, "dir", f"--results {args.results}")
    models = tuple(args.models.split(",")) if args.models else MODELS
    config = _experiment_config(args.config, args.quick) if args.config is not None else None
    command = experiment_command(args.seeds, args.data, args.n_train, args.quick, models,
                                 config_file=args.config.as_posix() if args.config else None, name=args.result)
    res = run_experiments(args.out, seeds=args.seeds, quick=args.quick, models=models, threads=args.threads or None,
                          dataset=args.data, n_train=args.n_train, results=args.results, config=config,
                          name=args.result, command=command)
    print(f"wrote {res['result_file']}, {args.out}/table.md and results.json")
    return 0
