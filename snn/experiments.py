"""The BWSNN ablation on MNIST-5k: one command, several seeds, mean ± std.

Variants (all share the architecture and training budget of the base config):

=================  ========  ==============  ======
variant            weights   multi-shortcut  KD
=================  ========  ==============  ======
float_snn          float     no              no
bwsnn              binary    no              no
bwsnn_ms           binary    yes             no
bwsnn_kd           binary    no              yes
sei_bwsnn          binary    yes             yes
=================  ========  ==============  ======

For every (variant, seed): train-mode accuracy (float forward, eval mode), deploy-mode
accuracy (the converted integer network in :func:`neurohw.loihi.simulate`), the fraction of
test predictions on which the two agree, and spikes per inference (all spiking layers,
deploy mode). Every finished run is saved (checkpoint + JSON) and skipped on a rerun, so an
interrupted table resumes where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from neurohw.stats import bootstrap_ci, mean_std, paired_difference, pack_correct, unpack_correct
from neurohw.io import atomic_write_json, atomic_write_text, load_into, provenance, save_checkpoint
from snn.deploy import deploy_predict
from snn.model import BWSNN, BWSNNConfig, check_net_size
from snn.train import fit_snn, predict_snn

VARIANTS: dict[str, dict] = {
    "float_snn": dict(binary=False, multi_shortcut=False, kd=False),
    "bwsnn": dict(binary=True, multi_shortcut=False, kd=False),
    "bwsnn_ms": dict(binary=True, multi_shortcut=True, kd=False),
    "bwsnn_kd": dict(binary=True, multi_shortcut=False, kd=True),
    "sei_bwsnn": dict(binary=True, multi_shortcut=True, kd=True),
}

#: The table's base configuration (MLP: fits the 15-minute, 2-core budget; see docs/snn.md).
DEFAULT_BASE = BWSNNConfig(arch="mlp", channels=(256,), steps=4, epochs=15, lr=2e-3)
QUICK_BASE = BWSNNConfig.quick()


def save_model(path: Path, model: BWSNN, extra: dict | None = None) -> Path:
    """Checkpoint a BWSNN (safetensors + JSON sidecar holding its config and input shape)."""
    cfg = model.cfg.to_dict()
    return save_checkpoint(path, model, config={"bwsnn": cfg, "in_shape": list(model.in_shape)}, seed=model.cfg.seed,
                           extra=extra or {})


def load_model(path: str | Path) -> BWSNN:
    """Rebuild a BWSNN from a checkpoint written by :func:`save_model`."""
    from neurohw.io import CheckpointError, load_checkpoint

    _, meta = load_checkpoint(path)
    conf = meta.get("config") or {}
    if "bwsnn" not in conf:
        raise CheckpointError(f"{path}: sidecar has no 'config.bwsnn' (not a BWSNN checkpoint)")
    if not isinstance(conf["bwsnn"], dict):
        raise CheckpointError(f"{path}: sidecar config.bwsnn must be a JSON object, got {conf['bwsnn']!r:.40}")
    in_shape = conf.get("in_shape", [1, 28, 28])
    if (not isinstance(in_shape, list) or len(in_shape) != 3
            or not all(type(v) is int and 1 <= v <= 4096 for v in in_shape)):
        raise CheckpointError(f"{path}: sidecar config.in_shape must be [C, H, W] of integers in [1, 4096], got {in_shape!r:.40}")
    cfg = BWSNNConfig.from_dict(conf["bwsnn"], where=f"{path}: config.bwsnn")
    check_net_size(cfg, tuple(in_shape), f"{path}: config.bwsnn")
    try:
        model = BWSNN(cfg, in_shape=tuple(in_shape))
    except (ValueError, IndexError, TypeError) as exc:  # e.g. a conv net with one channel count
        raise CheckpointError(f"{path}: sidecar config.bwsnn does not describe a BWSNN ({type(exc).__name__}: {exc})") from exc
    load_into(model, path)
    return model.eval()


def evaluate_both(model: BWSNN, x: torch.Tensor, y: torch.Tensor, backend: str = "loihi", correct: bool = False) -> dict:
    """Train-mode and deploy-mode accuracy, their agreement, spikes per inference (both modes).

    ``correct``: also return ``deploy_correct``, the per-image correctness of the deployed
    network packed with :func:`neurohw.stats.pack_correct` (for bootstrap CIs).
    """
    pred_f, _, spk_f = predict_snn(model, x)
    dep = deploy_predict(model, x, backend=backend)
    y = y.cpu()
    extra = {"deploy_correct": pack_correct((dep.predictions == y).numpy())} if correct else {}
    return {**extra,
        "train_mode_accuracy": float((pred_f == y).float().mean()),
        "deploy_mode_accuracy": float((dep.predictions == y).float().mean()),
        "prediction_agreement": float((dep.predictions == pred_f).float().mean()),
        "spikes_per_inference": float(dep.spikes_per_inference.float().mean()),
        "spikes_per_inference_train_mode": float(spk_f.sum(1).float().mean()),
    }


def format_table(summary: dict, teacher: dict | None) -> str:
    """Markdown table: accuracy in % (mean ± std over seeds), spikes per inference."""
    lines = ["| variant | train-mode acc. (%) | deploy-mode acc. (%) | agreement (%) | spikes / inference | seeds |",
             "|---|---|---|---|---|---|"]
    if teacher:
        lines.append(f"| teacher ({teacher['name']}, ANN) | {100 * teacher['accuracy']:.2f} | – | – | – | {teacher['seed']} |")
    for name, s in summary.items():
        f = lambda k, scale=100.0, d=2: f"{scale * s[k]['mean']:.{d}f} ± {scale * s[k]['std']:.{d}f}"
        lines.append(f"| {name} | {f('train_mode_accuracy')} | {f('deploy_mode_accuracy')} | {f('prediction_agreement')} | "
                     f"{f('spikes_per_inference', 1.0, 0)} | {s['n']} |")
    return "\n".join(lines) + "\n"


def run_experiments(out: str | Path, seeds: int | list[int] = 3, quick: bool = False, variants: list[str] | None = None,
                    base: BWSNNConfig | None = None, n_train: int | None = None, n_test: int | None = None,
                    teacher_epochs: int | None = None, backend: str = "loihi", progress: bool = True,
                    split=None, teacher=None, dataset: str = "mnist5k", result: str | None = None,
                    results_dir: str | Path | None = None, command: str | None = None,
                    teacher_name: str = "lenet5") -> dict:
    """Train every variant for every seed and write ``results.json`` + ``table.md`` into ``out``.

    ``dataset``: ``mnist5k`` or ``fashion-mnist`` (``n_train``: its first N training images;
    validation and test stay whole unless ``n_test``). Validation accuracy is recorded per
    epoch; the test split is read once per run (deploy-mode per-image correctness kept for the
    CIs). ``quick``: a small MLP, 1 epoch, 1,000/300 images (for tests). ``teacher``: a trained
    ANN (default: ``neurohw.train.get_teacher(teacher_name, dataset, teacher_epochs)``, cached;
    ``teacher_name`` is one of :data:`neurohw.models.TEACHERS`). Without augmentation its logits
    on the training images are computed once (:class:`snn.teacher_cache.CachedTeacher`). ``result``: also
    write ``results/<result>.json`` (:mod:`neurohw.results`). Returns the results dict.
    """
    from neurohw.data import load_dataset
    from neurohw.train import evaluate, get_teacher

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    base = base or (QUICK_BASE if quick else DEFAULT_BASE)
    variants = variants or list(VARIANTS)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variant(s) {sorted(unknown)}; known: {list(VARIANTS)}")
    split = split or load_dataset(dataset)
    if quick:
        n_train, n_test = n_train or 1000, n_test or 300
    split = split.subset(n_train, n_test)
    t_epochs = teacher_epochs or (2 if quick else 12)
    if teacher is None and any(VARIANTS[v]["kd"] for v in variants):
        teacher = get_teacher(teacher_name, dataset=dataset, epochs=t_epochs, seed=0, progress=progress)
    teacher_info = None
    if teacher is not None:
        acc = evaluate(teacher, split.test())["accuracy"]
        val = evaluate(teacher, split.val())["accuracy"] if len(split.x_val) else None
        teacher_info = {"name": teacher_name, "accuracy": float(acc), "val_accuracy": val, "seed": 0, "epochs": t_epochs,
                        "dataset": dataset}
        if base.augment_shift == 0:
            from snn.teacher_cache import CachedTeacher

            teacher = CachedTeacher(teacher, split.x_train)
    runs: dict[str, list[dict]] = {}
    for seed in seed_list:  # seed-major: an interrupted table still has every variant
        for v in variants:
            cfg = replace(base, seed=seed, **VARIANTS[v])
            tag = f"{v}-s{seed}"
            rec_path = out / "runs" / f"{tag}.json"
            if rec_path.exists():
                try:
                    rec = json.loads(rec_path.read_text(encoding="utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    rec = None  # a damaged run record is simply redone
                if isinstance(rec, dict) and rec.get("config") == cfg.to_dict() and rec.get("dataset", "mnist5k") == dataset:
                    runs.setdefault(v, []).append(rec)
                    continue
            t0 = time.perf_counter()
            res = fit_snn(cfg, split.x_train, split.y_train, teacher=teacher if cfg.kd else None, progress=progress,
                          x_val=split.x_val, y_val=split.y_val)
            train_s = time.perf_counter() - t0
            m = evaluate_both(res.model, split.x_test, split.y_test, backend=backend, correct=True)
            rec = {"variant": v, "seed": seed, "dataset": dataset, "config": cfg.to_dict(), "history": res.history,
                   "train_s": train_s, "n_test": len(split.x_test), **m}
            save_model(out / "runs" / f"{tag}.safetensors", res.model,
                       extra={k: rec[k] for k in m if k != "deploy_correct"})
            atomic_write_json(rec_path, rec)
            runs.setdefault(v, []).append(rec)
            if progress:
                print(f"[snn] {tag}: train-mode {100 * m['train_mode_accuracy']:.2f} %, deploy-mode "
                      f"{100 * m['deploy_mode_accuracy']:.2f} %, agreement {100 * m['prediction_agreement']:.2f} %, "
                      f"{m['spikes_per_inference']:.0f} spikes/inference ({train_s:.0f} s)", flush=True)
    keys = ("train_mode_accuracy", "deploy_mode_accuracy", "prediction_agreement", "spikes_per_inference")
    summary = {}
    for v, recs in runs.items():
        summary[v] = {"n": len(recs)}
        for k in keys:
            mu, sd = mean_std([r[k] for r in recs])
            summary[v][k] = {"mean": mu, "std": sd, "values": [r[k] for r in recs]}
        if all("deploy_correct" in r for r in recs):
            summary[v]["deploy_mode_accuracy"]["ci95"] = list(bootstrap_ci(_correct(recs)))
        vals = [r["history"][-1].get("val_accuracy") for r in recs if r.get("history")]
        summary[v]["val_accuracy"] = dict(zip(("mean", "std"), mean_std(vals)))
    gains = {f"{a} − {b}": _paired(runs, a, b) for a, b in (("bwsnn_kd", "bwsnn"), ("sei_bwsnn", "bwsnn_ms"),
                                                          ("bwsnn_ms", "bwsnn"), ("sei_bwsnn", "float_snn"),
                                                          ("float_snn", "bwsnn"))
             if a in runs and b in runs}
    checks = _targets(summary, teacher_info, gains)
    results = {"provenance": provenance(seed=seed_list[0], config={"base": base.to_dict(), "seeds": seed_list, "quick": quick,
                                                                   "variants": variants, "n_train": len(split.x_train),
                                                                   "n_test": len(split.x_test), "backend": backend}),
               "teacher": teacher_info, "summary": summary, "targets": checks, "paired_gains": gains}
    atomic_write_json(out / "results.json", results)
    if result:
        from neurohw.results import save_result

        sizes = {"train": len(split.x_train), "val": len(split.x_val), "test": len(split.x_test)}
        results["result_file"] = str(save_result(
            result, result_figures(summary, gains, teacher_info, base, dataset, sizes),
            config={"base": base.to_dict(), "variants": variants, "dataset": dataset, "sizes": sizes, "backend": backend,
                    "teacher": teacher_info},
            seeds=seed_list, per_seed={f"{r['variant']}-s{r['seed']}": {k: r.get(k) for k in (
                "train_mode_accuracy", "deploy_mode_accuracy", "deploy_correct", "train_s")} for rs in runs.values() for r in rs},
            command=command or f"neurohw snn experiments --data {dataset} --result {result}",
            wall_time_s=sum(r["train_s"] for rs in runs.values() for r in rs), results=results_dir))
    table = format_table(summary, teacher_info)
    atomic_write_text(out / "table.md", table + "\n" + "\n".join(f"- {k}: {v}" for k, v in checks.items()) + "\n")
    if progress:
        print(table)
        for k, v in checks.items():
            print(f"  {k}: {v}")
    return results


def _correct(recs: list[dict]):
    import numpy as np

    recs = sorted(recs, key=lambda r: r["seed"])
    return np.stack([unpack_correct(r["deploy_correct"], r["n_test"]) for r in recs])


def _paired(runs: dict, a: str, b: str) -> dict | None:
    """Deploy-mode accuracy(a) − accuracy(b) in points, seeds paired, with the paired 95 % CI."""
    ra, rb = runs[a], runs[b]
    if not all("deploy_correct" in r for r in ra + rb) or sorted(r["seed"] for r in ra) != sorted(r["seed"] for r in rb):
        return None
    return paired_difference(_correct(ra), _correct(rb))


def result_figures(summary: dict, gains: dict, teacher: dict | None, base: BWSNNConfig, dataset: str, sizes: dict) -> dict:
    """The ablation as a results table (deploy mode = what runs on the chip; CIs from per-image correctness)."""
    pct = lambda d: {"mean": d["mean"], "std": d["std"], **({"ci95": d["ci95"]} if d.get("ci95") else {}), "scale": 100}  # noqa: E731
    rows = []
    if teacher:
        val = teacher.get("val_accuracy")
        rows.append({"variant": f"teacher ({teacher['name']}, ANN, {teacher['epochs']} epochs)", "seeds": 1,
                     "val acc %": None if val is None else {"mean": val, "std": float("nan"), "scale": 100},
                     "train-mode acc %": None,
                     "deploy-mode acc % ± std [95 % CI]": {"mean": teacher["accuracy"], "std": float("nan"), "scale": 100},
                     "agreement %": None, "spikes / inference": None})
    for v, s in summary.items():
        rows.append({"variant": v, "seeds": s["n"], "val acc %": pct(s["val_accuracy"]),
                     "train-mode acc %": pct(s["train_mode_accuracy"]),
                     "deploy-mode acc % ± std [95 % CI]": pct(s["deploy_mode_accuracy"]),
                     "agreement %": pct(s["prediction_agreement"]),
                     "spikes / inference": {**s["spikes_per_inference"], "digits": 0}})
    for name, g in gains.items():
        if g:
            rows.append({"variant": f"{name} (paired, points)", "seeds": summary[name.split(" − ")[0]]["n"],
                         "val acc %": None, "train-mode acc %": None,
                         "deploy-mode acc % ± std [95 % CI]": {k: g[k] for k in ("mean", "std", "ci95")},
                         "agreement %": "CI excludes 0" if g["excludes_0"] else "CI includes 0", "spikes / inference": None})
    kd = (f" KD: λ = {base.kd_lambda}, τ = {base.kd_tau}, teacher {teacher['name']} ({teacher['epochs']} epochs, "
          "train split, test accuracy shown)." if teacher else "")
    return {"caption": (f"SEI-BWSNN ablation on {dataset}: {base.arch} {tuple(base.channels)}, T = {base.steps}, "
                        f"{base.epochs} epochs (batch {base.batch_size}, Adam lr {base.lr:g}, cosine) on "
                        f"{sizes['train']:,} training images (validation {sizes['val']:,}, test "
                        f"{sizes['test']:,}); deploy mode = the converted integer network on the Loihi simulator. Mean ± "
                        "std over seeds (ddof 1), 95 % CI with seeds and test images resampled." + kd),
            "columns": list(rows[-1]), "rows": rows}


#: ALBSNN's published Fashion-MNIST accuracy at T = 1 (binary-weight SNN), the issue's anchor.
ALBSNN_FASHION_MNIST = 0.9339


def _targets(summary: dict, teacher: dict | None, gains: dict | None = None) -> dict:
    """The issue's targets, each as measured → met or not (never asserted)."""
    out = {}
    mean = lambda v, k: summary[v][k]["mean"] if v in summary else None
    sei = mean("sei_bwsnn", "deploy_mode_accuracy")
    if teacher and sei is not None:
        gap = 100 * (teacher["accuracy"] - sei)
        out["sei_within_1.5_of_teacher (deploy mode)"] = f"gap {gap:.2f} points → {'met' if gap <= 1.5 else 'not met'}"
    if sei is not None:
        out["sei_deployed_at_least_albsnn_93.39"] = (f"{100 * sei:.2f} % → "
                                                      f"{'met' if sei >= ALBSNN_FASHION_MNIST else 'not met'}")
    for name in ("bwsnn_kd − bwsnn", "sei_bwsnn − bwsnn_ms"):
        g = (gains or {}).get(name)
        if g:
            out[f"kd_gain_ci_above_0 ({name})"] = (f"{g['mean']:+.2f} [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}] points → "
                                                   f"{'met' if g['ci95'][0] > 0 else 'not met'}")
    if "bwsnn_kd" in summary and "bwsnn" in summary:
        d = 100 * (mean("bwsnn_kd", "train_mode_accuracy") - mean("bwsnn", "train_mode_accuracy"))
        out["kd_above_no_kd"] = f"{d:+.2f} points → {'met' if d > 0 else 'not met'}"
    if "sei_bwsnn" in summary and "bwsnn_ms" in summary:
        d = 100 * (mean("sei_bwsnn", "train_mode_accuracy") - mean("bwsnn_ms", "train_mode_accuracy"))
        out["kd_above_no_kd_with_shortcuts"] = f"{d:+.2f} points → {'met' if d > 0 else 'not met'}"
    gap = lambda v: abs(summary[v]["train_mode_accuracy"]["mean"] - summary[v]["deploy_mode_accuracy"]["mean"])
    binary = [v for v in summary if VARIANTS[v]["binary"]]
    if binary:
        worst = max(gap(v) for v in binary)
        out["deploy_within_0.3_of_train (binary variants, trained on the grid)"] = (
            f"largest gap {100 * worst:.2f} points → {'met' if 100 * worst <= 0.3 else 'not met'}")
    if "float_snn" in summary:
        out["float_snn_quantisation_gap (float weights rounded to 8 bits at deployment)"] = f"{100 * gap('float_snn'):.2f} points"
    return out
