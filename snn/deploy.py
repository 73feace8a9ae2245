"""Deploy mode: the BWSNN as a Loihi network, run with Loihi's exact integer semantics.

* :func:`to_loihi_network` converts a trained :class:`~snn.model.BWSNN` into a
  :class:`neurohw.loihi.LoihiNetwork` — integer weights (binary rows are ``±α_c`` in
  hardware units, 8-bit layers as trained on the 2/64 grid; float-weight models are rounded
  onto that grid), ``du``/``dv``/``vth`` as snapped in training, each shortcut as a second
  synapse group from the previous layer into the same neurons (delay 0: both paths are one
  hop); graded ``direct`` input gives ``input_message_bits = 8`` (checked by
  :func:`check_graded_current`). The readout is a layer of non-spiking compartments (``du = 4095`` → the current is
  exactly this step's synaptic input; ``vth`` maximal) whose *current* is read every step.
* :func:`integer_forward` is snn's own int64 implementation of that network (layer by layer,
  without Lava's per-hop latency, which for a feed-forward network only shifts time);
  :func:`loihi_forward` runs the same network in :func:`neurohw.loihi.simulate` and undoes
  the latency (layer ``i`` answers input step ``t`` at step ``t + i + 1``). The tests check
  the two spike for spike, and both against the float model in eval mode.

Logits in deploy mode are ``Σ_t a_in(t)`` of the readout (int64, = 64·T × the float
model's time-averaged logits), so argmax predictions compare exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from neurohw.loihi.cuba import cuba_sequence, lava_keeps
from neurohw.loihi.fixedpoint import ACT_SHIFT, MAX_UV, VTH_MAX, VTH_SHIFT, quantize_weight, weight_to_int
from snn.layers import Shortcut, Synapse
from snn.encode import INPUT_MESSAGE_BITS
from snn.model import BWSNN, current_gain

READOUT_DU, READOUT_DV, READOUT_VTH = 4095, 0, VTH_MAX


def synapse_int_weight(syn: Synapse) -> torch.Tensor:
    """The synapse's deployed weight as int64 hardware units (float weights are rounded to 8 bits)."""
    with torch.no_grad():
        old = syn.hardness
        syn.hardness = 1.0
        w = syn.effective_weight().detach().cpu()
        syn.hardness = old
        if syn.precision == "float":
            w = quantize_weight(w)
    return weight_to_int(w)


def shortcut_int_weight(sc: Shortcut) -> torch.Tensor:
    return weight_to_int(sc.weight.detach().cpu())


def to_loihi_network(model: BWSNN, name: str = "bwsnn"):
    """The trained model as a :class:`neurohw.loihi.LoihiNetwork` (validated)."""
    from neurohw.loihi import ConvConn, ConvLayer, CubaParams, DenseConn, DenseLayer, LoihiNetwork
    from neurohw.loihi import Shortcut as LShortcut

    layers = []
    for i, layer in enumerate(model.layers):
        syn, neu = layer.synapse, layer.neuron
        w = synapse_int_weight(syn).numpy()
        p = CubaParams(du=neu.du, dv=neu.dv, vth=neu.vth)
        shortcuts = []
        if layer.shortcut is not None:
            sc = layer.shortcut
            ws = shortcut_int_weight(sc).numpy()
            conn = (ConvConn(ws, stride=(sc.stride, sc.stride), padding=(sc.padding, sc.padding))
                    if sc.kind == "conv" else DenseConn(ws))
            shortcuts.append(LShortcut(source=i - 1, conn=conn, delay=0))
        if syn.kind == "conv":
            layers.append(ConvLayer(w, p, stride=(syn.stride, syn.stride), padding=(syn.padding, syn.padding),
                                    name=f"layer{i}", shortcuts=shortcuts))
        else:
            layers.append(DenseLayer(w, p, name=f"layer{i}", shortcuts=shortcuts))
    w = synapse_int_weight(model.readout).numpy()
    layers.append(DenseLayer(w, CubaParams(du=READOUT_DU, dv=READOUT_DV, vth=READOUT_VTH), name="readout"))
    bits = INPUT_MESSAGE_BITS[model.cfg.encoding]
    if bits:
        check_graded_current(layers[0], model.cfg.steps, (1 << bits) - 1)
    return LoihiNetwork(tuple(model.in_shape), layers, input_message_bits=bits, name=name).validate()


def check_graded_current(layer, steps: int, max_payload: int) -> None:
    """Refuse a first layer whose 24-bit current could wrap on graded input.

    With payloads in ``[0, max_payload]`` a neuron's synaptic input lies in
    ``[−P·Σw⁻, P·Σw⁺]`` (weight units, sums over its fan-in); the current reaches at most
    ``64 × that × G`` (:func:`snn.model.current_gain`), which must stay below 2^23 or Lava
    wraps it. Raises :class:`neurohw.loihi.LoihiConfigError` naming the layer."""
    from neurohw.loihi.network import LoihiConfigError

    w = np.asarray(layer.conn.weight).astype(np.int64)
    w = w.reshape(w.shape[0], -1)
    worst = int(max(np.clip(w, 0, None).sum(1).max(), np.clip(-w, 0, None).sum(1).max()))
    bound = (worst * max_payload << ACT_SHIFT) * current_gain(int(layer.neuron.du), steps)
    if bound >= MAX_UV:
        raise LoihiConfigError(f"layer 0 ({layer.name})", "weight",
                               f"graded {max_payload.bit_length()}-bit input: {max_payload} × Σ|w| = {worst * max_payload} "
                               f"weight units gives a current up to {bound:.0f}, beyond Loihi's 24-bit range (2^23); "
                               "train with encoding 'direct' (it clips the first layer) or shrink its weights")


@dataclass
class DeployResult:
    """Deploy-mode output. logits: int64 (N, classes), Σ_t of the readout's synaptic input;
    spikes: per spiking layer, bool (N, T, ...) aligned with the float model's time steps."""

    logits: torch.Tensor
    spikes: list[torch.Tensor]

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(1)

    @property
    def spikes_per_inference(self) -> torch.Tensor:
        """Spikes of all spiking layers per sample, (N,)."""
        return torch.stack([s.flatten(1).sum(1) for s in self.spikes], 1).sum(1)


# ---------------------------------------------------------------- snn's own integer forward
def _synaptic_input(kind: str, w: torch.Tensor, s: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """Σ W·s for binary spikes or graded payloads s (N, T, ...), int64 result (float64 sums of
    integers below 2^53 are exact)."""
    n, t = s.shape[:2]
    x = s.reshape(n * t, *s.shape[2:]).double()
    if kind == "conv":
        y = F.conv2d(x, w.double().to(x.device), stride=stride, padding=padding)
    else:
        y = x.flatten(1) @ w.double().to(x.device).T
    return torch.round(y).long().reshape(n, t, *y.shape[1:])


def cuba_int(a_in: torch.Tensor, du: int, dv: int, vth: int) -> torch.Tensor:
    """Lava fixed_pt CUBA LIF over time. a_in: int64 (N, T, ...) → bool spikes (N, T, ...).

    The ``"int"`` arithmetic of :func:`neurohw.loihi.cuba.cuba_sequence` on ``a_in << 6``."""
    keep_u, keep_v = lava_keeps(du, dv)
    return cuba_sequence(a_in << ACT_SHIFT, keep_u, keep_v, vth << VTH_SHIFT, arith="int", time_dim=1)


@torch.no_grad()
def integer_forward(model: BWSNN, x: torch.Tensor) -> DeployResult:
    """snn's integer-exact forward of the deployed network. x: images or spikes (see BWSNN)."""
    s = model.encode(x).to(torch.float64)
    trains = []
    for layer in model.layers:
        syn = layer.synapse
        a = _synaptic_input(syn.kind, synapse_int_weight(syn), s, syn.stride, syn.padding)
        if layer.shortcut is not None:
            sc = layer.shortcut
            stride, pad = (sc.stride, sc.padding) if sc.kind == "conv" else (1, 0)
            a = a + _synaptic_input(sc.kind, shortcut_int_weight(sc), s, stride, pad)
        spk = cuba_int(a, layer.neuron.du, layer.neuron.dv, layer.neuron.vth)
        trains.append(spk)
        s = spk.to(torch.float64)
    ro = model.readout
    logits = _synaptic_input(ro.kind, synapse_int_weight(ro), s, 1, 0).sum(1)
    return DeployResult(logits, trains)


# ---------------------------------------------------------------- the Loihi simulator
def _unshift(net_result, model: BWSNN, steps: int) -> DeployResult:
    n_spiking = len(model.layers)
    trains = [net_result.spikes[i][:, i + 1:i + 1 + steps] for i in range(n_spiking)]
    cur = net_result.current[n_spiking][:, n_spiking + 1:n_spiking + 1 + steps]
    # du = 4095: the readout's current is exactly this step's a_in << 6.
    logits = (cur.flatten(2).sum(1) >> 6).reshape(cur.shape[0], -1)
    return DeployResult(logits.long().cpu(), [t.cpu() for t in trains])


def padded_input(model: BWSNN, x: torch.Tensor) -> np.ndarray:
    """Encoded input (N, T + L + 1, ...) as uint8 (0/1 spikes or 0..255 payloads), zero-padded for the network latency."""
    s = model.encode(x)
    pad = len(model.layers) + 1
    z = torch.zeros(s.shape[0], pad, *s.shape[2:], dtype=s.dtype, device=s.device)
    return torch.cat([s, z], 1).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def loihi_forward(model: BWSNN, x: torch.Tensor, net=None, batch_size: int = 500) -> DeployResult:
    """Run the converted network in :func:`neurohw.loihi.simulate`; outputs in model time."""
    from neurohw.loihi import simulate

    net = net or to_loihi_network(model)
    readout = len(model.layers)
    parts = []
    for i in range(0, len(x), batch_size):
        spikes = padded_input(model, x[i:i + batch_size])
        res = simulate(net, spikes, probe=[readout])
        parts.append(_unshift(res, model, model.cfg.steps))
    return DeployResult(torch.cat([p.logits for p in parts]),
                        [torch.cat([p.spikes[k] for p in parts]) for k in range(readout)])


def lava_forward(model: BWSNN, x: torch.Tensor, netx_path=None) -> DeployResult:
    """Run in Lava (fixed_pt): through a netx file when ``netx_path`` is given, else Lava processes.

    Slow (Lava passes messages between processes): use a handful of samples.
    """
    from neurohw.loihi.lava_bridge import import_lava_runtime

    import_lava_runtime()
    from neurohw.loihi.lava_bridge import run_in_lava, run_netx_in_lava

    readout = len(model.layers)
    spikes = padded_input(model, x)
    if netx_path is not None:
        res = run_netx_in_lava(netx_path, spikes, probe=[readout])
    else:
        res = run_in_lava(to_loihi_network(model), spikes, probe=[readout])
    res.current = {k: torch.as_tensor(np.asarray(v)) for k, v in res.current.items()}
    res.spikes = [torch.as_tensor(np.asarray(s)) for s in res.spikes]
    return _unshift(res, model, model.cfg.steps)


def deploy_predict(model: BWSNN, x: torch.Tensor, backend: str = "loihi") -> DeployResult:
    """Deploy-mode forward: ``backend="loihi"`` (the Loihi simulator) or ``"integer"`` (snn's own)."""
    if backend == "loihi":
        return loihi_forward(model, x)
    if backend == "integer":
        return integer_forward(model, x)
    raise ValueError(f"deploy backend must be 'loihi' or 'integer', got {backend!r}")
