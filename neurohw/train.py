"""The project's one training loop: seeded, resumable, data-parallel.

:func:`fit` trains teachers and every backend's student (``snn.train.fit_snn``,
``logic.train.fit_logic`` / ``fit_dbnet``, ``optics.hybrid.train_hybrid``,
``distill.compare.train_arm`` and ``calibration.loop.train_backend`` are thin wrappers that
choose the loss, forward, per-step hook, optimiser and schedule). It trains with Adam and cross-entropy by default (or a given
optimiser, parameter groups and ``loss_fn``), shows tqdm progress, evaluates on validation data
each epoch (optionally stopping early or keeping the best epoch), and — when ``out`` is given —
writes ``last.safetensors`` (model and optimiser state, with a JSON sidecar holding history,
seed and config) after every epoch, so ``resume=True`` continues where an interrupted run stopped.

Data-parallel: started under ``torchrun`` (``WORLD_SIZE`` > 1), :func:`fit` joins the process
group (gloo on CPU, NCCL on CUDA) and wraps the model in DistributedDataParallel. Every rank
draws the same seeded permutation; global batch *k* is ``perm[k·B:(k+1)·B]`` and rank *r*
takes every W-th sample of it, so W processes with per-rank batch B/W compute the same
gradient (the mean over the global batch) as one process with batch B. Only rank 0 writes files.
The global batch size must be divisible by the world size; the last, incomplete global batch
of an epoch is dropped when running distributed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from neurohw.io import atomic_write_json, load_checkpoint, save_checkpoint
from neurohw.seeding import default_device, seed_everything


@dataclass
class TrainResult:
    """What :func:`fit` returns: per-epoch history and the final test metrics."""

    history: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    checkpoint: Path | None = None


def _dist_info() -> tuple[int, int]:
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return ws, rank


def _init_distributed(device: torch.device) -> tuple[int, int]:
    import torch.distributed as dist

    ws, rank = _dist_info()
    if ws > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ws, rank


def global_batches(n: int, batch_size: int, epoch: int, seed: int, drop_last: bool) -> list[np.ndarray]:
    """The epoch's global batches: a permutation seeded by (seed, epoch), cut into ``batch_size`` pieces."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    stop = (n // batch_size) * batch_size if drop_last else n
    return [perm[i : min(i + batch_size, stop)] for i in range(0, stop, batch_size)]


def _as_data(data):
    """A Dataset for ``data``: a Dataset or DataLoader as given, or a pair of tensors ``(x, y)``."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        return torch.utils.data.TensorDataset(*data)
    return data


def _loader(dataset_or_loader, batch_size: int):
    if isinstance(dataset_or_loader, torch.utils.data.DataLoader):
        return dataset_or_loader
    return torch.utils.data.DataLoader(_as_data(dataset_or_loader), batch_size=batch_size, shuffle=False)


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 256, device: torch.device | str | None = None, num_classes: int | None = None,
             forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None) -> dict:
    """Accuracy, mean cross-entropy and confusion matrix of ``model`` on ``data``.

    ``data``: a Dataset or DataLoader of (x, y), or a pair of tensors ``(x, y)``. ``forward(model,
    x)`` gives the logits (default ``model(x)``), called in eval mode. Returns ``{"accuracy":
    float in [0, 1], "loss": float, "confusion": int array (C, C) with rows = true class,
    columns = predicted, "n": int}``.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds, labels, loss_sum = [], [], 0.0
    for x, y in _loader(data, batch_size):
        x, y = x.to(device), y.to(device)
        logits = forward(model, x) if forward else model(x)
        loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        preds.append(logits.argmax(1).cpu())
        labels.append(y.cpu())
    model.train(was_training)
    p = torch.cat(preds).numpy()
    t = torch.cat(labels).numpy()
    c = num_classes or int(max(p.max(initial=0), t.max(initial=0))) + 1
    conf = np.zeros((c, c), dtype=np.int64)
    np.add.at(conf, (t, p), 1)
    return {"accuracy": float((p == t).mean()) if len(t) else float("nan"), "loss": loss_sum / max(len(t), 1), "confusion": conf, "n": int(len(t))}


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on tensors ``x`` (N, ...), ``y`` (N,).

    Runs in eval mode and restores the model's previous mode.
    """
    was = model.training
    model.eval()
    correct = 0
    for s in range(0, len(x), batch_size):
        correct += int((model(x[s : s + batch_size]).argmax(1) == y[s : s + batch_size]).sum())
    model.train(was)
    return correct / max(1, len(x))


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    for name, v in meta.get("scalars", {}).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


SCHEDULES = ("cosine", "cosine_step", "constant")
OPTIMIZERS = ("adam", "adamw")


def lr_factor(schedule: str, epoch: int, epochs: int, step: int, steps_per_epoch: int) -> float:
    """The learning-rate multiplier of ``schedule`` at (0-based) ``epoch`` and ``step`` within it.

    ``"cosine"``: ``½(1 + cos(π·epoch/epochs))``, set once per epoch; ``"cosine_step"``: the same
    curve over every optimiser step, ``½(1 + cos(π·t/T))`` with ``t`` the steps taken so far and
    ``T = epochs·steps_per_epoch`` (torch's ``CosineAnnealingLR`` stepped every batch);
    ``"constant"``: 1.
    """
    if schedule == "cosine":
        return 0.5 * (1 + np.cos(np.pi * epoch / epochs))
    if schedule == "cosine_step":
        return 0.5 * (1 + np.cos(np.pi * (epoch * steps_per_epoch + step) / (epochs * steps_per_epoch)))
    return 1.0


def _make_optimizer(optimizer, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if callable(optimizer):
        return optimizer(params)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS} or a callable(params) -> Optimizer, got {optimizer!r}")


def _loss_and_parts(out) -> tuple[torch.Tensor, dict]:
    """``loss_fn`` returns a loss tensor, or ``(loss, {name: float})`` with the parts to log."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, {}


def fit(
    model: nn.Module,
    train_ds,
    val_ds=None,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor | tuple] | None = None,
    progress: bool = True,
    config: dict | None = None,
    schedule: str = "cosine",
    augment_shift: int = 0,
    drop_last: bool | None = None,
    optimizer: str | Callable = "adam",
    params=None,
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    val_forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    step_hook: Callable[[nn.Module], None] | None = None,
    epoch_hook: Callable[[nn.Module, int], None] | None = None,
    epoch_metrics: Callable[[nn.Module], dict] | None = None,
    patience: int | None = None,
    keep_best: bool = False,
    max_steps: int | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` on ``train_ds`` — the one training loop of the project.

    Data: ``train_ds`` and ``val_ds`` are Datasets of (x, y) or pairs of tensors ``(x, y)``.
    Every epoch draws the global batches of :func:`global_batches` (a permutation seeded by
    ``(seed, epoch)``).

    Each step: ``x`` is shifted by up to ``augment_shift`` pixels (:func:`random_shift`),
    ``logits = forward(model, x)`` (default ``model(x)``), ``loss_fn(logits, y, x)`` (default
    cross-entropy; it may return ``(loss, parts)`` with a dict of floats to log), backward,
    ``optimizer.step()``, then ``step_hook(model)`` (e.g. clipping latent binary weights).

    Optimiser: ``optimizer`` is ``"adam"`` / ``"adamw"`` (with ``lr``, ``weight_decay``) or a
    callable ``params -> Optimizer``; ``params`` are the parameters or param groups to train
    (default ``model.parameters()``). ``schedule`` (see :func:`lr_factor`): ``"cosine"`` per
    epoch (default), ``"cosine_step"`` per step, or ``"constant"``; it scales every group's
    initial learning rate.

    Each epoch: ``epoch_hook(model, epoch)`` first (0-based epoch; e.g. a hardening schedule);
    after it, a history row ``{"epoch": epochs completed, "step": optimiser steps so far,
    "lr", "train_loss", "train_accuracy", "train_<part>"...}``, plus ``"val_loss"`` and
    ``"val_accuracy"`` on ``val_ds`` (through ``val_forward``, default ``model(x)``, in eval
    mode) and whatever ``epoch_metrics(model)`` returns. The test split is never read here.
    ``patience``: stop when ``val_accuracy`` has not improved for that many epochs;
    ``keep_best``: end with the weights of the epoch with the best ``val_accuracy``.
    ``max_steps``: stop after that many optimiser steps in all (the epoch in progress ends there
    and gets its history row; schedules still span ``epochs``).

    With ``out`` a resumable checkpoint is written after every epoch to
    ``out/last.safetensors`` (+ ``last.json``) and the history to ``out/history.json``;
    ``resume=True`` continues from it. ``drop_last`` drops the epoch's last, incomplete global
    batch (default: only when distributed). Returns a :class:`TrainResult` whose ``final`` is
    :func:`evaluate` on ``val_ds`` at the end (``{}`` without it).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if (patience is not None or keep_best) and val_ds is None:
        raise ValueError("fit: patience / keep_best select on validation accuracy and need val_ds")
    device = torch.device(device) if device else default_device()
    ws, rank = _init_distributed(device)
    if ws > 1 and batch_size % ws:
        raise ValueError(f"global batch size {batch_size} is not divisible by the world size {ws}")
    seed_everything(seed)
    model.to(device)
    opt = _make_optimizer(optimizer, list(params) if params is not None else model.parameters(), lr, weight_decay)
    for group in opt.param_groups:
        group.setdefault("initial_lr", group["lr"])
    history: list[dict] = []
    start_epoch = 0
    out = Path(out) if out else None
    ckpt = out / "last.safetensors" if out else None
    if resume and ckpt is not None and ckpt.exists():
        tensors, meta = load_checkpoint(ckpt, device=device)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        _restore_optimizer(opt, tensors, meta["extra"]["optimizer"])
        for group in opt.param_groups:
            group.setdefault("initial_lr", lr)  # checkpoints written before schedules scaled each group
        history = meta["extra"]["history"]
        start_epoch = meta["extra"]["epoch"] + 1
        if rank == 0 and progress:
            print(f"resuming from {ckpt} at epoch {start_epoch}")
    net: nn.Module = model
    if ws > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = loss_fn or (lambda logits, y, x: F.cross_entropy(logits, y))
    forward = forward or (lambda m, x: m(x))
    xs, ys = _materialise(train_ds)
    drop = (ws > 1) if drop_last is None else drop_last
    steps = history[-1].get("step", 0) if history else 0
    best_acc, best_state, since_best = -1.0, None, 0
    for epoch in range(start_epoch, epochs):
        if epoch_hook is not None:
            epoch_hook(model, epoch)
        net.train()
        batches = global_batches(len(xs), batch_size, epoch, seed, drop_last=drop)
        bar = tqdm(batches, desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=not progress or rank != 0, leave=False)
        loss_sum, n_seen, correct, parts_sum = 0.0, 0, 0, {}
        for step, gidx in enumerate(bar):
            if max_steps is not None and steps >= max_steps:
                break
            factor = lr_factor(schedule, epoch, epochs, step, len(batches))
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor
            idx = gidx[rank::ws]
            x, y = xs[idx], ys[idx]
            if augment_shift:
                x = random_shift(x, augment_shift, seed=(seed, epoch, step), global_index=np.arange(len(gidx))[rank::ws])
            x, y = x.to(device), y.to(device)
            logits = forward(net, x)
            loss, parts = _loss_and_parts(loss_fn(logits, y, x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step_hook is not None:
                step_hook(model)
            steps += 1
            loss_sum += float(loss.detach()) * len(idx)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) * len(idx)
            n_seen += len(idx)
            correct += int((logits.argmax(1) == y).sum())
            bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}")
        row = {"epoch": epoch + 1, "step": steps, "lr": opt.param_groups[0]["lr"],
               "train_loss": loss_sum / max(n_seen, 1), "train_accuracy": correct / max(n_seen, 1)}
        row.update({f"train_{k}": v / max(n_seen, 1) for k, v in parts_sum.items()})
        if val_ds is not None:
            ev = evaluate(model, val_ds, device=device, forward=val_forward)
            row.update(val_loss=ev["loss"], val_accuracy=ev["accuracy"])
        if epoch_metrics is not None:
            row.update(epoch_metrics(model))
        history.append(row)
        if progress and rank == 0:
            msg = f"{desc} epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            if "val_accuracy" in row:
                msg += f" | val acc {row['val_accuracy']:.4f}"
            tqdm.write(msg)
        if ckpt is not None and rank == 0:
            opt_tensors, opt_meta = _optimizer_tensors(opt)
            tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | opt_tensors
            save_checkpoint(
                ckpt, tensors, seed=seed,
                config={"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, **(config or {})},
                extra={"epoch": epoch, "history": history, "optimizer": opt_meta, "world_size": ws},
            )
            atomic_write_json(out / "history.json", history)
        if val_ds is not None and (patience is not None or keep_best):
            if row["val_accuracy"] > best_acc:
                best_acc, since_best = row["val_accuracy"], 0
                if keep_best:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
            if patience is not None and since_best >= patience:
                if progress and rank == 0:
                    tqdm.write(f"{desc}: stopping early after epoch {epoch + 1} (val accuracy flat for {patience} epochs)")
                break
        if max_steps is not None and steps >= max_steps:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    final = evaluate(model, val_ds, device=device, forward=val_forward) if val_ds is not None else {}
    return TrainResult(history=history, final=final, checkpoint=ckpt)


def random_shift(x: torch.Tensor, max_shift: int, seed: tuple, global_index: np.ndarray) -> torch.Tensor:
    """Translate each image (N, C, H, W) by integer offsets in [-max_shift, max_shift], zero fill.

    Offsets come from a generator seeded by ``seed`` and indexed by each sample's position in
    the global batch, so data-parallel ranks shift their samples exactly as one process would.
    """
    rng = np.random.default_rng(list(seed))
    n_global = int(global_index.max()) + 1 if len(global_index) else 0
    offs = rng.integers(-max_shift, max_shift + 1, size=(n_global, 2))[global_index]
    pad = F.pad(x, (max_shift,) * 4)
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(offs):
        out[i] = pad[i, :, max_shift + dy : max_shift + dy + h, max_shift + dx : max_shift + dx + w]
    return out


def _materialise(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors (x, y) of a dataset: a pair ``(x, y)`` as given, ``.x``/``.y`` when present, else the stacked items."""
    if isinstance(ds, (tuple, list)) and len(ds) == 2 and all(torch.is_tensor(t) for t in ds):
        return ds[0], ds[1]
    if hasattr(ds, "x") and hasattr(ds, "y"):
        return ds.x, ds.y
    xs, ys = zip(*[ds[i] for i in range(len(ds))])
    return torch.stack(xs), torch.as_tensor(ys)


def default_cache_dir() -> Path:
    """Where trained teachers are cached: ``$NEUROHW_CACHE`` or ``~/.cache/neurohw``."""
    return Path(os.environ.get("NEUROHW_CACHE", Path.home() / ".cache" / "neurohw"))


def get_teacher(
    name: str = "lenet5",
    dataset: str = "mnist5k",
    epochs: int = 12,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> nn.Module:
    """A trained teacher, loaded from the cache or trained (and cached) on first use.

    Trained with Adam (lr 2e-3, cosine schedule), batch 64, random shifts of up to 2 pixels.
    Trained on the train split only (validation monitored each epoch; test read once, at
    the end). The cache key is (name, dataset, train size, epochs, seed); the file is
    ``<cache>/teachers/<name>-<dataset>-n<train size>-e<epochs>-s<seed>.safetensors``. Returns
    the model in eval mode on ``device`` (CPU by default).
    """
    from neurohw.data import load_dataset
    from neurohw.io import load_into
    from neurohw.models import build_teacher

    split = load_dataset(dataset)
    seed_everything(seed)
    model = build_teacher(name, num_classes=split.num_classes, in_channels=split.input_shape[0])
    stem = f"{name}-{dataset}-n{len(split.x_train)}-e{epochs}-s{seed}"
    path = Path(cache_dir or default_cache_dir()) / "teachers" / f"{stem}.safetensors"
    if path.exists():
        load_into(model, path)
    else:
        res = fit(model, split.train(), split.val(), epochs=epochs, lr=2e-3, seed=seed, device="cpu",
                  progress=progress, augment_shift=2)
        save_checkpoint(path, model, seed=seed, config={"name": name, "dataset": dataset, "epochs": epochs},
                        extra={"history": res.history, "val_accuracy": res.final["accuracy"],
                               "test_accuracy": evaluate(model, split.test())["accuracy"]})
    dev = torch.device(device) if device else torch.device("cpu")
    return model.to(dev).eval()


def resolve_teacher(spec: str | os.PathLike | None, *, dataset: str = "mnist5k", epochs: int = 12, seed: int = 0,
                    progress: bool = False, who: str = "neurohw") -> nn.Module:
    """The teacher a command was given: ``spec`` is a teacher artifact (a ``.safetensors`` file, or
    the folder ``neurohw train-teacher --out`` wrote), loaded in eval mode; a teacher name (or None
    for ``lenet5``) means the cached default of :func:`get_teacher`, announced on stderr."""
    import sys

    from neurohw.io import load_artifact
    from neurohw.models import TEACHERS

    if spec is not None and str(spec) not in TEACHERS:
        return load_artifact(spec, kinds=("teacher",))
    name = str(spec or "lenet5")
    print(f"{who}: no --teacher PATH given; using the cached default teacher {name} ({dataset}, {epochs} epochs, "
          f"seed {seed}) from {default_cache_dir() / 'teachers'} (trained there on first use)", file=sys.stderr)
    return get_teacher(name, dataset=dataset, epochs=epochs, seed=seed, progress=progress)


def _check_fits(model, name: str, data: str, input_shape) -> None:
    """Run one zero image (``input_shape`` = (C, H, W)) through ``model`` before training, so a
    model that cannot take the data set's image size fails now with a message naming both."""
    from neurohw.errors import UsageError

    try:
        with torch.no_grad():
            model.eval()(torch.zeros((1, *input_shape)))
    except RuntimeError as exc:
        raise UsageError(f"--data {data}", f"images {tuple(input_shape)} do not fit teacher {name!r} ({' '.join(str(exc).split())})") from None
    finally:
        model.train()


def train_teacher_cli(args) -> int:
    """``neurohw train-teacher``: train, checkpoint every epoch, print test accuracy."""
    from neurohw.data import load_dataset
    from neurohw.models import build_teacher

    split = load_dataset(args.data)
    if args.limit:
        split = split.subset(args.limit)
    seed_everything(args.seed)  # the initial weights depend only on the seed (same on every rank)
    model = build_teacher(args.model, num_classes=split.num_classes, in_channels=split.input_shape[0])
    _check_fits(model, args.model, args.data, split.input_shape)
    res = fit(  # validation is monitored each epoch; the test split is read once, below
        model, split.train(), split.val(), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, out=args.out, resume=args.resume, augment_shift=args.augment_shift,
        config={"model": args.model, "data": args.data, "limit": args.limit},
    )
    ws, rank = _dist_info()
    if rank == 0:
        ev = evaluate(model, split.test())
        from neurohw.models import save_teacher

        save_teacher(Path(args.out) / "model.safetensors", model, seed=args.seed,
                     config={"data": args.data, "epochs": args.epochs, "world_size": ws},
                     extra={"test_accuracy": ev["accuracy"]})
        atomic_write_json(Path(args.out) / "metrics.json", {"test_accuracy": ev["accuracy"], "test_loss": ev["loss"], "confusion": ev["confusion"]})
        print(f"test accuracy {ev['accuracy']:.4f} ({ev['n']} examples); checkpoint {Path(args.out) / 'model.safetensors'}")
    if ws > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0
