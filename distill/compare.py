"""Three-arm comparison with equal budgets: CE only, CE + KD, CE + NTK matching (NTKD).

For each student and seed, every arm starts from the same initial weights (seeded), sees the
same minibatches in the same order (a permutation seeded by (seed, epoch)), for the same
number of epochs and optimiser steps with the same Adam learning rate and cosine schedule.
Only the loss differs:

* ``ce``:   ``α·CE``
* ``kd``:   ``α·CE + γ·τ²·KL(p_T ‖ p_S)``
* ``ntkd``: ``α·CE + β·D(Θ_T, Θ_S)`` (+ ``γ_ntkd·KD``, 0 by default)

NTK batches: the student's kernel is matched on one of ``ntk_anchors`` fixed batches of
``ntk_batch`` training images (cycled step by step), so the teacher's kernels are computed
once — exactly, without gradient — and cached for every arm, seed and epoch. The student's
kernel uses ``ntk_method`` (the unbiased sketch by default).

Tracked over training: validation accuracy per epoch, and the kernel distance between student
and teacher on a fixed probe batch of validation images (exact kernels, normalised distance and
CKA). The test split is read once, after the last epoch; its per-image correctness gives the
table's 95 % CIs (seeds and test images resampled) and the paired CIs of the differences between
arms (:mod:`neurohw.stats`). With ``result=NAME`` the table is also written as
``results/NAME.json`` (:mod:`neurohw.results`).
Outputs (``out``): ``results.json`` (provenance, config, every run), ``table.md``,
``accuracy.png``, ``kernels.png``, ``kernel_distance.png``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from distill.losses import NTKDLossConfig, TeacherKernelCache, cka, kd_loss, ntk_normalised_distance, student_kernel_loss
from distill.ntk import empirical_ntk
from distill.students import build_student
from neurohw.stats import bootstrap_ci, mean_std, paired_difference, pack_correct, unpack_correct
from neurohw.train import accuracy, fit  # accuracy re-exported (one implementation in the hub)

ARMS = ("ce", "kd", "ntkd")


@dataclass
class CompareConfig:
    """Everything that defines a comparison run (recorded in ``results.json``)."""

    students: tuple[str, ...] = ("cnn",)
    arms: tuple[str, ...] = ARMS
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    n_train: int | None = None          #: first n training images (None: the whole train split)
    n_test: int | None = None
    alpha: float = 1.0                  #: CE weight (all arms)
    kd_weight: float = 1.0              #: γ in the KD arm
    temperature: float = 4.0
    ntk_weight: float = 1.0             #: β in the NTKD arm
    ntkd_kd_weight: float = 0.0         #: γ in the NTKD arm (0: the paper's α·CE + β·NTK)
    ntk_loss: str = "cka"               #: "mse" (paper), "normalised", "cka"
    ntk_method: str = "sketch"
    n_projections: int = 8
    debias: bool = False
    ntk_batch: int = 32
    ntk_anchors: int = 16
    teacher_method: str = "exact"
    probe_size: int = 40
    kernels: int | None = None          #: student capacity: front-end kernels (None: the student's default, 8 for optical)
    hidden: int | None = None           #: student capacity: back-end hidden width (None: default, 48 for optical)
    device: str = "cpu"
    threads: int | None = 1             #: torch intra-op threads (1 avoids oversubscription)
    #: per-student replacements of the fields above (slow students get a smaller budget —
    #: still equal across their three arms)
    student_overrides: dict = field(default_factory=lambda: {
        "bwsnn": {"epochs": 3, "n_train": 1000, "ntk_batch": 16, "n_projections": 4, "probe_size": 20},
    })

    def for_student(self, name: str) -> "CompareConfig":
        """This configuration with ``student_overrides[name]`` applied."""
        over = dict(self.student_overrides.get(name, {}))
        fixed = {"student_overrides", "students", "seeds", "arms"}
        unknown = (set(over) - set(self.__dataclass_fields__)) | (fixed & set(over))
        if unknown:
            raise ValueError(f"student_overrides[{name!r}]: cannot override {sorted(unknown)}")
        return replace(self, **over)

    @classmethod
    def quick(cls, **overrides: Any) -> "CompareConfig":
        """A seconds-scale configuration for tests and ``--quick``: tiny data, 1 epoch, 2 seeds."""
        base = dict(seeds=(0, 1), epochs=1, n_train=512, n_test=200, ntk_batch=16, ntk_anchors=4, probe_size=20, n_projections=4,
                    student_overrides={"bwsnn": {"n_train": 128, "ntk_batch": 8, "n_projections": 2, "ntk_anchors": 2, "probe_size": 10}})
        base.update(overrides)
        return cls(**base)

    def capacity(self) -> dict:
        """The student's capacity options for :func:`distill.students.build_student` (only those set)."""
        return {k: v for k, v in (("kernels", self.kernels), ("hidden", self.hidden)) if v is not None}

    def loss_config(self) -> NTKDLossConfig:
        return NTKDLossConfig(
            alpha=self.alpha, beta=self.ntk_weight, gamma=self.ntkd_kd_weight, temperature=self.temperature,
            ntk_method=self.ntk_method, ntk_loss=self.ntk_loss, n_projections=self.n_projections, debias=self.debias,
        )


@dataclass
class RunResult:
    """One (student, arm, seed) training run."""

    student: str
    arm: str
    seed: int
    test_accuracy: float
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    steps: int = 0
    final_kernel: list | None = None     #: the student's exact probe kernel at the end (seed 0 only)
    test_correct: str | None = None      #: per-test-image correctness after training (neurohw.stats.pack_correct)
    n_test: int = 0


def probe_batch(x_test: torch.Tensor, y_test: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images with balanced classes, sorted by label (for readable kernel heatmaps); the runner uses validation."""
    n_cls = int(y_test.max()) + 1
    per = max(1, n // n_cls)
    idx = torch.cat([torch.nonzero(y_test == c).flatten()[:per] for c in range(n_cls)])
    return x_test[idx], y_test[idx]


def anchor_batches(x_train: torch.Tensor, n_anchors: int, size: int) -> list[torch.Tensor]:
    """``n_anchors`` fixed, disjoint batches of ``size`` training images (a fixed permutation)."""
    n_anchors = max(1, min(n_anchors, len(x_train) // size))
    perm = np.random.default_rng(12345).permutation(len(x_train))[: n_anchors * size]
    return [x_train[perm[i * size : (i + 1) * size]] for i in range(n_anchors)]




def kernel_metrics(student: nn.Module, probe_x: torch.Tensor, k_teacher: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Normalised distance and CKA between the student's exact probe kernel and the teacher's."""
    with torch.no_grad():
        k_s = empirical_ntk(student, probe_x, "exact", chunk_size=16).detach()
    k_t = k_teacher.to(k_s)
    return {
        "kernel_distance": float(ntk_normalised_distance(k_s, k_t)),
        "kernel_cka": float(cka(k_s, k_t)),
        "kernel_scale_ratio": float(k_s.norm() / k_t.norm()),
    }, k_s


def _arm_loss(arm: str, student: nn.Module, teacher: nn.Module, cache: TeacherKernelCache, anchors: list[torch.Tensor],
              cfg: CompareConfig, seed: int):
    """``loss_fn(logits, y, x)`` of one arm for :func:`neurohw.train.fit`: the loss and its parts.

    The NTKD arm matches the student's kernel on the anchor batches in turn (one per step), with
    its sketch drawn from a generator seeded by ``10_000 + seed``.
    """
    gen = torch.Generator().manual_seed(10_000 + seed)
    lcfg = cfg.loss_config()
    step = [0]

    def loss_fn(logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor):
        ce = F.cross_entropy(logits, y)
        loss = cfg.alpha * ce
        parts = {"ce": float(ce.detach())}
        if arm == "kd" or (arm == "ntkd" and cfg.ntkd_kd_weight):
            with torch.no_grad():
                t_logits = teacher(x)
            kd = kd_loss(logits, t_logits, cfg.temperature)
            loss = loss + (cfg.kd_weight if arm == "kd" else cfg.ntkd_kd_weight) * kd
            parts["kd"] = float(kd.detach())
        if arm == "ntkd":
            xa = anchors[step[0] % len(anchors)]
            d, _ = student_kernel_loss(student, xa, cache(xa), lcfg, generator=gen)
            loss = loss + cfg.ntk_weight * d
            parts["ntk"] = float(d.detach())
        step[0] += 1
        return loss, parts

    return loss_fn


def train_arm(
    student_name: str,
    arm: str,
    seed: int,
    split,
    teacher: nn.Module,
    cache: TeacherKernelCache,
    anchors: list[torch.Tensor],
    probe: tuple[torch.Tensor, torch.Tensor],
    k_teacher_probe: torch.Tensor,
    cfg: CompareConfig,
    progress: bool = True,
) -> RunResult:
    """Train one student with one arm's loss through :func:`neurohw.train.fit`; returns accuracy and history.

    Adam with the per-epoch cosine schedule, batches permuted by ``(seed, epoch)``, validation
    accuracy and the probe-kernel metrics after every epoch (row ``epoch 0``: before training);
    the test split is read once, at the end.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; use {ARMS}")
    dev = torch.device(cfg.device)
    student = build_student(student_name, split.num_classes, split.input_shape, seed, **cfg.capacity()).to(dev)
    x_tr, y_tr = split.x_train.to(dev), split.y_train.to(dev)
    if split.x_val is None:
        raise ValueError(f"dataset {split.name!r} has no validation split (needed for per-epoch monitoring)")
    x_va, y_va = split.x_val.to(dev), split.y_val.to(dev)
    t0 = time.perf_counter()
    m0, k_s = kernel_metrics(student, probe[0], k_teacher_probe)
    before = {"epoch": 0, "step": 0, "val_accuracy": accuracy(student, x_va, y_va), **m0}
    last_kernel = [k_s]

    def probe_metrics(model: nn.Module) -> dict:
        m, last_kernel[0] = kernel_metrics(model, probe[0], k_teacher_probe)
        return m

    res = fit(student, (x_tr, y_tr), (x_va, y_va), epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed,
              device=dev, loss_fn=_arm_loss(arm, student, teacher, cache, anchors, cfg, seed),
              epoch_metrics=probe_metrics, progress=progress, desc=f"{student_name}/{arm}/s{seed}")
    history = [before, *res.history]
    wall = time.perf_counter() - t0
    correct = test_correctness(student, split.x_test.to(dev), split.y_test.to(dev))  # the one read of the test split
    return RunResult(
        student=student_name, arm=arm, seed=seed, test_accuracy=float(correct.mean()), history=history,
        wall_s=wall, steps=history[-1]["step"], final_kernel=last_kernel[0].cpu().tolist(),
        test_correct=pack_correct(correct), n_test=len(correct),
    )


@dataclass
class ArmContext:
    """What every run of one configuration shares: its training subset, the NTK anchor batches,
    the validation probe batch and the teacher's (cached) kernels on both."""

    split: Any
    anchors: list
    probe_x: torch.Tensor
    probe_y: torch.Tensor
    k_teacher_probe: torch.Tensor
    cache: TeacherKernelCache
    teacher_kernel_s: float = 0.0

    @classmethod
    def build(cls, cfg: CompareConfig, base, cache: TeacherKernelCache, progress: bool = False) -> "ArmContext":
        """``base``: the full ``DatasetSplit``; the subset is ``cfg.n_train`` / ``cfg.n_test`` of it;
        the teacher's anchor kernels are computed now when ``cfg.arms`` has ``ntkd``."""
        dev = torch.device(cfg.device)
        split = base.subset(cfg.n_train, cfg.n_test)
        if split.x_val is None:
            raise ValueError(f"dataset {split.name!r} has no validation split (needed for the probe batch)")
        probe_x, probe_y = probe_batch(split.x_val, split.y_val, cfg.probe_size)
        probe_x = probe_x.to(dev)
        t0 = time.perf_counter()
        k_probe = cache(probe_x)
        anchors = [a.to(dev) for a in anchor_batches(split.x_train, cfg.ntk_anchors, cfg.ntk_batch)]
        if "ntkd" in cfg.arms:
            for a in tqdm(anchors, desc="teacher kernels", disable=not progress, leave=False):
                cache(a)
        return cls(split, anchors, probe_x, probe_y, k_probe, cache, time.perf_counter() - t0)

    def train(self, student: str, arm: str, seed: int, teacher: nn.Module, cfg: CompareConfig, progress: bool = False) -> RunResult:
        """:func:`train_arm` in this context."""
        return train_arm(student, arm, seed, self.split, teacher, self.cache, self.anchors, (self.probe_x, self.probe_y),
                         self.k_teacher_probe, cfg, progress)


@torch.no_grad()
def test_correctness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Per-image correctness (bool, (N,)) of ``model`` in eval mode (its mode is restored)."""
    was = model.training
    model.eval()
    pred = torch.cat([model(x[i : i + batch_size]).argmax(-1) for i in range(0, len(x), batch_size)])
    model.train(was)
    return (pred == y).cpu().numpy()


def _correct_matrix(rs: list[RunResult]) -> np.ndarray | None:
    if not rs or any(r.test_correct is None for r in rs):
        return None
    return np.stack([unpack_correct(r.test_correct, r.n_test) for r in sorted(rs, key=lambda r: r.seed)])


def summarise(runs: list[RunResult], arms: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """Per student and arm: mean ± std (over seeds, ddof=1 when ≥ 2) of accuracy and kernel metrics."""
    out: dict[str, dict[str, dict]] = {}
    for r in runs:
        out.setdefault(r.student, {}).setdefault(r.arm, {"runs": []})["runs"].append(r)
    summary: dict[str, dict[str, dict]] = {}
    for s, by_arm in out.items():
        summary[s] = {}
        for arm in arms:
            rs = by_arm.get(arm, {}).get("runs", [])
            if not rs:
                continue
            acc = np.array([r.test_accuracy for r in rs]) * 100
            dist = np.array([r.history[-1]["kernel_distance"] for r in rs])
            ckas = np.array([r.history[-1]["kernel_cka"] for r in rs])
            sd = lambda a: mean_std(a)[1]  # noqa: E731
            c = _correct_matrix(rs)
            summary[s][arm] = {
                "accuracy_mean": float(acc.mean()), "accuracy_std": sd(acc), "accuracies": acc.tolist(),
                "accuracy_ci95": None if c is None else [100 * v for v in bootstrap_ci(c)],
                "val_accuracy_mean": float(np.mean([r.history[-1]["val_accuracy"] for r in rs]) * 100),
                "kernel_distance_mean": float(dist.mean()), "kernel_distance_std": sd(dist),
                "kernel_cka_mean": float(ckas.mean()), "kernel_cka_std": sd(ckas),
                "wall_s_mean": float(np.mean([r.wall_s for r in rs])), "steps": rs[0].steps, "seeds": [r.seed for r in rs],
            }
    return summary


PAIRS = (("ntkd", "kd"), ("ntkd", "ce"), ("kd", "ce"))


def paired_differences(runs: list[RunResult]) -> dict[str, dict[str, dict]]:
    """Per student: test accuracy(A) − accuracy(B) in points for A, B in :data:`PAIRS`, with the paired 95 % CI.

    Seeds are paired (the arms share initial weights and minibatches), test images resampled jointly.
    """
    out: dict[str, dict[str, dict]] = {}
    for s in dict.fromkeys(r.student for r in runs):
        for a, b in PAIRS:
            ra = sorted([r for r in runs if r.student == s and r.arm == a], key=lambda r: r.seed)
            rb = sorted([r for r in runs if r.student == s and r.arm == b], key=lambda r: r.seed)
            ca, cb = _correct_matrix(ra), _correct_matrix(rb)
            if ca is None or cb is None or [r.seed for r in ra] != [r.seed for r in rb]:
                continue
            out.setdefault(s, {})[f"{a} − {b}"] = paired_difference(ca, cb)
    return out


def result_figures(summary: dict, diffs: dict, teacher_acc: float, cfg: CompareConfig, budgets: dict, dataset: str) -> dict:
    """The comparison as a results table: one row per (student, arm), then the paired differences."""
    rows = []
    for s, by_arm in summary.items():
        for arm, v in by_arm.items():
            rows.append({"student": s, "arm": arm, "seeds": len(v["seeds"]),
                         "val acc % (last epoch)": round(v["val_accuracy_mean"], 2),
                         "test acc % ± std [95 % CI]": {"mean": v["accuracy_mean"], "std": v["accuracy_std"],
                                                        "ci95": v["accuracy_ci95"]},
                         "CKA to teacher": {"mean": v["kernel_cka_mean"], "std": v["kernel_cka_std"], "digits": 3}})
        for name, d in diffs.get(s, {}).items():
            rows.append({"student": s, "arm": f"{name} (paired)", "seeds": len(by_arm[name.split(" − ")[0]]["seeds"]),
                         "val acc % (last epoch)": None,
                         "test acc % ± std [95 % CI]": {k: d[k] for k in ("mean", "std", "ci95")},
                         "CKA to teacher": "CI excludes 0" if d["excludes_0"] else "CI includes 0"})
    b = next(iter(budgets.values()), {})
    return {
        "caption": (f"CE / KD / NTKD on {dataset}: teacher LeNet-5 {100 * teacher_acc:.2f} % test; each arm "
                    f"{b.get('epochs')} epochs on {b.get('n_train')} images, batch {cfg.batch_size}, Adam lr {cfg.lr} "
                    f"(cosine); NTKD β={cfg.ntk_weight}, D={cfg.ntk_loss}, {cfg.ntk_method} R={cfg.n_projections}, "
                    f"NTK batch {cfg.ntk_batch}; KD γ={cfg.kd_weight}, τ={cfg.temperature}. Mean ± std over seeds "
                    "(ddof 1), 95 % CI with seeds and test images resampled; paired rows: difference in points."),
        "columns": ["student", "arm", "seeds", "val acc % (last epoch)", "test acc % ± std [95 % CI]", "CKA to teacher"],
        "rows": rows,
    }


def ordering(summary_student: dict[str, dict]) -> str:
    """The observed ordering of arms by mean accuracy, e.g. ``"ntkd > kd > ce"``."""
    arms = sorted(summary_student, key=lambda a: -summary_student[a]["accuracy_mean"])
    return " > ".join(arms)


def markdown_table(summary: dict, teacher_acc: float, cfg: CompareConfig, budgets: dict | None = None) -> str:
    """The three-arm table (one block per student) as Markdown."""
    lines = [
        f"Teacher LeNet-5 test accuracy: {100 * teacher_acc:.2f} %. Seeds: {list(cfg.seeds)}; "
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, Adam lr {cfg.lr} (cosine). "
        f"NTKD: β={cfg.ntk_weight}, D={cfg.ntk_loss}, student kernel by {cfg.ntk_method}"
        f"{f' (R={cfg.n_projections})' if cfg.ntk_method in ('sketch', 'perturbation') else ''}, "
        f"NTK batch {cfg.ntk_batch} from {cfg.ntk_anchors} fixed anchor batches; KD: γ={cfg.kd_weight}, τ={cfg.temperature}.",
        "",
    ]
    for s, by_arm in summary.items():
        b = (budgets or {}).get(s)
        lines += [
            f"### student `{s}`",
            "",
            *([f"Budget (each arm): {b['epochs']} epochs on {b['n_train']} images, batch {b['batch_size']}; "
               f"NTK batch {b['ntk_batch']}, R={b['n_projections']}.", ""] if b else []),
            "| arm | test accuracy (%) mean ± std | per seed | kernel distance to teacher (normalised) | CKA | s / run |",
            "|---|---|---|---|---|---|",
        ]
        for arm, v in by_arm.items():
            per = ", ".join(f"{a:.1f}" for a in v["accuracies"])
            lines.append(
                f"| {arm} | {v['accuracy_mean']:.2f} ± {v['accuracy_std']:.2f} | {per} | "
                f"{v['kernel_distance_mean']:.3f} ± {v['kernel_distance_std']:.3f} | "
                f"{v['kernel_cka_mean']:.3f} ± {v['kernel_cka_std']:.3f} | {v['wall_s_mean']:.1f} |"
            )
        lines += ["", f"Observed ordering by mean accuracy: **{ordering(by_arm)}** (paper, MNIST: ntkd 97.3 > kd 95.9 > ce 91.4).", ""]
    return "\n".join(lines)


def plot_results(runs: list[RunResult], summary: dict, k_teacher_probe: torch.Tensor, probe_y: torch.Tensor, out: Path) -> dict[str, str]:
    """accuracy.png, kernels.png, kernel_distance.png; returns {name: file name}."""
    from neurohw import plotting

    plt = plotting.plt
    files = {}
    students = list(summary)
    # accuracy per arm
    fig, axes = plt.subplots(1, len(students), figsize=(4 * len(students), 3.2), squeeze=False)
    for ax, s in zip(axes[0], students):
        arms = list(summary[s])
        means = [summary[s][a]["accuracy_mean"] for a in arms]
        stds = [summary[s][a]["accuracy_std"] for a in arms]
        ax.bar(arms, means, yerr=stds, capsize=4, color=["#888", "#4a7", "#37c"][: len(arms)])
        for i, a in enumerate(arms):
            ax.plot([i] * len(summary[s][a]["accuracies"]), summary[s][a]["accuracies"], "k.", ms=4)
        lo = min(min(summary[s][a]["accuracies"]) for a in arms)
        ax.set_ylim(max(0, lo - 3), min(100, max(means) + 2))
        ax.set_title(f"student {s}")
        ax.set_ylabel("test accuracy (%)")
    plotting.save(fig, out / "accuracy.png")
    plt.close(fig)
    files["accuracy"] = "accuracy.png"
    # kernel heatmaps (teacher vs each arm, first seed), each scaled by its Frobenius norm
    s0 = students[0]
    first = {}
    for r in runs:
        if r.student == s0 and r.arm not in first and r.final_kernel is not None:
            first[r.arm] = r
    panels = [("teacher LeNet-5", k_teacher_probe.cpu().double())] + [
        (f"{s0} · {a} (seed {r.seed})", torch.tensor(r.final_kernel, dtype=torch.float64)) for a, r in first.items()
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, k) in zip(axes[0], panels):
        ax.imshow((k / k.norm()).numpy(), cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("empirical NTK on probe test digits (sorted by class), each ÷ its Frobenius norm", fontsize=9)
    plotting.save(fig, out / "kernels.png")
    plt.close(fig)
    files["kernels"] = "kernels.png"
    # kernel distance and CKA over training
    fig, axes = plt.subplots(2, len(students), figsize=(4 * len(students), 5.6), squeeze=False)
    for col, s in enumerate(students):
        for arm in summary[s]:
            rs = [r for r in runs if r.student == s and r.arm == arm]
            steps = [h["step"] for h in rs[0].history]
            for row, key in enumerate(("kernel_distance", "kernel_cka")):
                ax = axes[row][col]
                d = np.array([[h[key] for h in r.history] for r in rs])
                ax.plot(steps, d.mean(0), label=arm)
                if len(rs) > 1:
                    ax.fill_between(steps, d.mean(0) - d.std(0, ddof=1), d.mean(0) + d.std(0, ddof=1), alpha=0.2)
        axes[0][col].set_title(f"student {s} vs teacher (probe kernels)")
        axes[0][col].set_ylabel("‖K_S/‖K_S‖ − K_T/‖K_T‖‖²")
        axes[1][col].set_ylabel("CKA(K_S, K_T)")
        axes[1][col].set_xlabel("optimiser step")
        axes[0][col].legend()
    fig.tight_layout()
    plotting.save(fig, out / "kernel_distance.png")
    plt.close(fig)
    files["kernel_distance"] = "kernel_distance.png"
    return files


def run_comparison(
    cfg: CompareConfig,
    out: str | Path | None = None,
    *,
    teacher: nn.Module | None = None,
    split=None,
    teacher_epochs: int = 12,
    progress: bool = True,
    result: str | None = None,
    results_dir: str | Path | None = None,
    command: str | None = None,
    dataset: str = "mnist5k",
) -> dict[str, Any]:
    """Run every (student, seed, arm); write the table and plots into ``out``; return the results.

    ``teacher``: a trained teacher (default ``neurohw.train.get_teacher("lenet5",
    dataset=dataset, epochs=teacher_epochs)``, cached); ``split``: a ``DatasetSplit`` (default
    ``load_dataset(dataset)``). ``result``: also write ``results/<result>.json`` (folder
    ``results_dir``) with ``command`` as the line that reproduces it.
    """
    from neurohw.io import atomic_write_json, atomic_write_text, provenance

    prev_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        dev = torch.device(cfg.device)
        if split is None:
            from neurohw.data import load_dataset

            split = load_dataset(dataset)
        base = split
        split = base.subset(cfg.n_train, cfg.n_test)
        if teacher is None:
            from neurohw.train import get_teacher

            teacher = get_teacher("lenet5", dataset=dataset, epochs=teacher_epochs, progress=progress)
        teacher = teacher.to(dev).eval()
        teacher_acc = accuracy(teacher, split.x_test.to(dev), split.y_test.to(dev))
        # Kernels are keyed by the batch's content, so students with other NTK batches share the cache.
        cache = TeacherKernelCache(teacher, method=cfg.teacher_method, chunk_size=16)
        teacher_kernel_s = 0.0
        runs: list[RunResult] = []
        budgets = {}
        first_probe = None
        for s in cfg.students:
            scfg = cfg.for_student(s)
            ctx = ArmContext.build(scfg, base, cache, progress)
            ssplit, anchors, probe_x, probe_y, k_teacher_probe = ctx.split, ctx.anchors, ctx.probe_x, ctx.probe_y, ctx.k_teacher_probe
            teacher_kernel_s += ctx.teacher_kernel_s
            first_probe = first_probe or (k_teacher_probe, probe_y)
            budgets[s] = {"epochs": scfg.epochs, "n_train": len(ssplit.x_train), "batch_size": scfg.batch_size,
                          "ntk_batch": scfg.ntk_batch, "n_projections": scfg.n_projections, **scfg.capacity()}
            for seed in scfg.seeds:
                for arm in scfg.arms:
                    r = ctx.train(s, arm, seed, teacher, scfg, progress)
                    if seed != scfg.seeds[0]:
                        r.final_kernel = None
                    runs.append(r)
                    if progress:
                        print(f"[distill] {s} seed {seed} {arm}: test accuracy {100 * r.test_accuracy:.2f} % "
                              f"({r.wall_s:.1f} s)", flush=True)
        summary = summarise(runs, cfg.arms)
        diffs = paired_differences(runs)
        table = markdown_table(summary, teacher_acc, cfg, budgets)
        results = {
            "provenance": provenance(seed=cfg.seeds[0], config=asdict(cfg)),
            "teacher_accuracy": teacher_acc,
            "teacher_kernel_s": teacher_kernel_s,
            "summary": summary,
            "budgets": budgets,
            "teacher_probe_kernel": first_probe[0].cpu().tolist(),
            "probe_labels": first_probe[1].cpu().tolist(),
            "ordering": {s: ordering(v) for s, v in summary.items()},
            "differences": diffs,
            "runs": [{k: v for k, v in asdict(r).items() if k != "test_correct"} for r in runs],
            "table_markdown": table,
        }
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            results["plots"] = plot_results(runs, summary, first_probe[0], first_probe[1], out)
            atomic_write_text(out / "table.md", "# Distillation: CE vs KD vs NTKD\n\n" + table + "\n")
            atomic_write_json(out / "results.json", results)
        if result:
            from neurohw.results import save_result

            figs = result_figures(summary, diffs, teacher_acc, cfg, budgets, dataset)
            per_seed = {f"{r.student}/{r.arm}/s{r.seed}": {"test_accuracy": r.test_accuracy, "correct": r.test_correct,
                                                         "val_accuracy": r.history[-1]["val_accuracy"]} for r in runs}
            results["result_file"] = str(save_result(
                result, figs, config={**asdict(cfg), "dataset": dataset, "teacher_epochs": teacher_epochs,
                                      "teacher_accuracy": teacher_acc, "budgets": budgets},
                seeds=list(cfg.seeds), per_seed=per_seed, command=command or f"neurohw distill compare --result {result}",
                wall_time_s=sum(r.wall_s for r in runs) + teacher_kernel_s, results=results_dir))
        return results
    finally:
        torch.set_num_threads(prev_threads)


#: The same preset under its older name (``distill.cli`` still calls it so).
quick_config = CompareConfig.quick
