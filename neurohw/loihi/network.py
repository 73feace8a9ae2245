"""The network description neurohw's Loihi backend simulates, exports and runs in Lava.

Conventions (all integers are Loihi hardware units):

- Neuron shapes are ``(N,)`` for dense layers and ``(C, H, W)`` for convolutional layers
  (PyTorch order). A dense layer that follows a 3-D layer reads its input flattened in C order
  over ``(C, H, W)`` — the order netx's ``flatten`` produces.
- Dense weights are ``(n_out, n_in)``; conv weights are ``(C_out, C_in/groups, kH, kW)`` and
  act as a cross-correlation (PyTorch's ``conv2d``), exactly the layout of a netx HDF5 file.
  The Lava bridge converts them to Lava's ``(C_out, W, H, C_in)`` true-convolution layout.
- Layer ``i`` receives its main input from layer ``i − 1`` (layer ``−1`` is the network input)
  through one synapse group; :class:`Shortcut` adds further synapse groups from earlier layers
  into the same neurons. Every synapse group delays by one step (Lava's ``a_buff``); a shortcut
  may add ``delay`` steps more (:func:`matched_delay` gives the delay that makes both paths
  equally long).
- Pooling is lowered to a depthwise convolution with a uniform kernel (:func:`pool_layer`).
- A layer's neurons are CUBA LIF (:class:`CubaParams`, binary spikes) or sigma-delta
  (:class:`SigmaDeltaParams`, graded messages); synapses from a sigma-delta layer are graded.
- Dense synapse groups may carry per-synapse delays (``DenseConn.delay``, ``DenseLayer.delay``):
  a synapse with delay d delivers ``d`` steps after the usual one (Lava ``DelayDense``).
- A dense layer may have a ``recurrent`` :class:`DenseConn` (n, n): its own spikes of step
  ``t − 1`` into its neurons at step ``t`` (Lava: a ``Dense`` from the LIF's ``s_out`` back to its
  ``a_in``; netx: a ``dense_rec`` layer).

Nothing here imports Lava.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence, Union

import numpy as np

from .fixedpoint import RANGES, SIGN_MODES


class LoihiConfigError(ValueError):
    """A network, parameter or file is not something Loihi/Lava can run; names layer and field."""

    def __init__(self, where: str, field_name: str, message: str):
        self.where = where
        self.field = field_name
        self.message = message
        super().__init__(f"{where}: field '{field_name}': {message}")


# ----------------------------------------------------------------------------- neurons
@dataclass
class CubaParams:
    """Lava fixed-point CUBA LIF parameters (``lava.proc.lif.process.LIF``, tag ``fixed_pt``).

    du, dv: 12-bit decays (0..4095; the current decays by ``du + 1``, the voltage by ``dv``,
    per 4096). vth: 17-bit threshold mantissa (spike when ``v > vth << 6``). bias_mant
    (−4096..4095) and bias_exp (0..7): scalar or one value per neuron (array of the layer's
    neuron shape); the bias added each step is ``bias_mant << bias_exp``.
    """

    du: int
    dv: int
    vth: int
    bias_mant: Union[int, np.ndarray] = 0
    bias_exp: Union[int, np.ndarray] = 0

    def bias(self, shape: Sequence[int]) -> np.ndarray:
        """Per-neuron effective bias ``bias_mant << bias_exp`` (int64, ``shape``)."""
        scalar = self.scalar_bias()
        if scalar is not None:
            return np.full(tuple(shape), scalar, dtype=np.int64)
        mant = np.broadcast_to(np.asarray(self.bias_mant, dtype=np.int64), shape)
        exp = np.broadcast_to(np.asarray(self.bias_exp, dtype=np.int64), shape)
        return np.where(exp >= 0, mant << np.maximum(exp, 0), mant >> np.maximum(-exp, 0)).astype(np.int64)

    def scalar_bias(self) -> int | None:
        """The effective bias ``bias_mant << bias_exp`` when both are scalars (one bias for
        every neuron), else None."""
        if np.ndim(self.bias_mant) or np.ndim(self.bias_exp):
            return None
        m, e = int(self.bias_mant), int(self.bias_exp)
        return m << e if e >= 0 else m >> -e


SD_ACTIVATIONS = ("relu", "unit")


@dataclass
class SigmaDeltaParams:
    """Lava fixed-point sigma-delta neuron (``lava.proc.sdn.process.SigmaDelta``, tag ``fixed_pt``;
    lava-dl netx ``SDNN``). Its output is a *graded* message, not a binary spike.

    Per step (int32 states, in units of ``2^-(spike_exp + state_exp)``)::

        sigma  += a_in                          # sigma dendrite: integrates the input
        act     = relu(sigma + bias·2^e)        # e = spike_exp + state_exp ("unit": no relu)
        delta   = act − act_prev + residue
        s       = delta where |delta| ≥ vth·2^e else 0    (cum_error: |error| ≥ …, error += delta)
        residue = delta − s;  act_prev = act
        message = s >> state_exp                # sent to the next synapses (graded)

    vth: one threshold mantissa per layer (≥ 0); bias: scalar or per neuron (layer shape).
    spike_exp, state_exp: 0..7 (netx: 6 and 6). activation: ``"relu"`` or ``"unit"``.
    """

    vth: int
    bias: Union[int, np.ndarray] = 0
    spike_exp: int = 6
    state_exp: int = 6
    activation: str = "relu"
    cum_error: bool = False

    def scaled_bias(self, shape: Sequence[int]) -> np.ndarray:
        """Per-neuron bias in state units, ``bias << (spike_exp + state_exp)`` (int64, ``shape``)."""
        b = np.broadcast_to(np.asarray(self.bias, dtype=np.int64), tuple(shape))
        return (b << (int(self.spike_exp) + int(self.state_exp))).astype(np.int64)

    @property
    def scaled_vth(self) -> int:
        return int(self.vth) << (int(self.spike_exp) + int(self.state_exp))


def is_graded_neuron(p) -> bool:
    """True for neurons whose output messages are graded (sigma-delta)."""
    return isinstance(p, SigmaDeltaParams)


# ----------------------------------------------------------------------------- synapse groups
@dataclass
class DenseConn:
    """A dense synapse group: ``weight`` (n_out, n_in) integers, Lava ``Dense`` semantics.

    Before use Lava clips weights by sign mode and truncates ``8 − num_weight_bits + is_mixed``
    low bits; the sum over active inputs is then shifted by ``weight_exp`` (floor).
    ``sign_mode`` None means "as Lava determines it from the weights".
    ``delay``: synaptic delays 0..62 in steps beyond the usual one (Lava ``DelayDense``; netx
    ``delay``): a scalar, or an array broadcasting to (n_out, n_in). With delays the weight
    exponent is applied to each delay's partial sum separately (floor), as ``DelayDense`` does.
    """

    weight: np.ndarray
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: str | None = None
    delay: Union[int, np.ndarray] = 0

    def delays(self) -> np.ndarray:
        """Per-synapse extra delays (n_out, n_in) int64: 0 (the default) is Lava's usual one step;
        ``delay`` broadcasts from a scalar, (n_out, 1) (per output neuron) or (1, n_in) (per input)."""
        w = np.asarray(self.weight)
        return np.broadcast_to(np.asarray(self.delay, dtype=np.int64), w.shape)

    @property
    def has_delays(self) -> bool:
        return bool(np.any(np.asarray(self.delay)))


@dataclass
class ConvConn:
    """A convolutional synapse group (Lava ``Conv``): cross-correlation with ``weight``
    (C_out, C_in/groups, kH, kW); stride/padding/dilation as (y, x) = (H, W) pairs.
    Lava's Conv applies no weight exponent and no weight truncation; its output wraps to 24 bits.
    """

    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


Conn = Union[DenseConn, ConvConn]


@dataclass
class Shortcut:
    """An extra synapse group into a layer's neurons from an earlier layer (``source`` = layer
    index, −1 for the network input), delayed ``delay`` steps beyond the usual one step."""

    source: int
    conn: Conn
    delay: int = 0


def _pair(x) -> tuple[int, int]:
    if np.isscalar(x):
        return int(x), int(x)
    t = tuple(int(v) for v in x)
    if len(t) == 1:
        return t[0], t[0]
    if len(t) != 2:
        raise ValueError(f"expected an int or a pair, got {x!r}")
    return t  # type: ignore[return-value]


# ----------------------------------------------------------------------------- layers
@dataclass
class DenseLayer:
    """Dense synapses from the previous layer into ``weight.shape[0]`` CUBA neurons.

    ``recurrent``: optional :class:`DenseConn` with an (n, n) weight from the layer's own
    spikes: what the layer sends at step ``t − 1`` arrives at its neurons at step ``t``.
    ``delay``: synaptic delays of the main synapses (see :class:`DenseConn`).
    """

    weight: np.ndarray
    neuron: CubaParams
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: str | None = None
    name: str = ""
    shortcuts: list[Shortcut] = field(default_factory=list)
    recurrent: DenseConn | None = None
    delay: Union[int, np.ndarray] = 0

    @property
    def conn(self) -> DenseConn:
        return DenseConn(self.weight, self.weight_exp, self.num_weight_bits, self.sign_mode, self.delay)


@dataclass
class ConvLayer:
    """Convolutional synapses from the previous (C, H, W) layer into CUBA neurons."""

    weight: np.ndarray
    neuron: CubaParams
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    name: str = ""
    shortcuts: list[Shortcut] = field(default_factory=list)

    def __post_init__(self):
        self.stride = _pair(self.stride)
        self.padding = _pair(self.padding)
        self.dilation = _pair(self.dilation)
        self.groups = int(self.groups)

    @property
    def conn(self) -> ConvConn:
        return ConvConn(self.weight, self.stride, self.padding, self.dilation, self.groups)


Layer = Union[DenseLayer, ConvLayer]


def pool_layer(channels: int, kernel: int | tuple[int, int], weight: int, neuron: CubaParams,
               stride: int | tuple[int, int] | None = None, padding: int | tuple[int, int] = 0,
               name: str = "") -> ConvLayer:
    """Sum pooling lowered to what Loihi runs: a depthwise conv (groups = channels) whose
    kernel is ``weight`` everywhere. ``stride`` defaults to the kernel size."""
    k = _pair(kernel)
    w = np.full((channels, 1, k[0], k[1]), int(weight), dtype=np.int64)
    return ConvLayer(w, neuron, stride=_pair(stride if stride is not None else k), padding=_pair(padding),
                     groups=channels, name=name)


def matched_delay(source: int, target: int) -> int:
    """Extra delay for a shortcut from layer ``source`` (−1 = input) into layer ``target`` so that
    it arrives in step with the main path (``target − source − 1``)."""
    return target - source - 1


def conv_output_shape(in_shape: Sequence[int], conn: ConvConn) -> tuple[int, int, int]:
    """(C_out, H_out, W_out) of a conv synapse group on a (C, H, W) input."""
    _, h, w = in_shape
    kh, kw = conn.weight.shape[2], conn.weight.shape[3]
    sy, sx = conn.stride
    py, px = conn.padding
    dy, dx = conn.dilation
    ho = (h + 2 * py - dy * (kh - 1) - 1) // sy + 1
    wo = (w + 2 * px - dx * (kw - 1) - 1) // sx + 1
    return int(conn.weight.shape[0]), int(ho), int(wo)


def conn_output_shape(in_shape: Sequence[int], conn: Conn) -> tuple[int, ...]:
    if isinstance(conn, DenseConn):
        return (int(conn.weight.shape[0]),)
    return conv_output_shape(in_shape, conn)


# ----------------------------------------------------------------------------- the network
@dataclass
class LoihiNetwork:
    """A feed-forward Loihi network: ``input_shape`` ((N,) or (C, H, W)) and ``layers``.

    ``input_message_bits`` > 0 makes the network input graded (integer payloads, Lava's
    ``num_message_bits``); 0 means binary spikes (any non-zero input counts as one spike,
    as in Lava's ``s_in.astype(bool)``).
    """

    input_shape: tuple[int, ...]
    layers: list[Layer]
    input_message_bits: int = 0
    name: str = "net"

    def __post_init__(self):
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.layers = list(self.layers)
        for i, layer in enumerate(self.layers):
            if isinstance(layer, (DenseLayer, ConvLayer)) and not layer.name:
                layer.name = f"layer{i}"

    # -- shapes
    def shapes(self) -> list[tuple[int, ...]]:
        """Neuron shape of every layer (validates the chain)."""
        self.validate()
        return self._shapes()

    def _shapes(self) -> list[tuple[int, ...]]:
        shapes: list[tuple[int, ...]] = []
        prev = self.input_shape
        for layer in self.layers:
            prev = conn_output_shape(prev, layer.conn)
            shapes.append(prev)
        return shapes

    def shape_of(self, index: int) -> tuple[int, ...]:
        """Neuron shape of layer ``index`` (−1: the input)."""
        return self.input_shape if index < 0 else self._shapes()[index]

    def latency(self, index: int | None = None) -> int:
        """Steps from an input spike to the earliest spike of layer ``index`` (default: last)."""
        index = len(self.layers) - 1 if index is None else index
        return index + 1

    @property
    def num_neurons(self) -> int:
        return int(sum(math.prod(s) for s in self._shapes()))

    def copy(self) -> "LoihiNetwork":
        layers = [replace(l, shortcuts=[replace(s) for s in l.shortcuts],
                          **({"recurrent": replace(l.recurrent)} if getattr(l, "recurrent", None) is not None else {}))
                  for l in self.layers]
        return LoihiNetwork(self.input_shape, layers, self.input_message_bits, self.name)

    # -- validation
    def validate(self) -> "LoihiNetwork":
        """Check every field against Lava's ranges; raise :class:`LoihiConfigError` naming the
        layer and the field. Returns ``self``."""
        if len(self.input_shape) not in (1, 3) or min(self.input_shape) < 1:
            raise LoihiConfigError("input", "input_shape", f"must be (N,) or (C, H, W) with positive sizes, got {self.input_shape}")
        if not self.layers:
            raise LoihiConfigError("network", "layers", "the network has no layers")
        if not 0 <= int(self.input_message_bits) <= 24:
            raise LoihiConfigError("input", "input_message_bits", f"must be 0..24, got {self.input_message_bits}")
        shapes: list[tuple[int, ...]] = []
        prev = self.input_shape
        for i, layer in enumerate(self.layers):
            where = f"layer {i} ({getattr(layer, 'name', '?')})"
            if not isinstance(layer, (DenseLayer, ConvLayer)):
                raise LoihiConfigError(where, "type", f"unsupported layer type {type(layer).__name__}; "
                                       "use DenseLayer, ConvLayer or pool_layer(...)")
            out = _validate_conn(where, "weight", layer.conn, prev)
            _validate_neuron(where, layer.neuron, out)
            for j, sc in enumerate(layer.shortcuts):
                sw = f"{where} shortcut {j}"
                if not isinstance(sc, Shortcut):
                    raise LoihiConfigError(sw, "type", f"expected Shortcut, got {type(sc).__name__}")
                if not -1 <= sc.source < i - 0:
                    raise LoihiConfigError(sw, "source", f"must be an earlier layer (−1..{i - 1}), got {sc.source}")
                if sc.delay < 0 or sc.delay > 62:
                    raise LoihiConfigError(sw, "delay", f"must be 0..62, got {sc.delay}")
                src_shape = self.input_shape if sc.source < 0 else shapes[sc.source]
                sc_out = _validate_conn(sw, "conn.weight", sc.conn, src_shape)
                if tuple(sc_out) != tuple(out):
                    raise LoihiConfigError(sw, "conn", f"produces shape {sc_out}, but the layer's neurons are {out}")
            rec = getattr(layer, "recurrent", None)
            if rec is not None:
                rw = f"{where} recurrent"
                if not isinstance(layer, DenseLayer):
                    raise LoihiConfigError(rw, "recurrent", "recurrent connections are supported on dense layers only")
                if is_graded_neuron(layer.neuron):
                    raise LoihiConfigError(rw, "recurrent", "recurrent connections are supported on CUBA (LIF) layers only")
                if not isinstance(rec, DenseConn):
                    raise LoihiConfigError(rw, "type", f"must be a DenseConn (an (n, n) weight from the layer's own spikes), "
                                           f"got {type(rec).__name__}")
                w = np.asarray(rec.weight)
                if w.ndim != 2 or w.shape != (_flat(out), _flat(out)):
                    raise LoihiConfigError(rw, "weight", f"must be square (n, n) with n = {_flat(out)} neurons, got shape {w.shape}")
                _validate_conn(rw, "weight", rec, out)
                if rec.has_delays:
                    raise LoihiConfigError(rw, "delay", "delays on recurrent synapses are not supported (netx 0.6 "
                                           "would apply the feed-forward delay matrix to them)")
            shapes.append(out)
            prev = out
        return self


def _flat(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def _check_int_array(where: str, name: str, w) -> np.ndarray:
    arr = np.asarray(w)
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        raise LoihiConfigError(where, name, f"must be a non-empty numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise LoihiConfigError(where, name, "contains NaN or infinity")
        if not np.all(arr == np.round(arr)):
            raise LoihiConfigError(where, name, "must hold integers (Loihi weights are integer mantissas); quantise first")
    return arr


def _validate_conn(where: str, name: str, conn: Conn, in_shape: Sequence[int]) -> tuple[int, ...]:
    w = _check_int_array(where, name, conn.weight)  # integer-valued, any numeric dtype (not copied)
    lo, hi = int(w.min()), int(w.max())  # one pass each, shared by the range and sign-mode checks
    if isinstance(conn, DenseConn):
        if w.ndim != 2:
            raise LoihiConfigError(where, name, f"dense weight must be 2-D (n_out, n_in), got shape {w.shape}")
        if w.shape[1] != _flat(in_shape):
            raise LoihiConfigError(where, name, f"has {w.shape[1]} inputs but the previous layer has {_flat(in_shape)} neurons {tuple(in_shape)}")
        if lo < -256 or hi > 255:
            raise LoihiConfigError(where, name, f"values {lo}..{hi} are outside Loihi's 8-bit mantissa range −256..255")
        mode = conn.sign_mode
        if mode is not None:
            if mode not in SIGN_MODES:
                raise LoihiConfigError(where, "sign_mode", f"must be one of {SIGN_MODES} or None, got {mode!r}")
            if mode == "excitatory" and lo < 0:
                raise LoihiConfigError(where, "sign_mode", "is 'excitatory' but some weights are negative (Lava would clip them to 0)")
            if mode == "inhibitory" and hi > 0:
                raise LoihiConfigError(where, "sign_mode", "is 'inhibitory' but some weights are positive (Lava would clip them to 0)")
        if not -8 <= int(conn.weight_exp) <= 7:
            raise LoihiConfigError(where, "weight_exp", f"must be −8..7 (Loihi), got {conn.weight_exp}")
        max_bits = 9 if (mode or _mode_of_range(lo, hi)) == "mixed" else 8
        if not 1 <= int(conn.num_weight_bits) <= max_bits:
            raise LoihiConfigError(where, "num_weight_bits", f"must be 1..{max_bits}, got {conn.num_weight_bits}")
        _validate_delay(where, conn, w.shape)
        return (int(w.shape[0]),)
    if isinstance(conn, ConvConn):
        if len(in_shape) != 3:
            raise LoihiConfigError(where, name, f"a conv layer needs a (C, H, W) input, got {tuple(in_shape)}")
        if w.ndim != 4:
            raise LoihiConfigError(where, name, f"conv weight must be 4-D (C_out, C_in/groups, kH, kW), got shape {w.shape}")
        g = int(conn.groups)
        if g < 1 or in_shape[0] % g or w.shape[0] % g:
            raise LoihiConfigError(where, "groups", f"{g} must divide input channels {in_shape[0]} and output channels {w.shape[0]}")
        if w.shape[1] * g != in_shape[0]:
            raise LoihiConfigError(where, name, f"expects {w.shape[1] * g} input channels, the previous layer has {in_shape[0]}")
        if lo < -256 or hi > 255:
            raise LoihiConfigError(where, name, f"values {lo}..{hi} are outside Loihi's 8-bit mantissa range −256..255")
        for fname in ("stride", "dilation"):
            if min(getattr(conn, fname)) < 1:
                raise LoihiConfigError(where, fname, f"must be ≥ 1, got {getattr(conn, fname)}")
        if min(conn.padding) < 0:
            raise LoihiConfigError(where, "padding", f"must be ≥ 0, got {conn.padding}")
        out = conv_output_shape(in_shape, conn)
        if min(out[1:]) < 1:
            raise LoihiConfigError(where, name, f"kernel/stride/padding give an empty output {out} for input {tuple(in_shape)}")
        return out
    raise LoihiConfigError(where, "conn", f"unsupported synapse type {type(conn).__name__}")


#: Largest synaptic delay (steps beyond the usual one): lava-dl netx clamps to 62 and builds
#: ``DelayDense(max_delay=62)``; Lava's ``DelayDense`` itself accepts 0..63.
MAX_SYN_DELAY = 62


def _validate_delay(where: str, conn: DenseConn, shape: tuple[int, ...]) -> None:
    d = np.asarray(conn.delay)
    if d.dtype.kind not in "iuf" or (d.dtype.kind == "f" and not np.all(np.isfinite(d) & (d == np.round(d)))):
        raise LoihiConfigError(where, "delay", f"must hold integer steps, got {d.dtype} values")
    if d.size == 0:
        raise LoihiConfigError(where, "delay", "is empty")
    try:
        np.broadcast_to(d, shape)
    except ValueError:
        raise LoihiConfigError(where, "delay", f"shape {d.shape} does not broadcast to the weight's {tuple(shape)} "
                               "(give a scalar, (n_out, 1), (1, n_in) or (n_out, n_in))") from None
    if d.min() < 0 or d.max() > MAX_SYN_DELAY:
        raise LoihiConfigError(where, "delay", f"values {int(d.min())}..{int(d.max())} are outside 0..{MAX_SYN_DELAY} steps")


def _mode_of_range(lo: int, hi: int) -> str:
    """Lava's ``determine_sign_mode`` (:func:`~neurohw.loihi.fixedpoint.sign_mode_of`) from the
    weights' minimum ``lo`` and maximum ``hi``."""
    return "excitatory" if lo >= 0 else "inhibitory" if hi <= 0 else "mixed"


#: Sigma-delta states are 24-bit in Lava's model (``precision=24``): thresholds and biases,
#: scaled by 2^(spike_exp + state_exp), must stay below 2^23 in magnitude.
SD_STATE_LIMIT = 1 << 23


def _validate_sigma_delta(where: str, p: SigmaDeltaParams, shape: Sequence[int]) -> None:
    for fname in ("spike_exp", "state_exp"):
        val = getattr(p, fname)
        if np.ndim(val) != 0 or float(val) != int(val) or not 0 <= int(val) <= 7:
            raise LoihiConfigError(where, f"neuron.{fname}", f"must be one integer 0..7 (3 bits in Lava), got {val!r}")
    e = int(p.spike_exp) + int(p.state_exp)
    if np.ndim(p.vth) != 0 or float(p.vth) != int(p.vth) or int(p.vth) < 0:
        raise LoihiConfigError(where, "neuron.vth", f"must be one non-negative integer per layer, got {p.vth!r}")
    if int(p.vth) << e >= SD_STATE_LIMIT:
        raise LoihiConfigError(where, "neuron.vth", f"{int(p.vth)} << {e} exceeds the 24-bit state (2^23)")
    arr = np.asarray(p.bias)
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(arr == np.round(arr))):
        raise LoihiConfigError(where, "neuron.bias", "must hold integers")
    if arr.size and np.abs(arr.astype(np.int64)).max() << e >= SD_STATE_LIMIT:
        raise LoihiConfigError(where, "neuron.bias", f"values up to {np.abs(arr).max()} << {e} exceed the 24-bit state (2^23)")
    try:
        np.broadcast_to(arr, tuple(shape))
    except ValueError:
        raise LoihiConfigError(where, "neuron.bias", f"shape {arr.shape} does not broadcast to the layer's neurons {tuple(shape)}") from None
    if p.activation not in SD_ACTIVATIONS:
        raise LoihiConfigError(where, "neuron.activation", f"must be one of {SD_ACTIVATIONS}, got {p.activation!r}")
    if not isinstance(p.cum_error, (bool, np.bool_)):
        raise LoihiConfigError(where, "neuron.cum_error", f"must be True or False, got {p.cum_error!r}")


def _validate_neuron(where: str, p: CubaParams, shape: Sequence[int]) -> None:
    if isinstance(p, SigmaDeltaParams):
        return _validate_sigma_delta(where, p, shape)
    if not isinstance(p, CubaParams):
        raise LoihiConfigError(where, "neuron", f"expected CubaParams or SigmaDeltaParams, got {type(p).__name__}")
    for fname in ("du", "dv", "vth"):
        val = getattr(p, fname)
        if np.ndim(val) != 0 or float(val) != int(val):
            raise LoihiConfigError(where, f"neuron.{fname}", f"must be one integer per layer (Lava shares it), got {val!r}")
        lo, hi = RANGES[fname]
        if not lo <= int(val) <= hi:
            raise LoihiConfigError(where, f"neuron.{fname}", f"{int(val)} is outside Lava's range {lo}..{hi}")
    for fname in ("bias_mant", "bias_exp"):
        arr = np.asarray(getattr(p, fname))
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise LoihiConfigError(where, f"neuron.{fname}", "must hold integers")
        lo, hi = RANGES[fname]
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise LoihiConfigError(where, f"neuron.{fname}", f"values {arr.min()}..{arr.max()} are outside {lo}..{hi}")
        try:
            np.broadcast_to(arr, tuple(shape))
        except ValueError:
            raise LoihiConfigError(where, f"neuron.{fname}", f"shape {arr.shape} does not broadcast to the layer's neurons {tuple(shape)}") from None
