"""``neurohw loihi encode | simulate | compare | report`` — netx files in neurohw's simulator and in Lava.

Input spike files (``--input SPIKES.npy``): integer or bool arrays shaped ``(steps, *input)`` or
``(batch, steps, *input)``, where ``input`` is the network's input shape ((N,) or (C, H, W);
the trailing axes may also be given flattened). Entries are 0/1 spikes, or graded payloads
``0 .. 2**input_message_bits - 1`` when the file's network has ``input_message_bits > 0``;
anything else (NaN, negative, 300 for a binary net, no steps) is refused before running.

The chain from a data set: ``loihi encode --data NAME --steps T --out SPIKES.npy`` (the same
encoders as training; labels go to ``SPIKES.labels.npy``), then ``simulate/compare/report
--input SPIKES.npy --labels SPIKES.labels.npy`` — or ``--data NAME`` directly — print the
read-out's predictions and the accuracy. A net exported by ``snn export --to loihi`` records
its data set, encoding, steps and read-out (its read-out neurons never spike: the class
scores are their currents), so ``--data`` alone is enough and ``report`` uses real data by
default.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from neurohw import argtypes as at

#: Largest input array the CLI builds (elements, batch × steps × input size): 2**28 (256 MiB as uint8).
MAX_INPUT_ELEMENTS = 2**28


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="encode this data set's test images as the input (mnist5k, digits8x8, .npz/.h5)")
    p.add_argument("--limit", type=at.count, default=None, help="with --data: the first N test images (default: --samples)")
    p.add_argument("--encoding", choices=("if", "rate", "latency", "direct"), default=None,
                   help="with --data: input encoding (default: the exported model's, else rate)")
    p.add_argument("--labels", type=Path, default=None, help="with --input: integer labels .npy (batch,) for the accuracy")
    p.add_argument("--readout", choices=("auto", "current", "voltage", "spikes"), default="auto",
                   help="class scores from the last layer: Σ current (an SNN export's read-out), Σ voltage or spike counts "
                        "(default auto: the export's, else current for a non-spiking last layer, else spikes)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loihi", help="Loihi 2: encode data, simulate, compare with Lava, report (netx HDF5 files)")
    s = p.add_subparsers(dest="loihi_command", metavar="ACTION")

    enc = s.add_parser("encode", help="encode a data set's images as input spikes (SPIKES.npy) and labels")
    enc.add_argument("--data", required=True, help="data set (mnist5k, digits8x8, or a .npz/.h5 path)")
    enc.add_argument("--split", choices=("test", "train"), default="test")
    enc.add_argument("--limit", type=at.count, default=None, help="the first N images only")
    enc.add_argument("--steps", type=at.count, default=None, help="time steps (default: --net's, required otherwise)")
    enc.add_argument("--encoding", choices=("if", "rate", "latency", "direct"), default=None,
                     help="if (the BWSNN's default), rate, latency or direct (graded 8-bit payloads); default: --net's, else rate")
    enc.add_argument("--pad", type=at.nonneg_int, default=None, help="zero steps appended for the network latency (default: --net's, else 0)")
    enc.add_argument("--seed", type=at.seed, default=0, help="seed of the rate code")
    enc.add_argument("--net", type=Path, default=None, help="netx file exported from a trained model: take steps/encoding/pad from it")
    enc.add_argument("--out", type=Path, required=True, help="spikes .npy (N, steps + pad, *image_shape), uint8")
    enc.add_argument("--labels-out", type=Path, default=None, help="labels .npy (default: OUT with .labels.npy)")
    enc.set_defaults(func=_encode)

    sim = s.add_parser("simulate", help="run a netx file in neurohw's exact simulator")
    sim.add_argument("net", type=Path, help="netx HDF5 file")
    sim.add_argument("--input", type=Path, default=None, help="spikes .npy: (steps, *input) or (batch, steps, *input)")
    sim.add_argument("--out", type=Path, required=True, help="output .npy: last layer spikes (batch, steps, *shape), uint8 (graded sigma-delta messages: int32)")
    sim.add_argument("--all-layers", type=Path, default=None, help="also write every layer's spikes to this .npz")
    sim.add_argument("--predictions", type=Path, default=None, help="also write the predicted classes to this .npy")
    sim.add_argument("--steps", type=at.count, default=None, help="with --data: time steps (default: the exported model's)")
    sim.add_argument("--samples", type=at.count, default=100, help="with --data: number of images (default 100)")
    sim.add_argument("--seed", type=at.seed, default=0)
    _data_options(sim)
    at.add_device(sim, "cpu")
    sim.set_defaults(func=_simulate)

    cmp_ = s.add_parser("compare", help="run a netx file in neurohw and in Lava (fixed_pt); print 'identical' or the first divergence")
    cmp_.add_argument("net", type=Path)
    cmp_.add_argument("--steps", type=at.count, default=None, help="time steps (default 50 for random input)")
    cmp_.add_argument("--samples", type=at.count, default=1)
    cmp_.add_argument("--seed", type=at.seed, default=0)
    cmp_.add_argument("--rate", type=at.rate, default=0.2, help="spike probability of the random input")
    cmp_.add_argument("--input", type=Path, default=None, help="spikes .npy instead of random input")
    cmp_.add_argument("--timeout", type=at.positive, default=600.0, help="seconds before the Lava run is killed (default 600)")
    _data_options(cmp_)
    cmp_.set_defaults(func=_compare)

    rep = s.add_parser("report", help="deployability on Loihi 1/2 cores and an energy estimate")
    rep.add_argument("net", type=Path)
    rep.add_argument("--input", type=Path, default=None,
                     help="spikes .npy (default: the exported model's data set when the net records one, else random input)")
    rep.add_argument("--random", action="store_true", help="random Bernoulli input even for an exported model")
    rep.add_argument("--steps", type=at.count, default=None, help="time steps (default: the exported model's, else 32)")
    rep.add_argument("--samples", type=at.count, default=4)
    rep.add_argument("--rate", type=at.rate, default=0.1)
    rep.add_argument("--seed", type=at.seed, default=0)
    rep.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    _data_options(rep)
    rep.set_defaults(func=_report)

    imp = s.add_parser("import-nir", help="a NIR graph (snnTorch, Norse, …) → Loihi integers → netx HDF5 file, with the quantisation report")
    imp.add_argument("model", type=Path, help="NIR file (.nir)")
    imp.add_argument("--out", type=Path, required=True, help="netx HDF5 file to write")
    imp.add_argument("--dt", type=at.positive, default=None,
                     help="time step in seconds (default: the graph's metadata dt; snnTorch exports assume 1e-4)")
    imp.add_argument("--report-json", type=Path, default=None, help="also write the quantisation report as JSON")
    imp.set_defaults(func=_import_nir)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _import_nir(args) -> int:
    from neurohw.io import atomic_write_json, provenance

    from .netx_io import write_netx
    from .nir_import import import_nir

    net, rep = import_nir(args.model, dt=args.dt)
    write_netx(net, args.out)
    print(rep.text())
    shapes = net.shapes()
    print(f"wrote {args.out}: input {net.input_shape}, {len(net.layers)} layers "
          f"({', '.join(f'{l.name} {s}' for l, s in zip(net.layers, shapes))})")
    if args.report_json:
        atomic_write_json(args.report_json, {"rows": rep.rows, "provenance": provenance(config={"model": str(args.model), "dt": args.dt})})
    return 0


def _load_npy(path: Path, where: str) -> np.ndarray:
    from neurohw.errors import UsageError

    try:
        x = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 — a damaged header raises ValueError, SyntaxError, TokenError …
        if not isinstance(exc, (OSError, ValueError, SyntaxError, EOFError)) and type(exc).__name__ != "TokenError":
            raise
        raise UsageError(f"{path}", f"{where}: not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if not isinstance(x, np.ndarray):  # an .npz archive
        x.close()
        raise UsageError(f"{path}", f"{where}: an .npz archive; expected one .npy array")
    return x


def _load_input(path: Path, net=None) -> np.ndarray:
    """An input spike file, checked against ``net`` (values, steps, samples)."""
    from neurohw.errors import UsageError

    from .chain import validate_spikes

    x = _load_npy(path, "--input")
    if x.dtype.kind not in "biuf":
        raise UsageError(f"{path}", f"--input: dtype {x.dtype} is not numeric")
    if net is None:
        return x
    shape = tuple(net.input_shape)
    flat = (int(np.prod(shape)),)
    if not any(x.ndim == len(s) + k and tuple(x.shape[k:]) == s for s in {shape, flat} for k in (1, 2)):
        raise UsageError(f"{path}", f"--input: spikes shaped {tuple(x.shape)}; the net takes (steps, *{shape}) or "
                                    f"(batch, steps, *{shape}) (trailing axes may be flattened to {flat[0]})")
    return validate_spikes(x, net, f"{path}")


def _check_size(where: str, *dims: int) -> None:
    from neurohw.errors import UsageError

    n = 1
    for d in dims:
        n *= int(d)
    if n > MAX_INPUT_ELEMENTS:
        raise UsageError(where, f"input of {' x '.join(map(str, dims))} = {n:,} elements is larger than the "
                                f"CLI's limit of {MAX_INPUT_ELEMENTS:,}; use fewer steps or samples")


def _dataset_input(args, net, info: dict, n: int, steps: int | None):
    """(spikes, labels, description, num_classes) from ``--data`` (or the export's data set)."""
    from neurohw.data import load_dataset
    from neurohw.errors import UsageError

    from .chain import encode_images

    name = args.data or info.get("data")
    steps = steps or info.get("steps")
    if not steps:
        raise UsageError("--steps", f"needed with --data {name} (the net records no model steps)")
    encoding = args.encoding or info.get("encoding") or "rate"
    pad = int(info.get("pad", 0))
    ds = load_dataset(name)
    n = min(n, len(ds.x_test))
    x, y = ds.x_test[:n], ds.y_test[:n].numpy()
    shape = tuple(net.input_shape)
    if tuple(x.shape[1:]) != shape:
        if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
            raise UsageError(f"--data {name}", f"images {tuple(x.shape[1:])} do not fit the net's input {shape}")
        x = x.reshape(len(x), *shape)
    _check_size(f"--data {name}", n, steps + pad, int(np.prod(shape)))
    spikes = encode_images(x, steps, encoding, seed=args.seed, pad=pad)
    if encoding == "direct" and net.input_message_bits < 8:
        raise UsageError("--encoding direct", f"needs a net with graded input of >= 8 bits; this one has {net.input_message_bits}")
    return spikes, y, f"{n} {name} test images, {encoding} code, {steps} steps + {pad} padding", ds.num_classes


def _inputs(args, net, *, random_steps: int, use_export_data: bool = False):
    """The input of simulate/compare/report: (spikes, labels or None, description, num_classes)."""
    from .chain import deploy_info, load_labels
    from .random_nets import random_spikes

    info = deploy_info(args.net)
    if args.input is not None:
        x = _load_input(args.input, net)
        batch = x.shape[0] if x.ndim > len(net.input_shape) + 1 else 1
        n_out = int(np.prod(net.shapes()[-1]))  # one class per read-out neuron
        labels = load_labels(args.labels, batch, n_out) if args.labels is not None else None
        return x, labels, f"{args.input}", None
    if args.data is not None or (use_export_data and info.get("data")):
        return _dataset_input(args, net, info, args.limit or args.samples, args.steps)
    steps = args.steps or random_steps
    _check_size("--steps x --samples", args.samples, steps, int(np.prod(net.input_shape)))
    rate = getattr(args, "rate", 0.1)
    return (random_spikes(args.seed, steps, net.input_shape, batch=args.samples, rate=rate), None,
            f"random Bernoulli input, rate {rate}, {args.samples} samples × {steps} steps, seed {args.seed}", None)


def _predict(args, net, result, labels) -> tuple:
    """Class predictions of a simulation (None when the last layer has one neuron or no labels are wanted)."""
    import torch

    from .chain import class_scores, deploy_info, format_predictions, resolve_readout

    info = deploy_info(args.net)
    readout = resolve_readout(net, args.readout, info)
    # an export's window starts after the network latency and runs to the end of the (padded) input
    kw = {"window_start": int(info.get("window_start", 0)), "current_shift": int(info.get("current_shift", 0))}
    if readout in ("current", "voltage") and len(net.layers) - 1 not in (result.current if readout == "current" else result.voltage):
        return None, None
    scores = class_scores(result, readout, **kw)
    pred = scores.argmax(1) if scores.shape[1] > 1 else torch.zeros(scores.shape[0], dtype=torch.long)
    return pred, f"{format_predictions(pred, labels)} (read-out: {readout})"


def _check_outputs(*pairs) -> None:
    from neurohw.io import check_writable

    for path, where in pairs:
        if path is not None:
            check_writable(path, "file", where)


def _encode(args) -> int:
    from neurohw.data import load_dataset
    from neurohw.errors import UsageError
    from neurohw.io import atomic_path

    from .chain import deploy_info, encode_images

    labels_out = args.labels_out or args.out.with_name(args.out.stem + ".labels.npy")
    if labels_out == args.out:
        raise UsageError("--labels-out", "must differ from --out")
    _check_outputs((args.out, "--out"), (labels_out, "--labels-out"))
    info = deploy_info(args.net) if args.net is not None else {}
    if args.net is not None:
        from .netx_io import read_netx

        read_netx(args.net)  # a missing, damaged or non-netx --net is named here, not as a missing --steps
    steps = args.steps or info.get("steps")
    if not steps:
        raise UsageError("--steps", "required (or --net with a netx file exported from a trained model)")
    encoding = args.encoding or info.get("encoding") or "rate"
    pad = args.pad if args.pad is not None else int(info.get("pad", 0))
    ds = load_dataset(args.data)
    x, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_train, ds.y_train)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    _check_size("--steps x --limit", len(x), steps + pad, int(np.prod(x.shape[1:])))
    spikes = encode_images(x, steps, encoding, seed=args.seed, pad=pad)
    for path, arr in ((args.out, spikes), (labels_out, y.numpy().astype(np.int64))):
        with atomic_path(path, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
    print(f"encoded {len(x)} {args.data} {args.split} images ({encoding}, {steps} steps + {pad} padding): "
          f"wrote {args.out} {tuple(spikes.shape)} and {labels_out}")
    return 0


def _simulate(args) -> int:
    import torch

    from neurohw.io import atomic_path

    from .netx_io import read_netx
    from .simulator import simulate

    _check_outputs((args.out, "--out"), (args.all_layers, "--all-layers"), (args.predictions, "--predictions"))
    net = read_netx(args.net)
    x, labels, source, _ = _inputs(args, net, random_steps=0) if (args.input or args.data) else _missing_input()
    res = simulate(net, x, device=args.device, probe=[len(net.layers) - 1])
    as_file = lambda t: t.cpu().numpy().astype(np.uint8 if t.dtype == torch.bool else np.int32)  # noqa: E731 (graded: int32)
    out = as_file(res.output)
    with atomic_path(args.out, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, out)
    if args.all_layers:
        with atomic_path(args.all_layers, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{f"layer{i}": as_file(s) for i, s in enumerate(res.spikes)})
    rates = [float((s != 0).float().mean()) for s in res.spikes]
    print(f"simulated {net.name}: batch {res.batch}, {res.steps} steps, {len(net.layers)} layers; "
          f"spike rate per layer {', '.join(f'{r:.3f}' for r in rates)}; wrote {args.out} {tuple(out.shape)}")
    pred, line = _predict(args, net, res, labels)
    if line:
        print(line)
    if args.predictions is not None and pred is not None:
        with atomic_path(args.predictions, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, pred.numpy())
    return 0


def _missing_input():
    from neurohw.errors import UsageError

    raise UsageError("--input", "give --input SPIKES.npy or --data NAME")


def _compare(args) -> int:
    from .isolate import call_isolated
    from .lava_bridge import compare_with_lava, lava_available
    from .netx_io import read_netx

    net = read_netx(args.net)
    x, labels, source, _ = _inputs(args, net, random_steps=50)
    if not lava_available():
        print("error: Lava (lava-nc 0.10, lava-dl 0.6, Python 3.10) is not installed", file=sys.stderr)
        return 3
    res = call_isolated(compare_with_lava, args.net, x, probe="all", timeout_s=args.timeout, what=f"Lava run of {args.net}")
    want_pred = labels is not None or args.data is not None
    if want_pred:
        for who in ("ours", "lava"):
            _, line = _predict(args, net, res[who], labels)
            if line:
                print(f"{'neurohw' if who == 'ours' else 'lava'}: {line}")
    if res["identical"]:
        print(f"identical ({x.shape[0] if x.ndim > len(net.input_shape) + 1 else 1} sample(s), "
              f"{res['ours'].steps} steps, {len(net.layers)} layers; spikes per layer {res['spikes_per_layer']}; voltages and currents equal)")
        return 0
    d = res["first_divergence"]
    if d is None:
        print(f"spikes identical but states differ: voltage equal {res['voltage_equal']}, current equal {res['current_equal']}")
    else:
        print(format_divergence(d, net))
    return 1


def format_divergence(d: dict, net) -> str:
    """One line naming the layer, neuron (flat index in (C, H, W) order), step and sample."""
    name = net.layers[d["layer"]].name
    if "step" not in d:
        return f"first divergence: layer {d['layer']} ({name}): {d.get('reason')}"
    return (f"first divergence: layer {d['layer']} ({name}), neuron {d['neuron']}, step {d['step']}, "
            f"sample {d['sample']}: neurohw spike={int(d['neurohw'])}, lava spike={int(d['lava'])}")


def _report(args) -> int:
    from neurohw.io import atomic_write_json, provenance

    from .netx_io import read_netx
    from .report import format_report, full_report
    from .simulator import simulate

    _check_outputs((args.json, "--json"))
    net = read_netx(args.net)
    x, labels, source, _ = _inputs(args, net, random_steps=32, use_export_data=not args.random)
    res = simulate(net, x, count_ops=True, probe=[len(net.layers) - 1])
    rep = full_report(net, x, result=res)
    rep["input"] = source
    pred, line = _predict(args, net, res, labels) if labels is not None else (None, None)
    print(format_report(rep))
    if line:
        print(line)
        rep["accuracy"] = float((pred.numpy() == labels).mean())
    if args.json:
        rep["provenance"] = provenance(seed=args.seed, config={"net": str(args.net), "input": source, "steps": args.steps,
                                                               "rate": args.rate})
        atomic_write_json(args.json, rep)
    return 0
