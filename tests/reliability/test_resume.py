"""Long work is resumable: an experiment command killed midway (SIGKILL, no clean-up) and run
again redoes only the unfinished runs and ends with the result of an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["logic", "experiments", "--quick", "--seeds", "3", "--models", "dense_lgn", "--threads", "1"]
#: Fields that measure time, not the result.
TIMING = ("train_s", "eval_s", "wall_s", "time_s", "packed_s")


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "neurohw", *ARGS, "--out", str(out)]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _runs(out: Path) -> list[dict]:
    runs = json.loads((out / "results.json").read_text())["runs"]
    # a reused run also carries the configuration the run store checked it against ("config")
    return [{k: v for k, v in r.items() if k not in TIMING and not k.endswith("_s") and k != "config"} for r in runs]


@pytest.mark.slow
def test_killed_experiment_resumes_to_the_same_result(tmp_path):
    ref, cut = tmp_path / "uninterrupted", tmp_path / "killed"
    subprocess.run(_cmd(ref), check=True, env=_env(), capture_output=True, timeout=900)

    runs = cut / "results" / "logic-mnist5k-quick"
    proc = subprocess.Popen(_cmd(cut), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (runs / "dense_lgn-s0.json").exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first run never finished"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # midway: run 0 stored, the others not
    finally:
        proc.wait(timeout=60)
    done = sorted(p.name for p in runs.glob("*.json"))
    assert "dense_lgn-s0.json" in done and "dense_lgn-s2.json" not in done, done
    assert not (cut / "results.json").exists()  # the summary is written only at the end

    res = subprocess.run(_cmd(cut), check=True, env=_env(), capture_output=True, text=True, timeout=900)
    assert "seed 0: reusing dense_lgn-s0.json" in res.stdout  # finished work is not redone
    assert "seed 2 ..." in res.stdout  # unfinished work is
    assert _runs(cut) == _runs(ref)  # and the result is the uninterrupted run's
