"""The NTKD map: CE / KD / NTKD for one student over settings around a base configuration.

Each :class:`Setting` changes the base :class:`~distill.compare.CompareConfig` along one axis
(student capacity: kernels, back-end width; the NTK loss ``D``; the student's kernel
estimator) and runs the arms whose loss that change affects. An arm a setting does not run
is *borrowed* from the base setting: the NTK loss and estimator do not enter the CE and KD
losses, and the arms of one seed share initial weights and minibatches, so the base's CE and
KD runs are the paired partners of such a setting's NTKD runs.

Every (setting, arm, seed) run is stored as it ends (:class:`neurohw.results.RunStore`,
``results/<name>/<setting>-<arm>-s<seed>.json``, with its configuration), so an interrupted
map resumes where it stopped and a rerun with the same configuration only re-tabulates.
The table (:func:`map_figures`) has one row per setting: each arm's test accuracy (mean ± std
over seeds, 95 % CI with seeds and test images resampled), the paired differences
NTKD − KD and NTKD − CE with their 95 % CIs, the NTKD student's CKA to the teacher, and a
verdict: NTKD "beats" an arm when the paired CI lies above 0, "loses" when below, "ties"
otherwise; "separate" says whether NTKD's own CI lies above both other arms' CIs (no overlap).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np

from distill.compare import ARMS, ArmContext, CompareConfig, RunResult
from neurohw.stats import bootstrap_ci, mean_std, paired_difference, unpack_correct

BASE = "base"


@dataclass(frozen=True)
class Setting:
    """One row of the map: ``overrides`` of the base configuration and the ``arms`` it runs."""

    key: str                              #: short name (file names: letters, digits, '-', '_', '.')
    axis: str                             #: "base", "capacity", "NTK loss", "estimator", ...
    label: str                            #: what the row shows, e.g. "kernels 2"
    overrides: dict = field(default_factory=dict)
    arms: tuple[str, ...] = ARMS          #: the rest are borrowed from the base setting

    def config(self, base: CompareConfig) -> CompareConfig:
        """The base configuration with this setting's overrides (unknown fields: ``ValueError``)."""
        bad = sorted(set(self.overrides) - set(base.__dataclass_fields__) | {"students", "seeds", "arms"} & set(self.overrides))
        if bad:
            raise ValueError(f"setting {self.key!r}: cannot override {bad}")
        return replace(base, **self.overrides, arms=tuple(self.arms))


#: β for the raw (published) MSE that puts β·MSE near 1 at initialisation: measured on Fashion-MNIST
#: (LeNet-5 teacher kernel ‖Θ_T‖_F ≈ 7.9e5 on 32 images, optical student ≈ 4.5e3; MSE ≈ 6e8).
MSE_SCALED_BETA = 1e-9

#: The default map, in the order it runs (one axis at a time from the base first, so a run cut
#: short still answers the main questions; then combinations around the smallest students).
DEFAULT_SETTINGS: tuple[Setting, ...] = (
    Setting(BASE, "base", "base configuration"),
    Setting("k2", "capacity", "kernels 2", {"kernels": 2}),
    Setting("k4", "capacity", "kernels 4", {"kernels": 4}),
    Setting("mse", "NTK loss", "D = raw MSE, β = 1 (as published)", {"ntk_loss": "mse"}, ("ntkd",)),
    Setting("mse-scaled", "NTK loss", f"D = raw MSE, β = {MSE_SCALED_BETA:g} (β·D ≈ 1 at init)",
            {"ntk_loss": "mse", "ntk_weight": MSE_SCALED_BETA}, ("ntkd",)),
    Setting("normalised", "NTK loss", "D = normalised distance, β = 1", {"ntk_loss": "normalised"}, ("ntkd",)),
    Setting("r32", "estimator", "sketch R = 32", {"n_projections": 32}, ("ntkd",)),
    Setting("h16", "capacity", "back-end width 16", {"hidden": 16}),
    Setting("h128", "capacity", "back-end width 128", {"hidden": 128}),
    Setting("mse-scaled-debiased", "estimator", f"debiased sketch, D = raw MSE, β = {MSE_SCALED_BETA:g}",
            {"ntk_loss": "mse", "ntk_weight": MSE_SCALED_BETA, "debias": True}, ("ntkd",)),
    # Around the smallest students (added after the first pass showed NTKD ahead of CE at 2 kernels).
    Setting("k1", "capacity", "kernels 1", {"kernels": 1}),
    Setting("k2-h16", "capacity", "kernels 2, back-end width 16", {"kernels": 2, "hidden": 16}),
    Setting("k2-n2700", "capacity × data", "kernels 2, 5 % of train (2,700 images)", {"kernels": 2, "n_train": 2700}),
    Setting("k2-n54000", "capacity × data", "kernels 2, 100 % of train (54,000 images)", {"kernels": 2, "n_train": None}),
)


def select_settings(keys: Iterable[str] | None, settings: Sequence[Setting] = DEFAULT_SETTINGS) -> tuple[Setting, ...]:
    """The settings named in ``keys`` (all when None), in map order; the base is always included."""
    by_key = {s.key: s for s in settings}
    if keys is None:
        return tuple(settings)
    keys = list(keys)
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise ValueError(f"unknown map setting(s) {unknown}; known: {list(by_key)}")
    want = {BASE, *keys}
    return tuple(s for s in settings if s.key in want)


def run_config(cfg: CompareConfig, student: str, arm: str, seed: int, dataset: str, teacher_accuracy: float) -> dict:
    """What identifies one stored run: the fields its arm's loss depends on, the data and the teacher."""
    d = asdict(cfg)
    for k in ("students", "arms", "seeds", "student_overrides", "threads", "device"):
        d.pop(k)
    if arm != "ntkd":  # the NTK loss does not enter CE and KD (so the base's runs serve every NTK setting)
        for k in ("ntk_weight", "ntkd_kd_weight", "ntk_loss", "ntk_method", "n_projections", "debias", "ntk_batch",
                  "ntk_anchors", "teacher_method"):
            d.pop(k)
    if arm == "ce":
        for k in ("kd_weight", "temperature"):
            d.pop(k)
    return {**d, "student": student, "arm": arm, "seed": seed, "dataset": dataset,
            "teacher_accuracy": round(float(teacher_accuracy), 6)}


def _record(r: RunResult) -> dict:
    last = r.history[-1]
    return {"test_accuracy": r.test_accuracy, "val_accuracy": last["val_accuracy"], "kernel_cka": last["kernel_cka"],
            "kernel_distance": last["kernel_distance"], "wall_s": round(r.wall_s, 2), "steps": r.steps,
            "n_test": r.n_test, "correct": r.test_correct,
            "history": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()} for h in r.history]}


def run_map(
    base_cfg: CompareConfig,
    settings: Sequence[Setting],
    *,
    store,
    teacher,
    split,
    student: str = "optical",
    dataset: str = "fashion-mnist",
    progress: bool = True,
) -> dict[str, dict[str, list[dict]]]:
    """Run (or load from ``store``) every (setting, arm, seed); return ``{setting: {arm: [record per seed]}}``.

    ``base_cfg``: the base configuration (its ``seeds``; ``students``/``arms`` are ignored);
    ``store``: a :class:`neurohw.results.RunStore`; ``teacher``: the trained teacher; ``split``:
    the full ``DatasetSplit`` (subset by ``n_train``/``n_test`` here). Borrowed arms come from
    the base setting, which must be in ``settings``.
    """
    import torch

    from distill.losses import TeacherKernelCache
    from neurohw.train import accuracy

    if BASE not in [s.key for s in settings]:
        raise ValueError(f"the map needs the {BASE!r} setting (borrowed arms come from it)")
    prev = torch.get_num_threads()
    if base_cfg.threads:
        torch.set_num_threads(base_cfg.threads)
    try:
        dev = torch.device(base_cfg.device)
        teacher = teacher.to(dev).eval()
        test = split.subset(base_cfg.n_train, base_cfg.n_test)
        teacher_acc = accuracy(teacher, test.x_test.to(dev), test.y_test.to(dev))
        cache = TeacherKernelCache(teacher, method=base_cfg.teacher_method, chunk_size=16)
        out: dict[str, dict[str, list[dict]]] = {}
        todo = [(s, seed, arm) for s in settings for seed in base_cfg.seeds for arm in s.arms]
        done = 0
        for s in settings:
            cfg = s.config(base_cfg)
            ctx = None
            for seed in cfg.seeds:
                for arm in s.arms:
                    key = f"{s.key}-{arm}-s{seed}"
                    rcfg = run_config(cfg, student, arm, seed, dataset, teacher_acc)
                    rec = store.get(key, rcfg)
                    if rec is None:
                        ctx = ctx or ArmContext.build(cfg, split, cache, progress)
                        t0 = time.perf_counter()
                        rec = _record(ctx.train(student, arm, seed, teacher, cfg, progress))
                        store.put(key, rec, rcfg)
                        status = f"{100 * rec['test_accuracy']:.2f} % ({time.perf_counter() - t0:.0f} s)"
                    else:
                        rec = {k: v for k, v in rec.items() if k != "config"}
                        status = f"{100 * rec['test_accuracy']:.2f} % (stored)"
                    done += 1
                    if progress:
                        print(f"[distill map] {done}/{len(todo)} {s.key} {arm} seed {seed}: {status}", flush=True)
                    out.setdefault(s.key, {}).setdefault(arm, []).append(rec)
        for s in settings:  # borrowed arms
            for arm in ARMS:
                if arm not in s.arms and arm in out[BASE]:
                    out[s.key][arm] = out[BASE][arm]
        return out
    finally:
        torch.set_num_threads(prev)


def _acc_cell(recs: list[dict]) -> dict:
    acc = [r["test_accuracy"] for r in recs]
    m, sd = mean_std(acc)
    c = np.stack([unpack_correct(r["correct"], r["n_test"]) for r in recs])
    return {"mean": m, "std": sd, "ci95": list(bootstrap_ci(c)), "scale": 100}


def _diff(a: list[dict], b: list[dict]) -> dict:
    ca = np.stack([unpack_correct(r["correct"], r["n_test"]) for r in a])
    cb = np.stack([unpack_correct(r["correct"], r["n_test"]) for r in b])
    return paired_difference(ca, cb)


def _word(d: dict) -> str:
    lo, hi = d["ci95"]
    return "beats" if lo > 0 else ("loses to" if hi < 0 else "ties")


def base_label(cfg: CompareConfig) -> str:
    """The base row's name: the settings the other rows change."""
    cap = ", ".join(f"{k} {v}" for k, v in cfg.capacity().items()) or "default capacity (optical: 8 kernels, width 48)"
    return f"base: {cap}, D = {cfg.ntk_loss}, {cfg.ntk_method} R = {cfg.n_projections}, β = {cfg.ntk_weight:g}"


def map_rows(settings: Sequence[Setting], runs: dict[str, dict[str, list[dict]]], cfg: CompareConfig | None = None) -> list[dict]:
    """One table row per setting (see the module docstring); settings without all three arms are left out.
    ``cfg``: the base configuration (names the base row)."""
    rows = []
    for s in settings:
        by_arm = runs.get(s.key, {})
        if not all(a in by_arm for a in ARMS):
            continue
        seeds = [len(by_arm[a]) for a in ARMS]
        cells = {a: _acc_cell(by_arm[a]) for a in ARMS}
        d_kd, d_ce = _diff(by_arm["ntkd"], by_arm["kd"]), _diff(by_arm["ntkd"], by_arm["ce"])
        sep = cells["ntkd"]["ci95"][0] > max(cells["ce"]["ci95"][1], cells["kd"]["ci95"][1])
        cka, cka_sd = mean_std([r["kernel_cka"] for r in by_arm["ntkd"]])
        cka_ce, cka_ce_sd = mean_std([r["kernel_cka"] for r in by_arm["ce"]])
        borrowed = [a for a in ARMS if a not in s.arms]
        rows.append({
            "axis": s.axis, "setting": (base_label(cfg) if s.key == BASE and cfg is not None else s.label) + (f" ({'/'.join(x.upper() for x in borrowed)} from base)" if borrowed else ""),
            "seeds": min(seeds),
            "CE %": cells["ce"], "KD %": cells["kd"], "NTKD %": cells["ntkd"],
            "NTKD − KD": {k: d_kd[k] for k in ("mean", "std", "ci95")},
            "NTKD − CE": {k: d_ce[k] for k in ("mean", "std", "ci95")},
            "CKA to teacher (CE → NTKD)": f"{cka_ce:.3f} → {cka:.3f}",
            "verdict": f"{_word(d_kd)} KD, {_word(d_ce)} CE" + ("; CIs separate" if sep else ""),
            "_beats_both": d_kd["ci95"][0] > 0 and d_ce["ci95"][0] > 0,
            "_separate": bool(sep),
        })
    return rows


COLUMNS = ["axis", "setting", "seeds", "CE %", "KD %", "NTKD %", "NTKD − KD", "NTKD − CE", "CKA to teacher (CE → NTKD)", "verdict"]


def summary_sentence(rows: list[dict]) -> str:
    """The map's answer in one sentence: where (if anywhere) NTKD beats both KD and CE."""
    wins = [r["setting"] for r in rows if r["_beats_both"]]
    sep = [r["setting"] for r in rows if r["_separate"]]
    beats_kd = sum(r["NTKD − KD"]["ci95"][0] > 0 for r in rows)
    loses_ce = [r["setting"] for r in rows if r["NTKD − CE"]["ci95"][1] < 0]
    if wins:
        head = f"NTKD beats both KD and CE (paired 95 % CIs above 0) in: {'; '.join(wins)}"
        head += f"; with non-overlapping per-arm CIs in: {'; '.join(sep) if sep else 'none'}."
    else:
        head = f"NTKD beats both KD and CE (paired 95 % CIs above 0) in none of the {len(rows)} settings."
    tail = f" It beats KD in {beats_kd} of {len(rows)}"
    tail += f"; it is below CE in {len(loses_ce)} ({'; '.join(loses_ce)})." if loses_ce else "; it is never below CE."
    return head + tail


def map_figures(settings: Sequence[Setting], runs: dict, *, dataset: str, cfg: CompareConfig, teacher_accuracy: float,
                n_train: int) -> dict[str, Any]:
    """The map as a results table (``figures`` of ``results/<name>.json``)."""
    rows = map_rows(settings, runs, cfg)
    if not rows:
        raise ValueError("the map has no complete setting yet (every row needs CE, KD and NTKD)")
    caption = (f"NTKD map on {dataset} ({n_train} training images), optical student; teacher LeNet-5 "
               f"{100 * teacher_accuracy:.2f} % test. Base: {cfg.epochs} epochs, batch {cfg.batch_size}, Adam lr "
               f"{cfg.lr:g} (cosine); KD γ={cfg.kd_weight:g}, τ={cfg.temperature:g}; NTKD β={cfg.ntk_weight:g}, "
               f"D={cfg.ntk_loss}, {cfg.ntk_method} R={cfg.n_projections}, NTK batch {cfg.ntk_batch}; each row changes "
               "what it names. Test accuracy mean ± std over seeds (ddof 1) [95 % CI, seeds and test images resampled]; "
               "differences in points, paired by seed [paired 95 % CI]. " + summary_sentence(rows))
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    return {"caption": caption, "columns": COLUMNS, "rows": public, "sentence": summary_sentence(rows),
            "beats_both": [r["setting"] for r in rows if r["_beats_both"]]}
