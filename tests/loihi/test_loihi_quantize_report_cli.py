"""Quantisation from float CUBA layers, the deployability/energy report, and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from neurohw.cli import main
from neurohw.loihi import ConvLayer, CubaParams, DenseLayer, LoihiConfigError, LoihiNetwork, simulate
from neurohw.loihi.netx_io import write_netx
from neurohw.loihi.quantize import FloatLayer, float_cuba_reference, quantize_cuba, quantize_network
from neurohw.loihi.random_nets import random_conv_net, random_spikes
from neurohw.loihi.report import deployability, full_report


def test_quantize_cuba_follows_lava_dl_scale():
    p = quantize_cuba(1.25, current_decay=0.25, voltage_decay=0.03, bias=0.5)
    assert (p.du, p.dv, p.vth, p.bias_mant, p.bias_exp) == (1023, 123, 80, 32, 6)
    with pytest.raises(LoihiConfigError, match="current_decay"):
        quantize_cuba(1.0, 1.5, 0.1)


@pytest.mark.parametrize("fold", ["threshold", "exponent"])
def test_binary_weights_fold_alpha_exactly(fold):
    """On grid-exact parameters (no current memory, no leak) the integer network reproduces the
    float binary-weight network spike for spike, whichever way α is folded."""
    rng = np.random.default_rng(1)
    layers = [FloatLayer("dense", rng.standard_normal((30, 40)), 1.5, 1.0, 0.0, alpha=0.5, name="fc1"),
              FloatLayer("dense", rng.standard_normal((10, 30)), 1.0, 1.0, 0.0, alpha=0.25, name="fc2")]
    net, rep = quantize_network((40,), layers, fold=fold)
    x = random_spikes(0, 30, (40,), batch=3, rate=0.3)
    ref = float_cuba_reference(layers, x)
    sim = simulate(net, x)
    for a, b in zip(ref, sim.spikes):
        assert b.sum() > 0 and np.array_equal(a, b.numpy())
    assert any(r["field"] == "alpha" for r in rep.rows)


def test_quantised_float_network_close_and_reported():
    rng = np.random.default_rng(2)
    layers = [FloatLayer("conv", rng.standard_normal((4, 1, 3, 3)) * 0.4, 1.0, 0.2, 0.1, padding=(1, 1), name="conv"),
              FloatLayer("dense", rng.standard_normal((10, 4 * 8 * 8)) * 0.2, 1.0, 0.3, 0.05,
                         bias=rng.standard_normal(10) * 0.05, name="fc")]
    net, rep = quantize_network((1, 8, 8), layers)
    assert isinstance(net.layers[0], ConvLayer) and isinstance(net.layers[1], DenseLayer)
    x = random_spikes(3, 25, (1, 8, 8), batch=2, rate=0.3)
    ref = float_cuba_reference(layers, x)
    sim = simulate(net, x)
    agree = [float((a == b.numpy()).mean()) for a, b in zip(ref, sim.spikes)]
    assert min(agree) > 0.9 and sim.spikes[1].sum() > 0
    fields = {r["field"] for r in rep.rows}
    assert {"current_decay", "voltage_decay", "threshold"} <= fields
    assert "conv" in rep.text() and "fc" in rep.text()


def test_deployability_names_violations():
    big = LoihiNetwork((5000,), [DenseLayer(np.full((3000, 5000), 2), CubaParams(1, 1, 100))])
    d1 = deployability(big, "loihi1")
    assert not d1["deployable_on_one_chip"]
    assert any("fan-in 5000" in v for v in d1["violations"])
    d2 = deployability(big, "loihi2")
    assert d2["layers"][0]["cores"] == max(1, -(-3000 * 5000 // int(120e6 / 128)))
    small = random_conv_net(0)
    assert deployability(small, "loihi2")["deployable_on_one_chip"]


def test_full_report_counts_and_sources():
    net = random_conv_net(0)
    x = random_spikes(0, 16, net.input_shape, batch=2, rate=0.2)
    rep = full_report(net, x)
    per = rep["energy"]["per_inference"]
    sim = simulate(net, x)
    assert per["spikes"] == pytest.approx(sum(int(s.sum()) for s in sim.spikes) / 2)
    assert per["neuron_updates"] == 16 * net.num_neurons
    # synaptic ops of the dense layer: active inputs × non-zero weights in their columns
    w = net.layers[2].weight
    s1 = sim.spikes[1].reshape(2, 16, -1).numpy()
    expected = float((s1 @ (w != 0).sum(axis=0)).sum()) / 2
    assert rep["energy"]["per_layer"][2]["syn_ops"] == pytest.approx(expected)
    for c in rep["energy"]["constants"].values():
        assert c["source"] and c["grade"]


def test_cli_simulate_compare_report(tmp_path, capsys):
    net = random_conv_net(0)
    path = write_netx(net, tmp_path / "n.net")
    x = random_spikes(0, 12, net.input_shape, batch=2)
    np.save(tmp_path / "x.npy", x)
    assert main(["loihi", "simulate", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npy")]) == 0
    out = np.load(tmp_path / "o.npy")
    assert out.shape == (2, 12, 10) and np.array_equal(out, simulate(net, x).output.numpy().astype(np.uint8))
    # flattened trailing axes are accepted too
    np.save(tmp_path / "xf.npy", x.reshape(2, 12, -1))
    assert main(["loihi", "simulate", str(path), "--input", str(tmp_path / "xf.npy"), "--out", str(tmp_path / "o2.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "o2.npy"), out)
    assert main(["loihi", "report", str(path), "--json", str(tmp_path / "r.json")]) == 0
    assert "cores" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["loihi2"]["total_cores"] >= 3
    # bad input: a clear error and a non-zero status
    np.save(tmp_path / "bad.npy", np.zeros((4, 7)))
    assert main(["loihi", "simulate", str(path), "--input", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o3.npy")]) == 2
    assert "input" in capsys.readouterr().err


@pytest.mark.lava
@pytest.mark.slow
def test_cli_compare_identical_and_first_divergence(tmp_path, capsys):
    from neurohw.loihi.cli import format_divergence
    from neurohw.loihi.lava_bridge import first_divergence, run_netx_in_lava

    net = random_conv_net(0)
    path = write_netx(net, tmp_path / "n.net")
    assert main(["loihi", "compare", str(path), "--steps", "30", "--seed", "1"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("identical")
    # a network that differs in one threshold diverges from Lava's run of the file
    x = random_spikes(1, 30, net.input_shape, batch=1, rate=0.2)
    lava = run_netx_in_lava(path, x)
    other = net.copy()
    other.layers[1].neuron = CubaParams(other.layers[1].neuron.du, other.layers[1].neuron.dv,
                                        other.layers[1].neuron.vth + 40, other.layers[1].neuron.bias_mant,
                                        other.layers[1].neuron.bias_exp)
    d = first_divergence(simulate(other, x), lava)
    assert d is not None and d["layer"] == 1
    ref = lava.spikes[1][0].reshape(30, -1).numpy() != simulate(other, x).spikes[1][0].reshape(30, -1).numpy()
    assert d["step"] == int(np.argwhere(ref.any(axis=1))[0][0])
    msg = format_divergence(d, other)
    assert msg.startswith("first divergence: layer 1") and f"step {d['step']}" in msg


@pytest.mark.slow
def test_benchmark_runs_quick(tmp_path):
    """The benchmark runs end to end (no timing asserted)."""
    from bench.loihi.__main__ import main as bench_main

    out = tmp_path / "loihi.json"
    assert bench_main(["--quick", "--no-lava", "--batch", "4", "--out", str(out)]) == 0
    nets = json.loads(out.read_text())["figures"]["networks"]
    assert [e["network"] for e in nets] == ["dense_784_512_10", "conv_small"]
    rows = [r for e in nets for r in e["rows"]]
    assert [r["batch"] for r in rows] == [1, 4, 1, 4]
    assert all(r["neurohw_sample_steps_per_s"] > 0 and r["time_ratio_neurohw_over_snntorch"] > 0 for r in rows)
    assert all(r["timing"]["neurohw"]["wall_s"]["n"] >= 3 for r in rows)  # interleaved repeats recorded
    from neurohw.results import load_result, render_table

    res = load_result(out)
    table = res["figures"]["table"]
    assert [(r["net"], r["batch"]) for r in table["rows"]] == [("dense_784_512_10", 1), ("dense_784_512_10", 4),
                                                              ("conv_small", 1), ("conv_small", 4)]
    assert all(r["× Lava"] is None and r["× Lava (same rounds)"] is None and r["spikes = Lava"] is None
               for r in table["rows"])  # --no-lava: no claim
    assert table["rows"][0]["neurohw / snnTorch time"] == rows[0]["time_ratio_neurohw_over_snntorch"]
    assert "| dense_784_512_10 | 4 |" in render_table(res)


@pytest.mark.slow
def test_demo_stage_quick(tmp_path):
    from neurohw.demo import DemoContext
    from neurohw.loihi.demo_stage import run

    ctx = DemoContext(out=tmp_path, quick=True, seed=0)
    fig = run(ctx)
    assert (tmp_path / "loihi" / "demo_net.net").exists() and (tmp_path / "loihi" / "demo_net.nir").exists()
    assert (tmp_path / "loihi" / "raster_readout.png").exists()
    assert min(fig["float_vs_integer_spike_agreement"]) > 0.9
    if fig["lava"]["run"]:
        assert fig["lava"]["identical"]
    assert "Loihi 2 deployment" in ctx.markdown[0]


def test_netx_weight_choice_is_lossless():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from neurohw.loihi.quantize import netx_weight_choice

    @settings(max_examples=40, deadline=None)
    @given(seed=st.integers(0, 10_000), exp=st.integers(-3, 3), scale=st.sampled_from([1, 2, 8, 64]))
    def check(seed, exp, scale):
        rng = np.random.default_rng(seed)
        w = (rng.integers(-128 // scale, 128 // scale, size=(5, 12)) * 2 * scale).clip(-256, 254)
        w2, e2, b2 = netx_weight_choice(w, exp)
        p = CubaParams(du=200, dv=100, vth=30)
        a = LoihiNetwork((12,), [DenseLayer(w, p, weight_exp=exp)])
        b = LoihiNetwork((12,), [DenseLayer(w2, p, weight_exp=e2, num_weight_bits=b2)])
        x = random_spikes(seed, 10, (12,), batch=2, rate=0.5)
        assert np.array_equal(simulate(a, x, probe=[0]).current[0].numpy(), simulate(b, x, probe=[0]).current[0].numpy())

    check()


def test_demo_network_uses_teacher_conv1():
    pytest.importorskip("neurohw.models")
    from neurohw.models import LeNet5
    from neurohw.loihi.workflow import build_demo_network

    teacher = LeNet5()
    net, rep, layers = build_demo_network(teacher)
    w = teacher.conv1.weight.detach().numpy()
    q = net.layers[0].weight
    big = np.abs(w) > 0.2 * np.abs(w).max()
    assert np.array_equal(np.sign(q[big]), np.sign(w[big])) and "teacher" in layers[0].name


def test_loihi2_energy_uses_loihi2_constants_or_labelled_loihi1_fallbacks():
    from neurohw.loihi.report import ENERGY, LOIHI2_ENERGY, format_report

    net = random_conv_net(1)
    rep = full_report(net, random_spikes(0, 12, net.input_shape, batch=2, rate=0.2))
    l2 = rep["energy"]["loihi2"]
    total = 0.0
    for k, t in l2["terms"].items():
        own = LOIHI2_ENERGY[k]
        used = own if own.value is not None else ENERGY[k]
        assert t["constant"]["value"] == used.value and t["constant"]["source"] == used.source
        assert t["constant_from"] == ("loihi2" if own.value is not None else "loihi1 (fallback: no published Loihi 2 figure)")
        assert own.source and own.grade  # a missing figure says why
        total += t["count"] * used.value
    assert l2["total_J"] == pytest.approx(total) and l2["loihi2_constants_used"] + l2["loihi1_fallbacks"] == 4
    text = format_report(rep)
    assert "Loihi 2 estimate" in text and "fallback" in text
