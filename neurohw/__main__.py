"""`python -m neurohw` — same as the `neurohw` console script."""
from neurohw.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
