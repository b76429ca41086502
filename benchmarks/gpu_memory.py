"""Expected GPU memory a rank for the ImageNet recipes at 8 GPUs (128 images a GPU), counted on this CPU (issue 25).

No GPU here, so the memory a training step holds is counted, not measured on a device: the bytes of every tensor
autograd saves for the backward during one ReSSL forward (student on the strong view, EMA teacher on the weak
view, relation loss over the queue) under the recipe's bf16 autocast, deduplicated by storage, at two small
batches and extrapolated linearly to `--local-batch` (activations grow by image); plus the weights of student and teacher,
the student's gradients and SGD momentum, the queue, and the two input views (float32). Add the CUDA context,
cuDNN workspaces and allocator slack (typically 1-2 GB) for what `nvidia-smi` shows.

    python benchmarks/gpu_memory.py               # prints a Markdown table
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from edgessl.config import load_config
from edgessl.engine import runtime as R
from edgessl.engine.trainer import Trainer

RECIPES = ["mobilenetv3_small", "mobilenetv3_large", "mobilenetv2_100", "efficientnet_lite0", "efficientnet_b0",
           "resnet50"]


def _saved_bytes(trainer: Trainer, batch: int, size: int) -> int:
    """Bytes autograd keeps for the backward of one training forward on `batch` images (each storage once; the
    model's own weights and buffers, e.g. the queue, are counted separately)."""
    own = {t.untyped_storage().data_ptr() for t in [*trainer.model.parameters(), *trainer.model.buffers()]}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in own:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    views = [torch.randn(batch, 3, size, size).contiguous(memory_format=R.memory_format(trainer.cfg))
             for _ in range(2)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), R.autocast(trainer.cfg.train.amp,
                                                                                trainer.device):
        trainer.model(*views, 0.99, 0.0)
    return sum(storages.values())


def _count(recipe: str, local_batch: int, probe: int, out: Path) -> dict[str, float]:
    cfg = load_config(Path("recipes") / f"{recipe}.yaml", [
        "data.format=synthetic", f"data.synthetic_train={probe * 4}", f"train.batch_size={probe}",
        "train.device=cpu", "data.num_workers=0", f"output_dir={out / recipe}"])
    trainer = Trainer(cfg, resume=False)
    student = sum(p.numel() * 4 for p in trainer.model.student.parameters())
    teacher = sum(p.numel() * 4 for p in trainer.model.teacher.parameters())
    fixed = 3 * student + teacher + trainer.model.queue.embeddings.numel() * 4  # weights, grads, momentum
    small, large = (_saved_bytes(trainer, b, cfg.data.image_size) for b in (probe, 2 * probe))
    per_image = (large - small) / probe  # the batch-independent rest (bf16 weight copies) is `small - probe * it`
    activations = small + per_image * (local_batch - probe)
    inputs = 2 * local_batch * 3 * cfg.data.image_size ** 2 * 4
    return {"recipe": recipe, "params_m": student / 4e6, "fixed": fixed / 2**30, "act": activations / 2**30,
            "inputs": inputs / 2**30, "total": (fixed + activations + inputs) / 2**30}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--local-batch", type=int, default=128, help="images a GPU (global 1024 on 8 GPUs)")
    p.add_argument("--probe", type=int, default=8, help="the batch actually run on the CPU")
    p.add_argument("--recipes", nargs="*", default=RECIPES)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"| recipe (bf16, {args.local_batch} a GPU) | student params (M) | weights+grads+momentum+teacher+queue "
          f"(GiB) | saved activations (GiB) | input views (GiB) | total before CUDA overhead (GiB) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            r = _count(recipe, args.local_batch, args.probe, Path(tmp))
            print(f"| {r['recipe']} | {r['params_m']:.1f} | {r['fixed']:.2f} | {r['act']:.2f} | {r['inputs']:.2f} "
                  f"| {r['total']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
