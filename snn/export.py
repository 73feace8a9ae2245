"""Export a trained BWSNN: netx HDF5 for Loihi/Lava, or NIR.

* ``loihi``: :func:`snn.deploy.to_loihi_network` → :func:`neurohw.loihi.netx_io.write_netx`
  (netx layers plus neurohw's shortcut extension, which ``neurohw.loihi.lava_bridge`` adds to
  the netx-built Lava network as second synapse groups).
* ``nir``: :func:`snn.deploy.to_loihi_network` → :func:`neurohw.loihi.nir_io.write_nir` (the
  read-out is a non-spiking ``CubaLIF`` whose current carries the logits).
"""
from __future__ import annotations

from pathlib import Path

from snn.deploy import to_loihi_network
from snn.model import BWSNN

def export_model(model: BWSNN, to: str, path: str | Path) -> Path:
    """Write ``model`` as ``to`` = ``"loihi"`` (netx HDF5) or ``"nir"``; returns the path."""
    path = Path(path)
    net = to_loihi_network(model)
    if to == "loihi":
        from neurohw.loihi.netx_io import write_netx

        return write_netx(net, path, seed=model.cfg.seed, config={"deploy": deploy_info(model)})
    if to == "nir":
        from neurohw.loihi.nir_io import write_nir

        return write_nir(net, path)
    raise ValueError(f"export target must be 'loihi' or 'nir', got {to!r}")


def deploy_info(model: BWSNN, data: str = "mnist5k") -> dict:
    """How to feed the exported net and read its answer (:func:`neurohw.loihi.chain.deploy_info`).

    Input: ``cfg.encoding`` over ``cfg.steps`` steps plus one zero step per layer of latency;
    answer: the read-out's current summed over steps ``[L + 1, L + 1 + T)`` and shifted right
    by 6 (``snn.deploy``'s logits), L = number of spiking layers.
    """
    n_spiking = len(model.layers)
    return {"source": "snn", "data": data, "encoding": model.cfg.encoding, "steps": int(model.cfg.steps),
            "pad": n_spiking + 1, "readout": "current", "window_start": n_spiking + 1, "current_shift": 6}


