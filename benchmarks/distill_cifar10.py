"""Does distilling a ResNet-18 teacher help a small student? (issue 4) On the shared CIFAR-10, this CPU:

1. pretrain the teacher with edgessl (`recipes/resnet18_teacher_cifar10.yaml`) for `--teacher-epochs`;
2. pretrain mobilenetv3_small_100 (`recipes/cifar10_mobilenetv3_small_distill.yaml`) for `--epochs`, once without
   the teacher (`distill.weight=0`) and once distilled from it, from the same seed;
3. print kNN top-1 of the teacher, the untrained student, and both students as one Markdown table.
All runs use the real `edgessl pretrain` code path, with the settings of `benchmarks/pretrain_cifar10.py`.

    python benchmarks/distill_cifar10.py --epochs 2 --teacher-epochs 2
    python benchmarks/distill_cifar10.py --epochs 2 --teacher runs/bench/distill-.../teacher/last.pt  # reuse it
    python benchmarks/distill_cifar10.py --steps 2 --set data.train_samples=512                   # smoke test
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from edgessl.benchmarking import CIFAR, ROOT, knn_of, parse_cifar_args
from edgessl.checkpoint import RunFolder
from edgessl.config import Config, load_config
from edgessl.engine.trainer import pretrain
from edgessl.models import build_backbone
from edgessl.models.teacher_loading import load_teacher
# the sibling script (benchmarks/ is on sys.path when run)

TEACHER_RECIPE = ROOT / "recipes" / "resnet18_teacher_cifar10.yaml"
STUDENT_RECIPE = ROOT / "recipes" / "cifar10_mobilenetv3_small_distill.yaml"


def _config(recipe: Path, args: argparse.Namespace, epochs: int, out: Path, *extra: str) -> Config:
    """The recipe on the shared CIFAR-10 (npz), CPU, a budget of `epochs` (capped at `--steps`), kNN at the end."""
    return load_config(recipe, ["data.format=npz", f"data.root={CIFAR}", f"data.num_workers={min(args.threads, 2)}",
                                f"train.epochs={epochs}", f"train.max_steps={args.steps}",
                                f"optim.warmup_epochs={args.warmup}", "train.knn_every=0", "train.device=cpu",
                                f"train.threads={args.threads}", "train.log_every=20", f"output_dir={out}",
                                *args.set, *extra])


def _row(encoder: str, training: str, steps: int | str, knn: float, wall: float | None) -> str:
    minutes = f"{wall / 60:.1f} min" if wall is not None else "-"
    return f"| {encoder} | {training} | {steps} | {knn:.2f} | {minutes} |"


def _train(cfg: Config) -> tuple[int, float, float]:
    """Steps, final kNN top-1 and wall seconds of one pretraining run."""
    start = time.time()
    result = pretrain(cfg, resume=False)
    return result.steps, result.knn[max(result.knn)], time.time() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2, help="student budget in epochs over the 50k training images")
    p.add_argument("--teacher-epochs", type=int, default=0, help="teacher budget in epochs (default: --epochs)")
    p.add_argument("--steps", type=int, default=0, help="cap every run at this many steps (0 = no cap)")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up epochs (scaled down with the budget)")
    p.add_argument("--teacher", default="", help="reuse this ResNet-18 checkpoint instead of training a teacher")
    args = parse_cifar_args(p, "overrides for all three runs, e.g. data.train_samples=5000 or distill.weight=0.5")
    out = Path(args.out) / f"distill-{int(time.time())}"
    rows = []

    if args.teacher:
        teacher = Path(args.teacher)
    else:
        teacher = RunFolder(out / "teacher").last
        steps, knn, wall = _train(_config(TEACHER_RECIPE, args, args.teacher_epochs or args.epochs, teacher.parent))
        rows.append(_row("resnet18 (teacher)", "ReSSL", steps, knn, wall))

    plain = _config(STUDENT_RECIPE, args, args.epochs, out / "student", "distill.weight=0")
    distilled = _config(STUDENT_RECIPE, args, args.epochs, out / "student_distill", f"distill.checkpoint={teacher}")
    if args.teacher:
        rows.append(_row("resnet18 (teacher)", f"given: {teacher}", "-",
                         knn_of(load_teacher(distilled.distill).backbone, distilled), None))
    torch.manual_seed(plain.train.seed)
    arch = plain.model.arch
    rows.append(_row(arch, "none (random init)", 0, knn_of(build_backbone(arch, plain.model.stem_stride), plain), None))
    rows.append(_row(arch, "ReSSL", *_train(plain)))
    rows.append(_row(arch, f"ReSSL + distillation from resnet18 (weight {distilled.distill.weight:g})",
                     *_train(distilled)))

    print("\n| encoder | pretraining | steps | kNN top-1 (%) | wall |\n|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"runs: {out}")


if __name__ == "__main__":
    main()
