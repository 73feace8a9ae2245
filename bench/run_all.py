"""Run every benchmark subpackage in bench/ (``python -m bench.run_all [--quick]``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    root = Path(__file__).resolve().parent
    names = sorted(p.name for p in root.iterdir() if (p / "__main__.py").exists())
    status = 0
    for name in names:
        print(f"===== bench.{name} =====", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"bench.{name}", *sys.argv[1:]], cwd=root.parent)
        status = status or rc
    return status


if __name__ == "__main__":
    raise SystemExit(main())
