"""logic — see README.md and docs/."""
