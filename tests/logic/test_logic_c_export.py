"""The C export on random netlists: class counts equal the packed evaluator's, for both forms
(table-driven and straight-line code at several chunk sizes), 256-bit words, 512-bit words and
the portable uint64 fallback (``-DNH_NO_VECTOR``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from logic import export
from logic.netlist import Netlist
from logic.packed import PackedEvaluator

pytestmark = pytest.mark.skipif(export.find_cc() is None, reason="no C compiler (install gcc)")


def _random_net(rng: np.random.Generator, n_in: int, n_gates: int, classes: int, group: int) -> Netlist:
    op = rng.integers(0, 16, n_gates)
    # reads mostly from recent signals (deep, layered-ish), sometimes from any earlier one
    a = np.array([rng.integers(max(0, n_in + g - 40), n_in + g) if rng.random() < 0.8 else rng.integers(0, n_in + g)
                  for g in range(n_gates)])
    b = np.array([rng.integers(0, n_in + g) for g in range(n_gates)])
    outs = rng.integers(0, n_in + n_gates, classes * group)  # inputs, repeats and any gate may be outputs
    return Netlist(n_in, op, a, b, outs, classes)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6), chunk=st.sampled_from([1, 7, 64, 400]),
       flags=st.sampled_from([(), ("-DNH_NO_VECTOR",), ("-DNH_LANES=8",)]), n_samples=st.integers(1, 700))
def test_c_code_form_counts_equal_packed_on_random_nets(tmp_path_factory, seed, chunk, flags, n_samples):
    _check_random_net(tmp_path_factory, seed, flags, n_samples, style="code", chunk=chunk)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6), flags=st.sampled_from([(), ("-DNH_NO_VECTOR",), ("-DNH_NO_CLONES",), ("-DNH_LANES=2",),
                                                       ("-DNH_LANES=8",)]),
       n_samples=st.integers(1, 700))
def test_c_table_form_counts_equal_packed_on_random_nets(tmp_path_factory, seed, flags, n_samples):
    _check_random_net(tmp_path_factory, seed, flags, n_samples, style="table")


def _check_random_net(tmp_path_factory, seed, flags, n_samples, **kw):
    rng = np.random.default_rng(seed)
    net = _random_net(rng, n_in=int(rng.integers(1, 30)), n_gates=int(rng.integers(1, 300)),
                      classes=int(rng.integers(1, 5)), group=int(rng.integers(1, 40)))
    bits = torch.from_numpy(rng.random((n_samples, net.n_inputs)) < 0.5)
    d = tmp_path_factory.mktemp("c")
    src = d / "net.c"
    src.write_text(export.to_c(net, **kw))
    exe = export.compile_c(src, d / "net", extra=flags)
    assert torch.equal(export.run_c_counts(exe, bits, net.num_classes), PackedEvaluator(net).class_counts(bits))


def test_bench_reports_lanes_and_threads(tmp_path):
    net = _random_net(np.random.default_rng(0), 10, 100, 2, 5)
    src = export.write_c(net, tmp_path / "net.c")
    for flags, lanes in (((), 4), (("-DNH_NO_VECTOR",), 1)):
        exe = export.compile_c(src, tmp_path / "net", extra=flags)
        r = export.bench_c(exe, 8, 2, threads=2)
        assert r["lanes"] == lanes and r["threads"] == 2 and r["images_per_s"] > 0 and r["wall_images_per_s"] > 0


def test_table_form_wide_slot_indices(tmp_path):
    """More than 65,536 live values: the table form switches to 32-bit slot indices."""
    rng = np.random.default_rng(3)
    n_in = 70_000
    op = rng.integers(0, 16, 200)
    a, b = rng.integers(0, n_in, 200), rng.integers(0, n_in, 200)
    net = Netlist(n_in, op, a, b, np.concatenate([n_in + np.arange(200), [5, n_in - 1]]), 2)
    src = tmp_path / "net.c"
    src.write_text(export.to_c(net))
    assert "static const uint32_t nh_logic_dst" in src.read_text()
    bits = torch.from_numpy(rng.random((70, n_in)) < 0.5)
    exe = export.compile_c(src, tmp_path / "net")
    assert torch.equal(export.run_c_counts(exe, bits, 2), PackedEvaluator(net).class_counts(bits))


def test_style_must_be_known():
    with pytest.raises(ValueError, match="style"):
        export.to_c(_random_net(np.random.default_rng(0), 3, 5, 1, 2), style="asm")


def test_chunk_must_be_positive():
    with pytest.raises(ValueError, match="chunk"):
        export.to_c(_random_net(np.random.default_rng(0), 3, 5, 1, 2), chunk=0)
