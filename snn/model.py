"""The binary-weight SNN (BWSNN) and its SEI variant, built from a :class:`BWSNNConfig`.

Architectures (input 1×28×28 spikes, ``c1, c2 = channels``):

``conv`` (default)::

    L0  conv 1→c1   3×3 s2 p1   int8           → c1×14×14
    L1  conv c1→c1  3×3 s1 p1   binary  [+ identity shortcut]
    L2  conv c1→c2  3×3 s2 p1   binary  [+ pool shortcut]  → c2×7×7
    L3  conv c2→c2  3×3 s1 p1   binary  [+ identity shortcut]
    readout dense c2·49→10      int8, non-spiking, summed over time

``mlp``: ``784 → h (int8) → h (binary, [+id]) → h (binary, [+id]) → 10 (int8 readout)``.

``multi_shortcut=True`` puts a shortcut around *every* binary synapse (Bi-Real style; the
SEI-BWSNN "multiple shortcuts"). ``int8_layers`` names the layers kept at 8 bits (default
the first and the readout); ``binary=False`` gives the float-weight SNN baseline.
With ``encoding="direct"`` the input is graded: integer payloads ``round(255·x)`` every step
(:mod:`snn.encode`), the first layer's threshold is ``255·θ`` (payload units, surrogate
rescaled) and its weights are clipped to :func:`graded_weight_limit` so that its 24-bit current
cannot wrap; the deployed network then has ``input_message_bits = 8`` and computes the same
integer sums.
The logits are the time average of the readout's synaptic input (METHODS.md: student
logits = time-averaged SNN outputs).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from neurohw.loihi.fixedpoint import ACT_SHIFT, DECAY_UNITY, MAX_UV, WEIGHT_MAX, WEIGHT_SCALE, WEIGHT_STEP, current_decay_to_du
from snn.encode import INPUT_SCALE, encode
from snn.layers import Shortcut, SpikingLayer, Synapse
from snn.neurons import CubaLIF


@dataclass
class BWSNNConfig:
    """Everything that defines a BWSNN and how it is trained (JSON-able)."""

    arch: str = "conv"                 #: "conv" or "mlp"
    channels: tuple = (16, 32)         #: conv (c1, c2); mlp uses channels[0] as hidden width
    steps: int = 4                     #: T time steps per inference
    encoding: str = "if"               #: input: "if" (deterministic spikes), "rate" or "direct" (graded 8-bit)
    binary: bool = True                #: False → float weights everywhere (float SNN baseline)
    int8_layers: tuple = ("first", "last")  #: layers kept at 8 bits: "first", "last", or indices
    alpha: str = "mean"                #: binary scale: "mean" (|w| mean per channel) or "learned"
    multi_shortcut: bool = False       #: shortcut around every binary synapse
    shortcut_weight: float = 1.0       #: γ, snapped to the weight grid
    current_decay: float = 1.0         #: (du+1)/4096; 1.0 = no synaptic filter
    voltage_decay: float = 0.25        #: dv/4096
    threshold: float = 1.0             #: on the 1/64 grid
    surrogate: str = "atan"            #: "atan", "triangle", "fast_sigmoid"
    exact: bool = True                 #: Loihi-exact rounding in the float forward pass
    detach_reset: bool = True
    # training
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    kd: bool = False                   #: distil from an ANN teacher
    kd_lambda: float = 0.5             #: weight of the KD term
    kd_tau: float = 4.0                #: KD temperature
    hardening_epochs: int = 0          #: ∂B-style soft→hard weight schedule over the first epochs
    augment_shift: int = 0             #: random image shifts of up to this many pixels (0 = off)
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["int8_layers"] = list(self.int8_layers)
        return d

    @classmethod
    def quick(cls, **overrides) -> "BWSNNConfig":
        """A seconds-scale preset for tests and ``--quick``: MLP with 64 hidden neurons, T = 4, one epoch."""
        return cls(**{"arch": "mlp", "channels": (64,), "steps": 4, "epochs": 1, "lr": 2e-3, **overrides})

    @classmethod
    def from_dict(cls, d: dict, where: str = "BWSNNConfig") -> "BWSNNConfig":
        """Build from a JSON dict; types, ranges and choices are checked first (errors name ``where`` and the field)."""
        from neurohw import config as C
        from snn.encode import ENCODINGS
        from snn.surrogate import SURROGATES

        C.check_fields(cls, d, where, ranges=CONFIG_RANGES, item_ranges={"channels": C.COUNT}, choices={
            "arch": ("conv", "mlp"), "encoding": ENCODINGS, "alpha": ("mean", "learned"), "surrogate": SURROGATES})
        d = dict(d)
        need = 2 if d.get("arch", cls.arch) == "conv" else 1
        if "channels" in d and len(d["channels"]) < need:
            from neurohw.errors import UsageError

            raise UsageError(f"{where}: channels", f"a {d.get('arch', cls.arch)} net needs {need} channel count(s), "
                                                   f"got {list(d['channels'])!r:.40}")
        for k in ("channels", "int8_layers"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


ACT_SHIFT_UNIT = 1 << ACT_SHIFT  #: the synaptic input enters the current shifted left by 6

#: Largest BWSNN built from a config: synaptic weights, all layers (2**26 ≈ 67 M, 256 MiB as float32).
MAX_WEIGHTS = 2**26
#: Largest number of time steps a config may ask for.
MAX_STEPS = 100_000


def check_net_size(cfg: "BWSNNConfig", in_shape: tuple[int, ...], where: str) -> None:
    """Refuse a config whose layers would hold more than :data:`MAX_WEIGHTS` weights for
    ``in_shape`` (C, H, W) images, before any allocation (``channels`` 10**12 would ask for
    terabytes); the error names ``where`` and ``channels``."""
    from neurohw.errors import UsageError

    n = sum(l["cin"] * l["cout"] * (9 if l["kind"] == "conv" else 1) for l in _layer_plan(cfg, tuple(in_shape)))
    if n > MAX_WEIGHTS:
        raise UsageError(f"{where}: channels", f"{list(cfg.channels)} gives a {cfg.arch} net with more than "
                                               f"{MAX_WEIGHTS:,} weights ({n:.3g})")


def _config_ranges() -> dict:
    from neurohw import config as C

    return {"steps": (f"an integer in [1, {MAX_STEPS}]", lambda v: 1 <= v <= MAX_STEPS), "epochs": C.COUNT, "batch_size": C.COUNT, "lr": C.POSITIVE, "current_decay": C.FRACTION,
            "voltage_decay": C.UNIT, "threshold": C.POSITIVE, "kd_lambda": C.UNIT, "kd_tau": C.POSITIVE,
            "hardening_epochs": C.NONNEG, "augment_shift": C.NONNEG, "seed": C.NONNEG}


#: Ranges of the numeric :class:`BWSNNConfig` fields (checked by ``from_dict``).
CONFIG_RANGES = _config_ranges()


def _layer_plan(cfg: BWSNNConfig, in_shape: tuple[int, ...]) -> list[dict]:
    """Synaptic layers as dicts (kind, sizes, geometry, shortcut kind), readout last."""
    if cfg.arch == "conv":
        c_in = in_shape[0]
        c1, c2 = int(cfg.channels[0]), int(cfg.channels[1])
        h, w = in_shape[1], in_shape[2]
        h1, w1 = (h + 1) // 2, (w + 1) // 2
        h2, w2 = (h1 + 1) // 2, (w1 + 1) // 2
        return [
            dict(kind="conv", cin=c_in, cout=c1, stride=2, shortcut=None),
            dict(kind="conv", cin=c1, cout=c1, stride=1, shortcut="identity"),
            dict(kind="conv", cin=c1, cout=c2, stride=2, shortcut="pool" if (c2 % c1 == 0 and h1 % 2 == 0 and w1 % 2 == 0) else None),
            dict(kind="conv", cin=c2, cout=c2, stride=1, shortcut="identity"),
            dict(kind="dense", cin=c2 * h2 * w2, cout=10, shortcut=None, readout=True),
        ]
    if cfg.arch == "mlp":
        n_in = 1
        for s in in_shape:
            n_in *= s
        h = int(cfg.channels[0])
        return [
            dict(kind="dense", cin=n_in, cout=h, shortcut=None),
            dict(kind="dense", cin=h, cout=h, shortcut="identity"),
            dict(kind="dense", cin=h, cout=h, shortcut="identity"),
            dict(kind="dense", cin=h, cout=10, shortcut=None, readout=True),
        ]
    raise ValueError(f"BWSNNConfig.arch: unknown architecture {cfg.arch!r}; choose 'conv' or 'mlp'")


def current_gain(du: int, steps: int) -> float:
    """Largest ``|u| / (64·|a|)`` of a Loihi CUBA current over ``steps`` steps for a per-step
    synaptic input bounded by ``|a|`` (weight units): ``min(T, 1/(1 − keep_u))``, since
    truncated decays only shrink ``|u|``."""
    keep = (DECAY_UNITY - du - 1) / DECAY_UNITY
    return min(float(steps), 1.0 / (1.0 - keep))


def graded_weight_limit(fan_in: int, steps: int, current_decay: float, scale: int = 255) -> float:
    """Largest |weight| (float units, an even multiple of 1/64) of a first layer fed graded
    payloads 0..``scale`` such that its 24-bit current never wraps: ``64·scale·fan_in·|w|·G
    < 2^23`` with ``G`` = :func:`current_gain`. Raises ``ValueError`` when no grid weight fits."""
    g = current_gain(current_decay_to_du(current_decay), steps)
    m = int((MAX_UV - 1) // (ACT_SHIFT_UNIT * scale * fan_in * g))
    m -= m % WEIGHT_STEP
    if m < WEIGHT_STEP:
        raise ValueError(f"graded input: a first layer with fan-in {fan_in} cannot hold {scale} × a grid weight "
                         f"in Loihi's 24-bit current (current gain {g:g}); use fewer input channels or current_decay 1")
    return min(m, WEIGHT_MAX) / WEIGHT_SCALE


def _is_int8(cfg: BWSNNConfig, i: int, n: int) -> bool:
    marks = set(cfg.int8_layers)
    return (i == 0 and "first" in marks) or (i == n - 1 and "last" in marks) or i in marks or str(i) in marks


class BWSNN(nn.Module):
    """Binary-weight spiking network. ``forward(images or spikes) → logits (N, 10)``.

    Accepts images (N, C, H, W) in [0, 1] (encoded with ``cfg.encoding``) or spikes
    (N, T, C, H, W). After each forward, ``last_spikes`` holds the spike count of every
    spiking layer per sample, (N, L) — the source of "spikes per inference".
    """

    artifact_kind = "bwsnn"  # neurohw.io.save_artifact

    def __init__(self, cfg: BWSNNConfig | None = None, in_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10):
        super().__init__()
        self.cfg = cfg = cfg or BWSNNConfig()
        self.in_shape = tuple(in_shape)
        plan = _layer_plan(cfg, self.in_shape)
        plan[-1]["cout"] = num_classes
        layers = []
        n = len(plan)
        for i, p in enumerate(plan):
            if not cfg.binary:
                prec = "float"
            else:
                prec = "int8" if _is_int8(cfg, i, n) else "binary"
            scale = INPUT_SCALE.get(cfg.encoding, 1) if i == 0 else 1
            limit = None
            if scale > 1:
                fan_in = p["cin"] * (9 if p["kind"] == "conv" else 1)
                limit = graded_weight_limit(fan_in, cfg.steps, cfg.current_decay, scale)
            syn = Synapse(p["kind"], p["cin"], p["cout"], kernel=3, stride=p.get("stride", 1), padding=1,
                          precision=prec, alpha=cfg.alpha, name=f"layer{i}", max_abs=limit)
            if p.get("readout"):
                self.readout = syn
                continue
            sc = None
            if cfg.multi_shortcut and prec == "binary" and p["shortcut"]:
                sc = Shortcut(p["kind"], p["cin"], p["cout"], cfg.shortcut_weight, pool=p["shortcut"] == "pool")
            neuron = CubaLIF(cfg.current_decay, cfg.voltage_decay, cfg.threshold, cfg.surrogate,
                             exact=cfg.exact, detach_reset=cfg.detach_reset, input_scale=scale)
            layers.append(SpikingLayer(syn, neuron, sc))
        self.layers = nn.ModuleList(layers)
        self.last_spikes: torch.Tensor | None = None

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images → input spikes (N, T, C, H, W); spikes are passed through unchanged."""
        if x.dim() == len(self.in_shape) + 2:
            return x
        if x.dim() != len(self.in_shape) + 1:
            raise ValueError(f"BWSNN: expected images (N, {self.in_shape}) or spikes (N, T, ...), got {tuple(x.shape)}")
        return encode(x, self.cfg.steps, self.cfg.encoding, generator)

    def set_hardness(self, h: float) -> None:
        """∂B-style hardening: 1.0 = binary forward; < 1 blends in the latent weight."""
        for m in self.modules():
            if isinstance(m, Synapse):
                m.hardness = float(h)

    def forward_sequence(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Per-step logits (N, T, classes) and the spike trains of every spiking layer."""
        s = self.encode(x)
        trains = []
        for layer in self.layers:
            s = layer(s)
            trains.append(s)
        return self.readout(s), trains

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits_t, trains = self.forward_sequence(x)
        self.last_spikes = torch.stack([tr.detach().flatten(1).sum(1) for tr in trains], 1)
        return logits_t.mean(1)
