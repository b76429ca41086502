"""Write an HTML report of a run: training curves, recipe, eval results, exports and a t-SNE map.

examples:
  edgessl report runs/mnv3s                         # -> runs/mnv3s/report.html (+ runs/mnv3s/report/*.png)
  edgessl report runs/mnv3s --no-tsne
  edgessl report runs/mnv3s data.root=/data/cifar10 train.device=cpu --tsne-samples 1000
  edgessl report runs/mnv3s --device pi5/device_check.json jetson/device_check.json

The page is static HTML with PNGs referenced relatively; open it in any browser. The t-SNE plot needs the run's
last.pt and its test data (overrides change the recipe stored in the checkpoint, e.g. data.root); without them
the report is written without it. Run `edgessl eval` first to include kNN / linear-probe results; `--device`
adds the rows of boards' `edgessl-device check` results to the export table.
"""

from __future__ import annotations

import argparse

HELP = "write runs/<name>/report.html: curves, recipe, eval results, exports, t-SNE"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run folder written by `edgessl pretrain` (has config.yaml and metrics.csv)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="recipe overrides for the t-SNE features, e.g. data.root=/data/cifar10")
    p.add_argument("--no-tsne", action="store_true", help="skip the t-SNE plot (it loads the encoder and test data)")
    p.add_argument("--tsne-samples", type=int, default=2000, metavar="N",
                   help="test images in the t-SNE plot (default 2000)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--device", action="extend", nargs="+", default=[], metavar="device_check.json",
                   help="a board's `edgessl-device check` result to show beside the host's export rows (one or more)")


def run(args: argparse.Namespace) -> int:
    from edgessl.errors import EdgeSSLError
    from edgessl.evaluation.report import build_report

    if args.tsne_samples < 5:
        raise EdgeSSLError(f"--tsne-samples must be >= 5; got {args.tsne_samples}")
    path = build_report(args.run, tsne=not args.no_tsne, overrides=args.overrides, tsne_samples=args.tsne_samples,
                        progress=not args.no_progress, device=args.device)
    print(f"wrote {path}")
    return 0
