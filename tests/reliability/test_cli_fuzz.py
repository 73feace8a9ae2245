"""CLI fuzz: malformed arguments and input files, run in-process through :func:`neurohw.cli.main`.

Every case must exit 2 with an error line naming the option/file, print no traceback, and
leave a sentinel output file (the command's ``--out``) byte-for-byte unchanged.
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from neurohw.cli import main
from neurohw.loihi.netx_io import write_netx
from neurohw.loihi.random_nets import random_conv_net

SENTINEL = b"a good result that no failing run may touch\n"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_fuzz")
    write_netx(random_conv_net(3), d / "net.net")
    np.save(d / "x.npy", np.zeros((2, 3, 2, 10, 10), np.uint8))
    np.savez(d / "x.npz", a=np.zeros(3))
    nan = np.zeros((3, 2, 10, 10)); nan[0, 0, 0, 0] = np.nan
    np.save(d / "nan.npy", nan)
    np.save(d / "big.npy", np.full((3, 2, 10, 10), 300, np.int64))
    np.save(d / "neg.npy", np.full((3, 2, 10, 10), -1, np.int64))
    np.save(d / "empty.npy", np.zeros((0, 2, 10, 10), np.uint8))
    (d / "junk.npy").write_bytes(b"not numpy")
    (d / "cfg_type.json").write_text(json.dumps({"epochs": "two"}))
    (d / "cfg_junk.json").write_text("{not json")
    (d / "afile").write_text("x")
    (d / "cfg_huge.json").write_text(json.dumps({"channels": [10**12, 10]}))
    np.save(d / "lab_neg.npy", np.array([0, -1]))
    np.save(d / "lab_big.npy", np.array([0, 10**6]))
    np.save(d / "lab_float.npy", np.array([0.0, 1.0]))
    y = np.arange(40) % 10
    for name, ytr, extra in (("lab42", np.where(y == 3, 42, y), {}), ("labfloat", y + 0.5, {}),
                             ("labneg", np.where(y == 3, -1, y), {}), ("labnc", np.where(y == 3, 42, y), {"num_classes": 10})):
        arrs = {"x_train": np.zeros((40, 8, 8), np.float32), "y_train": ytr, "x_test": np.zeros((10, 8, 8), np.float32),
                "y_test": y[:10], **extra}
        np.savez(d / f"{name}.npz", **arrs)
        with h5py.File(d / f"{name}.h5", "w") as f:
            for k, v in arrs.items():
                f[k] = v
    return d


#: (argv with {d} for the workspace and {out} for the sentinel, words the error must contain)
CASES = [
    (["loihi", "simulate", "{d}/net.net", "--input", "{d}/x.npz", "--out", "{out}"], "x.npz"),
    (["loihi", "simulate", "{d}/net.net", "--input", "{d}/nan.npy", "--out", "{out}"], "nan.npy"),
    (["loihi", "simulate", "{d}/net.net", "--input", "{d}/big.npy", "--out", "{out}"], "big.npy"),
    (["loihi", "simulate", "{d}/net.net", "--input", "{d}/neg.npy", "--out", "{out}"], "neg.npy"),
    (["loihi", "simulate", "{d}/net.net", "--input", "{d}/empty.npy", "--out", "{out}"], "empty.npy"),
    (["loihi", "simulate", "{d}/net.net", "--input", "{d}/junk.npy", "--out", "{out}"], "junk.npy"),
    (["loihi", "simulate", "{d}/missing.net", "--input", "{d}/x.npy", "--out", "{out}"], "missing.net"),
    (["loihi", "simulate", "{d}/x.npy", "--input", "{d}/x.npy", "--out", "{out}"], "x.npy"),
    (["loihi", "simulate", "{d}/net.net", "--input", "{d}/x.npy", "--out", "{d}/afile/o.npy"], "--out"),
    (["loihi", "compare", "{d}/net.net", "--steps", "0"], "--steps"),
    (["loihi", "compare", "{d}/net.net", "--steps", "-1"], "--steps"),
    (["loihi", "compare", "{d}/net.net", "--rate", "1.5"], "--rate"),
    (["loihi", "compare", "{d}/net.net", "--rate", "nan"], "--rate"),
    (["loihi", "report", "{d}/net.net", "--samples", "0", "--json", "{out}"], "--samples"),
    (["loihi", "encode", "--data", "digits8x8", "--steps", "4", "--limit", "-5", "--out", "{out}"], "--limit"),
    (["train-teacher", "lenet5", "--epochs", "0", "--out", "{d}/t"], "--epochs"),
    (["train-teacher", "lenet5", "--data", "digits8x8", "--limit", "8", "--out", "{d}/t"], "--data digits8x8"),
    (["distill", "ntk", "--n", "-3"], "--n"),
    (["snn", "train", "--config", "{d}/cfg_type.json", "--out", "{d}/s"], "epochs"),
    (["snn", "train", "--config", "{d}/cfg_junk.json", "--out", "{d}/s"], "cfg_junk.json"),
    (["logic", "export", "--netlist", "{d}/x.npz", "--format", "c", "--out", "{out}",
      "--name", "x; } int evil() { return 1; } void y("], "--name"),
    (["logic", "export", "--netlist", "{d}/x.npz", "--format", "c", "--out", "{out}", "--name", "module"], "--name"),
    (["logic", "export", "--netlist", "{d}/x.npz", "--format", "c", "--out", "{out}", "--name", "1abc"], "--name"),
    (["optics", "export-layout", "--design", "{d}/x.npy", "--out", "{out}"], "x.npy"),
    # dataset files: labels that are not classes 0..K-1 (float, negative, a stray 42 among 10 classes)
    *[(["loihi", "encode", "--data", f"{{d}}/{name}{suf}", "--steps", "2", "--out", "{out}"], f"{name}{suf}")
      for name in ("lab42", "labfloat", "labneg", "labnc") for suf in (".npz", ".h5")],
    (["train-teacher", "lenet5", "--data", "{d}/lab42.npz", "--epochs", "1", "--out", "{d}/t42"], "lab42.npz"),
    # --labels for the accuracy: integers, one per sample, each a read-out neuron's class
    *[(["loihi", "simulate", "{d}/net.net", "--input", "{d}/x.npy", "--labels", f"{{d}}/{name}", "--out", "{out}"], name)
      for name in ("lab_neg.npy", "lab_big.npy", "lab_float.npy", "x.npz")],
    # a damaged or missing --net is named (not reported as a missing --steps)
    (["loihi", "encode", "--data", "digits8x8", "--net", "{d}/junk.npy", "--out", "{out}"], "junk.npy"),
    (["loihi", "encode", "--data", "digits8x8", "--net", "{d}/missing.net", "--out", "{out}"], "missing.net"),
    # result folders that cannot be written: refused before the first run trains
    (["logic", "experiments", "--quick", "--seeds", "1", "--models", "dense_lgn", "--out", "{d}/lx", "--results", "{d}/afile"],
     "--results"),
    (["snn", "experiments", "--quick", "--seeds", "1", "--out", "{d}/afile"], "--out"),
    (["snn", "experiments", "--quick", "--seeds", "1", "--out", "{d}/sx", "--results-dir", "{d}/afile"], "--results-dir"),
    # sizes that would allocate terabytes, layouts that cannot fit: refused before any work
    (["snn", "train", "--config", "{d}/cfg_huge.json", "--out", "{d}/s"], "channels"),
    (["snn", "train", "--quick", "--set", "channels=[1000000000000]", "--out", "{d}/s"], "channels"),
    (["optics", "design", "--grid", "72", "--epochs", "1", "--n-train", "10", "--out", "{d}/g"], "--grid"),
]


@pytest.mark.parametrize("argv, word", CASES, ids=[" ".join(c[0][:2]) + f" [{i}]" for i, c in enumerate(CASES)])
def test_bad_input_exits_2_and_keeps_output(ws, tmp_path, capsys, argv, word):
    out = tmp_path / "sentinel.out"
    out.write_bytes(SENTINEL)
    args = [a.replace("{d}", str(ws)).replace("{out}", str(out)) for a in argv]
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse rejects the option before the command starts
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error" in last and word in last, last
    assert out.read_bytes() == SENTINEL


def test_grid_refused_before_any_data_or_training(ws, capsys, monkeypatch):
    """``optics design --grid 72`` fails before the data set is even loaded (not after training)."""
    import neurohw.data

    def no_data(*a, **k):
        raise AssertionError("data loaded before the grid was checked")

    monkeypatch.setattr(neurohw.data, "load_mnist5k", no_data)
    assert main(["optics", "design", "--grid", "72", "--out", str(ws / "g2")]) == 2
    assert "--grid 72" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs a read-only /proc")
def test_unwritable_output_refused_even_for_root(ws, capsys):
    """``os.access`` says yes to root everywhere; the check really tries to create a file."""
    assert main(["loihi", "report", str(ws / "net.net"), "--samples", "1", "--json", "/proc/neurohw_fuzz/r.json"]) == 2
    assert "--json" in capsys.readouterr().err.strip().splitlines()[-1]


def _numeric_options():
    """(command words, option string, argtypes function) for every checked numeric option of every command."""
    import argparse

    from neurohw import argtypes
    from neurohw.cli import build_parser

    checked = {argtypes.count, argtypes.nonneg_int, argtypes.seed, argtypes.threads, argtypes.finite, argtypes.positive,
               argtypes.nonneg, argtypes.fraction, argtypes.rate, argtypes.int_list, argtypes.fraction_list}
    found, unchecked = [], []

    def walk(parser, words):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, [*words, name])
            elif a.option_strings and a.type in checked:
                found.append((tuple(words), a.option_strings[-1], a.type))
            elif a.option_strings and a.type in (int, float):
                unchecked.append((tuple(words), a.option_strings[-1]))

    walk(build_parser(), [])
    return found, unchecked


#: Values every numeric option must refuse, whatever its range: not numbers, NaN, overflow to inf.
ALWAYS_BAD = ["x", "nan", "1e400", ""]
#: Values refused by each range (in addition to ALWAYS_BAD).
RANGE_BAD = {"count": ["0", "-1", "2.5"], "nonneg_int": ["-1", "2.5"], "seed": ["-1", str(2**32)], "threads": ["-1"],
             "positive": ["0", "-1e-9"], "nonneg": ["-4e-9"], "fraction": ["0", "1.5"], "rate": ["-0.1", "1.5"],
             "finite": [], "integers_list": ["-1", "1,,x"], "fractions_list": ["0", "0.1,2"]}


def test_every_numeric_option_is_range_checked():
    found, unchecked = _numeric_options()
    assert len(found) > 60  # every command's counts, fractions, rates, seeds …
    assert not unchecked, f"options with a bare int/float type (no range check): {unchecked}"


@pytest.mark.parametrize("words, opt, kind", _numeric_options()[0], ids=lambda v: v if isinstance(v, str) else None)
def test_numeric_option_refuses_nonsense(capsys, words, opt, kind):
    """Every numeric option of every command: bad values exit 2 at parse time, naming the option."""
    for bad in ALWAYS_BAD + RANGE_BAD[kind.__name__]:
        with pytest.raises(SystemExit) as info:
            main([*words, f"{opt}={bad}"])
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert info.value.code == 2 and "error: argument" in last and opt in last, (words, opt, bad, last)
