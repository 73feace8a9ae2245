"""The four faces of every registered backend, exercised by one parametrised test.

For each backend: harden a small seeded student, check ``predict`` against the student's own
exact path (Loihi: snn's integer forward; logic: the hardened float model's class counts;
optics: the student's back-end on the same seeded physical front-end), export every format
and read it back, and build the report (Markdown, JSON, plots).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from neurohw.backend import Backend, BackendError, HardwareModel, Report, backends, get_backend


def _images(n=24, shape=(1, 28, 28), seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _loihi_student():
    from snn.model import BWSNN, BWSNNConfig

    torch.manual_seed(0)
    return BWSNN(BWSNNConfig(arch="mlp", channels=(32,), steps=4, threshold=0.25), in_shape=(1, 12, 12))


def _optics_student():
    from optics.hybrid import HybridMNIST

    torch.manual_seed(0)
    return HybridMNIST()


def _logic_student():
    from logic.models import dense_lgn

    return dense_lgn(input_shape=(1, 12, 12), levels=2, widths=(200, 100), seed=0)


def _loihi_exact(student, hw, x):
    from snn.deploy import integer_forward

    return integer_forward(student, x).logits


def _optics_exact(student, hw, x):
    fe = hw.frontend(x)
    fe.generator = torch.Generator().manual_seed(hw.noise_seed)
    with torch.no_grad():
        return student.backend(fe(x))


def _logic_exact(student, hw, x):
    return student.eval().hard_counts(x)


def _read_back(name, fmt, path, hw, report):
    if fmt == "netx":
        from neurohw.loihi.netx_io import read_netx

        assert len(read_netx(path).layers) == len(hw.net.layers)
    elif fmt == "nir":
        from neurohw.loihi.nir_io import read_nir_graph

        assert "output" in read_nir_graph(path).nodes
    elif fmt == "gds":
        from optics.layout import read_gds_pillars

        assert len(read_gds_pillars(path)[0]) == report.figures["pillars"]
    elif fmt == "radius_map":
        from optics.layout import load_radius_map

        assert torch.allclose(load_radius_map(path)[0].double(), hw.design.radii.double())
    elif fmt == "netlist":
        from logic.netlist import Netlist

        assert Netlist.load(path).n_gates == hw.netlist.n_gates
    elif fmt == "c":
        assert "_counts(const uint64_t" in path.read_text()
    elif fmt == "verilog":
        assert path.read_text().lstrip().startswith(("module", "//", "/*"))
    else:  # a format nobody checks is a test gap
        raise AssertionError(f"{name}: no read-back check for format {fmt!r}")


CASES = {
    "loihi": (_loihi_student, (1, 12, 12), {}, _loihi_exact),
    "optics": (_optics_student, (1, 28, 28), {"iterations": 2, "instance_seed": 3}, _optics_exact),
    "logic": (_logic_student, (1, 12, 12), {}, _logic_exact),
}


def test_registry_lists_the_three_backends():
    assert sorted(backends()) == ["logic", "loihi", "optics"]
    out = subprocess.run([sys.executable, "-c", "from neurohw.backend import backends; print(sorted(backends()))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['logic', 'loihi', 'optics']"
    with pytest.raises(BackendError, match="unknown backend 'fpga'"):
        get_backend("fpga")


@pytest.mark.parametrize("name", sorted(CASES))
def test_four_faces(name, tmp_path):
    make, shape, opts, exact = CASES[name]
    backend = get_backend(name)
    assert isinstance(backend, Backend) and backend.formats
    student = make()
    x = _images(shape=shape)
    # 1. harden
    hw = backend.harden(student, **opts)
    assert isinstance(hw, HardwareModel) and hw.backend == name
    # 2. predict: the exact face equals the student's own exact path, sample for sample
    pred = hw.predict(x)
    assert pred.shape == (len(x), 10)
    assert torch.equal(pred, exact(student, hw, x))
    assert torch.equal(hw.predict(x), pred)  # reproducible (seeded noise for optics)
    # 4. report (before export: the GDS read-back compares with the report's pillar count)
    rep = backend.report(hw, x)
    assert isinstance(rep, Report) and rep.backend == name and rep.constants
    assert all(c.source for c in rep.constants.values())
    md = rep.to_markdown()
    assert md.startswith("# ") and all(label in md for label, _ in rep.summary)
    assert json.loads(rep.to_json())["backend"] == name
    paths = rep.save(tmp_path / "report")
    assert paths["markdown"].exists() and json.loads(paths["json"].read_text())["figures"]
    for plot in rep.plots:
        assert (tmp_path / "report" / f"{plot}.png").stat().st_size > 1000
    # 3. export every format and read it back
    for fmt in backend.formats:
        path = backend.export(hw, tmp_path / f"hw.{fmt}", fmt)
        assert path.exists() and path.stat().st_size > 0
        _read_back(name, fmt, path, hw, rep)
    with pytest.raises(BackendError, match="exports"):
        backend.export(hw, tmp_path / "x", "nope")


def test_reports_carry_the_issue_figures():
    """Optics: pillars, area, light per tile, fidelity, energy; logic: gates by kind, depth, words, images/s, LUTs."""
    opt = get_backend("optics")
    hw = opt.harden(_optics_student(), iterations=2)
    f = opt.report(hw).figures
    assert f["pillars"] > 0 and f["area_mm2"] > 0 and len(f["tile_light_fraction"]) == 16
    assert 0 < f["window_efficiency"] <= 1 and len(f["kernel_fidelity"]["ncc"]) == 8
    assert f["energy_per_image"]["metasurface_J"] == 0 and f["energy_per_image"]["backend_J"] > 0
    lg = get_backend("logic")
    g = lg.report(lg.harden(_logic_student())).figures
    assert g["gates"] > 0 and g["depth"] >= 1 and g["images_per_s"] > 0
    assert g["estimated_luts"] == g["gates_by_kind"]["two_input"] + g["gates_by_kind"]["not"]
    assert g["packed_words_per_64_images"]["inputs"] == 2 * 144
