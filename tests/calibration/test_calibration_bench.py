"""The calibration benchmark runs in --quick mode and writes its figures (no timing asserted)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_calibration_quick(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "NEUROHW_CACHE": str(tmp_path / "cache"),
           "NEUROHW_RESULTS": str(tmp_path / "results")}
    out = subprocess.run([sys.executable, "-m", "bench.calibration", "--quick", "--parts", "time,memory", "--large", "1500"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "10 % calibration" in out.stdout and "peak RSS growth" in out.stdout
    figures = json.loads((tmp_path / "results/bench/calibration-resources.json").read_text())["figures"]
    assert figures["large_file"]["n_captures"] == 1500
    assert figures["calibration_10pct_s"] > 0 and figures["scan"]["peak_rss_mib"] > 0
    assert set(figures["timing"]) == {"calibration", "inference", "paper_ce"}
    assert set(figures["accuracies_10pct"]) >= {"simulation", "uncalibrated", "after_refit", "refit_ntk"}


@pytest.mark.slow
def test_bench_calibration_devices_quick(tmp_path):
    """The devices part: ≥ 5 devices, ≥ 2 out of the twin's family, every arm, a mean row, a table."""
    from neurohw.results import render_table

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "NEUROHW_CACHE": str(tmp_path / "cache"), "NEUROHW_RESULTS": str(tmp_path / "results")}
    out = subprocess.run([sys.executable, "-m", "bench.calibration", "--quick"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "results/bench/calibration.json").read_text())
    table = result["figures"]["table"]
    rows = table["rows"]
    devices = rows[:-1]
    assert len(devices) >= 5 and sum(r["twin family"] == "out" for r in devices) >= 2
    for col in ("uncalibrated", "refit", "refit + CE", "refit + CE+NTK", "CE-only fine-tune", "control",
                "refit+terms + CE+NTK"):
        assert col in table["columns"] and all(0 <= r[col] <= 100 for r in devices)
        assert set(rows[-1][col]) == {"mean", "std"}
    assert all(isinstance(r["fits within noise"], bool) for r in devices)
    assert all(isinstance(r["terms: fits within noise"], bool) for r in devices)
    assert set(result["figures"]["devices"][0]["terms_arm"]["twin_terms"]) == {
        "blur", "crosstalk", "magnification", "vignetting", "response", "gain"}  # every fitted term is recorded
    assert "refit + CE+NTK" in render_table(result)
