"""Optics benchmark: propagation against the two-FFT floor and LightPipes; fabricated instances per second."""
