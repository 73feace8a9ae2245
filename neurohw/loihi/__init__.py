"""Loihi 2 backend: exact fixed-point simulation, quantisation, netx/NIR export, Lava bridge, report.

Public API (stable; see docs/loihi.md):

- :mod:`neurohw.loihi.network` — ``CubaParams``, ``SigmaDeltaParams``, ``DenseLayer``, ``ConvLayer``, ``pool_layer``,
  ``Shortcut``, ``DenseConn``, ``ConvConn``, ``matched_delay``, ``LoihiNetwork``, ``LoihiConfigError``;
- :func:`simulate` (``neurohw.loihi.simulator``) → ``SimResult``;
- :mod:`neurohw.loihi.netx_io` — ``write_netx``, ``read_netx``;
- :mod:`neurohw.loihi.nir_io` — ``to_nir``, ``write_nir``, ``read_nir_graph``;
- :mod:`neurohw.loihi.quantize` — ``FloatLayer``, ``quantize_network``, ``quantize_cuba``, ``QuantReport``;
- :mod:`neurohw.loihi.report` — ``deployability``, ``energy_report``, ``full_report``, ``format_report``;
- :mod:`neurohw.loihi.lava_bridge` — ``run_in_lava``, ``run_netx_in_lava``, ``compare_with_lava``
  (imports Lava only when called);
- :mod:`neurohw.loihi.random_nets` — seeded random networks for tests and benchmarks.

Lava is never imported when this package is imported.
"""
from .network import (ConvConn, ConvLayer, CubaParams, DenseConn, DenseLayer, LoihiConfigError,
                      LoihiNetwork, Shortcut, SigmaDeltaParams, matched_delay, pool_layer)
from .simulator import SimResult, simulate

__all__ = [
    "ConvConn", "ConvLayer", "CubaParams", "DenseConn", "DenseLayer", "LoihiConfigError",
    "LoihiNetwork", "Shortcut", "SigmaDeltaParams", "matched_delay", "pool_layer", "SimResult", "simulate",
]
