"""distill — see README.md and docs/."""
