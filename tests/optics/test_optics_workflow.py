"""End to end: hybrid models, pipeline, CLI, demo stage, benchmark."""
from __future__ import annotations

import json

import pytest
import torch

from optics.design import OpticsConfig, design_metasurface
from optics.fabrication import FabricationModel, FabricationParams
from optics.hybrid import HybridMNIST, HybridPolychromatic
from optics.pipeline import load_design, run_mnist_pipeline, save_design


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These tests run next to another pytest worker on 2 cores: one torch thread each avoids
    OpenMP oversubscription (which slows small FFTs and convolutions many times over)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_paper_configuration_geometry_and_sampling():
    from optics.design import _windows
    from optics.propagation import check_sampling

    cfg = OpticsConfig.paper()
    assert cfg.sensor_pixels == 200 and abs(cfg.pixel_pitch - 4.688e-6) < 1e-9
    _windows(HybridMNIST().frontend.layout(), cfg.sensor_pixels)  # the 16 tiles fit the sensor
    assert check_sampling("asm", cfg.grid, cfg.dx, cfg.wavelengths, cfg.z, strict=True) == []


def test_model_sizes_match_the_papers():
    m = HybridMNIST()
    n = m.n_parameters()
    assert n["frontend"] == 8 * 49 and 0.045e6 < n["backend"] < 0.055e6
    p = HybridPolychromatic()
    assert p.frontend.kernels.shape == (16, 3, 7, 7)
    assert 1.55e6 < sum(p.n_parameters().values()) < 1.65e6
    assert p(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_polychromatic_design_uses_one_radius_map_for_three_wavelengths():
    torch.manual_seed(0)
    from optics.frontend import KernelFrontEnd

    fe = KernelFrontEnd(2, in_channels=3, kernel_size=3, image_size=8)
    cfg = OpticsConfig(grid=48, z=20e-6, wavelengths=(635e-9, 532e-9, 450e-9))
    d = design_metasurface(fe.psf_tiles().detach(), fe.layout(spacing=10), cfg, iterations=40, lr=0.08, progress=False)
    assert d.psf.shape == (3, 48, 48) and d.tiles.shape == (4, 3, 3, 3)
    assert d.history[-1] < d.history[0]
    assert min(d.fidelity["ncc"]) > 0.5, d.fidelity


@pytest.mark.slow
def test_mnist_hybrid_trained_designed_fabricated(mnist5k, tmp_path):
    """The 'done' criterion at test scale: train (kernel mode), design, wave mode, fabricated instances."""
    res = run_mnist_pipeline(mnist5k, tmp_path, n_train=2000, n_test=500, epochs=2, optics=OpticsConfig(grid=144), iterations=40, n_instances=3, seed=0)
    f = res["figures"]
    acc = f["accuracy"]
    assert acc["kernel"] > 0.8
    assert f["design"]["mean_ncc"] > 0.95
    assert acc["wave"] > acc["kernel"] - 0.05  # designed optics keep the accuracy (measured gap)
    assert len(f["fabricated"]["accuracies"]) == 3 and f["fabricated"]["mean"] > 0.6
    for name in f["plots"]:
        assert (tmp_path / name).stat().st_size > 1000
    # design files round-trip
    save_design(tmp_path / "design.safetensors", res["design"], seed=0)
    back = load_design(tmp_path / "design.safetensors")
    assert torch.equal(back.radii, res["design"].radii) and back.scale == res["design"].scale
    # an instance drawn from the reloaded design equals one from the original
    a = FabricationModel(res["design"], FabricationParams()).draw(7)
    b = FabricationModel(back, FabricationParams()).draw(7)
    assert torch.allclose(a.tiles, b.tiles)


@pytest.mark.slow
def test_cli_design_fabricate_export(tmp_path):
    from neurohw.cli import main

    out = tmp_path / "d"
    assert main(["optics", "design", "--out", str(out), "--n-train", "300", "--n-test", "100", "--epochs", "1", "--iterations", "5", "--grid", "144"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert {"kernel", "device", "wave"} <= set(s["accuracy"]) and s["provenance"]["seed"] == 0
    assert main(["optics", "fabricate", "--design", str(out), "-n", "2", "--n-test", "100", "--width-sigma", "5e-9"]) == 0
    fab = json.loads((out / "fabricated.json").read_text())
    assert len(fab["accuracies"]) == 2 and fab["truth"][0]["params"]["width_sigma"] == 5e-9
    assert main(["optics", "export-layout", "--design", str(out)]) == 0
    lay = json.loads((out / "layout.json").read_text())
    assert lay["read_back_ok"] and lay["pillars"] == 4 * 144 * 144
    assert (out / "radius_map.h5").exists() and (out / "radius_map.png").exists()


def test_cli_reports_missing_design(tmp_path, capsys):
    from neurohw.cli import main

    assert main(["optics", "export-layout", "--design", str(tmp_path)]) == 2
    assert "design.safetensors: checkpoint file does not exist" in capsys.readouterr().err
    assert main(["optics", "fabricate", "--design", str(tmp_path), "-n", "1"]) == 2


@pytest.mark.slow
def test_demo_stage_quick(tmp_path, mnist5k):
    from neurohw.demo import DemoContext
    from optics.demo_stage import run

    ctx = DemoContext(out=tmp_path, quick=True, seed=0, shared={"mnist5k": mnist5k})
    figs = run(ctx)
    json.dumps(figs)  # JSON-able
    assert {"kernel", "device", "wave"} <= set(figs["accuracy"])
    assert (tmp_path / "optics_psf.png").exists() and "optics_hybrid_mnist" in ctx.shared
    assert "Optics" in ctx.markdown[0]


@pytest.mark.slow
def test_benchmark_quick_runs(tmp_path):
    from bench.optics.__main__ import main

    assert main(["--quick", "--out", str(tmp_path / "o.json")]) == 0
    res = json.loads((tmp_path / "o.json").read_text())["figures"]
    assert res["propagation"] and all(r["asm_over_floor"] > 0 for r in res["propagation"])
    lp = [r for r in res["propagation"] if "lightpipes_s" in r]
    assert all(r["dtype"] == "complex128" for r in lp)  # LightPipes compared like with like
    assert res["montecarlo"]["draw_per_s"] > 0


def _colourise(x: torch.Tensor, y: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """MNIST digits resized to ``size`` and tinted with a random colour per image (RGB)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    tint = 0.3 + 0.7 * torch.rand(len(x), 3, 1, 1, generator=g)
    return (small * tint).clamp(0, 1)


@pytest.mark.slow
def test_polychromatic_hybrid_end_to_end(mnist5k, tmp_path):
    """RGB hybrid (reduced: 4 RGB kernels on 16×16 tinted digits) trained in kernel mode,
    designed at R/G/B with one radius map, evaluated in wave mode and on fabricated instances."""
    from optics.pipeline import run_pipeline

    xtr = _colourise(mnist5k.x_train[:1500], mnist5k.y_train[:1500], 16)
    xte = _colourise(mnist5k.x_test[:300], mnist5k.y_test[:300], 16, seed=1)
    model = HybridPolychromatic(n_kernels=4, image_size=16, hidden=(32, 16))
    cfg = OpticsConfig(grid=72, z=30e-6, wavelengths=(635e-9, 532e-9, 450e-9))
    res = run_pipeline(model, xtr, mnist5k.y_train[:1500], xte, mnist5k.y_test[:300], tmp_path, epochs=3, optics=cfg, iterations=30, n_instances=2)
    f = res["figures"]
    assert f["accuracy"]["kernel"] > 0.5
    assert f["design"]["mean_ncc"] > 0.8
    assert f["accuracy"]["wave"] > 0.3 and len(f["fabricated"]["accuracies"]) == 2
