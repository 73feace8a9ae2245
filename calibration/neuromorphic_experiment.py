"""The neuromorphic calibration loop on virtual-lab chips: the figures of docs/calibration.md.

``python -m calibration.neuromorphic_experiment`` builds the lab's digits network (seed 0), draws
``--devices`` virtual chips (device seeds 0, 1, …, default magnitudes), captures the digits test
split on each and runs :func:`calibration.neuromorphic.calibrate_neuromorphic` (read-out slice
fraction 0.5). Writes ``results/calibration-neuromorphic.json``: one row per chip and the mean ± std.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    from neurohw import argtypes as at
    from neurohw.loihi.netx_io import write_netx
    from neurohw.results import save_result
    from neurohw.stats import mean_std

    from .neuromorphic import calibrate_neuromorphic
    from .neuromorphic_lab import MAGNITUDES, build_digits_model, capture_neuromorphic

    args = at.parse_experiment_args(__doc__, argv, devices=(at.count, 5), fraction=(at.fraction, 0.5), steps=(at.count, 32))
    t0 = time.time()
    net, x, y = build_digits_model(0, steps=args.steps)
    keys = ("simulation", "uncalibrated", "control", "calibrated")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        netx = write_netx(net, Path(d) / "digits.net")
        for dev in range(args.devices):
            caps = capture_neuromorphic(net, x, y, Path(d) / f"c{dev}.h5", num_classes=10, device_seed=dev)
            r = calibrate_neuromorphic(netx, caps, fraction=args.fraction, seed=0)
            rows.append({"chip (device seed)": str(dev), "raster agreement": 100 * r["agreement"]["raster_agreement"],
                         "count abs. error per neuron": r["agreement"]["count_mean_abs_error"],
                         **{k: 100 * r["accuracies"][k] for k in keys}})
    summary = {"chip (device seed)": f"mean ± std ({args.devices} chips)"}
    for k in rows[0]:
        if k != "chip (device seed)":
            m, s = mean_std([row[k] for row in rows])
            summary[k] = {"mean": m, "std": s}
    caption = (f"Virtual neuromorphic lab: digits8x8 test split ({len(x)} captures × {args.steps} steps) on perturbed chips "
               f"(magnitudes {MAGNITUDES}); read-out refit on a seeded {args.fraction:.0%} slice; held-out accuracy (%)")
    path = save_result("calibration-neuromorphic", {"rows": rows + [summary], "columns": list(rows[0]), "caption": caption},
                       config={**vars(args), "magnitudes": MAGNITUDES, "model_seed": 0},
                       command="python -m calibration.neuromorphic_experiment", seeds=list(range(args.devices)),
                       wall_time_s=time.time() - t0)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
