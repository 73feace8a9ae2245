"""Safe IO: safetensors + JSON sidecar round trip, atomic writes keep the old file on failure."""
from __future__ import annotations

import json

import pytest
import torch

from neurohw.io import CheckpointError, atomic_path, atomic_write_json, load_checkpoint, load_into, save_checkpoint
from neurohw.models import LeNet5


def test_checkpoint_roundtrip(tmp_path):
    m = LeNet5()
    p = save_checkpoint(tmp_path / "m.safetensors", m, config={"a": 1}, seed=7, extra={"acc": 0.5})
    m2 = LeNet5()
    meta = load_into(m2, p)
    for (k, v), (k2, v2) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert meta["seed"] == 7 and meta["config"] == {"a": 1} and meta["extra"]["acc"] == 0.5
    assert "torch" in meta["versions"] and meta["tensors"]["fc3.weight"]["shape"] == [10, 84]


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="bad.safetensors: not a readable safetensors"):
        load_checkpoint(tmp_path / "bad.safetensors")
    p = save_checkpoint(tmp_path / "small.safetensors", {"w": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="does not match LeNet5"):
        load_into(LeNet5(), p)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_atomic_files_get_the_umask_mode(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        p = atomic_write_json(tmp_path / "r.json", {"a": 1})
        assert (p.stat().st_mode & 0o777) == 0o644
        os.umask(0o077)
        p2 = atomic_write_json(tmp_path / "r2.json", {"a": 1})
        assert (p2.stat().st_mode & 0o777) == 0o600
        os.umask(0o022)  # safetensors writes its file itself (0600): the finished checkpoint still follows the umask
        ck = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.arange(3.0)})
        assert (ck.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)


def test_sidecar_never_overwrites_weights(tmp_path):
    from neurohw.io import sidecar_path

    p = save_checkpoint(tmp_path / "model.json", {"w": torch.arange(3.0)})
    assert sidecar_path(p) != p and sidecar_path(p).exists()
    tensors, meta = load_checkpoint(p)
    assert torch.equal(tensors["w"], torch.arange(3.0)) and "w" in meta["tensors"]


def test_check_writable(tmp_path):
    import os

    from neurohw.errors import UsageError
    from neurohw.io import check_writable

    check_writable(tmp_path / "a" / "b" / "c.json")
    check_writable(tmp_path / "new", kind="dir")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_writable(tmp_path / "f" / "x.json")
    with pytest.raises(UsageError, match="is a folder"):
        check_writable(tmp_path, kind="file")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if not os.access(ro, os.W_OK):  # root can write anyway
            with pytest.raises(UsageError, match="not writable"):
                check_writable(ro / "x.json", where="--out")
    finally:
        os.chmod(ro, 0o755)


def test_provenance_hides_secret_options():
    from neurohw.io import redacted_argv

    argv = ["neurohw", "lab", "capture", "--device-seed", "7", "--out", "c.h5", "--device-seed=8", "--device-s", "9"]
    out = redacted_argv(argv)
    assert not {"7", "8", "9", "--device-seed=8"} & set(out)
    assert out[:5] == ["neurohw", "lab", "capture", "--device-seed", "<hidden>"] and "--device-seed=<hidden>" in out
    assert redacted_argv(["x", "--seed", "7"]) == ["x", "--seed", "7"]


def test_nonfinite_checkpoints_are_refused_and_never_replace_a_good_one(tmp_path):
    good = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(3)})
    before = good.read_bytes()
    with pytest.raises(CheckpointError, match=r"refusing to write.*\['w'\].*existing file is kept"):
        save_checkpoint(good, {"w": torch.tensor([1.0, float("nan"), 0.0])})
    assert good.read_bytes() == before
    from safetensors.torch import save_file

    save_file({"w": torch.tensor([float("inf")])}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=r"bad.safetensors: NaN/Inf values in tensor\(s\) \['w'\]"):
        load_checkpoint(tmp_path / "bad.safetensors")
    assert load_checkpoint(tmp_path / "bad.safetensors", allow_nonfinite=True)[0]["w"].isinf().all()
