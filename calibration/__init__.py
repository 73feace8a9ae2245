"""calibration — see README.md and docs/."""
