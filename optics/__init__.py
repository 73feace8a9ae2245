"""optics — see README.md and docs/."""
