"""The research workflow through the command line, each step reading the previous step's output:

teacher (train-teacher) → KD student (snn train --teacher) → its Loihi export; teacher → optical
student + hardware (optics design) → captures (lab capture --model DIR) → calibrate (--teacher)
→ the calibrated bundle is loaded and predicts → export-layout and fabricate read it.
"""
from __future__ import annotations

import json

import pytest
import torch


@pytest.mark.slow
def test_teacher_student_hardware_capture_calibrate_export(tmp_path, capsys):
    from neurohw.cli import main
    from neurohw.io import artifact_kind, load_artifact

    t = tmp_path / "teacher"
    assert main(["train-teacher", "lenet5", "--out", str(t), "--epochs", "1", "--limit", "300"]) == 0
    assert artifact_kind(t / "model.safetensors") == "teacher"

    s = tmp_path / "snn"
    assert main(["snn", "train", "--quick", "--set", "kd=true", "--set", "n_train=200", "--set", "n_test=50",
                 "--teacher", str(t), "--out", str(s)]) == 0
    assert "cached default teacher" not in capsys.readouterr().err  # the given teacher was used
    assert main(["snn", "export", "--checkpoint", str(s / "model.safetensors"), "--to", "loihi", "--out", str(s / "net.h5")]) == 0

    d = tmp_path / "design"
    assert main(["optics", "design", "--out", str(d), "--epochs", "1", "--n-train", "300", "--n-test", "100",
                 "--iterations", "5", "--threads", "1"]) == 0
    assert artifact_kind(d / "hardware.safetensors") == "optical-hardware"

    cap = tmp_path / "captures.h5"
    assert main(["lab", "capture", "--model", str(d), "--limit", "200", "--out", str(cap), "--device-seed", "7",
                 "--dark-frames", "2"]) == 0

    c = tmp_path / "calibrated"
    assert main(["calibrate", str(d), "--captures", str(cap), "--fraction", "0.1", "--out", str(c), "--quick",
                 "--no-curve", "--teacher", str(t)]) == 0
    assert "cached default teacher" not in capsys.readouterr().err
    hw = load_artifact(c / "calibrated.safetensors")
    assert hw.backend == "optics" and hw.meta.get("calibrated") is True
    from neurohw.data import load_mnist5k

    split = load_mnist5k()
    logits = hw.predict(split.x_test[:64])
    assert logits.shape == (64, 10) and torch.isfinite(logits).all()
    assert (logits.argmax(1) == split.y_test[:64]).float().mean() > 0.2  # well above chance (0.1)

    e = tmp_path / "layout"
    assert main(["optics", "export-layout", "--design", str(c / "calibrated.safetensors"), "--out", str(e)]) == 0
    assert json.loads((e / "layout.json").read_text())["read_back_ok"]
    assert main(["optics", "fabricate", "--design", str(c / "calibrated.safetensors"), "--out", str(e), "-n", "1",
                 "--n-test", "50", "--threads", "1"]) == 0
    assert (e / "fabricated.json").exists()
