"""save_artifact / load_artifact: one round trip per kind, kind checks, clear errors."""
from __future__ import annotations

import json

import pytest
import torch

from neurohw.io import CheckpointError, artifact_kind, load_artifact, save_artifact


def _objects():
    from logic.models import dense_lgn
    from neurohw.models import build_teacher
    from optics.hybrid import HybridMNIST
    from snn.model import BWSNN, BWSNNConfig
    from neurohw.backend import get_backend

    torch.manual_seed(0)
    hw = get_backend("optics").harden(HybridMNIST(), iterations=1)
    return {
        "teacher": build_teacher("lenet5"),
        "bwsnn": BWSNN(BWSNNConfig(arch="mlp", channels=(16,)), in_shape=(1, 8, 8)),
        "logic-net": dense_lgn(input_shape=(1, 8, 8), levels=2, widths=(40, 20), seed=1),
        "optics-design": hw.design,
        "optical-hardware": hw,
    }


def test_every_kind_round_trips(tmp_path):
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for kind, obj in _objects().items():
        path = save_artifact(obj, tmp_path / f"{kind}.safetensors")
        side = json.loads(path.with_suffix(".json").read_text())
        assert side["kind"] == kind and side["version"] == 1 and "config" in side and "torch" in side["versions"]
        assert artifact_kind(path) == kind
        back = load_artifact(path)
        assert type(back) is type(obj)
        if kind in ("teacher", "bwsnn", "logic-net"):
            obj.eval(), back.eval()
            xx = torch.rand(4, 1, 28, 28) if kind == "teacher" else x
            assert torch.equal(obj(xx), back(xx))
        elif kind == "optics-design":
            assert torch.equal(back.radii, obj.radii) and back.fidelity == obj.fidelity
        else:
            imgs = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
            assert torch.equal(back.predict(imgs), obj.predict(imgs))


def test_kind_mismatch_missing_and_unsaveable(tmp_path):
    from neurohw.models import build_teacher

    p = save_artifact(build_teacher("lenet5"), tmp_path / "t.safetensors")
    with pytest.raises(CheckpointError, match="is a 'teacher' artifact, expected 'bwsnn'"):
        load_artifact(p, kinds=("bwsnn",))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_artifact(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="folder holds no artifact"):
        load_artifact(tmp_path, kinds=("optical-hardware",))
    with pytest.raises(CheckpointError, match="cannot save a Linear"):
        save_artifact(torch.nn.Linear(2, 2), tmp_path / "l.safetensors")
    side = p.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["version"] = 99
    side.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="artifact version 99"):
        load_artifact(p)
