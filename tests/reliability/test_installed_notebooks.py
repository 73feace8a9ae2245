"""``neurohw notebooks`` from an installed package, not only from a source checkout: build the
wheel, unpack it into a fresh folder (what pip does for a pure-Python wheel), and run a
notebook from another working folder with only that copy of neurohw importable."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
                              ".pytest_cache", "runs", "reports")


@pytest.mark.slow
def test_notebooks_run_from_an_installed_wheel(tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("wheel")
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=SKIP)  # build a copy: the checkout stays clean
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True, timeout=600)
    (whl,) = (tmp_path / "wheel").glob("neurohw-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        z.extractall(site)
    assert sum(n.startswith("neurohw/notebooks/") and n.endswith(".ipynb") for n in names) == len(list((REPO / "notebooks").glob("*.ipynb")))

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    where = subprocess.run([sys.executable, "-c", "import neurohw.notebook_runner as r; print(r.__file__); print(r.notebook_dir())"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # the installed copy, not the checkout

    bad = subprocess.run([sys.executable, "-m", "neurohw", "notebooks", "no_such_notebook"], cwd=work, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no_such_notebook" in bad.stderr and "loihi_deploy" in bad.stderr

    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "neurohw", "notebooks", "--quick", "--out", str(out), "loihi_deploy"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "claims asserted" in run.stdout
    assert (out / "loihi_deploy" / "loihi_deploy.ipynb").exists() and (out / "loihi_deploy" / "demo.net").exists()
