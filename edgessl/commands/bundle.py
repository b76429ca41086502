"""Write a self-contained bundle of one exported artifact, to check it on a board without torch.

examples:
  edgessl bundle exported/mnv4s_int8.tflite --out mnv4s_int8_bundle
  edgessl bundle exported/mnv4s_int8.onnx --data ../shared/datasets/cifar10_32px_train1k_test200.npz --samples 200 --out b/
  scp -r mnv4s_int8_bundle board: && ssh board "pip install 'edgessl[device-tflite]' && edgessl-device check mnv4s_int8_bundle"

The bundle holds the artifact, its preprocessing spec (JSON), --samples class-balanced test images of the recipe's
data (uint8, after the eval resize/crop) with labels and their PyTorch fp32 embeddings, a kNN bank of --bank
training images' PyTorch fp32 embeddings with labels (embeddings stored float16), and a manifest with every
file's sha256. On the board, `edgessl-device check DIR` prints the same table as `edgessl check`.
"""

from __future__ import annotations

import argparse

HELP = "write a folder to copy to a board: artifact, preprocessing, test images, kNN bank, reference embeddings"


SAMPLES, BANK = 1000, 5000  # defaults: test images shipped, training embeddings in the kNN bank


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="an exported .onnx, .xml (OpenVINO) or .tflite file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. data.root=PATH")
    p.add_argument("--out", required=True, help="the bundle folder to write (must not exist, or be empty)")
    p.add_argument("--data", default=None,
                   help="data for the images and the bank: a .npz file or an image folder (default: the recipe's)")
    p.add_argument("--samples", type=int, default=SAMPLES,
                   help=f"class-balanced test images to ship (default {SAMPLES})")
    p.add_argument("--bank", type=int, default=BANK,
                   help=f"class-balanced training images whose embeddings form the kNN bank (default {BANK})")
    p.add_argument("--checkpoint", default=None, help="the PyTorch checkpoint (default: from the artifact's metadata)")
    p.add_argument("--profiles", default=None, help="folder of <target>.yaml profiles (default: the repo's export/)")


def run(args: argparse.Namespace) -> int:
    from edgessl.export.bundle import write_bundle

    bundle = write_bundle(args.artifact, args.out, args.samples, args.bank, args.checkpoint, args.data,
                          args.overrides, args.profiles)
    print(f"wrote {bundle.folder}: {bundle.size_mb:.2f} MB ({bundle.samples} test images, kNN bank of "
          f"{bundle.bank}); on the device: edgessl-device check {bundle.folder}")
    return 0
