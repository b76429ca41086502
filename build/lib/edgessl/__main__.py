"""`python -m edgessl` (what `torchrun -m edgessl` runs)."""

from edgessl.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
