#!/usr/bin/env bash
# Build .venv with CPython 3.10 and the verified dependency set (requirements/constraints.txt).
# Idempotent: a stamp records the hash of the inputs; an unchanged set returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.neurohw-setup-stamp
hash_inputs() { cat requirements/constraints.txt requirements/venv.txt setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1; }
want=$(hash_inputs)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi

is_python310() { "$1" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

find_python310() {
  # Candidates in order; each must really run as CPython 3.10 with venv (a pyenv shim for a
  # version that is not selected exists on PATH but fails, so every candidate is executed).
  local cands=()
  [ -n "${PYTHON310:-}" ] && cands+=("$PYTHON310")
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root)
    cands+=("$root"/versions/3.10*/bin/python3.10)
  fi
  cands+=("$HOME"/.pyenv/versions/3.10*/bin/python3.10)
  command -v python3.10 >/dev/null 2>&1 && cands+=("$(command -v python3.10)")
  cands+=(/usr/bin/python3.10 /usr/local/bin/python3.10)
  local p
  for p in "${cands[@]}"; do
    if [ -x "$p" ] && is_python310 "$p"; then echo "$p"; return 0; fi
  done
  return 1
}
PY=$(find_python310 || true)
if [ -z "$PY" ]; then
  cat >&2 <<'MSG'
setup: no CPython 3.10 found.
  neurohw's environment needs Python 3.10 because lava-nc 0.10 and lava-dl 0.6 run only there.
  Install it, e.g. `pyenv install 3.10.13` (or your distribution's python3.10 with venv),
  or point PYTHON310=/path/to/python3.10 at one, then run `make setup` again.
MSG
  exit 1
fi
echo "setup: using $PY ($("$PY" --version))"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip wheel "setuptools>=61"
"$VENV/bin/python" -m pip install -q -c requirements/constraints.txt -r requirements/venv.txt
# lava-dl's metadata pins torch<2.4 / torchvision<0.19; its netx runs with the versions above.
"$VENV/bin/python" -m pip install -q --no-deps -c requirements/constraints.txt lava-dl
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" - <<'PY'
import neurohw, snn, optics, logic, distill, calibration  # noqa: F401
import lava.lib.dl.netx  # noqa: F401
print("setup: neurohw and Lava import")
PY
echo "$want" > "$STAMP"
