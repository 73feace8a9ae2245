"""snn — see README.md and docs/."""
