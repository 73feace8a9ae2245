"""Side-by-side benchmarks. Each capability is a subpackage run as ``python -m bench.<name>``;
``python -m bench.run_all`` runs them all. They print measured ratios against their anchors."""
