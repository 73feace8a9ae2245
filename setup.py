"""Packaging: the metadata is in setup.cfg; this only ships ``notebooks/*.ipynb`` inside the
wheel as ``neurohw/notebooks/`` so that ``neurohw notebooks`` works from an installed package."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithNotebooks(build_py):
    def run(self):
        super().run()
        dst = Path(self.build_lib) / "neurohw" / "notebooks"
        self.mkpath(str(dst))
        for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
            self.copy_file(str(nb), str(dst / nb.name))


setup(cmdclass={"build_py": BuildPyWithNotebooks})
