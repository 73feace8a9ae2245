"""bench.harness: interleaved order, statistics, the result file, memory of one call alone."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import harness


def test_sides_are_interleaved_and_warmed_up():
    calls = []
    st = harness.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert "".join(calls) == "ab" + "ababab"  # warm-up round, then A B A B A B (never A A A B B B)
    assert st["a"]["wall_s"]["n"] == st["b"]["wall_s"]["n"] == 3 and st["a"]["cpu_s"]["n"] == 3


def test_inner_calls_divide_the_sample():
    calls = []
    st = harness.interleave({"a": lambda: calls.append(1)}, repeats=2, warmup=0, inner=5)
    assert len(calls) == 10 and st["a"]["inner"] == 5


def test_summary_statistics():
    s = harness.summary([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["min"], s["median"], s["q1"], s["q3"], s["iqr"], s["n"]) == (1.0, 3.0, 2.0, 4.0, 2.0, 5)
    assert s["samples"] == [5.0, 1.0, 3.0, 2.0, 4.0]  # in measured order
    with pytest.raises(ValueError):
        harness.summary([])


def test_ratio_uses_the_chosen_statistic():
    st = {"a": {"wall_s": harness.summary([2.0, 4.0, 6.0])}, "b": {"wall_s": harness.summary([1.0, 1.0, 4.0])}}
    assert harness.ratio(st, "a", "b") == 4.0 and harness.ratio(st, "a", "b", "min") == 2.0


def test_write_records_conditions_and_provenance(tmp_path):
    from neurohw.results import load_result

    path = harness.write("demo", {"rows": [{"x": 1}]}, config={"quick": True}, argv=["--quick"],
                         load_before=harness.loadavg(), wall_time_s=1.5, out=tmp_path / "bench" / "demo.json")
    res = load_result(path)
    cond = res["figures"]["conditions"]
    assert {"loadavg_before", "loadavg_after", "torch_threads", "os_threads", "omp_num_threads_env"} <= set(cond)
    assert cond["os_threads"] >= 1 and res["command"] == "python -m bench.demo --quick"
    assert res["versions"]["torch"] and "created_utc" in res and res["machine"]["cpus"] >= 1


def test_finish_writes_says_where_and_returns_the_figures(tmp_path, capsys):
    import time

    from neurohw.results import load_result

    figs = {"rows": [{"x": 2}]}
    out = tmp_path / "bench" / "demo.json"
    started = time.perf_counter()
    assert harness.finish("demo", figs, config={}, argv=[], load_before=None, started=started, out=out) is figs
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    res = load_result(out)
    assert res["figures"]["rows"] == [{"x": 2}] and res["wall_time_s"] >= 0


def test_arg_parser_has_the_common_out_option():
    ap = harness.arg_parser("demo", "Benchmark of demo.\n\nMore text.")
    assert ap.prog == "python -m bench.demo" and ap.description == "Benchmark of demo."
    assert ap.parse_args(["--out", "r.json"]).out.name == "r.json" and ap.parse_args([]).out is None


def test_default_out_is_results_bench(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROHW_RESULTS", str(tmp_path))
    assert harness.default_out("snn") == tmp_path / "bench" / "snn.json"


def test_failed_write_keeps_the_old_file(tmp_path):
    out = tmp_path / "x.json"
    out.write_text('{"old": 1}')
    with pytest.raises(TypeError):  # a figure that is not JSON: nothing replaces the old file
        harness.write("x", {"bad": object()}, config={}, argv=[], load_before=None, wall_time_s=0.0, out=out)
    assert json.loads(out.read_text()) == {"old": 1}


_MEM_CHILD = """
import numpy as np, json
from bench import harness
big = np.ones(60 * 2**20 // 8); del big            # 60 MiB used and freed before the measurement
print(json.dumps(harness.peak_rss_growth(lambda: np.ones(20 * 2**20 // 8).sum())))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc/self/clear_refs")
def test_peak_rss_growth_measures_the_call_alone():
    out = subprocess.run([sys.executable, "-c", _MEM_CHILD], capture_output=True, text=True, env=harness.memory_env(),
                         timeout=60, check=True)
    grow = json.loads(out.stdout)
    assert 15 < grow < 30  # the 20 MiB array, not the earlier 60 MiB peak and not nothing
