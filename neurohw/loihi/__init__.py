"""Loihi 2 backend: exact fixed-point simulation, export, Lava bridge, report. Lava is imported lazily."""
