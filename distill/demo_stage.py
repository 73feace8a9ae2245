"""Demo stage ``distill``: a short three-arm run (CE, CE+KD, CE+NTKD), one seed.

Uses the LeNet-5 teacher and MNIST-5k from the ``teachers`` stage (``ctx.shared``), or
loads/trains them when the stage runs alone. Student: the optical MNIST student when the
optics backend is present, else the generic small CNN. Writes ``distill/`` in the report
folder (table, accuracy bars, kernel heatmaps, kernel distance over training).
"""
from __future__ import annotations

from distill.compare import CompareConfig, run_comparison


def _student() -> str:
    from distill.students import student_names

    return "optical" if "optical" in student_names() else "cnn"


def run(ctx) -> dict:
    student = _student()
    seed = int(ctx.seed)
    if ctx.quick:
        cfg = CompareConfig.quick(students=(student,), seeds=(seed,), n_train=256, n_test=200, ntk_anchors=2, probe_size=10)
    else:
        cfg = CompareConfig(students=(student,), seeds=(seed,), epochs=3, ntk_loss="cka", ntk_weight=1.0, ntk_anchors=8)
    teacher = ctx.shared.get("teacher_lenet5")
    split = ctx.shared.get("mnist5k")
    out = ctx.path("distill/table.md").parent
    res = run_comparison(cfg, out, teacher=teacher, split=split, teacher_epochs=3 if ctx.quick else 12, progress=False)
    summ = res["summary"][student]
    ctx.section(
        "Distillation: CE vs KD vs NTKD (one seed)",
        f"""Student `{student}`; equal budgets (same initial weights, minibatches, epochs, optimiser).
The full ≥ 3-seed comparison is `neurohw distill compare` (docs/distill.md).

{res['table_markdown']}

![accuracy](distill/accuracy.png)
![kernels](distill/kernels.png)
![kernel distance](distill/kernel_distance.png)
""",
    )
    return {
        "student": student,
        "teacher_accuracy": res["teacher_accuracy"],
        "accuracy": {arm: v["accuracy_mean"] for arm, v in summ.items()},
        "kernel_cka": {arm: v["kernel_cka_mean"] for arm, v in summ.items()},
        "ordering": res["ordering"][student],
        "config": {"epochs": cfg.epochs, "n_train": cfg.n_train, "ntk_loss": cfg.ntk_loss, "ntk_method": cfg.ntk_method},
    }
