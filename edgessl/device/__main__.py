"""`python -m edgessl.device check DIR` (the same as the `edgessl-device` script)."""

from edgessl.device.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
