"""neurohw.results: atomic result files, the reader's errors, generated Markdown tables, resumable runs."""
from __future__ import annotations

import json

import pytest

from neurohw.cli import main
from neurohw.results import (
    ResultError,
    RunStore,
    format_cell,
    load_result,
    render_table,
    save_result,
    stale_blocks,
    update_documents,
)


def _save(tmp_path, acc=0.9123):
    return save_result(
        "demo-table",
        {"caption": "Two rows.", "columns": ["model", "acc %", "gates"],
         "rows": [{"model": "a", "acc %": {"mean": acc, "std": 0.004, "ci95": [0.9, 0.93], "scale": 100}, "gates": 1200},
                  {"model": "b", "acc %": {"mean": 0.5, "std": float("nan"), "scale": 100}, "gates": None}]},
        config={"epochs": 2}, seeds=[0, 1, 2], per_seed={"a": [0.91, 0.915, 0.911]}, command="python -m x --full",
        wall_time_s=12.34, results=tmp_path)


def test_save_and_load(tmp_path):
    p = _save(tmp_path)
    assert p == tmp_path / "demo-table.json"
    r = load_result("demo-table", tmp_path)
    assert r["seeds"] == [0, 1, 2] and r["command"] == "python -m x --full" and r["wall_time_s"] == 12.3
    assert {"torch", "python", "neurohw"} <= set(r["versions"]) and r["machine"]["cpus"] >= 1
    assert r["created_utc"].endswith("+00:00")


def test_reader_errors_name_file_and_field(tmp_path):
    with pytest.raises(ResultError, match="nope.json: result file does not exist"):
        load_result("nope", tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ResultError, match="bad.json: not valid JSON"):
        load_result("bad", tmp_path)
    (tmp_path / "part.json").write_text(json.dumps({"name": "part", "figures": {}}))
    with pytest.raises(ResultError, match=r"part.json: missing field\(s\) \['config', 'command'"):
        load_result("part", tmp_path)
    with pytest.raises(ResultError, match="at most one sub-folder"):
        save_result("../x", {}, config={}, command="c", results=tmp_path)
    with pytest.raises(ResultError, match="command"):
        save_result("x", {}, config={}, command="", results=tmp_path)


def test_failed_write_keeps_old_file(tmp_path):
    _save(tmp_path)
    before = (tmp_path / "demo-table.json").read_text()
    with pytest.raises(TypeError):
        save_result("demo-table", {"rows": [{"x": object()}]}, config={}, command="c", results=tmp_path)
    assert (tmp_path / "demo-table.json").read_text() == before


def test_cells():
    assert format_cell({"mean": 0.91234, "std": 0.0041, "ci95": [0.9, 0.93], "scale": 100}) == "91.23 ± 0.41 [90.00, 93.00]"
    assert format_cell({"mean": 0.5, "std": float("nan"), "scale": 100}) == "50.00"
    assert format_cell(12000) == "12,000" and format_cell(None) == "–" and format_cell(True) == "yes"
    assert format_cell("a|b") == "a\\|b" and format_cell(1.5, 1) == "1.5"


def test_tables_generated_and_checked(tmp_path):
    _save(tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text("# T\n\nintro\n<!-- results:demo-table -->\nold\n<!-- /results:demo-table -->\nafter\n")
    assert stale_blocks([doc], tmp_path) == [f"{doc}: block demo-table differs from results/demo-table.json "
                                             "(run `neurohw results table`)"]
    assert update_documents([doc], tmp_path) == [doc]
    text = doc.read_text()
    assert "| a | 91.23 ± 0.40 [90.00, 93.00] | 1,200 |" in text and "| b | 50.00 | – |" in text
    assert text.startswith("# T\n\nintro\n") and text.endswith("<!-- /results:demo-table -->\nafter\n")
    assert "`python -m x --full`" in text and "Two rows." in text
    assert stale_blocks([doc], tmp_path) == [] and update_documents([doc], tmp_path) == []
    # a figure edited by hand in the document is caught
    doc.write_text(text.replace("91.23", "92.23"))
    assert len(stale_blocks([doc], tmp_path)) == 1
    assert main(["results", "table", "--check", "--results", str(tmp_path), str(doc)]) == 1
    assert main(["results", "table", "--results", str(tmp_path), str(doc)]) == 0
    assert main(["results", "table", "--check", "--results", str(tmp_path), str(doc)]) == 0
    # a JSON re-run with a new figure makes the document stale
    _save(tmp_path, acc=0.95)
    assert len(stale_blocks([doc], tmp_path)) == 1
    # a block naming a missing result is an error (exit 2), the document is untouched
    doc.write_text("<!-- results:missing -->\n<!-- /results:missing -->\n")
    assert main(["results", "table", "--results", str(tmp_path), str(doc)]) == 2
    assert "missing.json: result file does not exist" in stale_blocks([doc], tmp_path)[0]
    # markers inside a fenced code block (documentation examples) are not blocks
    doc.write_text("```\n<!-- results:missing -->\n<!-- /results:missing -->\n```\n")
    assert stale_blocks([doc], tmp_path) == []


def test_render_needs_rows(tmp_path):
    save_result("norows", {"best": 1.0}, config={}, command="c", results=tmp_path)
    with pytest.raises(ResultError, match="figures.rows"):
        render_table(load_result("norows", tmp_path))


def test_run_store_resumes_only_same_config(tmp_path):
    store = RunStore("exp", tmp_path)
    assert store.get("m-s0", {"epochs": 2}) is None
    store.put("m-s0", {"acc": 0.8}, {"epochs": 2, "widths": (4, 4)})
    assert store.get("m-s0", {"epochs": 2, "widths": (4, 4)})["acc"] == 0.8
    assert store.get("m-s0", {"epochs": 3, "widths": (4, 4)}) is None
    store.path("m-s1").write_text("{trunc")
    assert store.get("m-s1", {}) is None


def test_command_line_from_options():
    import argparse

    from neurohw.results import command_line

    a = argparse.Namespace(seeds=3, data="fashion-mnist", n_train=None, quick=False, debias=True, arms=("ce", "kd"))
    assert command_line("neurohw x", a, ["seeds", "data", "n_train", "quick", "debias", "arms"]) == \
        "neurohw x --seeds 3 --data fashion-mnist --debias --arms ce,kd"


def test_block_views_select_columns_rows_and_subfolders(tmp_path):
    from neurohw.results import ResultError, parse_view, render_table, stale_blocks, update_documents

    res = tmp_path / "results"
    figs = {"caption": "cap", "columns": ["a", "b", "c"],
            "rows": [{"a": "x", "b": 1.5, "c": 3}, {"a": "y", "b": 2.25, "c": 4}]}
    save_result("snn", figs, config={}, command="python -m bench.snn", results=res / "bench")
    doc = tmp_path / "README.md"
    doc.write_text('t\n<!-- results:bench/snn columns="a; c" rows="1" caption="no" -->\n'
                   'old\n<!-- /results:bench/snn -->\n', encoding="utf-8")
    assert stale_blocks([doc], res)
    update_documents([doc], res)
    text = doc.read_text(encoding="utf-8")
    assert "| a | c |" in text and "| y | 4 |" in text
    assert "| x " not in text and "\ncap\n" not in text and "2.25" not in text
    assert "`results/bench/snn.json`" in text
    assert stale_blocks([doc], res) == []
    with pytest.raises(ResultError, match="no column"):
        render_table(load_result("bench/snn", res), parse_view(' columns="a; zz"'))
    with pytest.raises(ResultError, match="no row"):
        render_table(load_result("bench/snn", res), parse_view(' rows="5"'))
    with pytest.raises(ResultError, match="unknown block option"):
        parse_view(' colour="red"')
