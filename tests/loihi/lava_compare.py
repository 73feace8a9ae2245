"""The one comparison of a neurohw simulation with a Lava run, for the Lava equality tests of
tests/loihi (imported as ``from lava_compare import assert_identical``: pytest puts this folder
on ``sys.path``)."""
from __future__ import annotations

import numpy as np
import pytest


def assert_identical(ours, lava, layers: int | None = None, *, all_probed: bool = False) -> None:
    """``ours`` and ``lava`` (both ``SimResult``) agree exactly.

    Every layer's spikes (bool) or graded messages (int64) have the same shape, dtype and
    values (a mismatch names the layer and its first diverging step), and no layer is silent
    (else the comparison would be vacuous); the voltage and current of every layer Lava probed
    are equal. ``layers``: the number of layers expected; ``all_probed``: Lava must have probed
    every layer.
    """
    if layers is not None:
        assert len(lava.spikes) == layers, f"Lava ran {len(lava.spikes)} layers, expected {layers}"
    assert len(ours.spikes) == len(lava.spikes), f"{len(ours.spikes)} layers vs Lava's {len(lava.spikes)}"
    for i, (a, b) in enumerate(zip(ours.spikes, lava.spikes)):
        a, b = a.numpy(), b.numpy()
        assert a.shape == b.shape, f"layer {i}: {a.shape} vs {b.shape}"
        assert a.dtype == b.dtype, f"layer {i}: dtype {a.dtype} vs {b.dtype}"
        if not np.array_equal(a, b):
            t = int(np.argwhere((a != b).reshape(a.shape[0], a.shape[1], -1))[0][1])
            pytest.fail(f"messages/spikes of layer {i}: first divergence at step {t}")
        assert (a != 0).sum() > 0, f"layer {i} is silent: the comparison would be vacuous"
    if all_probed:
        assert sorted(lava.voltage) == list(range(len(ours.spikes)))
    for k in lava.voltage:
        assert np.array_equal(ours.voltage[k].numpy(), lava.voltage[k].numpy()), f"voltage/act of layer {k}"
        assert np.array_equal(ours.current[k].numpy(), lava.current[k].numpy()), f"current/sigma of layer {k}"


def assert_same_as_lava(net, x) -> None:
    """``simulate(net, x)`` with every layer probed is identical to the process-built Lava run."""
    from neurohw.loihi import simulate
    from neurohw.loihi.lava_bridge import run_in_lava

    assert_identical(simulate(net, x, probe="all"), run_in_lava(net, x, probe="all"), all_probed=True)


def assert_netx_same_as_lava(net, x, path):
    """``net`` written as a netx file at ``path`` and loaded by netx in Lava runs identically to
    ``simulate(net, x)`` (every layer probed). Returns the path."""
    from neurohw.loihi import simulate
    from neurohw.loihi.lava_bridge import run_netx_in_lava
    from neurohw.loihi.netx_io import write_netx

    path = write_netx(net, path)
    assert_identical(simulate(net, x, probe="all"), run_netx_in_lava(path, x, probe="all"), all_probed=True)
    return path


def assert_cli_compare_identical(path, args, capsys) -> None:
    """``neurohw loihi compare PATH ARGS`` exits 0 and its last line says ``identical``."""
    from neurohw.cli import main

    assert main(["loihi", "compare", str(path), *args]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("identical")
