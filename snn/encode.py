"""Input encoders used by the BWSNN (time is axis 1).

``"if"`` (default): a deterministic integrate-and-fire code on 8-bit pixels. With
``X = round(255·x)``, step t (0-based) spikes iff
``⌊((t+1)·X + 127)/255⌋ − ⌊(t·X + 127)/255⌋ = 1`` — exactly ``round(T·X/255)`` spikes
spread evenly over T steps, computed in integers (identical on every device).
``"rate"``: Bernoulli rate code from :func:`neurohw.data.rate_encode` (seeded generator).
``"direct"``: graded 8-bit payloads ``X = round(255·x)`` (0..255) at every step — the
messages a Loihi network with ``input_message_bits = 8`` receives. The first layer then
works in payload units (its threshold is ``255·θ``, see :data:`INPUT_SCALE` and
:class:`snn.model.BWSNN`), so training and the deployed integer network compute the same sums.
"""
from __future__ import annotations

import torch

from neurohw.data.encoders import direct_encode, if_encode, rate_encode  # noqa: F401  (if_encode re-exported)

ENCODINGS = ("if", "rate", "direct")

#: Input value that stands for pixel 1.0 (the first layer's threshold is scaled by it).
INPUT_SCALE = {"if": 1, "rate": 1, "direct": 255}

#: Payload bits a deployed network's input needs (``LoihiNetwork.input_message_bits``; 0 = binary spikes).
INPUT_MESSAGE_BITS = {"if": 0, "rate": 0, "direct": 8}


def encode(x: torch.Tensor, steps: int, encoding: str = "if", generator: torch.Generator | None = None) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] → input (N, T, C, H, W), float32: 0/1 spikes, or for
    ``direct`` the integer payloads 0..255."""
    if encoding == "if":
        return if_encode(x, steps)
    if encoding == "rate":
        return rate_encode(x, steps, generator=generator)
    if encoding == "direct":
        return direct_encode(x, steps)
    raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
