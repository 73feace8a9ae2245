"""Command line (train, export, experiments), demo stage and benchmark, end to end in quick mode."""
from __future__ import annotations

import json

import numpy as np
import pytest

from neurohw.cli import main


@pytest.mark.slow
def test_train_then_export(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"arch": "mlp", "channels": [32], "multi_shortcut": True, "n_train": 400, "n_test": 200}))
    assert main(["snn", "train", "--config", str(cfg), "--quick", "--out", str(out), "--set", "surrogate=\"triangle\""]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["prediction_agreement"] == 1.0
    assert metrics["train_mode_accuracy"] == metrics["deploy_mode_accuracy"]
    assert metrics["provenance"]["config"]["surrogate"] == "triangle"
    assert "deploy-mode accuracy" in capsys.readouterr().out

    from neurohw.loihi.netx_io import read_netx
    from snn.deploy import to_loihi_network
    from snn.experiments import load_model

    assert main(["snn", "export", "--checkpoint", str(out / "model.safetensors"), "--to", "loihi", "--out", str(tmp_path / "m.h5")]) == 0
    back = read_netx(tmp_path / "m.h5")
    net = to_loihi_network(load_model(out / "model.safetensors"))
    assert len(back.layers) == len(net.layers)
    for a, b in zip(back.layers, net.layers):
        # netx stores dense weights re-scaled by its weight-bit optimisation: compare W·2^weight_exp
        eff = lambda l: np.asarray(l.weight, dtype=np.float64) * 2.0 ** getattr(l, "weight_exp", 0)
        assert np.array_equal(eff(a), eff(b))
        assert len(a.shortcuts) == len(b.shortcuts)
    assert main(["snn", "export", "--checkpoint", str(out / "model.safetensors"), "--to", "nir", "--out", str(tmp_path / "m.nir")]) == 0
    assert (tmp_path / "m.nir").stat().st_size > 0


def test_bad_configs_name_the_problem(tmp_path, capsys):
    assert main(["snn", "train", "--config", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    assert "missing.json: config file does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"chanels": [3]}')
    assert main(["snn", "train", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert "unknown field" in capsys.readouterr().err
    assert main(["snn", "train", "--set", "epochs", "--out", str(tmp_path)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_experiments_quick(tmp_path):
    out = tmp_path / "exp"
    assert main(["snn", "experiments", "--quick", "--seeds", "1", "--variants", "bwsnn,bwsnn_kd", "--out", str(out),
                 "--teacher", "lenet5", "--result", "snn-quick", "--results-dir", str(tmp_path / "results")]) == 0
    res = json.loads((out / "results.json").read_text())
    from neurohw.results import load_result, render_table

    r = load_result("snn-quick", tmp_path / "results")
    assert "bwsnn_kd − bwsnn (paired, points)" in render_table(r) and r["command"].startswith("neurohw snn experiments")
    lo, hi = res["summary"]["bwsnn"]["deploy_mode_accuracy"]["ci95"]
    assert lo <= res["summary"]["bwsnn"]["deploy_mode_accuracy"]["mean"] <= hi and hi - lo > 0.03  # 300 test images
    assert set(res["summary"]) == {"bwsnn", "bwsnn_kd"}
    for s in res["summary"].values():
        assert s["prediction_agreement"]["mean"] == 1.0
        assert 0.1 < s["train_mode_accuracy"]["mean"] <= 1.0
    assert res["teacher"]["accuracy"] > 0.5 and res["teacher"]["name"] == "lenet5" and "--teacher lenet5" in r["command"]
    assert 0.5 < res["teacher"]["val_accuracy"] <= 1.0
    assert "kd_gain_ci_above_0 (bwsnn_kd − bwsnn)" in res["targets"]  # no sei_bwsnn here: no anchor line
    assert not any("albsnn" in k for k in res["targets"])
    assert "| bwsnn_kd |" in (out / "table.md").read_text()
    assert res["provenance"]["config"]["seeds"] == [0]
    # a rerun resumes: finished runs are read back, not retrained
    before = (out / "runs" / "bwsnn-s0.json").stat().st_mtime_ns
    main(["snn", "experiments", "--quick", "--seeds", "1", "--variants", "bwsnn", "--out", str(out)])
    assert (out / "runs" / "bwsnn-s0.json").stat().st_mtime_ns == before


def test_targets_report_anchor_teacher_gap_and_kd_ci():
    from snn.experiments import _targets

    cell = lambda m: {"mean": m, "std": 0.0}  # noqa: E731
    summary = {v: {"train_mode_accuracy": cell(a), "deploy_mode_accuracy": cell(a)}
               for v, a in (("bwsnn", 0.80), ("bwsnn_ms", 0.81), ("bwsnn_kd", 0.82), ("sei_bwsnn", 0.935))}
    gains = {"bwsnn_kd − bwsnn": {"mean": 2.0, "std": 0.1, "ci95": [1.2, 2.8]},
             "sei_bwsnn − bwsnn_ms": {"mean": 12.5, "std": 0.1, "ci95": [-0.1, 25.0]}}
    t = _targets(summary, {"accuracy": 0.96}, gains)
    assert t["sei_deployed_at_least_albsnn_93.39"].endswith("→ met")
    assert t["sei_within_1.5_of_teacher (deploy mode)"] == "gap 2.50 points → not met"
    assert t["kd_gain_ci_above_0 (bwsnn_kd − bwsnn)"].endswith("→ met")
    assert t["kd_gain_ci_above_0 (sei_bwsnn − bwsnn_ms)"].endswith("→ not met")
    summary["sei_bwsnn"]["deploy_mode_accuracy"] = cell(0.93)
    assert _targets(summary, None)["sei_deployed_at_least_albsnn_93.39"] == "93.00 % → not met"


@pytest.mark.slow
def test_demo_stage_quick(tmp_path):
    from neurohw.demo import DemoContext
    from snn.demo_stage import run

    ctx = DemoContext(out=tmp_path, quick=True, seed=0)
    fig = run(ctx)
    assert fig["prediction_agreement"] == 1.0
    assert fig["spikes_per_inference"] > 0
    assert (tmp_path / "snn" / "raster.png").exists()
    assert "SEI-BWSNN" in ctx.markdown[0]
    json.dumps(fig)


@pytest.mark.slow
def test_bench_quick_runs(capsys, tmp_path):
    from bench.snn.__main__ import main as bench_main

    assert bench_main(["--quick", "--out", str(tmp_path / "snn.json")]) == 0
    out = capsys.readouterr().out
    assert "ratio" in out and "snnTorch" in out
    figs = json.loads((tmp_path / "snn.json").read_text())["figures"]
    assert {r["batch"] for r in figs["rows"]} == {1, 32} and all(r["same_output"] for r in figs["rows"])
    st = figs["rows"][0]["timing"]
    assert set(st) == {"snntorch", "snn", "snn_exact"} and all(st[s]["wall_s"]["n"] == 3 for s in st)
