"""snn — binary-weight spiking networks (SEI-BWSNN) on Loihi's grids, with an exact deploy mode.

Public API:

- :class:`snn.model.BWSNNConfig`, :class:`snn.model.BWSNN` — the network;
- :class:`snn.neurons.CubaLIF`, :func:`snn.neurons.lif_sequence` — CUBA LIF on Loihi grids;
- :func:`snn.binary.binarize` — ``α·sign(w)`` with clipped STE;
- :func:`snn.surrogate.get_surrogate` — atan / triangle / fast_sigmoid;
- :func:`snn.train.fit_snn` (a wrapper of :func:`neurohw.train.fit`), :func:`snn.train.evaluate_snn`;
- :func:`snn.deploy.to_loihi_network`, :func:`snn.deploy.deploy_predict`,
  :func:`snn.deploy.integer_forward`, :func:`snn.deploy.loihi_forward`, :func:`snn.deploy.lava_forward`;
- :func:`snn.experiments.run_experiments` — the ablation table.

See docs/snn.md.
"""
from snn.model import BWSNN, BWSNNConfig

__all__ = ["BWSNN", "BWSNNConfig"]
