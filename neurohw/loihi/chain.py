"""Dataset → input spikes → a netx network → predictions and accuracy (the CLI chain).

* :func:`encode_images` — images (N, C, H, W) in [0, 1] → input spikes (N, T + pad, C, H, W)
  with the same encoders training uses (``if``: the BWSNN's integrate-and-fire code;
  ``rate``: Bernoulli; ``latency``: time to first spike; ``direct``: the 8-bit pixel value as
  a graded payload every step, for nets with ``input_message_bits >= 8``). ``pad`` zero steps
  at the end let the last input reach the read-out through the network's per-layer latency.
* :func:`deploy_info` — what a trained model's export recorded (data set, encoding, steps,
  read-out) in the netx file's provenance, or ``{}``.
* :func:`class_scores` — the read-out layer's class scores from a simulation: ``current``
  (Σ_t of the read-out's synaptic current, what the BWSNN reads: its read-out neurons never
  spike), ``voltage`` (Σ_t of the membrane voltage) or ``spikes`` (spike counts).
* :func:`validate_spikes` — refuse input spike arrays with NaN/Inf, negative or
  non-integer values, payloads too wide for the net, or no steps / no samples.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurohw.errors import UsageError

ENCODINGS = ("if", "rate", "latency", "direct")
READOUTS = ("auto", "current", "voltage", "spikes")


def encode_images(x: torch.Tensor, steps: int, encoding: str, *, seed: int = 0, pad: int = 0) -> np.ndarray:
    """Images (N, ...) in [0, 1] → uint8 spikes (N, steps + pad, ...); time is axis 1.

    ``direct`` gives graded payloads ``round(255·x)`` at every step; the others give 0/1.
    """
    from neurohw.data.encoders import direct_encode, if_encode, latency_encode, rate_encode

    if steps < 1 or pad < 0:
        raise UsageError("--steps", f"need steps >= 1 and pad >= 0, got {steps} and {pad}")
    if encoding == "if":
        s = if_encode(x, steps)
    elif encoding == "rate":
        s = rate_encode(x, steps, generator=torch.Generator().manual_seed(int(seed)))
    elif encoding == "latency":
        s = latency_encode(x, steps)
    elif encoding == "direct":
        s = direct_encode(x, steps)
    else:
        raise UsageError("--encoding", f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
    s = s.to(torch.uint8)
    if pad:
        s = torch.cat([s, torch.zeros(s.shape[0], pad, *s.shape[2:], dtype=s.dtype)], 1)
    return s.numpy()


def deploy_info(path: str | Path) -> dict[str, Any]:
    """The ``deploy`` entry of a netx file's provenance config (written by ``snn export``), or ``{}``.

    Keys: ``data`` (data set name), ``encoding``, ``steps`` (model time steps), ``pad``
    (extra zero steps for the latency), ``readout`` (``current``), ``window_start`` (first
    step of the read-out window), ``current_shift`` (right shift of the summed current).
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f["neurohw/provenance"][()] if "neurohw/provenance" in f else None
    except OSError:
        return {}
    if raw is None:
        return {}
    try:
        prov = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    conf = prov.get("config") if isinstance(prov, dict) else None
    info = conf.get("deploy") if isinstance(conf, dict) else None
    return _check_deploy(path, dict(info)) if isinstance(info, dict) else {}


#: The deploy fields a netx file may record: (type, lowest allowed value, highest allowed value).
_DEPLOY_FIELDS = {"steps": (int, 1, 100_000), "pad": (int, 0, 100_000), "window_start": (int, 0, 200_000),
                  "current_shift": (int, 0, 62), "data": (str, None, None), "encoding": (str, None, None),
                  "readout": (str, None, None)}


def _check_deploy(path, info: dict) -> dict:
    """The recorded deploy fields, each of its type and range, else ``UsageError`` naming the file and field.

    A field recorded as ``null`` counts as not recorded (it is dropped, so callers' defaults apply)."""
    info = {k: v for k, v in info.items() if v is not None}
    for k, (kind, lo, hi) in _DEPLOY_FIELDS.items():
        if k not in info:
            continue
        v = info[k]
        if kind is int and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            raise UsageError(f"{path}", f"neurohw/provenance config.deploy.{k}: must be an integer in [{lo}, {hi}], got {v!r:.40}")
        if kind is str and not isinstance(v, str):
            raise UsageError(f"{path}", f"neurohw/provenance config.deploy.{k}: must be a string, got {v!r:.40}")
    return info


def resolve_readout(net, readout: str, info: dict) -> str:
    """``auto`` → the export's read-out, else ``current`` for a non-spiking last layer, else ``spikes``."""
    from .fixedpoint import VTH_MAX

    if readout != "auto":
        return readout
    if info.get("readout") in READOUTS[1:]:
        return info["readout"]
    return "current" if int(net.layers[-1].neuron.vth) >= VTH_MAX else "spikes"


def class_scores(result, readout: str, *, window_start: int = 0, steps: int | None = None,
                 current_shift: int = 0) -> torch.Tensor:
    """(batch, classes) scores of the last layer of a ``SimResult`` (probe the last layer for
    ``current``/``voltage``). The window is steps ``[window_start, window_start + steps)``."""
    last = len(result.spikes) - 1
    stop = None if steps is None else window_start + steps
    if readout == "spikes":
        trace = result.spikes[last].to(torch.int64)
    else:
        store = result.current if readout == "current" else result.voltage
        if last not in store:
            raise ValueError(f"read-out {readout!r} needs the last layer probed")
        trace = torch.as_tensor(np.asarray(store[last].cpu() if hasattr(store[last], "cpu") else store[last])).to(torch.int64)
    win = trace[:, window_start:stop]
    scores = win.flatten(2).sum(1)
    return scores >> current_shift if current_shift else scores


def validate_spikes(x: np.ndarray, net, where: str) -> np.ndarray:
    """Check an input spike array against ``net``; returns it as int64.

    Refused: NaN/Inf, non-integer or negative values, values above 1 for a binary-input net
    or above ``2**input_message_bits - 1`` for a graded one, zero steps or zero samples.
    """
    if x.dtype.kind not in "biuf":
        raise UsageError(where, f"dtype {x.dtype} is not numeric")
    if x.size == 0 or 0 in x.shape:
        raise UsageError(where, f"empty spike array {tuple(x.shape)} (no steps or no samples)")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise UsageError(where, "spike values must be finite (found NaN or Inf)")
        if not np.array_equal(x, np.round(x)):
            raise UsageError(where, "spike values must be integers")
    bits = int(net.input_message_bits)
    hi = 1 if bits == 0 else 2**bits - 1
    lo_v, hi_v = x.min(), x.max()
    if lo_v < 0 or hi_v > hi:
        kind = "binary input (0/1)" if bits == 0 else f"{bits}-bit graded input (0..{hi})"
        raise UsageError(where, f"spike values must lie in [0, {hi}] for this net's {kind}; "
                                f"found [{lo_v:g}, {hi_v:g}]")
    return x.astype(np.int64)


def load_labels(path: Path, n: int, num_classes: int | None) -> np.ndarray:
    """Integer labels (n,) from a ``.npy`` file, checked against the sample count and class count."""
    try:
        y = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(str(path), f"not a readable .npy array ({exc})") from None
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.ndim != 1:
        raise UsageError(str(path), f"labels must be a 1-D integer array, got {getattr(y, 'dtype', type(y))} "
                                    f"{getattr(y, 'shape', '')}")
    if len(y) != n:
        raise UsageError(str(path), f"{len(y)} labels for {n} samples")
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise UsageError(str(path), f"labels must lie in [0, {num_classes - 1}], found [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def format_predictions(pred: torch.Tensor, labels: np.ndarray | None, show: int = 20) -> str:
    """One line: the first ``show`` predictions and, with labels, the accuracy."""
    p = pred.tolist()
    text = f"predictions ({len(p)} samples): {' '.join(map(str, p[:show]))}{' …' if len(p) > show else ''}"
    if labels is not None:
        acc = float((pred.numpy() == labels).mean()) if len(p) else math.nan
        text += f"; accuracy {100 * acc:.2f} % ({int((pred.numpy() == labels).sum())}/{len(p)})"
    return text
