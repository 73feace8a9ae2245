"""Training throughput of the BWSNN against the same architecture built from snnTorch layers."""
