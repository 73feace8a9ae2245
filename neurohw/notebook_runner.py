"""``neurohw notebooks``: find the workflow notebooks and execute them (nbclient).

The notebooks live in the source checkout's ``notebooks/``; an installed package carries a
copy as ``neurohw/notebooks/`` (``setup.py`` adds it to the wheel), so the command works
from either. Each notebook ends with a cell that asserts what it shows, so a notebook that
runs to the end has checked its claims.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from neurohw.errors import UsageError


def notebook_dir() -> Path:
    """The folder holding the ``*.ipynb`` files: the installed copy, else the checkout's ``notebooks/``."""
    here = Path(__file__).resolve().parent
    for d in (here / "notebooks", here.parent / "notebooks"):
        if d.is_dir() and any(d.glob("*.ipynb")):
            return d
    raise UsageError("neurohw notebooks", f"no notebooks found (looked in {here / 'notebooks'} and {here.parent / 'notebooks'})")


def select(names: list[str] | None) -> list[Path]:
    """The notebooks named (stem or file name; default all), in name order."""
    root = notebook_dir()
    paths = sorted(root.glob("*.ipynb"))
    if names:
        unknown = [n for n in names if not any(n in (p.stem, p.name) for p in paths)]
        if unknown:
            raise UsageError("NAMES", f"no notebook named {', '.join(unknown)}; have {', '.join(p.stem for p in paths)}")
        paths = [p for p in paths if p.stem in names or p.name in names]
    return paths


def run_notebooks(names: list[str] | None, out: Path | None, quick: bool, timeout_s: float = 1800.0) -> int:
    """Execute the selected notebooks top to bottom; returns 0 when all ran (their final
    assertions included), else 1. Each runs with its working folder and
    ``NEUROHW_NOTEBOOK_OUT`` set to ``out/<name>`` (default: a fresh temporary folder), so an
    installed, read-only copy is never written to; the executed notebook is saved there."""
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:
        raise UsageError("neurohw notebooks", f"needs nbclient, nbformat and ipykernel ({exc}); "
                                              "pip install nbclient ipykernel") from None
    paths = select(names)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="neurohw_notebooks_"))
    status = 0
    saved = {k: os.environ.get(k) for k in ("NEUROHW_NOTEBOOK_OUT", "NEUROHW_NOTEBOOK_QUICK")}
    try:
        for path in paths:
            work = out / path.stem
            work.mkdir(parents=True, exist_ok=True)
            os.environ["NEUROHW_NOTEBOOK_OUT"] = str(work)
            if quick:
                os.environ["NEUROHW_NOTEBOOK_QUICK"] = "1"
            nb = nbformat.read(path, as_version=4)
            print(f"running {path.name} ({'quick' if quick else 'full'}; output in {work}) ...", flush=True)
            try:
                NotebookClient(nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
                print("  ok: ran to the end, claims asserted")
            except Exception as exc:  # noqa: BLE001 — report every notebook, fail at the end
                text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the kernel's traceback comes coloured
                print(f"  FAILED: {' '.join(text.split())[-800:]}")
                status = 1
            finally:
                nbformat.write(nb, work / path.name)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return status
