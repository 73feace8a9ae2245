"""Benchmark of the logic backend: fast vs naive gate mixture, packed evaluator vs compiled C export."""
