"""Benchmark of NTK distillation: training-step time for CE, KD and NTKD with each NTK
estimator (ratios against the CE step, run side by side), and the exact kernel's cost as the
batch grows. Run ``python -m bench.distill [--quick]``."""
