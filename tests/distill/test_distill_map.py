"""Student capacity options and the resumable NTKD map (``distill.ntkd_map``, ``neurohw distill map``)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distill.compare import CompareConfig
from distill.ntkd_map import BASE, DEFAULT_SETTINGS, Setting, map_figures, map_rows, run_config, run_map, select_settings
from distill.students import StudentUnavailable, build_student
from neurohw.stats import pack_correct


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_optical_capacity_changes_the_kernels_and_the_backend_width():
    try:
        m = build_student("optical", kernels=2, hidden=16)
    except StudentUnavailable:
        pytest.skip("optics backend not present in this checkout")
    assert m.config["n_kernels"] == 2 and m.config["hidden"] == 16
    hidden = [l for l in m.backend if isinstance(l, torch.nn.Linear)]
    assert hidden[0].out_features == 16 and hidden[0].in_features == 2 * 11 * 11
    assert m(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert _n_params(build_student("optical")) == _n_params(build_student("optical", kernels=8, hidden=48))
    assert _n_params(m) < _n_params(build_student("optical", kernels=4))


def test_builtin_capacity_and_refused_options():
    assert build_student("cnn", kernels=2).conv.out_channels == 2
    lc = build_student("linear_constrained", kernels=3, hidden=5)
    assert lc.optical.pos.shape[0] == 3 and lc.fc1.out_features == 5
    with pytest.raises(ValueError, match="takes no capacity option.*hidden"):
        build_student("cnn", hidden=8)
    with pytest.raises(ValueError, match="positive integers"):
        build_student("linear_constrained", kernels=0)
    # None means "the student's default"
    assert _n_params(build_student("cnn", kernels=None)) == _n_params(build_student("cnn"))


def test_settings_change_exactly_their_overrides():
    base = CompareConfig(n_train=10800)
    keys = [s.key for s in DEFAULT_SETTINGS]
    assert keys[0] == BASE and len(set(keys)) == len(keys)
    for s in DEFAULT_SETTINGS:
        cfg = s.config(base)
        changed = {k for k in base.__dataclass_fields__ if getattr(cfg, k) != getattr(base, k)} - {"arms"}
        assert changed == set(s.overrides), s.key
    assert {"kernels", "hidden"} <= {k for s in DEFAULT_SETTINGS for k in s.overrides}
    assert {"mse", "normalised"} <= {s.overrides.get("ntk_loss") for s in DEFAULT_SETTINGS}
    with pytest.raises(ValueError, match="cannot override"):
        Setting("x", "a", "b", {"nope": 1}).config(base)
    with pytest.raises(ValueError, match="cannot override"):
        Setting("x", "a", "b", {"seeds": (1,)}).config(base)
    with pytest.raises(ValueError, match="unknown map setting"):
        select_settings(["k3"])
    assert [s.key for s in select_settings(["mse"])] == [BASE, "mse"]


def test_run_config_of_ce_and_kd_ignores_the_ntk_settings():
    base, mse = CompareConfig(), CompareConfig(ntk_loss="mse", n_projections=32)
    for arm in ("ce", "kd"):
        assert run_config(base, "optical", arm, 0, "d", 0.9) == run_config(mse, "optical", arm, 0, "d", 0.9)
    assert run_config(base, "optical", "ntkd", 0, "d", 0.9) != run_config(mse, "optical", "ntkd", 0, "d", 0.9)
    assert run_config(base, "optical", "ce", 0, "d", 0.9) != run_config(CompareConfig(kernels=2), "optical", "ce", 0, "d", 0.9)


def _recs(rng, p, n=2000, seeds=3):
    out = []
    for _ in range(seeds):
        c = rng.random(n) < p
        out.append({"test_accuracy": float(c.mean()), "correct": pack_correct(c), "n_test": n, "kernel_cka": 0.8})
    return out


def test_map_rows_verdicts_and_sentence():
    rng = np.random.default_rng(0)
    settings = (Setting(BASE, "base", "b"), Setting("w", "x", "win"))
    same = _recs(rng, 0.8)
    runs = {BASE: {"ce": same, "kd": same, "ntkd": same},
            "w": {"ce": _recs(rng, 0.6), "kd": _recs(rng, 0.6), "ntkd": _recs(rng, 0.9)}}
    rows = map_rows(settings, runs)
    assert rows[0]["verdict"] == "ties KD, ties CE" and not rows[0]["_beats_both"]
    assert rows[1]["verdict"] == "beats KD, beats CE; CIs separate" and rows[1]["_beats_both"]
    assert rows[1]["NTKD − CE"]["ci95"][0] > 20
    figs = map_figures(settings, runs, dataset="d", cfg=CompareConfig(), teacher_accuracy=0.9, n_train=10)
    assert figs["beats_both"] == ["win"] and "in: win" in figs["sentence"]
    assert all(not k.startswith("_") for r in figs["rows"] for k in r)
    loses = {BASE: {"ce": _recs(rng, 0.9), "kd": _recs(rng, 0.5), "ntkd": _recs(rng, 0.7)}}
    r = map_rows(settings[:1], loses)[0]
    assert r["verdict"] == "beats KD, loses to CE"
    figs = map_figures(settings[:1], loses, dataset="d", cfg=CompareConfig(), teacher_accuracy=0.9, n_train=10)
    assert "in none of the 1 settings" in figs["sentence"] and "below CE in 1" in figs["sentence"]


@pytest.mark.slow
def test_run_map_stores_each_run_resumes_and_borrows_base_arms(tmp_path, mnist5k, tiny_teacher):
    from neurohw.results import RunStore

    cfg = CompareConfig.quick(students=("cnn",), seeds=(0, 1), n_train=128, n_test=100, ntk_anchors=2, ntk_batch=8,
                              probe_size=10, n_projections=2)
    settings = (Setting(BASE, "base", "b"), Setting("k2", "capacity", "kernels 2", {"kernels": 2}),
                Setting("nm", "NTK loss", "normalised", {"ntk_loss": "normalised"}, ("ntkd",)))
    store = RunStore("map", tmp_path)
    runs = run_map(cfg, settings, store=store, teacher=tiny_teacher, split=mnist5k, student="cnn", dataset="mnist5k",
                   progress=False)
    files = sorted(p.name for p in store.folder.iterdir())
    assert len(files) == 2 * 3 + 2 * 3 + 2  # base and k2: 3 arms × 2 seeds; nm: ntkd × 2 seeds
    assert runs["nm"]["ce"] is runs[BASE]["ce"] and runs["nm"]["ntkd"] != runs[BASE]["ntkd"]
    assert runs["k2"]["ce"][0]["correct"] != runs[BASE]["ce"][0]["correct"]  # another student, really trained
    assert json.loads((store.folder / "k2-ce-s0.json").read_text())["config"]["kernels"] == 2
    mtimes = {p.name: p.stat().st_mtime_ns for p in store.folder.iterdir()}
    again = run_map(cfg, settings, store=store, teacher=tiny_teacher, split=mnist5k, student="cnn", dataset="mnist5k",
                    progress=False)
    assert again == runs and mtimes == {p.name: p.stat().st_mtime_ns for p in store.folder.iterdir()}
    (store.folder / "k2-ntkd-s1.json").unlink()  # an interrupted map: only the missing run is redone, identically
    third = run_map(cfg, settings, store=store, teacher=tiny_teacher, split=mnist5k, student="cnn", dataset="mnist5k",
                    progress=False)
    assert third["k2"]["ntkd"][1]["correct"] == runs["k2"]["ntkd"][1]["correct"]
    rows = map_rows(settings, third)
    assert [r["seeds"] for r in rows] == [2, 2, 2] and "(CE/KD from base)" in rows[2]["setting"]


@pytest.mark.slow
def test_cli_map_quick_writes_the_result_and_the_runs(tmp_path, monkeypatch):
    from neurohw.cli import main
    from neurohw.results import load_result, render_table

    monkeypatch.setenv("NEUROHW_CACHE", str(tmp_path / "cache"))
    rc = main(["distill", "map", "--quick", "--data", "mnist5k", "--student", "cnn", "--settings", "mse", "--seeds", "0,1",
               "--n-train", "128", "--results-dir", str(tmp_path), "--result", "m", "--no-progress"])
    assert rc == 0
    r = load_result("m", tmp_path)
    assert len(r["figures"]["rows"]) == 2 and r["config"]["student"] == "cnn" and r["seeds"] == [0, 1]
    assert "--settings mse" in r["command"] and "NTKD − KD" in render_table(r)
    assert len(list((tmp_path / "m").glob("*.json"))) == 3 * 2 + 2
