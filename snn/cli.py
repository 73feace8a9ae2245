"""``neurohw snn``: train, export and the experiment table.

* ``neurohw snn train --config cfg.json --out DIR [--set key=value ...] [--quick]``
* ``neurohw snn export --checkpoint DIR/model.safetensors --to loihi|nir --out PATH``
* ``neurohw snn experiments --seeds 3 --out DIR [--quick]``

A config file is JSON: any :class:`snn.model.BWSNNConfig` field, plus optional
``n_train``/``n_test`` (MNIST-5k subset sizes) and ``teacher_epochs``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurohw import argtypes as at


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("snn", help="binary-weight spiking networks: train, export, experiments")
    ssub = p.add_subparsers(dest="snn_command", metavar="SNN_COMMAND")

    t = ssub.add_parser("train", help="train a BWSNN on MNIST-5k from a JSON config; evaluate in training and deploy mode")
    t.add_argument("--config", type=Path, default=None, help="JSON file with BWSNNConfig fields (+ n_train, n_test, teacher_epochs)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field (JSON value), e.g. --set epochs=2 --set multi_shortcut=true")
    t.add_argument("--out", type=Path, required=True, help="folder for model.safetensors, model.json, metrics.json")
    t.add_argument("--quick", action="store_true", help="1,000/300 images and 1 epoch")
    t.add_argument("--deploy-backend", choices=["loihi", "integer"], default="loihi")
    at.add_threads(t)
    t.add_argument("--teacher", type=Path, default=None,
                   help="KD teacher: a teacher artifact (.safetensors or a `neurohw train-teacher` folder); "
                        "default: the cached LeNet-5 (announced on stderr)")
    t.set_defaults(func=_train)

    e = ssub.add_parser("export", help="export a trained BWSNN: netx HDF5 (Loihi/Lava) or NIR")
    e.add_argument("--checkpoint", type=Path, required=True, help="model.safetensors written by 'neurohw snn train'")
    e.add_argument("--to", choices=["loihi", "nir"], required=True)
    e.add_argument("--out", type=Path, required=True, help="output file (.h5 for loihi, .nir for nir)")
    e.set_defaults(func=_export)

    x = ssub.add_parser("experiments", help="the ablation table (float SNN, BWSNN, +shortcuts, +KD, SEI-BWSNN) over seeds")
    x.add_argument("--seeds", type=at.count, default=3)
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--quick", action="store_true", help="small MLP, 1 epoch, 1,000/300 images")
    x.add_argument("--data", choices=["mnist5k", "fashion-mnist"], default="mnist5k")
    x.add_argument("--n-train", type=at.count, default=None, help="first N training images (default all)")
    x.add_argument("--teacher-epochs", type=at.count, default=None, help="teacher epochs (default 12; quick 2)")
    x.add_argument("--teacher", default="lenet5", choices=["lenet5", "resnet8"],
                   help="KD teacher, trained on the train split and cached (default lenet5)")
    x.add_argument("--result", default=None, help="also write results/RESULT.json (the committed table, with CIs)")
    x.add_argument("--results-dir", type=Path, default=None, help="results folder (default: the repository's results/)")
    x.add_argument("--variants", default=None, help="comma-separated subset of variants")
    x.add_argument("--config", type=Path, default=None, help="JSON base config (BWSNNConfig fields) instead of the default")
    x.add_argument("--deploy-backend", choices=["loihi", "integer"], default="loihi")
    at.add_threads(x, help="torch CPU threads (1 is fastest on a busy 2-core machine; default: torch's choice)")
    x.set_defaults(func=_experiments)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _parse_config(path: Path | None, overrides: list[str], quick: bool):
    from neurohw.errors import UsageError
    from snn.model import BWSNNConfig, check_net_size

    raw: dict = {}
    if path is not None:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(str(path), "config file does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(str(path), f"not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise UsageError(str(path), "the config must be a JSON object")
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set {item!r}", "expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            raw[k] = json.loads(v)
        except json.JSONDecodeError:
            raw[k] = v
    where = str(path or "--set")
    extra = {k: raw.pop(k) for k in ("n_train", "n_test", "teacher_epochs") if k in raw}
    for k, v in extra.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"{where}: {k}", f"must be an integer >= 1, got {v!r}")
    if quick:
        extra.setdefault("n_train", 1000)
        extra.setdefault("n_test", 300)
        raw.setdefault("epochs", 1)
        raw.setdefault("arch", "mlp")
        raw.setdefault("channels", [64])
        extra.setdefault("teacher_epochs", 2)
    cfg = BWSNNConfig.from_dict(raw, where=where)
    check_net_size(cfg, (1, 28, 28), where)
    return cfg, extra


def _train(args) -> int:
    from neurohw.data import load_mnist5k
    from neurohw.io import atomic_write_json, provenance
    from snn.experiments import evaluate_both, save_model
    from snn.train import fit_snn

    cfg, extra = _parse_config(args.config, args.overrides, args.quick)
    split = load_mnist5k().subset(extra.get("n_train"), extra.get("n_test"))
    teacher = None
    if cfg.kd:
        from neurohw.train import resolve_teacher

        teacher = resolve_teacher(args.teacher, epochs=extra.get("teacher_epochs", 12), who="neurohw snn train")
    elif args.teacher is not None:
        print("neurohw snn train: --teacher is ignored without kd=true (--set kd=true)", file=sys.stderr)
    res = fit_snn(cfg, split.x_train, split.y_train, teacher=teacher)
    metrics = evaluate_both(res.model, split.x_test, split.y_test, backend=args.deploy_backend)
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(args.out / "model.safetensors", res.model, extra={"history": res.history, **metrics})
    atomic_write_json(args.out / "metrics.json", {"provenance": provenance(seed=cfg.seed, config={**cfg.to_dict(), **extra}),
                                                  "history": res.history, **metrics})
    print(f"train-mode accuracy {100 * metrics['train_mode_accuracy']:.2f} %, deploy-mode accuracy "
          f"{100 * metrics['deploy_mode_accuracy']:.2f} % (agreement {100 * metrics['prediction_agreement']:.2f} %), "
          f"{metrics['spikes_per_inference']:.0f} spikes/inference → {args.out}")
    return 0


def _export(args) -> int:
    from snn.experiments import load_model
    from snn.export import export_model

    model = load_model(args.checkpoint)
    path = export_model(model, args.to, args.out)
    print(f"wrote {path}")
    return 0


def _experiments(args) -> int:
    from neurohw.io import check_writable
    from snn.experiments import run_experiments

    check_writable(args.out, "dir", f"--out {args.out}")  # before any training
    if args.results_dir is not None:
        check_writable(args.results_dir, "dir", f"--results-dir {args.results_dir}")
    base = None
    if args.config is not None:
        base, _ = _parse_config(args.config, [], False)
    variants = args.variants.split(",") if args.variants else None
    from neurohw.results import command_line

    command = command_line("neurohw snn experiments", args, ("seeds", "data", "n_train", "teacher", "teacher_epochs", "variants", "config", "deploy_backend", "quick", "result"))
    run_experiments(args.out, seeds=args.seeds, quick=args.quick, variants=variants, base=base, backend=args.deploy_backend,
                    dataset=args.data, n_train=args.n_train, teacher_epochs=args.teacher_epochs, result=args.result,
                    results_dir=args.results_dir, command=command, teacher_name=args.teacher)
    return 0
