"""Teacher networks (ANNs) used for distillation and as accuracy references.

- :class:`LeNet5` — for 1×28×28 (MNIST): conv5(6) → pool → conv5(16) → pool → 120 → 84 → classes.
- :class:`AlexNetSmall` — a small AlexNet-style CNN for 3×32×32 (CIFAR-10); accepts any
  channel count and input size ≥ 16 (adaptive pooling before the classifier).
- :class:`ResNet8` — a ResNet-8 (three stages of one basic block, widths 16/32/64) for 3×32×32.

All return logits (N, num_classes) for input (N, C, H, W).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max pooling. Input (N, in_channels, 28, 28)."""

    artifact_kind = "teacher"  # neurohw.io.save_artifact

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class AlexNetSmall(nn.Module):
    """Five conv layers (64-192-384-256-256, as AlexNet) scaled for 32×32, then 3 FC layers."""

    artifact_kind = "teacher"  # neurohw.io.save_artifact

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 0.5, dropout: float = 0.5):
        super().__init__()
        c = [max(8, int(round(k * width))) for k in (64, 192, 384, 256, 256)]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c[0], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c[0], c[1], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveMaxPool2d(4),
        )
        hidden = max(64, int(round(1024 * width)))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c[4] * 16, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    """3×3 conv-BN-ReLU-3×3 conv-BN plus identity (or 1×1 projection) shortcut, then ReLU."""


    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet8(nn.Module):
    """ResNet-8: stem conv + 3 basic blocks (16, 32, 64 channels; strides 1, 2, 2) + FC."""

    artifact_kind = "teacher"  # neurohw.io.save_artifact

    def __init__(self, num_classes: int = 10, in_channels: int = 3, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.layer1 = BasicBlock(widths[0], widths[0], 1)
        self.layer2 = BasicBlock(widths[0], widths[1], 2)
        self.layer3 = BasicBlock(widths[1], widths[2], 2)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


TEACHERS = {"lenet5": LeNet5, "alexnet_small": AlexNetSmall, "resnet8": ResNet8}


def build_teacher(name: str, num_classes: int = 10, in_channels: int | None = None) -> nn.Module:
    """A teacher by name (``lenet5``, ``alexnet_small``, ``resnet8``).

    ``in_channels`` defaults to 1 for LeNet-5 and 3 for the CIFAR-sized models.
    """

    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)}")
    cls = TEACHERS[name]
    if in_channels is None:
        in_channels = 1 if name == "lenet5" else 3
    return cls(num_classes=num_classes, in_channels=in_channels)


def teacher_name(model: nn.Module) -> str:
    """The :data:`TEACHERS` name of ``model``'s class."""
    for name, cls in TEACHERS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a neurohw teacher ({', '.join(TEACHERS)})")


def save_teacher(path, model: nn.Module, *, seed: int | None = None, extra: dict | None = None, config: dict | None = None):
    """Write a teacher as an artifact (kind ``teacher``): weights + sidecar naming its class and shape."""
    from neurohw.io import save_checkpoint

    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    conf = {"model": teacher_name(model), "num_classes": last.out_features, "in_channels": first.in_channels, **(config or {})}
    return save_checkpoint(path, model, config=conf, seed=seed, extra=extra, kind="teacher")


def load_teacher(path) -> nn.Module:
    """Rebuild a teacher saved by :func:`save_teacher` (or ``neurohw train-teacher``'s ``model.safetensors``) in eval mode."""
    from neurohw.io import CheckpointError, load_checkpoint, load_into

    _, meta = load_checkpoint(path)
    conf = meta.get("config") or {}
    name = conf.get("model") or conf.get("name")
    if name not in TEACHERS:
        raise CheckpointError(f"{path}: sidecar config.model {name!r} is not a teacher ({', '.join(TEACHERS)})")
    sizes = {"num_classes": conf.get("num_classes", 10), "in_channels": conf.get("in_channels", 1 if name == "lenet5" else 3)}
    for field, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100_000:
            raise CheckpointError(f"{path}: sidecar config.{field} must be an integer in [1, 100000], got {v!r:.40}")
    model = build_teacher(name, **sizes)
    load_into(model, path)
    return model.eval()
