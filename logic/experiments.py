"""The logic backend's experiments (MNIST-5k or Fashion-MNIST): one command, a table, committed JSON.

Models (each over ``seeds`` seeds): a dense LGN, a small LogicTreeNet with residual
initialisation, the same with Gaussian initialisation, and Wright's ∂B MNIST net. For the
LGNs: accuracy of the soft float model, the hardened float model and the packed netlist,
whether the packed class counts equal the hardened float model's on every test image, and
gate counts (raw and under the documented counting rule, ``logic.netlist``). For the ∂B
net: soft vs hard accuracy and the bit mismatch count (hard-equivalence on real data).

Every run is evaluated on the validation split (``val_acc_hard``, what any choice between
configurations looks at) and once on the test split, whose per-image correctness is kept so the
table's 95 % CI includes test-sampling error (:mod:`neurohw.stats`). Each finished run is
stored as ``results/logic-<dataset>/<model>-s<seed>.json`` (resumed on a rerun with the same
configuration) and the table as ``results/logic-<dataset>.json`` (:mod:`neurohw.results`).

``neurohw logic experiments --seeds 3 [--data fashion-mnist] [--n-train N] [--quick]``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from logic.dbnets import DBMnistNet
from logic.models import dense_lgn, logic_tree_net
from logic.train import evaluate_dbnet, evaluate_logic, fit_dbnet, fit_logic
from neurohw.results import RunStore, save_result
from neurohw.stats import bootstrap_ci, mean_std, pack_correct, unpack_correct

def _dense_full() -> dict:
    return dict(levels=2, widths=(4000, 4000, 4000), tau=10.0, epochs=8, lr=0.05, batch_size=128)


def _tree_full() -> dict:
    #: chosen on MNIST-5k validation (seed 0; docs/logic.md "LogicTreeNet"): 400 outputs per class at
    #: τ = 10 (:func:`logit_range` 40, as the dense LGN's), batch 32, lr 0.1, cosine, ±1-pixel shifts
    return dict(levels=3, k=8, dense=(4000, 4000), tau=10.0, epochs=8, lr=0.1, batch_size=32, schedule="cosine",
                augment_shift=1)


def _db_full() -> dict:
    return dict(epochs=4, lr=0.05, batch_size=64, tau=20.0, width1=60, group=16, width2=20)


def _db_sat_full() -> dict:
    #: plain ∂B training + per-step cosine learning rate + weight-saturation penalty λ = 1 (fixed before
    #: the validation screen of docs/logic.md "Not done / limits", which found no better switch).
    return dict(_db_full(), schedule="cosine_step", saturate=1.0, weights="soft", noise=1.0, ste=False)


def _db_hard_full() -> dict:
    #: the deployed boolean net in the training forward (every stage and the weights hardened,
    #: straight-through ∂B gradients), weights settled off 1/2; epochs/schedule/lr chosen on the
    #: MNIST-5k validation split (seed 0; docs/logic.md "∂B MNIST net: where the gap is").
    return dict(_db_full(), straight="implies,maj,out", weights="hard", settle=0.01, epochs=16, schedule="cosine_step")


def _db_long_full() -> dict:
    #: the control of ``db_mnist_hard``: the same length, schedule and settle, soft forward.
    return dict(_db_full(), settle=0.01, epochs=16, schedule="cosine_step")


@dataclass
class LogicExperimentConfig:
    """The settings of :func:`run_experiments` (recorded as the result file's ``config``).

    Defaults are full mode (≈ a few minutes per seed on 2 CPU cores); :meth:`quick` shrinks them.
    ``n_train``/``n_test`` None: the whole split (MNIST-5k 3,500 / 1,000; Fashion-MNIST
    54,000 / 10,000). One settings group per model family — model size and
    :func:`~logic.train.fit_logic` / :func:`~logic.train.fit_dbnet` options: ``dense``
    (``dense_lgn``), ``tree`` (``tree_residual``, ``tree_gaussian``), ``db`` (``db_mnist``,
    ``db_mnist_ste``), ``db_sat`` (``db_mnist_sat``), ``db_hard`` (``db_mnist_hard``) and ``db_long`` (``db_mnist_long``). A result
    file written before a group existed reads back with that group's default.
    """

    n_train: int | None = None
    n_test: int | None = None
    dense: dict = field(default_factory=_dense_full)
    tree: dict = field(default_factory=_tree_full)
    db: dict = field(default_factory=_db_full)
    db_sat: dict = field(default_factory=_db_sat_full)
    db_hard: dict = field(default_factory=_db_hard_full)
    db_long: dict = field(default_factory=_db_long_full)

    @classmethod
    def quick(cls, **overrides: Any) -> "LogicExperimentConfig":
        """Smoke-test sizes for tests and ``--quick``: 400 / 200 images, narrow nets, 1–2 epochs."""
        base = dict(n_train=400, n_test=200,
                    dense=dict(levels=2, widths=(600, 600, 200), tau=5.0, epochs=2, lr=0.05, batch_size=64),
                    tree=dict(levels=3, k=2, dense=(200, 100), tau=5.0, epochs=1, lr=0.1, batch_size=128),
                    db=dict(_db_full(), epochs=1, width1=20, width2=10),
                    db_sat=dict(_db_sat_full(), epochs=1, width1=20, width2=10),
                    db_hard=dict(_db_hard_full(), epochs=3, width1=20, width2=10),
                    db_long=dict(_db_long_full(), epochs=3, width1=20, width2=10))
        return cls(**{**base, **overrides})

    def group(self, model: str) -> dict:
        """The settings group of ``model`` (one of :data:`MODELS`)."""
        if model in DB_MODELS:
            v = DB_VARIANTS[model]
            return getattr(self, v) if isinstance(v, str) else self.db
        return self.dense if model == "dense_lgn" else self.tree

    def to_dict(self) -> dict:
        return {"n_train": self.n_train, "n_test": self.n_test,
                **{g: dict(getattr(self, g)) for g in _GROUPS}}

    @classmethod
    def from_dict(cls, d: dict, where: str = "LogicExperimentConfig") -> "LogicExperimentConfig":
        """Build from a JSON dict (e.g. a result file's ``config``, whose other keys — ``quick``,
        ``models``, ``sizes`` — are passed over); each group's keys are those of the full-mode
        group, lists of the full-mode tuples become tuples. Errors name ``where`` and the field."""
        from neurohw import config as C
        from neurohw.errors import UsageError

        d = {k: v for k, v in d.items() if k in _FIELDS}
        C.check_fields(cls, {k: d[k] for k in ("n_train", "n_test") if k in d and d[k] is not None}, where,
                       ranges={"n_train": C.COUNT, "n_test": C.COUNT})
        full = cls()
        for g in _GROUPS:
            if g not in d:
                continue
            if not isinstance(d[g], dict):
                raise UsageError(f"{where}: {g}", f"expected an object, got {d[g]!r:.60}")
            ref = getattr(full, g)
            unknown = sorted(set(d[g]) - set(ref))
            if unknown:
                raise UsageError(f"{where}: {g}", f"unknown setting(s) {unknown}; known: {sorted(ref)}")
            for k, v in d[g].items():
                C.check_value(f"{where}: {g}", k, v, ref[k])
                _check_group_range(f"{where}: {g}", k, v)
            d[g] = {k: tuple(v) if isinstance(ref[k], tuple) else v for k, v in d[g].items()}
        return cls(**d)


#: Ranges of the group settings that have one (lists: every item); the others are type-checked only.
_GROUP_RANGES = {"epochs": "COUNT", "batch_size": "COUNT", "levels": "COUNT", "k": "COUNT", "widths": "COUNT",
                 "dense": "COUNT", "width1": "COUNT", "width2": "COUNT", "group": "COUNT", "lr": "POSITIVE",
                 "tau": "POSITIVE", "augment_shift": "NONNEG", "saturate": "NONNEG", "noise": "NONNEG",
                 "settle": "NONNEG"}


def _check_group_range(where: str, key: str, value) -> None:
    from neurohw import config as C
    from neurohw.errors import UsageError

    if key not in _GROUP_RANGES:
        return
    want, ok = getattr(C, _GROUP_RANGES[key])
    for v in value if isinstance(value, (list, tuple)) else (value,):
        if not ok(v):
            raise UsageError(f"{where}: {key}", f"expected {want}, got {v!r}")


_GROUPS = ("dense", "tree", "db", "db_sat", "db_hard", "db_long")
_FIELDS = ("n_train", "n_test", *_GROUPS)

MODELS = ("dense_lgn", "tree_residual", "tree_gaussian", "db_mnist", "db_mnist_ste", "db_mnist_sat", "db_mnist_hard",
          "db_mnist_long")
#: The ∂B variants: the :func:`~logic.train.fit_dbnet` switches each adds to ``cfg.db``, or the name
#: of its own settings group: trained on soft sums; on hardened counts (straight-through); with
#: the saturating training (``cfg.db_sat``: weight-saturation penalty, learning-rate schedule); on
#: the hard net itself (``cfg.db_hard``: every stage and the weights straight-through hardened); and
#: its control, plain training as long and with the same schedule (``cfg.db_long``).
DB_VARIANTS = {"db_mnist": {}, "db_mnist_ste": {"ste": True}, "db_mnist_sat": "db_sat", "db_mnist_hard": "db_hard",
               "db_mnist_long": "db_long"}
DB_MODELS = tuple(DB_VARIANTS)


def logit_range(c: dict, num_classes: int = 10) -> float:
    """Largest class-score gap the GroupSum head of preset ``c`` can express: outputs per class / τ.

    The scores are class counts / τ, so a class whose outputs are all 1 beats one whose outputs are
    all 0 by at most this much (in logits). With too small a range the cross-entropy cannot get
    confident and training stalls well below what the gates can fit (the tree preset's old
    500 outputs at τ = 10: range 5, train accuracy ≈ 74 %).
    """
    width = (c["widths"] if "widths" in c else c["dense"])[-1]
    return width / num_classes / float(c["tau"])


def _lgn(name: str, cfg: LogicExperimentConfig, seed: int):
    c = cfg.group(name)
    if name == "dense_lgn":
        return dense_lgn(levels=c["levels"], widths=c["widths"], tau=c["tau"], seed=seed), c
    init = "residual" if name == "tree_residual" else "gaussian"
    return logic_tree_net(levels=c["levels"], k=c["k"], dense=c["dense"], tau=c["tau"], init=init, seed=seed,
                          residual_logit=c.get("residual_logit", 5.0)), c


def _db_config(name: str, cfg: LogicExperimentConfig) -> dict:
    """The ∂B variant's settings: its own group (``cfg.db_sat``, ``cfg.db_hard``), else ``cfg.db`` plus its switches."""
    v = DB_VARIANTS[name]
    return dict(cfg.group(name)) if isinstance(v, str) else {**cfg.db, **v}


@torch.no_grad()
def hard_predictions(model, x: torch.Tensor, batch_size: int = 500, device="cpu") -> torch.Tensor:
    """Class predictions (N,) of the hardened net (the deployed one): LGN class counts or ∂B bucket counts."""
    out = []
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size].to(device)
        if isinstance(model, DBMnistNet):
            out.append(model.hard_logits(model.encode(xb)).argmax(-1).cpu())
        else:
            out.append(model.hard_counts(xb).argmax(-1).cpu())
    return torch.cat(out)


def run_one(name: str, split, seed: int, cfg: LogicExperimentConfig, device="cpu", progress: bool = True) -> dict:
    """Train one model for one seed; evaluate on validation and (once) on test; returns the figures.

    ``correct``: the test images the hardened net classifies correctly, packed
    (:func:`neurohw.stats.pack_correct`).
    """
    from neurohw.seeding import seed_everything

    seed_everything(seed)
    t0 = time.perf_counter()
    if name in DB_MODELS:
        c = _db_config(name, cfg)
        model = DBMnistNet(width1=c["width1"], group=c["group"], width2=c["width2"], seed=seed)
        fit_kw = {k: v for k, v in c.items() if k not in ("width1", "group", "width2")}
        tr = fit_dbnet(model, split.x_train, split.y_train, seed=seed, device=device, progress=progress, **fit_kw)
        res = evaluate_dbnet(model, split.x_test, split.y_test, device=device)
    else:
        model, c = _lgn(name, cfg, seed)
        tr = fit_logic(model, split.x_train, split.y_train, epochs=c["epochs"], lr=c["lr"], batch_size=c["batch_size"],
                       schedule=c.get("schedule", "constant"), augment_shift=c.get("augment_shift", 0), seed=seed,
                       device=device, progress=progress)
        res = evaluate_logic(model, split.x_test, split.y_test, device=device)
    val_pred = hard_predictions(model, split.x_val, device=device)
    test_correct = (hard_predictions(model, split.x_test, device=device) == split.y_test).numpy()
    if abs(float(test_correct.mean()) - res["acc_hard"]) > 1e-6:  # the evaluator averages in float32
        raise RuntimeError(f"{name}: hard predictions disagree with the evaluator ({test_correct.mean()} vs {res['acc_hard']})")
    res.pop("gates_by_kind", None)
    res.update(model=name, seed=seed, train_s=round(tr.train_s, 2), wall_s=round(time.perf_counter() - t0, 2),
               final_loss=tr.history[-1]["train_loss"] if tr.history else None,
               val_acc_hard=float((val_pred == split.y_val).float().mean()),
               n_test=len(test_correct), correct=pack_correct(test_correct))
    return res


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for name in MODELS:
        rs = [r for r in rows if r["model"] == name]
        if not rs:
            continue
        s = {"model": name, "seeds": [r["seed"] for r in rs], "val_acc_hard": mean_std([r.get("val_acc_hard") for r in rs])}
        if all("correct" in r for r in rs):
            s["acc_hard_ci95"] = list(bootstrap_ci(np.stack([unpack_correct(r["correct"], r["n_test"]) for r in rs])))
        if name in DB_MODELS:
            for k in ("acc_soft_logits", "acc_soft_hardened", "acc_hard"):
                s[k] = mean_std([r[k] for r in rs])
            s["bit_mismatches"] = int(sum(r["bit_mismatches"] for r in rs))
            s["soft_equals_hard_all"] = all(r["soft_equals_hard"] for r in rs)
            s["n_weights"] = rs[0]["n_weights"]
        else:
            for k in ("acc_float", "acc_hard", "acc_packed", "gates", "gates_raw"):
                s[k] = mean_std([r[k] for r in rs])
            s["counts_equal_all"] = all(r["counts_equal"] for r in rs)
        s["train_s"] = mean_std([r["train_s"] for r in rs])
        out.append(s)
    return out


def _stat(ms, ci=None, scale=100.0, digits=2) -> dict:
    return {"mean": ms[0], "std": ms[1], **({"ci95": ci} if ci else {}), "scale": scale, "digits": digits}


def table_figures(summary: list[dict], cfg: LogicExperimentConfig, split_sizes: dict, dataset: str, quick: bool) -> dict:
    """The table (``figures`` of the result file): one row per model, test accuracy with its 95 % CI."""
    rows = []
    for s in summary:
        db = s["model"] in DB_MODELS
        rows.append({
            "model": s["model"],
            "seeds": len(s["seeds"]),
            "val hard %": _stat(s["val_acc_hard"]),
            "test float (∂B: soft-logit) %": _stat(s["acc_soft_logits"] if db else s["acc_float"]),
            "test hard % [95 % CI]": _stat(s["acc_hard"], s.get("acc_hard_ci95")),
            "deployed = trained": s["soft_equals_hard_all"] if db else s["counts_equal_all"],
            "gates counted": None if db else _stat(s["gates"], scale=1.0, digits=0),
            "gates raw (∂B: 1-bit weights)": s["n_weights"] if db else int(round(s["gates_raw"][0])),
            "train s": round(s["train_s"][0], 1),
        })
    return {
        "caption": (f"Logic nets on {dataset}{' (quick mode: smoke-test sizes)' if quick else ''}: train "
                    f"{split_sizes['train']:,} / validation {split_sizes['val']:,} / test {split_sizes['test']:,} "
                    "images; mean ± std over seeds (ddof 1) and the 95 % CI of the hard accuracy (seeds and test "
                    "images resampled). Deployed = trained: packed netlist's class counts equal the hardened "
                    "model's on every test image (LGN), or harden(soft bits) = hard bits everywhere (∂B). "
                    "Gates counted after the documented simplification; raw = as built."),
        "columns": list(rows[0]),
        "rows": rows,
        "summary": summary,
    }


def experiment_command(seeds, dataset: str, n_train: int | None, quick: bool, models, config_file: str | None = None,
                       name: str | None = None) -> str:
    """The ``neurohw logic experiments`` line that reproduces a run (recorded in the result file)."""
    n_seeds = seeds if isinstance(seeds, int) else len(list(seeds))
    return (f"neurohw logic experiments --seeds {n_seeds} --data {dataset}"
            + (f" --n-train {n_train}" if n_train else "") + (" --quick" if quick else "")
            + (f" --models {','.join(models)}" if tuple(models) != MODELS else "")
            + (f" --config {config_file}" if config_file else "") + (f" --result {name}" if name else ""))


def run_experiments(out: str | Path | None = None, seeds: int | list[int] = 3, quick: bool = False, models=MODELS, device="cpu",
                    progress: bool = True, threads: int | None = 1, dataset: str = "mnist5k",
                    n_train: int | None = None, results: str | Path | None = None, name: str | None = None,
                    command: str | None = None, config: LogicExperimentConfig | None = None) -> dict:
    """Run every model × seed; write ``results/<name>.json`` (+ ``results.json``/``table.md`` into ``out``).

    ``dataset``: ``mnist5k`` or ``fashion-mnist``; ``n_train``: train on the first N images
    (validation and test stay whole). ``results``: the results folder (default the
    repository's ``results/``; quick mode defaults to ``out/results``). ``name``: the result
    name (default ``logic-<dataset>[-n<N>]``, ``-quick`` appended in quick mode). Finished runs
    are reused from ``results/<name>/``. ``threads``: torch intra-op threads (default 1).
    ``seeds``: a count (seeds 0..N−1) or a list of seeds (e.g. ``[2]`` to run one seed in its
    own process; a later call with the whole count reuses the stored runs). ``config``: the
    settings (default :class:`LogicExperimentConfig`, or its :meth:`~LogicExperimentConfig.quick`
    preset with ``quick``; ``n_train`` replaces its ``n_train``). Returns the result dict.
    """
    seed_list = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("run_experiments: seeds is empty")
    if threads:
        torch.set_num_threads(int(threads))
    from neurohw.data import load_dataset
    from neurohw.io import atomic_write_json, atomic_write_text, provenance
    from neurohw.results import load_result, render_table

    cfg = config or (LogicExperimentConfig.quick() if quick else LogicExperimentConfig())
    if n_train:
        cfg = replace(cfg, n_train=int(n_train))
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; known: {list(MODELS)}")
    name_given = name is not None
    name = name or f"logic-{dataset}" + (f"-n{n_train}" if n_train else "") + ("-quick" if quick else "")
    if results is None and quick:
        results = Path(out or ".") / "results"
    store = RunStore(name, results)
    split = load_dataset(dataset).subset(cfg.n_train, cfg.n_test)
    sizes = {"train": len(split.x_train), "val": len(split.x_val), "test": len(split.x_test)}
    rows = []
    t_start = time.perf_counter()
    for m in models:
        for seed in seed_list:
            key = f"{m}-s{seed}"
            rcfg = {"dataset": dataset, "model": m, "seed": seed, "sizes": sizes, "model_config": cfg.group(m)}
            rec = store.get(key, rcfg)
            if rec is None:
                print(f"[logic experiments] {dataset} {m} seed {seed} ...", flush=True)
                rec = run_one(m, split, seed, cfg, device=device, progress=progress)
                store.put(key, rec, rcfg)
            else:
                print(f"[logic experiments] {dataset} {m} seed {seed}: reusing {store.path(key).name}", flush=True)
            rows.append(rec)
            print(f"[logic experiments] {m} s{seed}: val hard {100 * rec['val_acc_hard']:.2f} %, test hard "
                  f"{100 * rec['acc_hard']:.2f} % ({rec['train_s']:.0f} s train)", flush=True)
    summary = summarise(rows)
    figures = table_figures(summary, cfg, sizes, dataset, quick)
    command = command or experiment_command(seeds, dataset, n_train, quick, models,
                                            name=name if name_given else None)
    path = save_result(name, figures, config={"quick": quick, **cfg.to_dict(), "models": list(models), "sizes": sizes},
                       seeds=seed_list, per_seed={r["model"] + f"-s{r['seed']}": {
                           k: r.get(k) for k in ("acc_hard", "val_acc_hard", "acc_float", "acc_soft_logits", "gates")}
                           for r in rows},
                       command=command, wall_time_s=time.perf_counter() - t_start, results=results)
    table = render_table(load_result(path))
    result = {"provenance": provenance(seed=seed_list, config={"quick": quick, **cfg.to_dict(), "models": list(models)}),
              "runs": [{k: v for k, v in r.items() if k != "correct"} for r in rows], "summary": summary,
              "result_file": str(path)}
    if out is not None:
        out = Path(out)
        atomic_write_json(out / "results.json", result)
        atomic_write_text(out / "table.md", table)
    print(table)
    return result
