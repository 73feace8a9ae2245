"""Demo stage ``teachers``: train the teachers on MNIST-5k, report accuracy and plots.

LeNet-5 is the reference teacher for the other stages (``ctx.shared["teacher_lenet5"]``);
AlexNet-small and ResNet-8 (CIFAR-sized architectures) are trained on the same digits with
a 1-channel stem to show they run end to end (full mode only; ``--quick`` trains LeNet-5 alone).
"""
from __future__ import annotations

import torch

from neurohw import plotting
from neurohw.data import load_mnist5k
from neurohw.io import atomic_write_json, save_checkpoint
from neurohw.models import build_teacher
from neurohw.train import evaluate, fit


def run(ctx) -> dict:
    split = load_mnist5k()
    ctx.shared["mnist5k"] = split
    plan = {"lenet5": 12, "alexnet_small": 4, "resnet8": 4}
    if ctx.quick:  # smoke run: only the reference teacher, few epochs
        plan = {"lenet5": 3}
    figures, histories = {}, {}
    for name, epochs in plan.items():
        torch.manual_seed(ctx.seed)
        model = build_teacher(name, num_classes=10, in_channels=1)
        print(f"[demo] teachers: {name}, {epochs} epochs ...", flush=True)
        res = fit(model, split.train(), split.val(), epochs=epochs, lr=2e-3, seed=ctx.seed, device="cpu",
                  augment_shift=2 if name == "lenet5" else 0, progress=True)  # per-epoch bars: minutes of work are visible
        ev = evaluate(model, split.test())
        histories[name] = res.history
        figures[name] = {"test_accuracy": ev["accuracy"], "epochs": epochs,
                         "parameters": sum(p.numel() for p in model.parameters())}
        save_checkpoint(ctx.path(f"teachers/{name}.safetensors"), model, seed=ctx.seed,
                        config={"model": name, "data": "mnist5k", "epochs": epochs},
                        extra={"test_accuracy": ev["accuracy"], "history": res.history})
        if name == "lenet5":
            ctx.shared["teacher_lenet5"] = model.eval()
            plotting.confusion_matrix(ev["confusion"], ctx.path("teachers/lenet5_confusion.png"),
                                      title=f"LeNet-5, MNIST-5k test ({100 * ev['accuracy']:.2f} %)")
            with torch.no_grad():
                preds = model(split.x_test[:32]).argmax(1)
            plotting.sample_grid(split.x_test, split.y_test, preds, ctx.path("teachers/samples.png"),
                                 title="MNIST-5k test digits: label→prediction")
    plotting.learning_curves(histories, ctx.path("teachers/learning_curves.png"))
    atomic_write_json(ctx.path("teachers/figures.json"), figures)
    rows = "\n".join(
        f"| {n} | {f['epochs']} | {f['parameters']:,} | {100 * f['test_accuracy']:.2f} |" for n, f in figures.items()
    )
    ctx.section(
        "Teachers on MNIST-5k",
        f"""Split: 4,000 train / 1,000 test real MNIST digits (stratified, fixed seed; see docs/data.md).

| model | epochs | parameters | test accuracy (%) |
|---|---|---|---|
{rows}

![learning curves](teachers/learning_curves.png)
![confusion](teachers/lenet5_confusion.png)
![samples](teachers/samples.png)
""",
    )
    return figures
