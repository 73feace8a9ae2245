"""The logic backend's experiments on MNIST-5k: one command, a Markdown table and a JSON file.

Models (each over ``seeds`` seeds): a dense LGN, a small LogicTreeNet with residual
initialisation, the same with Gaussian initialisation, and Wright's ∂B MNIST net. For the
LGNs: accuracy of the soft float model, the hardened float model and the packed netlist,
whether the packed class counts equal the hardened float model's on every test image, and
gate counts (raw and under the documented counting rule, ``logic.netlist``). For the ∂B
net: soft vs hard accuracy and the bit mismatch count (hard-equivalence on real data).

``neurohw logic experiments --seeds 3 --out DIR [--quick]``.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from logic.dbnets import DBMnistNet
from logic.models import dense_lgn, logic_tree_net
from logic.train import evaluate_dbnet, evaluate_logic, fit_dbnet, fit_logic
from neurohw.stats import mean_std

#: Full-mode settings (≈ a few minutes per seed on 2 CPU cores); quick mode shrinks them.
FULL = {
    "n_train": 4000, "n_test": 1000,
    "dense": dict(levels=2, widths=(4000, 4000, 4000), tau=10.0, epochs=8, lr=0.05, batch_size=128),
    "tree": dict(levels=3, k=8, dense=(1000, 500), tau=10.0, epochs=4, lr=0.1, batch_size=128),
    "db": dict(epochs=2, lr=0.05, batch_size=64, tau=20.0, width1=60, group=16, width2=20),
}  # fmt: skip
QUICK = {
    "n_train": 400, "n_test": 200,
    "dense": dict(levels=2, widths=(600, 600, 200), tau=5.0, epochs=2, lr=0.05, batch_size=64),
    "tree": dict(levels=3, k=2, dense=(200, 100), tau=5.0, epochs=1, lr=0.1, batch_size=128),
    "db": dict(epochs=1, lr=0.05, batch_size=64, tau=20.0, width1=20, group=16, width2=10),
}  # fmt: skip

MODELS = ("dense_lgn", "tree_residual", "tree_gaussian", "db_mnist")


def _lgn(name: str, cfg: dict, seed: int):
    if name == "dense_lgn":
        c = cfg["dense"]
        return dense_lgn(levels=c["levels"], widths=c["widths"], tau=c["tau"], seed=seed), c
    c = cfg["tree"]
    init = "residual" if name == "tree_residual" else "gaussian"
    return logic_tree_net(levels=c["levels"], k=c["k"], dense=c["dense"], tau=c["tau"], init=init, seed=seed), c


def run_one(name: str, split, seed: int, cfg: dict, device="cpu", progress: bool = True) -> dict:
    """Train and evaluate one model for one seed; returns the figures."""
    from neurohw.seeding import seed_everything

    seed_everything(seed)
    t0 = time.perf_counter()
    if name == "db_mnist":
        c = cfg["db"]
        model = DBMnistNet(width1=c["width1"], group=c["group"], width2=c["width2"], seed=seed)
        tr = fit_dbnet(model, split.x_train, split.y_train, epochs=c["epochs"], lr=c["lr"], batch_size=c["batch_size"],
                       tau=c["tau"], seed=seed, device=device, progress=progress)
        res = evaluate_dbnet(model, split.x_test, split.y_test, device=device)
    else:
        model, c = _lgn(name, cfg, seed)
        tr = fit_logic(model, split.x_train, split.y_train, epochs=c["epochs"], lr=c["lr"], batch_size=c["batch_size"],
                       seed=seed, device=device, progress=progress)
        res = evaluate_logic(model, split.x_test, split.y_test, device=device)
    res.update(model=name, seed=seed, train_s=round(tr.train_s, 2), wall_s=round(time.perf_counter() - t0, 2),
               final_loss=tr.history[-1]["loss"] if tr.history else None)
    return res


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for name in MODELS:
        rs = [r for r in rows if r["model"] == name]
        if not rs:
            continue
        s = {"model": name, "seeds": [r["seed"] for r in rs]}
        if name == "db_mnist":
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


def markdown_table(summary: list[dict], cfg: dict, quick: bool) -> str:
    pct = lambda ms: f"{100 * ms[0]:.2f} ± {100 * ms[1]:.2f}"  # noqa: E731
    lines = [
        "# Logic backend experiments on MNIST-5k" + (" (quick mode: smoke-test sizes)" if quick else ""),
        "",
        f"Train {cfg['n_train']} / test {cfg['n_test']} images; mean ± std over seeds. Gate counts: raw = every "
        "gate as built (OR-pool gates included); counted = after the documented simplification "
        "(constants, pass-throughs, duplicates and dead gates removed; NOT counted as a gate).",
        "",
        "| model | seeds | float acc % | hard acc % | packed acc % | packed counts = hard | gates counted | gates raw | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        if s["model"] == "db_mnist":
            continue
        lines.append(
            f"| {s['model']} | {len(s['seeds'])} | {pct(s['acc_float'])} | {pct(s['acc_hard'])} | {pct(s['acc_packed'])} | "
            f"{'yes' if s['counts_equal_all'] else 'NO'} | {s['gates'][0]:,.0f} ± {s['gates'][1]:,.0f} | "
            f"{s['gates_raw'][0]:,.0f} | {s['train_s'][0]:.1f} |"
        )
    for s in summary:
        if s["model"] != "db_mnist":
            continue
        lines += [
            "",
            "| ∂B MNIST net | seeds | soft-logit acc % | soft hardened acc % | hard acc % | bit mismatches | soft = hard | 1-bit weights | train s |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| db_mnist | {len(s['seeds'])} | {pct(s['acc_soft_logits'])} | {pct(s['acc_soft_hardened'])} | "
            f"{pct(s['acc_hard'])} | {s['bit_mismatches']} | {'yes' if s['soft_equals_hard_all'] else 'NO'} | "
            f"{s['n_weights']:,} | {s['train_s'][0]:.1f} |",
        ]
    lines.append("")
    return "\n".join(lines)


def run_experiments(out: str | Path, seeds: int = 3, quick: bool = False, models=MODELS, device="cpu",
                    progress: bool = True, threads: int | None = 1) -> dict:
    """Run every model × seed, write ``results.json`` and ``table.md`` into ``out``; returns the JSON dict.

    ``threads``: torch intra-op threads (default 1: the ops are small and a shared machine
    punishes oversubscription; None keeps torch's default).
    """
    if threads:
        torch.set_num_threads(int(threads))
    from neurohw.data import load_mnist5k
    from neurohw.io import atomic_write_json, atomic_write_text, provenance

    cfg = QUICK if quick else FULL
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; known: {list(MODELS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = load_mnist5k().subset(cfg["n_train"], cfg["n_test"])
    rows = []
    result = {"provenance": provenance(seed=list(range(seeds)), config={"quick": quick, **cfg, "models": list(models)})}
    for name in models:
        for seed in range(seeds):
            print(f"[logic experiments] {name} seed {seed} ...", flush=True)
            rows.append(run_one(name, split, seed, cfg, device=device, progress=progress))
            result.update(runs=rows, summary=summarise(rows))
            atomic_write_json(out / "results.json", result)  # partial results survive an interruption
    table = markdown_table(result["summary"], cfg, quick)
    atomic_write_text(out / "table.md", table)
    print(table)
    return result

