"""Benchmark of the calibration loop: wall time of a 10 % calibration on MNIST-5k captures and
peak memory while calibrating from a capture file larger than RAM would comfortably hold in float64."""
