"""argparse types: ranges checked at parse time; negative values still read as values."""
from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurohw import argtypes as at
from neurohw.cli import main


@pytest.mark.parametrize("fn, good, bad", [
    (at.count, {"1": 1, "7": 7, "1e3": 1000}, ["0", "-1", "2.5", "nan", "x", ""]),
    (at.nonneg_int, {"0": 0, "3": 3}, ["-1", "inf"]),
    (at.seed, {"0": 0, "4294967295": 2**32 - 1}, ["-1", "4294967296"]),
    (at.fraction, {"1": 1.0, "0.1": 0.1}, ["0", "1.5", "nan", "-0.1"]),
    (at.rate, {"0": 0.0, "1": 1.0, "0.2": 0.2}, ["1.5", "nan", "-inf", "-0.01"]),
    (at.finite, {"-4e-9": -4e-9, "0": 0.0}, ["nan", "inf", "-inf", "two"]),
    (at.positive, {"1e-9": 1e-9}, ["0", "-1e-9"]),
    (at.nonneg, {"0": 0.0}, ["-1e-12"]),
    (at.int_list, {"0,1, 2": (0, 1, 2)}, ["", "a,b", "1,-1"]),
    (at.fraction_list, {"0.05,0.1": (0.05, 0.1)}, ["0.5,2"]),
    (at.device, {"CPU": "cpu", "cuda:1": "cuda:1", "auto": "auto"}, ["gpu", "cuda:x"]),
])
def test_ranges(fn, good, bad):
    for text, value in good.items():
        assert fn(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)


@settings(max_examples=60, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_rate_accepts_exactly_the_unit_interval(x):
    ok = math.isfinite(x) and 0 <= x <= 1
    if ok:
        assert at.rate(repr(x)) == x
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            at.rate(repr(x))


def test_negative_exponent_values_reach_the_type(capsys):
    # '-4e-9' is a value (argparse alone would take it for an option); the range check names the option
    with pytest.raises(SystemExit) as e:
        main(["optics", "fabricate", "--design", "nowhere", "--width-sigma", "-4e-9"])
    assert e.value.code == 2
    assert "argument --width-sigma: must be >= 0, got '-4e-9'" in capsys.readouterr().err


def test_error_boundary_and_debug(tmp_path, capsys):
    net = tmp_path / "missing.h5"
    assert main(["loihi", "report", str(net)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurohw: error: ") and "missing.h5" in err and "Traceback" not in err
    with pytest.raises(ValueError):
        main(["--debug", "loihi", "report", str(net)])


def test_global_threads_and_device(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    assert main(["--threads", "1", "loihi", "report", str(tmp_path / "x.h5")]) == 2
    assert torch.get_num_threads() == before  # restored after the command
    if not torch.cuda.is_available():
        assert main(["--device", "cuda", "loihi", "simulate", "x.h5", "--input", "a.npy", "--out", "b.npy"]) == 2
        assert "--device: 'cuda' requested but CUDA is not available" in capsys.readouterr().err


def test_parse_experiment_args(capsys):
    opts = dict(devices=(at.count, 5), read_fraction=(at.fraction, 0.5), seed=(at.seed, 0))
    args = at.parse_experiment_args("An experiment.\n\nMore text.", [], **opts)
    assert vars(args) == {"devices": 5, "read_fraction": 0.5, "seed": 0}
    args = at.parse_experiment_args("An experiment.", ["--devices", "3", "--read-fraction", "0.25"], **opts)
    assert (args.devices, args.read_fraction, args.seed) == (3, 0.25, 0)
    with pytest.raises(SystemExit) as exc:
        at.parse_experiment_args("An experiment.", ["--read-fraction", "1.5"], **opts)
    assert exc.value.code == 2 and "--read-fraction: must be in (0, 1], got '1.5'" in capsys.readouterr().err
