"""Students, the three-arm comparison runner, its CLI, the demo stage and the benchmark (quick modes)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill.compare import ARMS, CompareConfig, anchor_batches, probe_batch, run_comparison
from distill.students import LinearConstrainedStudent, StudentUnavailable, build_student, student_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["cnn", "linear_constrained"])
def test_builtin_students_shapes_and_seeding(name):
    a, b = build_student(name, seed=3), build_student(name, seed=3)
    x = torch.rand(5, 1, 28, 28)
    assert a(x).shape == (5, 10)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), build_student(name, seed=4).parameters()))


def test_linear_constrained_front_end_is_linear_with_nonnegative_pairs():
    m = LinearConstrainedStudent()
    kp, kn = m.optical.kernels()
    assert (kp >= 0).all() and (kn >= 0).all()
    x1, x2 = torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)
    assert torch.allclose(m.optical(2 * x1 + x2), 2 * m.optical(x1) + m.optical(x2), atol=1e-5)


def test_unknown_and_backend_students():
    with pytest.raises(ValueError, match="unknown student"):
        build_student("nope")
    for name in ("optical", "bwsnn"):
        try:
            m = build_student(name)
        except StudentUnavailable:
            continue
        assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert {"cnn", "linear_constrained", "optical", "bwsnn"} <= set(student_names())
    with pytest.raises(StudentUnavailable, match="HybridMNIST takes"):
        build_student("optical", input_shape=(3, 32, 32))


def test_distill_imports_no_backend():
    code = ("import sys, distill, distill.compare, distill.students, distill.cli, distill.demo_stage; "
            "bad = [m for m in ('snn', 'optics', 'logic', 'calibration', 'neurohw.loihi') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_paired_differences_are_paired_and_flag_significance():
    import numpy as np

    from distill.compare import RunResult, paired_differences
    from neurohw.stats import pack_correct

    rng = np.random.default_rng(0)
    runs = []
    for seed in (0, 1, 2):
        base = rng.random(1000) < 0.9
        worse = base & (rng.random(1000) > 0.1)  # the same images, ~9 points lower
        for arm, c in (("ce", worse), ("kd", base), ("ntkd", base)):
            runs.append(RunResult("cnn", arm, seed, float(c.mean()), test_correct=pack_correct(c), n_test=1000))
    d = paired_differences(runs)["cnn"]
    assert d["ntkd − kd"]["mean"] == 0 and not d["ntkd − kd"]["excludes_0"]
    assert d["kd − ce"]["excludes_0"] and d["kd − ce"]["ci95"][0] > 5


def test_probe_and_anchor_batches(mnist5k):
    px, py = probe_batch(mnist5k.x_test, mnist5k.y_test, 20)
    assert len(px) == 20 and torch.equal(py, torch.sort(py).values) and set(py.tolist()) == set(range(10))
    a = anchor_batches(mnist5k.x_train, 4, 16)
    assert len(a) == 4 and all(t.shape == (16, 1, 28, 28) for t in a)
    assert all(torch.equal(x, y) for x, y in zip(a, anchor_batches(mnist5k.x_train, 4, 16)))


@pytest.mark.slow
def test_quick_comparison_equal_budgets_outputs_and_repeatable(tmp_path, mnist5k, tiny_teacher):
    cfg = CompareConfig.quick(students=("cnn",), seeds=(0, 1), n_train=256, n_test=100, ntk_anchors=2)
    res = run_comparison(cfg, tmp_path, teacher=tiny_teacher, split=mnist5k, progress=False, result="cmp-quick",
                         results_dir=tmp_path / "results", command="test")
    for f in ("table.md", "results.json", "accuracy.png", "kernels.png", "kernel_distance.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    # committed-result table: CIs from per-image correctness, paired differences between arms
    from neurohw.results import load_result, render_table

    r = load_result("cmp-quick", tmp_path / "results")
    assert "ntkd − kd (paired)" in render_table(r) and len(r["figures"]["rows"]) == 6
    lo, hi = res["summary"]["cnn"]["ce"]["accuracy_ci95"]
    assert lo <= res["summary"]["cnn"]["ce"]["accuracy_mean"] <= hi
    assert all(len(r.get("history", [])) for r in res["runs"]) and "val_accuracy" in res["runs"][0]["history"][-1]
    summ = res["summary"]["cnn"]
    assert set(summ) == set(ARMS)
    steps = {r["steps"] for r in res["runs"]}
    assert steps == {4}  # 256 / 64, identical for every arm and seed
    for v in summ.values():
        assert all(0 <= a <= 100 for a in v["accuracies"]) and len(v["accuracies"]) == 2
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["provenance"]["config"]["seeds"] == [0, 1] and "ntkd" in saved["table_markdown"]
    # Same seed, same arm → the same run (seeded init, data order and projections).
    again = run_comparison(CompareConfig(**{**cfg.__dict__, "seeds": (1,), "arms": ("ntkd",)}), None,
                           teacher=tiny_teacher, split=mnist5k, progress=False)
    first = next(r for r in res["runs"] if r["seed"] == 1 and r["arm"] == "ntkd")
    assert again["runs"][0]["history"] == first["history"]


@pytest.mark.slow
def test_cli_compare_quick(tmp_path, monkeypatch):
    from neurohw.cli import main

    monkeypatch.setenv("NEUROHW_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cmp"
    rc = main(["distill", "compare", "--quick", "--students", "cnn", "--seeds", "0", "--n-train", "192",
               "--ntk-anchors", "2", "--out", str(out), "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["summary"]["cnn"]) == set(ARMS) and res["provenance"]["config"]["n_train"] == 192


@pytest.mark.slow
def test_demo_stage_quick(tmp_path, mnist5k, tiny_teacher):
    from distill.demo_stage import run
    from neurohw.demo import DemoContext

    ctx = DemoContext(out=tmp_path, quick=True, seed=0, shared={"teacher_lenet5": tiny_teacher, "mnist5k": mnist5k})
    figs = run(ctx)
    assert set(figs["accuracy"]) == set(ARMS)
    assert (tmp_path / "distill" / "kernels.png").exists()
    assert "NTKD" in "".join(ctx.markdown)
    json.dumps(figs)


@pytest.mark.slow
def test_bench_quick_prints_ratios(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "bench.distill", "--quick", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "× CE" in r.stdout and "× exact" in r.stdout
    data = json.loads(out.read_text())["figures"]
    rows = [s for s in data["steps"] if "error" not in s]
    assert len(rows) == len(data["steps"]) == 3
    assert all(s["time_s"] > 0 and "ratio_vs_ce" in s for s in rows)
