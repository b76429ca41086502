"""`edgessl-device` (also `python -m edgessl.device`): the torch-free check that runs on the board.

examples:
  edgessl-device check mnv4s_int8_bundle/                   # threads 1, 2 and 4 -> mnv4s_int8_bundle/device_check.json
  python -m edgessl.device check bundle/ --threads 4 --tolerance 1 --out results/

Install on the device with only the runtime the bundle needs: pip install 'edgessl[device-tflite]' (or
device-onnx, device-openvino); no torch. Exit code 0 when the kNN top-1 change is within the tolerance (the
bundle's, from the export profile, unless --tolerance), 1 when not, 2 for bad input (a changed or missing file,
a missing runtime, a bundle from a newer edgessl).
"""

from __future__ import annotations

import argparse
import sys

from edgessl import __version__
from edgessl.errors import EdgeSSLError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgessl-device", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"edgessl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    p = sub.add_parser("check", help="run a bundle's artifact here: cosine and kNN vs PyTorch fp32, latency, memory")
    p.add_argument("bundle", help="a folder written by `edgessl bundle`")
    p.add_argument("--threads", default="1,2,4", help="comma-separated thread counts to time (default 1,2,4)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max kNN top-1 drop in points (default: the bundle's, from the export profile)")
    p.add_argument("--runs", type=int, default=None, help="timed batch-1 runs per thread count (default: bundle's)")
    p.add_argument("--out", default=None, help="folder for device_check.json/.md (default: the bundle folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edgessl.device.check import check_bundle, device_line, parse_threads

    try:
        result = check_bundle(args.bundle, parse_threads(args.threads), args.tolerance, args.runs, args.out)
    except EdgeSSLError as exc:
        print(f"edgessl-device {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgessl-device {args.command}: interrupted", file=sys.stderr)
        return 130
    print(result.markdown)
    print(device_line(result.device))
    print(f"wrote {result.table_json} and {result.table_json.with_suffix('.md')}")
    return 0 if result.passed else 1
