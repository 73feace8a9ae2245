"""The neuromorphic calibration loop on virtual-lab captures, from the command line."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from calibration.neuromorphic import first_divergence
from calibration.neuromorphic_lab import VirtualNeuromorphicChip
from neurohw.cli import main
from neurohw.loihi import simulate
from neurohw.loihi.random_nets import random_dense_net, random_spikes


def test_chip_without_perturbation_is_the_simulation_and_perturbs_otherwise():
    net = random_dense_net(0, sizes=(20, 40, 10), netx_safe=True)
    x = random_spikes(0, 20, (20,), batch=3, rate=0.3)
    ideal = VirtualNeuromorphicChip(net, 1, {"drop": 0, "extra": 0, "jitter": 0, "threshold_sigma": 0, "decay_sigma": 0,
                                            "neurons_per_core": 7})
    sim = simulate(net, x).spikes
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(ideal.run(x), sim))
    assert sum(int(s.sum()) for s in sim) > 0
    noisy = VirtualNeuromorphicChip(net, 1).run(x)
    assert not np.array_equal(noisy[-1], sim[-1].numpy())
    assert first_divergence(sim[-1].numpy(), sim[-1].numpy()) is None


@pytest.mark.slow
def test_cli_calibrates_on_virtual_lab_captures(tmp_path, capsys):
    net, caps, out = tmp_path / "d.net", tmp_path / "c.h5", tmp_path / "cal"
    assert main(["lab", "neuromorphic-model", "--out", str(net), "--steps", "32"]) == 0
    assert main(["lab", "neuromorphic-capture", "--net", str(net), "--out", str(caps), "--steps", "32",
                 "--device-seed", "7"]) == 0
    with h5py.File(caps, "r") as f:  # the chip's seed and drawn values are not in the file
        text = json.dumps({k: str(v) for k, v in f.attrs.items()})
        assert f.attrs["device_kind"] == "neuromorphic" and "device_seed" not in text and "7," not in text
    assert main(["calibrate", str(net), "--captures", str(caps), "--out", str(out), "--fraction", "0.5"]) == 0
    r = json.loads((out / "results.json").read_text())
    a = r["accuracies"]
    print(a, r["agreement"])
    assert set(a) == {"simulation", "uncalibrated", "control", "calibrated"}
    assert 0 < r["agreement"]["raster_agreement"] < 1 and r["agreement"]["first_divergence"] is not None
    assert a["calibrated"] > a["uncalibrated"]
    assert "first divergence" in (out / "report.md").read_text()
    assert main(["calibrate", str(net), "--captures", str(caps), "--out", str(out), "--fraction", "1"]) == 2


def test_calibrate_refuses_mismatched_network(tmp_path):
    from calibration.neuromorphic_lab import capture_neuromorphic
    from neurohw.loihi.netx_io import write_netx

    net = random_dense_net(0, sizes=(20, 40, 10), netx_safe=True)
    other = write_netx(random_dense_net(1, sizes=(12, 10), netx_safe=True), tmp_path / "o.net")
    capture_neuromorphic(net, random_spikes(0, 10, (20,), batch=6), np.arange(6) % 10, tmp_path / "c.h5", num_classes=10, device_seed=0)
    assert main(["calibrate", str(other), "--captures", str(tmp_path / "c.h5"), "--out", str(tmp_path / "o")]) == 2
