"""Logic-gate network models: a dense LGN and a small LogicTreeNet, and their config round trip.

A :class:`LogicNet` is ``encoder`` (thermometer, fixed) → ``body`` (logic layers, soft bits)
→ :class:`~logic.layers.GroupSum`. ``forward(x)`` is soft in training mode and hard
(argmax gates) in eval mode unless ``hard=`` says otherwise. :meth:`LogicNet.to_netlist`
lowers the hardened body into a :class:`~logic.netlist.Netlist` whose inputs are the
flattened encoder bits (:meth:`LogicNet.encode_bits`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from logic.layers import Flatten, GroupSum, LogicLayer, LogicTreeConv2d, OrPool2d, Thermometer
from logic.netlist import Netlist, NetlistBuilder


class LogicNet(nn.Module):
    """Encoder → logic body → GroupSum. ``config`` (a JSON-able dict) rebuilds it with :func:`build_model`."""

    artifact_kind = "logic-net"  # neurohw.io.save_artifact

    def __init__(self, encoder: nn.Module, body: list[nn.Module], head: GroupSum, input_shape: tuple[int, ...],
                 config: dict | None = None):
        super().__init__()
        self.encoder = encoder
        self.body = nn.ModuleList(body)
        self.head = head
        self.input_shape = tuple(input_shape)
        self.config = dict(config or {})

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, *input_shape) in [0, 1] → encoded 0/1 floats (N, C·levels, ...)."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"LogicNet: expected inputs of shape (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        return self.encoder(x)

    def encode_bits(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened boolean input bits of the netlist: (N, n_inputs) bool."""
        return self.encode(x).flatten(1) != 0

    def features(self, h: torch.Tensor, hard: bool = False) -> torch.Tensor:
        """Body on encoded bits: (N, C·levels, ...) → (N, n_outputs) soft or hard bits."""
        for m in self.body:
            h = m(h, hard=hard)
        return h

    def forward(self, x: torch.Tensor, hard: bool | None = None) -> torch.Tensor:
        """Class scores (N, classes) = GroupSum / τ. ``hard`` defaults to ``not self.training``."""
        hard = (not self.training) if hard is None else hard
        return self.head(self.features(self.encode(x), hard=hard))

    @torch.no_grad()
    def hard_counts(self, x: torch.Tensor) -> torch.Tensor:
        """Integer class counts of the hardened float model: (N, classes) int64."""
        bits = self.features(self.encode(x), hard=True)
        return bits.reshape(bits.shape[0], self.head.num_classes, -1).sum(-1).round().long()

    def n_neurons(self) -> int:
        """Gates of the model as built (before simplification; OR-pool gates included)."""
        return self.to_netlist(simplified=False).n_gates

    def gate_ids(self) -> torch.Tensor:
        """Argmax gate ids of all learned gates, concatenated (for histograms)."""
        return torch.cat([m.logits.argmax(-1).flatten() for m in self.body if hasattr(m, "logits")])

    @torch.no_grad()
    def to_netlist(self, simplified: bool = True) -> Netlist:
        """The hardened network as a :class:`Netlist` (simplified by the documented counting rule by default)."""
        from logic.netlist import simplify

        was_training = self.training
        self.eval()
        enc_shape = tuple(self.encode(torch.zeros(1, *self.input_shape, device=self._device())).shape[1:])
        self.train(was_training)
        n_in = math.prod(enc_shape)
        builder = NetlistBuilder(n_in)
        sig = np.arange(n_in, dtype=np.int64).reshape(enc_shape)
        for m in self.body:
            sig = m.to_netlist(builder, sig)
        net = builder.build(np.asarray(sig).reshape(-1), self.head.num_classes)
        return simplify(net) if simplified else net

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


def dense_lgn(input_shape=(1, 28, 28), levels: int = 2, widths=(4000, 4000, 4000, 4000), num_classes: int = 10,
              tau: float = 10.0, connections: str = "random", init: str = "gaussian", grad_factor: float = 1.0,
              seed: int = 0) -> LogicNet:
    """Dense LGN: thermometer(levels) → flatten → dense logic layers → GroupSum(τ)."""
    cfg = dict(kind="dense", input_shape=list(input_shape), levels=levels, widths=list(widths), num_classes=num_classes,
               tau=tau, connections=connections, init=init, grad_factor=grad_factor, seed=seed)
    if widths[-1] % num_classes:
        raise ValueError(f"dense_lgn: last width {widths[-1]} must be a multiple of num_classes={num_classes}")
    n = levels * math.prod(input_shape)
    body: list[nn.Module] = [Flatten()]
    for i, w in enumerate(widths):
        body.append(LogicLayer(n, w, connections=connections, init=init, grad_factor=grad_factor, seed=seed * 1000 + i))
        n = w
    return LogicNet(Thermometer(levels), body, GroupSum(num_classes, tau), input_shape, cfg)


def logic_tree_net(input_shape=(1, 28, 28), levels: int = 3, k: int = 8, dense=(2000, 1000), num_classes: int = 10,
                   tau: float = 10.0, init: str = "residual", grad_factor: float = 1.0, depth: int = 3,
                   seed: int = 0, residual_logit: float = 5.0) -> LogicNet:
    """Small LogicTreeNet: three [tree conv → OR pool] blocks with k, 4k, 8k channels → dense → GroupSum.

    Shapes for MNIST (28×28, padding 1): 28→14→7→3, so the flattened features are 8k·3·3.
    ``init`` applies to every logic layer (``residual`` — pass-through logit ``residual_logit`` — or
    ``gaussian``).
    """
    cfg = dict(kind="tree", input_shape=list(input_shape), levels=levels, k=k, dense=list(dense), num_classes=num_classes,
               tau=tau, init=init, grad_factor=grad_factor, depth=depth, seed=seed, residual_logit=residual_logit)
    c, h, w = input_shape
    chans = [c * levels, k, 4 * k, 8 * k]
    body: list[nn.Module] = []
    for i in range(3):
        body += [LogicTreeConv2d(chans[i], chans[i + 1], depth=depth, init=init, grad_factor=grad_factor,
                                 seed=seed * 1000 + i, residual_logit=residual_logit), OrPool2d(2)]
        h, w = h // 2, w // 2
    body.append(Flatten())
    n = chans[-1] * h * w
    for i, d in enumerate(dense):
        body.append(LogicLayer(n, d, init=init, grad_factor=grad_factor, seed=seed * 1000 + 10 + i,
                               residual_logit=residual_logit))
        n = d
    if n % num_classes:
        raise ValueError(f"logic_tree_net: last width {n} must be a multiple of num_classes={num_classes}")
    return LogicNet(Thermometer(levels), body, GroupSum(num_classes, tau), input_shape, cfg)


def build_model(config: dict) -> LogicNet:
    """Rebuild a model from its ``config`` (e.g. read from a checkpoint sidecar)."""
    cfg = dict(config)
    kind = cfg.pop("kind", None)
    cfg["input_shape"] = tuple(cfg["input_shape"])
    if kind == "dense":
        cfg["widths"] = tuple(cfg["widths"])
        return dense_lgn(**cfg)
    if kind == "tree":
        cfg["dense"] = tuple(cfg["dense"])
        return logic_tree_net(**cfg)
    raise ValueError(f"model config: unknown kind {kind!r} (expected 'dense' or 'tree')")


def save_model(model: LogicNet, path: str | Path, extra: dict | None = None) -> Path:
    """Safetensors checkpoint (logits and wiring buffers) with the model config in the JSON sidecar."""
    from neurohw.io import save_checkpoint

    return save_checkpoint(path, model, config={"logic_model": model.config}, seed=model.config.get("seed"), extra=extra)


def load_model(path: str | Path) -> LogicNet:
    """Load a checkpoint written by :func:`save_model` (wiring restored from the file, not re-drawn)."""
    from neurohw.io import CheckpointError, load_checkpoint

    tensors, meta = load_checkpoint(path)
    cfg = (meta.get("config") or {}).get("logic_model")
    if not cfg:
        raise CheckpointError(f"{path}: sidecar has no config.logic_model — not a logic model checkpoint")
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model
