"""Command line, experiments runner, demo stage and benchmark, in quick mode (they run; figures are consistent)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from logic import export
from neurohw.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cli_train_then_export(tmp_path):
    out = tmp_path / "run"
    assert main(["logic", "train", "--model", "dense", "--quick", "--epochs", "1", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts_equal"] and metrics["acc_hard"] == metrics["acc_packed"]
    assert metrics["provenance"]["seed"] == 0
    assert main(["logic", "export", "--checkpoint", str(out / "model.safetensors"), "--format", "verilog",
                 "--out", str(tmp_path / "n.v")]) == 0
    assert "endmodule" in (tmp_path / "n.v").read_text()
    assert main(["logic", "export", "--netlist", str(out / "netlist.npz"), "--format", "c", "--out", str(tmp_path / "n.c")]) == 0
    if export.find_cc():
        exe = export.compile_c(tmp_path / "n.c", tmp_path / "n")
        from logic.models import load_model
        from neurohw.data import load_mnist5k

        model = load_model(out / "model.safetensors").eval()
        x = load_mnist5k().x_test[:128]
        assert torch.equal(export.run_c_counts(exe, model.encode_bits(x), 10), model.hard_counts(x))


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["logic", "export", "--format", "c", "--out", str(tmp_path / "x.c")])  # no source given
    from neurohw.io import CheckpointError

    argv = ["logic", "export", "--checkpoint", str(tmp_path / "none.safetensors"), "--format", "c", "--out", str(tmp_path / "x.c")]
    assert main(argv) == 2
    assert "none.safetensors: checkpoint file does not exist" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="does not exist"):  # --debug: the exception itself
        main(["--debug", *argv])


@pytest.mark.slow
def test_experiments_quick(tmp_path, capsys):
    assert main(["logic", "experiments", "--quick", "--seeds", "1", "--out", str(tmp_path),
                 "--models", "dense_lgn,tree_residual,db_mnist"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    table = (tmp_path / "table.md").read_text()
    assert {s["model"] for s in res["summary"]} == {"dense_lgn", "tree_residual", "db_mnist"}
    for s in res["summary"]:
        if s["model"] == "db_mnist":
            assert s["soft_equals_hard_all"] and s["bit_mismatches"] == 0
        else:
            assert s["counts_equal_all"] and s["acc_hard"] == s["acc_packed"]
            assert s["gates"][0] <= s["gates_raw"][0]
    assert "| dense_lgn | 1 |" in table and "db_mnist" in table
    assert res["provenance"]["config"]["quick"] is True
    # the committed-result file: per-run JSON (resumable) and the table with a CI from per-image correctness
    from neurohw.results import load_result

    r = load_result("logic-mnist5k-quick", tmp_path / "results")
    row = next(x for x in r["figures"]["rows"] if x["model"] == "dense_lgn")
    lo, hi = row["test hard % [95 % CI]"]["ci95"]
    assert lo <= row["test hard % [95 % CI]"]["mean"] <= hi and hi - lo > 0.02  # 200 test images: ≥ ±2 points
    assert (tmp_path / "results" / "logic-mnist5k-quick" / "dense_lgn-s0.json").exists()
    capsys.readouterr()
    assert main(["logic", "experiments", "--quick", "--seeds", "1", "--out", str(tmp_path), "--models", "dense_lgn"]) == 0
    assert "dense_lgn seed 0: reusing dense_lgn-s0.json" in capsys.readouterr().out  # resumed, not retrained


@pytest.mark.slow
def test_demo_stage_quick(tmp_path):
    from neurohw.demo import DemoContext
    from logic.demo_stage import run

    ctx = DemoContext(out=tmp_path, quick=True)
    fig = run(ctx)
    assert fig["packed_counts_equal_hard"] and fig["acc_hard"] == fig["acc_packed"]
    if export.find_cc():
        assert fig["c_counts_equal_hard"] and fig["c_images_per_s"] > 0
    assert (tmp_path / "logic" / "dense_lgn.v").exists() and ctx.markdown
    json.dumps(fig)


@pytest.mark.slow
def test_bench_quick(tmp_path):
    import os

    out = tmp_path / "logic.json"
    env = {**os.environ, "NEUROHW_CACHE": str(tmp_path / "cache")}  # the quick net is trained here, not in the user cache
    p = subprocess.run([sys.executable, "-m", "bench.logic", "--quick", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "naive 16-gate sum" in p.stdout and "vs 1 M/s" in p.stdout
    res = json.loads(out.read_text())["figures"]
    assert res["training"]["fast_step_s"] > 0
    (net,) = res["nets"]
    assert net["c_equal_hard"] and net["c_equal_packed"] and net["c_images_per_core"]["median"] > 0
    assert res["table"]["rows"][0]["counts = hardened"] is True


@pytest.mark.parametrize("name", ["x; } int evil() { return 1; } void y(", "module", "1abc", "int", "endmodule", "__x", "",
                                  "a-b", "x" * 65])
@pytest.mark.parametrize("fmt", ["c", "verilog"])
def test_export_refuses_unsafe_names(tmp_path, capsys, name, fmt):
    """An export name that is no C/Verilog identifier or is a keyword: exit 2, a clear message, nothing written."""
    from logic.identifiers import IdentifierError
    from logic.netlist import NetlistBuilder

    b = NetlistBuilder(2)
    net = b.build([int(b.add(6, 0, 1))])
    src = net.save(tmp_path / "n.npz")
    out = tmp_path / "n.out"
    out.write_text("sentinel")
    argv = ["logic", "export", "--netlist", str(src), "--format", fmt, "--out", str(out), "--name", name]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--name" in err and ("identifier" in err or "keyword" in err or "reserved" in err or "longer" in err)
    assert out.read_text() == "sentinel"
    with pytest.raises(IdentifierError):
        (export.to_c if fmt == "c" else export.to_verilog)(net, name=name)


def test_export_accepts_plain_names(tmp_path):
    from logic.netlist import NetlistBuilder

    b = NetlistBuilder(2)
    net = b.build([int(b.add(6, 0, 1))])
    src = net.save(tmp_path / "n.npz")
    assert main(["logic", "export", "--netlist", str(src), "--format", "verilog", "--out", str(tmp_path / "n.v"),
                 "--name", "my_net2"]) == 0
    assert "module my_net2 (" in (tmp_path / "n.v").read_text()


def test_experiments_config_file(tmp_path, capsys):
    """--config merges its groups over the defaults key by key, is recorded, and bad files are named."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"dense": {"epochs": 1, "widths": [300, 300, 100]}, "n_test": 100}))
    assert main(["logic", "experiments", "--quick", "--seeds", "1", "--out", str(tmp_path / "o"), "--models", "dense_lgn",
                 "--config", str(cfg), "--result", "logic-cfg-test"]) == 0
    from neurohw.results import load_result

    r = load_result("logic-cfg-test", tmp_path / "o" / "results")
    dense = r["config"]["dense"]
    assert dense["epochs"] == 1 and list(dense["widths"]) == [300, 300, 100]
    assert dense["lr"] == 0.05 and r["config"]["n_test"] == 100 and r["config"]["n_train"] == 400  # rest: quick defaults
    assert r["command"] == (f"neurohw logic experiments --seeds 1 --data mnist5k --quick --models dense_lgn "
                            f"--config {cfg.as_posix()} --result logic-cfg-test")
    capsys.readouterr()
    for text, msg in [("[1, 2]", "must be a JSON object"), ("{", "not valid JSON"),
                      ('{"dnse": {}}', "unknown key(s) ['dnse']"), ('{"tree": {"epoch": 2}}', "unknown setting(s) ['epoch']"),
                      ('{"tree": {"epochs": -1}}', "epochs")]:
        cfg.write_text(text)
        assert main(["logic", "experiments", "--quick", "--out", str(tmp_path / "o2"), "--config", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert msg in err and "--config" in err, (text, err)
    assert main(["logic", "experiments", "--config", str(tmp_path / "none.json")]) == 2
    assert "none.json: no such file" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()

