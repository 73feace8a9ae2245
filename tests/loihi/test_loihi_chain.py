"""The CLI chain: data set → loihi encode → an exported BWSNN → predictions equal to snn's deploy mode."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch

from neurohw.cli import main
from neurohw.loihi.chain import class_scores, encode_images, validate_spikes
from neurohw.loihi.isolate import LavaTimeout, call_isolated


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mnist5k):
    from snn.deploy import loihi_forward
    from snn.export import export_model
    from snn.model import BWSNN, BWSNNConfig

    torch.manual_seed(0)
    model = BWSNN(BWSNNConfig(arch="mlp", channels=(24,), steps=3), in_shape=(1, 28, 28)).eval()
    root = tmp_path_factory.mktemp("chain")
    net = export_model(model, "loihi", root / "net.h5")
    x, y = mnist5k.x_test[:40], mnist5k.y_test[:40]
    expected = loihi_forward(model, x).predictions.numpy()
    return {"root": root, "net": net, "expected": expected, "y": y.numpy()}


def test_encode_then_simulate_gives_deploy_predictions(exported, tmp_path, capsys):
    sp, pred = tmp_path / "sp.npy", tmp_path / "pred.npy"
    assert main(["loihi", "encode", "--data", "mnist5k", "--net", str(exported["net"]), "--limit", "40", "--out", str(sp)]) == 0
    s = np.load(sp)
    assert s.shape == (40, 3 + 4, 1, 28, 28) and s.dtype == np.uint8 and not s[:, 3:].any()  # T = 3, 3 spiking layers + 1 padding steps
    assert np.array_equal(np.load(tmp_path / "sp.labels.npy"), exported["y"])
    capsys.readouterr()
    assert main(["loihi", "simulate", str(exported["net"]), "--input", str(sp), "--labels", str(tmp_path / "sp.labels.npy"),
                 "--out", str(tmp_path / "o.npy"), "--predictions", str(pred)]) == 0
    assert np.array_equal(np.load(pred), exported["expected"])
    acc = 100 * float((exported["expected"] == exported["y"]).mean())
    assert f"accuracy {acc:.2f} %" in capsys.readouterr().out
    # --data directly: the same predictions
    assert main(["loihi", "simulate", str(exported["net"]), "--data", "mnist5k", "--samples", "40",
                 "--out", str(tmp_path / "o2.npy"), "--predictions", str(tmp_path / "p2.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "p2.npy"), exported["expected"])


def test_report_uses_the_exported_data_by_default(exported, capsys):
    assert main(["loihi", "report", str(exported["net"]), "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 mnist5k test images, if code, 3 steps" in out and "accuracy" in out
    assert main(["loihi", "report", str(exported["net"]), "--random", "--samples", "2"]) == 0
    assert "random Bernoulli input" in capsys.readouterr().out


def test_encoders_and_readouts():
    x = torch.rand(3, 1, 4, 4)
    for enc in ("if", "rate", "latency", "direct"):
        s = encode_images(x, 5, enc, seed=1, pad=2)
        assert s.shape == (3, 7, 1, 4, 4) and not s[:, 5:].any()
    assert np.array_equal(encode_images(x, 5, "rate", seed=1), encode_images(x, 5, "rate", seed=1))
    assert encode_images(x, 2, "direct").max() <= 255

    class R:  # a SimResult-shaped stand-in with a known last-layer trace
        spikes = [torch.zeros(2, 4, 3), torch.tensor([[[0, 1, 0]] * 4, [[1, 0, 0]] * 4])]
        current = {1: torch.tensor([[[0, 0, 64]] * 4, [[0, 128, 0]] * 4])}
        voltage = {}
    assert class_scores(R, "spikes").argmax(1).tolist() == [1, 0]
    assert class_scores(R, "current", window_start=1, current_shift=6).tolist() == [[0, 0, 3], [0, 6, 0]]


def test_spike_values_are_validated():
    from neurohw.loihi.network import CubaParams, DenseLayer, LoihiNetwork

    net = LoihiNetwork((4,), [DenseLayer(np.ones((2, 4), dtype=int), CubaParams(du=0, dv=0, vth=10))])
    ok = np.zeros((3, 4))
    assert validate_spikes(ok, net, "s.npy").dtype == np.int64
    for bad, msg in [(np.full((3, 4), np.nan), "finite"), (np.full((3, 4), 300), r"\[0, 1\]"),
                     (np.full((3, 4), -1), r"\[0, 1\]"), (np.full((3, 4), 0.5), "integers"), (np.zeros((0, 4)), "empty")]:
        with pytest.raises(ValueError, match=msg):
            validate_spikes(bad, net, "s.npy")


def _sleep_forever(marker):
    pid = os.fork()  # a grandchild, like Lava's runtime processes
    if pid == 0:
        while True:
            time.sleep(1)
    with open(marker, "w") as fh:
        fh.write(str(pid))
    time.sleep(60)


def test_isolated_call_times_out_and_kills_the_process_group(tmp_path):
    assert call_isolated(sum, [1, 2, 3], timeout_s=30) == 6
    with pytest.raises(ZeroDivisionError):
        call_isolated(lambda: 1 / 0, timeout_s=30)
    marker = tmp_path / "pid"
    t0 = time.monotonic()
    with pytest.raises(LavaTimeout, match="did not finish within 1 s"):
        call_isolated(_sleep_forever, str(marker), timeout_s=1)
    assert time.monotonic() - t0 < 10
    grandchild = int(marker.read_text())
    time.sleep(0.2)
    assert not _running(grandchild)  # killed with its group (at most a zombie until init reaps it)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
