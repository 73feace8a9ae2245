"""The command line and the demo (quick mode) work as a user runs them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neurohw.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "train-teacher" in out


def test_python_dash_m_neurohw_version():
    out = subprocess.run([sys.executable, "-m", "neurohw", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("neurohw ")


def test_unknown_stage_is_rejected(tmp_path):
    with pytest.raises(SystemExit, match="unknown demo stage"):
        main(["demo", "--quick", "--out", str(tmp_path), "--stages", "nonsense"])


def test_no_command_prints_help():
    assert main([]) == 2
    assert build_parser().prog == "neurohw"


@pytest.mark.slow
def test_demo_teachers_stage_quick(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--stages", "teachers"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert 0.5 < res["teachers"]["lenet5"]["test_accuracy"] <= 1.0
    assert res["provenance"]["seed"] == 0
    for png in ("learning_curves.png", "lenet5_confusion.png", "samples.png"):
        assert (tmp_path / "teachers" / png).stat().st_size > 1000
    assert "Teachers on MNIST-5k" in (tmp_path / "report.md").read_text()
