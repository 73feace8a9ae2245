"""Training loop: resume equals an uninterrupted run; torchrun data-parallel equals one process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neurohw.cli import main as cli_main
from neurohw.io import load_checkpoint
from neurohw.models import AlexNetSmall, LeNet5, ResNet8, build_teacher
from neurohw.seeding import seed_everything
from neurohw.train import evaluate, fit, get_teacher

ROOT = Path(__file__).resolve().parents[2]


def test_teacher_shapes():
    assert LeNet5()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert AlexNetSmall()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert ResNet8()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert build_teacher("resnet8", in_channels=1)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown teacher"):
        build_teacher("vgg")


def test_resume_equals_uninterrupted(tmp_path, mnist5k):
    small = mnist5k.subset(256, 64)
    torch.manual_seed(0)
    a = LeNet5()
    fit(a, small.train(), epochs=3, batch_size=32, seed=3, device="cpu", progress=False, augment_shift=1, schedule="constant")
    torch.manual_seed(0)
    b = LeNet5()
    fit(b, small.train(), epochs=2, batch_size=32, seed=3, device="cpu", out=tmp_path, progress=False, augment_shift=1, schedule="constant")
    torch.manual_seed(123)  # a fresh process would start from other weights; resume must overwrite them
    c = LeNet5()
    res = fit(c, small.train(), small.test(), epochs=3, batch_size=32, seed=3, device="cpu", out=tmp_path,
              resume=True, progress=False, augment_shift=1, schedule="constant")
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "step", "lr"} <= set(res.history[-1])
    for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
        torch.testing.assert_close(va, vc, rtol=0, atol=1e-6, msg=k)
    _, meta = load_checkpoint(tmp_path / "last.safetensors")
    assert meta["seed"] == 3 and meta["extra"]["epoch"] == 2


def test_evaluate_confusion(mnist5k):
    m = LeNet5()
    ev = evaluate(m, mnist5k.subset(10, 200).test(), num_classes=10)
    assert ev["confusion"].shape == (10, 10) and ev["confusion"].sum() == 200
    assert ev["accuracy"] == pytest.approx(np.trace(ev["confusion"]) / 200)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_data_parallel_equals_single_process(tmp_path):
    """Two gloo processes on loopback, global batch 32, train the same weights as one process."""
    args = ["train-teacher", "lenet5", "--data", "mnist5k", "--limit", "400", "--epochs", "2", "--batch-size", "32",
            "--seed", "5", "--augment-shift", "1"]
    ddp_dir = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", NEUROHW_DEVICE="cpu")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "neurohw", *args, "--out", str(ddp_dir)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # One process, same seed and global batch, dropping the last partial batch as torchrun does.
    from neurohw.data import load_mnist5k

    split = load_mnist5k().subset(400)
    seed_everything(5)
    model = build_teacher("lenet5", in_channels=1)
    fit(model, split.train(), epochs=2, batch_size=32, seed=5, device="cpu", progress=False, drop_last=True,
        augment_shift=1)
    tensors, meta = load_checkpoint(ddp_dir / "model.safetensors")
    assert meta["config"]["world_size"] == 2
    for k, v in model.state_dict().items():
        torch.testing.assert_close(tensors[k], v, rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.slow
def test_cli_train_teacher_and_resume(tmp_path):
    out = tmp_path / "run"
    base = ["train-teacher", "lenet5", "--data", "mnist5k", "--limit", "256", "--out", str(out)]
    assert cli_main([*base, "--epochs", "1"]) == 0
    assert cli_main([*base, "--epochs", "2", "--resume"]) == 0
    _, meta = load_checkpoint(out / "last.safetensors")
    assert meta["extra"]["epoch"] == 1 and len(meta["extra"]["history"]) == 2
    assert (out / "metrics.json").exists() and (out / "model.safetensors").exists()


@pytest.mark.slow
def test_lenet5_reaches_97_percent_on_mnist5k(tmp_path):
    model = get_teacher("lenet5", cache_dir=tmp_path, progress=False)
    from neurohw.data import load_mnist5k

    acc = evaluate(model, load_mnist5k().test())["accuracy"]
    assert acc >= 0.97, acc
    # second call loads the cached weights: same predictions
    again = get_teacher("lenet5", cache_dir=tmp_path, progress=False)
    x = load_mnist5k().x_test[:64]
    assert torch.equal(model(x), again(x))


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))


def _blobs(n: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float()
    return x, y


def test_cosine_step_schedule_is_torch_cosine_annealing_per_step():
    """``schedule="cosine_step"`` sets the same learning rate before every step as CosineAnnealingLR."""
    from neurohw.train import lr_factor

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3 * 5)
    for epoch in range(3):
        for step in range(5):
            assert opt.param_groups[0]["lr"] == pytest.approx(lr_factor("cosine_step", epoch, 3, step, 5), abs=1e-12)
            opt.step()
            sched.step()
    assert lr_factor("cosine", 2, 4, 3, 5) == pytest.approx(0.5 * (1 + np.cos(np.pi * 2 / 4)))
    assert lr_factor("constant", 2, 4, 3, 5) == 1.0


def test_fit_hooks_param_groups_and_validation_keys():
    x, y = _blobs()
    m = _tiny()
    calls = {"step": 0, "epoch": []}

    def clamp(model):
        calls["step"] += 1
        model[1].weight.data.clamp_(-0.05, 0.05)

    groups = [{"params": [m[1].weight], "lr": 0.05}, {"params": [m[1].bias], "lr": 0.0}]
    b0 = m[1].bias.detach().clone()
    res = fit(m, (x, y), (x[:32], y[:32]), epochs=3, batch_size=32, device="cpu", progress=False, params=groups,
              step_hook=clamp, epoch_hook=lambda model, e: calls["epoch"].append(e), schedule="constant",
              loss_fn=lambda logits, yb, xb: (torch.nn.functional.cross_entropy(logits, yb), {"zero": 0.0}))
    assert calls == {"step": 9, "epoch": [0, 1, 2]}
    assert float(m[1].weight.detach().abs().max()) <= 0.05 + 1e-7
    assert torch.equal(m[1].bias, b0)  # a group with lr 0 does not move
    assert [h["step"] for h in res.history] == [3, 6, 9]
    assert res.history[-1]["train_zero"] == 0.0 and res.final["n"] == 32
    with pytest.raises(ValueError, match="need val_ds"):
        fit(_tiny(), (x, y), epochs=1, device="cpu", progress=False, patience=1)
    with pytest.raises(ValueError, match="optimizer must be"):
        fit(_tiny(), (x, y), epochs=1, device="cpu", progress=False, optimizer="sgdx")


def test_fit_patience_stops_and_keep_best_restores_the_best_epoch():
    x, y = _blobs()
    # lr 0: validation accuracy never improves after epoch 1, so patience 2 stops after epoch 3
    res = fit(_tiny(), (x, y), (x, y), epochs=10, batch_size=32, lr=0.0, device="cpu", progress=False, patience=2)
    assert len(res.history) == 3
    m = _tiny()
    res = fit(m, (x, y), (x[:48], y[:48]), epochs=6, batch_size=16, lr=0.05, device="cpu", progress=False, keep_best=True)
    best = max(h["val_accuracy"] for h in res.history)
    assert res.final["accuracy"] == pytest.approx(best)


def test_fit_max_steps_stops_mid_epoch_with_a_history_row():
    x, y = _blobs()
    res = fit(_tiny(), (x, y), epochs=5, batch_size=32, device="cpu", progress=False, max_steps=4)
    assert [h["step"] for h in res.history] == [3, 4] and [h["epoch"] for h in res.history] == [1, 2]
