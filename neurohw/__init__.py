"""neurohw — hardware-in-the-loop research toolkit for Loihi 2, optical and logic-gate hardware.

The hub package: the command line (:mod:`neurohw.cli`), datasets and encoders
(:mod:`neurohw.data`), teacher models and the training loop (:mod:`neurohw.models`,
:mod:`neurohw.train`), safe reproducible IO (:mod:`neurohw.io`), seeding
(:mod:`neurohw.seeding`) and the Loihi backend (:mod:`neurohw.loihi`).
Lava is never imported at module import time.
"""

__version__ = "0.1.0"
