"""Deployability on Loihi chips and an energy estimate from simulated operation counts.

Every hardware constant carries its source and a grade (how much to trust it); the report
keeps operation counts separate from the energy they are multiplied into.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .fixedpoint import effective_dense_weights
from .network import DenseConn, DenseLayer, LoihiNetwork, is_graded_neuron


@dataclass(frozen=True)
class Constant:
    value: float | None
    unit: str
    source: str
    grade: str  # "datasheet/paper table", "derived", "pre-silicon simulation", "calibrated simulator", "measurement"


DAVIES = "Davies et al., IEEE Micro 2018 (Loihi 1), pre-silicon circuit simulation"
LOIHI2_BRIEF = "Intel Loihi 2 technology brief (2021) / docs LOIHI.md table"

#: Per-chip limits. Loihi 2 per-core synapse capacity is not published; it is derived from the chip total.
LIMITS: dict[str, dict[str, Constant]] = {
    "loihi1": {
        "cores_per_chip": Constant(128, "cores", DAVIES, "paper table"),
        "neurons_per_core": Constant(1024, "neurons", DAVIES, "paper table"),
        "synapse_bits_per_core": Constant(128 * 1024 * 8, "bits", DAVIES + " (128 KiB synapse memory per core)", "paper table"),
        "fan_in_axons_per_core": Constant(4096, "axons", DAVIES, "paper table"),
        "max_delay": Constant(62, "steps", "lava-dl netx (clamps delays to 62)", "source code"),
        "weight_exp_range": Constant(None, "−8..7", DAVIES, "paper table"),
    },
    "loihi2": {
        "cores_per_chip": Constant(128, "cores", LOIHI2_BRIEF, "vendor brief"),
        "neurons_per_core": Constant(8192, "neurons", LOIHI2_BRIEF + " (≈1 M neurons / chip)", "vendor brief"),
        "synapses_per_core": Constant(120e6 / 128, "synapses", LOIHI2_BRIEF + ": 120 M synapses / chip ÷ 128 cores", "derived"),
        "fan_in_axons_per_core": Constant(None, "axons", "compiler-managed on Loihi 2 (no fixed limit published)", "not checked"),
        "max_delay": Constant(63, "steps", LOIHI2_BRIEF, "vendor brief"),
    },
}

ENERGY: dict[str, Constant] = {
    "syn_op": Constant(23.6e-12, "J per synaptic op (minimum)", DAVIES, "pre-silicon simulation"),
    "syn_op_sanafe": Constant(35.5e-12, "J per synaptic op", "SANA-FE calibrated Loihi 1 simulator", "calibrated simulator"),
    "neuron_update_inactive": Constant(52e-12, "J per neuron update without input", DAVIES, "pre-silicon simulation"),
    "neuron_update_active": Constant(81e-12, "J per neuron update with input", DAVIES, "pre-silicon simulation"),
    "spike_within_tile": Constant(1.7e-12, "J per spike (within tile)", DAVIES, "pre-silicon simulation"),
    "spike_hop": Constant(3.5e-12, "J per hop (3.0–4.0 pJ; hops not modelled)", DAVIES, "pre-silicon simulation"),
    "pilotnet_loihi2_per_inference": Constant(1.66e-3, "J per inference (PilotNet LIF, 74 cores, 0.68 W, 409 frames/s)",
                                              "Loihi 2 workload measurement as quoted in the project's LOIHI.md notes (primary "
                                              "source not verified here); a reference point, not used in the estimate",
                                              "measurement (secondary citation)"),
}

NOT_PUBLISHED = ("no published Loihi 2 per-operation figure found: Intel's Loihi 2 technology brief (2021) gives chip "
                 "limits and workload-level gains only; Shrestha et al. 2023/24 ('Efficient Video and Audio processing with "
                 "Loihi 2') report workload energy/latency; Orchard et al. 2021 (emulated Loihi 2) report bandwidth and "
                 "operation counts; Davies et al. 2021 (Proc. IEEE) survey Loihi 1; lava / lava-dl docs give none "
                 "(docs/loihi.md lists the search)")

#: Loihi 2 per-operation energies. ``value None``: no published figure; the Loihi 2 estimate then uses the
#: Loihi 1 constant of the same operation and labels it so.
LOIHI2_ENERGY: dict[str, Constant] = {
    k: Constant(None, ENERGY[k].unit, NOT_PUBLISHED, "not published")
    for k in ("syn_op", "neuron_update_inactive", "neuron_update_active", "spike_within_tile")
}


def loihi2_estimate(per: dict[str, float]) -> dict[str, Any]:
    """Per-inference Loihi 2 energy from operation counts ``per``: each operation priced with its
    published Loihi 2 constant where one exists, else with the Loihi 1 constant, labelled as such."""
    counts = {"syn_op": per["syn_ops"], "neuron_update_inactive": per["neuron_updates"] - per["active_updates"],
              "neuron_update_active": per["active_updates"], "spike_within_tile": per["spikes"]}
    terms, total = {}, 0.0
    for k, n in counts.items():
        own = LOIHI2_ENERGY[k]
        c, chip = (own, "loihi2") if own.value is not None else (ENERGY[k], "loihi1 (fallback: no published Loihi 2 figure)")
        e = n * c.value
        total += e
        terms[k] = {"count": n, "energy_J": e, "constant": asdict(c), "constant_from": chip}
    n_own = sum(t["constant_from"] == "loihi2" for t in terms.values())
    return {"total_J": total, "terms": terms, "loihi2_constants_used": n_own, "loihi1_fallbacks": len(terms) - n_own}


def _layer_synapses(net: LoihiNetwork, i: int) -> tuple[int, int, int]:
    """(non-zero synapses without weight sharing, input axons a neuron needs, weight bits).
    A dense neuron needs every input; a conv neuron its receptive field (C_in/groups · kH · kW)."""
    layer = net.layers[i]
    shapes = net._shapes()
    src_shapes = [net.input_shape] + shapes
    total, fan_in, bits = 0, 0, 8
    groups = [(i - 1, layer.conn)] + [(sc.source, sc.conn) for sc in layer.shortcuts]
    if getattr(layer, "recurrent", None) is not None:  # its own spikes: the layer is one more source
        groups.append((i, layer.recurrent))
    for src, conn in groups:
        in_shape = src_shapes[src + 1]
        if isinstance(conn, DenseConn):
            w = effective_dense_weights(conn.weight, conn.sign_mode, conn.num_weight_bits)
            total += int(np.count_nonzero(w))
            fan_in += int(math.prod(in_shape))
            bits = min(bits, int(conn.num_weight_bits))
        else:  # conv: every output neuron's window, non-zero taps, no sharing assumed
            import torch
            import torch.nn.functional as F

            ones = torch.ones((1, *in_shape), dtype=torch.float64)
            nz = torch.as_tensor((np.asarray(conn.weight) != 0).astype(np.float64))
            out = F.conv2d(ones, nz, stride=conn.stride, padding=conn.padding, dilation=conn.dilation, groups=conn.groups)
            total += int(out.sum().item())
            fan_in += int(math.prod(np.asarray(conn.weight).shape[1:]))  # one neuron's receptive field
    return total, fan_in, bits


def deployability(net: LoihiNetwork, chip: str = "loihi2") -> dict[str, Any]:
    """Map each layer onto cores of ``chip`` ("loihi1" or "loihi2"); count cores and chips; name
    every violated limit. A layer takes ``max`` of the cores its neurons, its synapses and (Loihi 1)
    its fan-in need; conv synapses are counted without weight sharing (an upper bound)."""
    net.validate()
    lim = LIMITS[chip]
    shapes = net._shapes()
    rows, violations = [], []
    total_cores = 0
    for i, layer in enumerate(net.layers):
        n = int(math.prod(shapes[i]))
        syn, fan_in, bits = _layer_synapses(net, i)
        by_neurons = math.ceil(n / lim["neurons_per_core"].value)
        if "synapses_per_core" in lim:
            by_syn = math.ceil(syn / lim["synapses_per_core"].value)
        else:
            by_syn = math.ceil(syn * bits / lim["synapse_bits_per_core"].value)
        cores = max(by_neurons, by_syn, 1)
        fan_lim = lim["fan_in_axons_per_core"].value
        if fan_lim is not None and fan_in > fan_lim:
            violations.append(f"layer {i} ({layer.name}): fan-in {fan_in} input axons per neuron > {fan_lim} "
                              f"axons per core ({chip}); splitting the layer over cores does not reduce it")
        for j, sc in enumerate(layer.shortcuts):
            longest = sc.delay + (int(sc.conn.delays().max()) if isinstance(sc.conn, DenseConn) else 0)
            if longest > lim["max_delay"].value:
                violations.append(f"layer {i} shortcut {j}: delay {longest} > {lim['max_delay'].value} steps")
        if isinstance(layer, DenseLayer) and layer.conn.has_delays:
            longest = int(layer.conn.delays().max())
            if longest > lim["max_delay"].value:  # only for chips with a lower limit than neurohw's 62
                violations.append(f"layer {i} ({layer.name}): synaptic delay {longest} > {lim['max_delay'].value} steps")
        kind = ("dense_rec" if getattr(layer, "recurrent", None) is not None else "dense") if isinstance(layer, DenseLayer) else "conv"
        if is_graded_neuron(layer.neuron):
            kind += " (sigma-delta)"
        rows.append({"layer": i, "name": layer.name, "type": kind,
                     "neurons": n, "synapses": syn, "fan_in": fan_in, "cores_by_neurons": by_neurons,
                     "cores_by_synapses": by_syn, "cores": cores})
        total_cores += cores
    chips = math.ceil(total_cores / lim["cores_per_chip"].value)
    if chips > 1:
        violations.append(f"network needs {total_cores} cores > {lim['cores_per_chip'].value} cores of one {chip} chip ({chips} chips)")
    return {"chip": chip, "layers": rows, "total_cores": total_cores, "chips": chips,
            "deployable_on_one_chip": not violations, "violations": violations,
            "limits": {k: asdict(v) for k, v in lim.items()}}


def energy_report(ops: list[dict[str, int]], batch: int) -> dict[str, Any]:
    """Per-inference operation counts (averaged over ``batch`` samples) and the energy estimate."""
    per = {k: sum(o[k] for o in ops) / batch for k in ("syn_ops", "neuron_updates", "active_updates", "spikes")}
    inactive = per["neuron_updates"] - per["active_updates"]
    e_syn = per["syn_ops"] * ENERGY["syn_op"].value
    e_neu = inactive * ENERGY["neuron_update_inactive"].value + per["active_updates"] * ENERGY["neuron_update_active"].value
    e_spk = per["spikes"] * ENERGY["spike_within_tile"].value
    total = e_syn + e_neu + e_spk
    return {
        "per_inference": per,
        "per_layer": [{k: v / batch for k, v in o.items()} for o in ops],
        "energy_J": {"synaptic": e_syn, "neuron": e_neu, "spike_within_tile": e_spk, "total_davies": total,
                     "total_with_sanafe_synop": total - e_syn + per["syn_ops"] * ENERGY["syn_op_sanafe"].value},
        "constants": {k: asdict(v) for k, v in ENERGY.items()},
        "loihi2": loihi2_estimate(per),
        "loihi2_constants": {k: asdict(v) for k, v in LOIHI2_ENERGY.items()},
        "notes": ["spike routing hops are not modelled (add 3.0–4.0 pJ per hop)",
                  "an 'active' neuron update is one whose synaptic input that step is non-zero",
                  "sigma-delta layers: a neuron update is priced as a LIF update and a non-zero graded message as a "
                  "spike (no separate published figures); their synaptic events are non-zero messages × fan-out",
                  "Loihi 2 estimate: every operation without a published Loihi 2 constant is priced with the Loihi 1 "
                  "(Davies 2018, pre-silicon) constant and labelled 'loihi1 (fallback)'; an order-of-magnitude estimate"],
    }


def full_report(net: LoihiNetwork, spikes=None, *, steps: int = 32, rate: float = 0.1, seed: int = 0,
                samples: int = 4, result=None) -> dict[str, Any]:
    """Deployability on Loihi 1 and 2 plus an energy estimate from a simulation on ``spikes``
    (default: seeded Bernoulli input at ``rate``, ``samples`` × ``steps``). ``result``: an
    existing ``simulate(net, spikes, count_ops=True)`` result to reuse."""
    from .random_nets import random_spikes
    from .simulator import simulate

    source = "given input"
    if spikes is None:
        spikes = random_spikes(seed, steps, net.input_shape, batch=samples, rate=rate)
        source = f"random Bernoulli input, rate {rate}, {samples} samples × {steps} steps, seed {seed}"
    res = result if result is not None and result.ops is not None else simulate(net, spikes, count_ops=True)
    return {"network": net.name, "input": source, "steps": res.steps, "samples": res.batch,
            "loihi2": deployability(net, "loihi2"), "loihi1": deployability(net, "loihi1"),
            "energy": energy_report(res.ops, res.batch)}


def format_report(rep: dict[str, Any]) -> str:
    """Human-readable text of :func:`full_report`."""
    lines = [f"network {rep['network']}  ({rep['input']})", ""]
    for chip in ("loihi2", "loihi1"):
        d = rep[chip]
        lines.append(f"{chip}: {d['total_cores']} cores on {d['chips']} chip(s); "
                     f"{'deployable on one chip' if d['deployable_on_one_chip'] else 'NOT deployable as is'}")
        lines.append(f"  {'layer':<14}{'type':<22}{'neurons':>9}{'synapses':>11}{'fan-in':>8}{'cores':>7}")
        for r in d["layers"]:
            lines.append(f"  {r['name']:<14}{r['type']:<22}{r['neurons']:>9}{r['synapses']:>11}{r['fan_in']:>8}{r['cores']:>7}")
        for v in d["violations"]:
            lines.append(f"  VIOLATION: {v}")
        lines.append("")
    e = rep["energy"]
    p = e["per_inference"]
    lines.append(f"per inference ({rep['steps']} steps): {p['syn_ops']:.0f} synaptic ops, {p['neuron_updates']:.0f} neuron updates "
                 f"({p['active_updates']:.0f} active), {p['spikes']:.0f} spikes")
    ej = e["energy_J"]
    lines.append(f"Loihi 1 energy estimate (Davies 2018 constants): {ej['total_davies'] * 1e9:.3f} nJ (synaptic {ej['synaptic'] * 1e9:.3f}, neuron {ej['neuron'] * 1e9:.3f}, "
                 f"spikes {ej['spike_within_tile'] * 1e9:.3f}); with SANA-FE's 35.5 pJ/synop: {ej['total_with_sanafe_synop'] * 1e9:.3f} nJ")
    l2 = e["loihi2"]
    lines.append(f"Loihi 2 estimate: {l2['total_J'] * 1e9:.3f} nJ — {l2['loihi2_constants_used']} published Loihi 2 constants, "
                 f"{l2['loihi1_fallbacks']} Loihi 1 fallbacks:")
    for k, t in l2["terms"].items():
        lines.append(f"  {k}: {t['count']:.0f} × {t['constant']['value']:.4g} J [{t['constant_from']}]")
    lines.append("  Loihi 2 per-operation constants: " + NOT_PUBLISHED
                 if all(c.value is None for c in LOIHI2_ENERGY.values()) else "")
    lines.append("constants:")
    for k, c in e["constants"].items():
        val = "" if c["value"] is None else f"{c['value']:.4g} "
        lines.append(f"  {k}: {val}{c['unit']} — {c['source']} [{c['grade']}]")
    for n in e["notes"]:
        lines.append(f"  note: {n}")
    return "\n".join(lines)
