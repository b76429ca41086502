"""Prune a trained encoder to a MACs (or parameter) budget, then recover it by distillation from the unpruned one.

examples:
  edgessl prune runs/mnv3s/last.pt --macs 0.5 --recover-epochs 20
  edgessl prune runs/mnv3s --macs 0.5 --importance taylor data.root=/data/cifar10 --out runs/mnv3s-taylor50
  edgessl prune runs/mnv3s/last.pt --macs 0.5 --recover-epochs 0       # prune only: <out>/pruned.pt
  edgessl export runs/mnv3s-pruned50/last.pt --target onnx,tflite

Channels are removed structurally with torch-pruning (DepGraph): the same fraction in every layer, ranked by
the importance criterion, step by step until the MACs (and parameters) are at or under the targets. The stem and
the embedding width are kept unless --prune-stem / --prune-embedding; channel counts stay multiples of
--round-to (odd counts made ONNX Runtime slower than the unpruned model). Recovery trains the pruned student with
the original run's method plus relational distillation from the frozen unpruned encoder (spec section 5) with the
usual engine; key=value overrides change the checkpoint's recipe (data.*, train.*, optim.*, distill.weight, ...).

Writes into --out (default runs/<run>-pruned<pct>): pruned.pt (right after pruning), the recovery run
(last.pt, config.yaml, metrics.csv) and prune.json (MACs, params, kNN top-1 of each stage). Running the same
command again reuses pruned.pt and resumes the recovery.
"""

from __future__ import annotations

import argparse

HELP = "prune an encoder to a MACs/params budget (torch-pruning) and recover it by self-distillation"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="an edgessl checkpoint (runs/<name>/last.pt) or its run folder")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. data.root=/data/cifar10")
    p.add_argument("--macs", type=float, default=None, metavar="R",
                   help="keep at most this fraction of the MACs, in (0, 1) (default 0.5 when --params is not given)")
    p.add_argument("--params", type=float, default=None, metavar="R",
                   help="keep at most this fraction of the parameters, in (0, 1)")
    p.add_argument("--importance", choices=("magnitude", "taylor", "bn"), default="magnitude",
                   help="channel ranking: group L2 norm (default), first-order Taylor on the ReSSL relation loss, "
                        "or batch-norm scale")
    p.add_argument("--recover-epochs", type=int, default=20, metavar="E",
                   help="recovery epochs (default 20; 0 = prune only)")
    p.add_argument("--prune-stem", action="store_true", help="also prune the stem's output channels")
    p.add_argument("--prune-embedding", action="store_true",
                   help="also prune the embedding width (the last layer's output channels)")
    p.add_argument("--round-to", type=int, default=4, metavar="N",
                   help="pruned channel counts are multiples of N (default 4: ONNX Runtime's fast kernels; 1 = any)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/<run>-pruned<pct>)")


def run(args: argparse.Namespace) -> int:
    from edgessl.pruning.pipeline import prune_checkpoint
    from edgessl.checkpoint import RunFolder

    macs = 0.5 if args.macs is None and args.params is None else args.macs
    result = prune_checkpoint(args.checkpoint, macs, args.params, args.importance, args.recover_epochs,
                              args.overrides, args.out, keep_stem=not args.prune_stem,
                              keep_embedding=not args.prune_embedding, round_to=args.round_to)
    print(result.markdown)
    print(f"encoder: {result.checkpoint}; report: {RunFolder(result.out) / RunFolder.PRUNE_REPORT}")
    return 130 if result.stopped_early else 0
