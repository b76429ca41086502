"""How lean is the ReSSL step, and does the loader keep up? (issue 8, parts 2 and 3)

For mobilenetv3_small_100 at 32 px (stem stride 1) and 224 px, on this CPU:
  (2) ms/step of the full ReSSL step (`Trainer.train_step`: student fwd+bwd, EMA, teacher fwd, relation loss,
      SGD step, enqueue) vs the bare compute (student fwd+bwd on one view + teacher fwd on the other + the same
      SGD step; no loss, EMA or queue), on fixed tensors;
  (3) end-to-end images/s of a short `edgessl pretrain` (data loading and augmentation included), per-image
      and batched augmentation, vs the step-only images/s from (2).

    python benchmarks/step_speed.py                                  # prints a Markdown table
    python benchmarks/step_speed.py --set train.channels_last=false  # the NCHW layout, for comparison
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import torch

from edgessl.checkpoint import RunFolder
from edgessl.config import load_config
from edgessl.engine import runtime as R
from edgessl.engine.trainer import Trainer, pretrain

CASES = [(32, 1, 128), (224, 2, 32)]  # (image size, stem stride, batch)


def _config(size: int, stem: int, batch: int, out: Path, *extra: str):
    return load_config(None, [
        "data.format=synthetic", f"data.image_size={size}", f"data.synthetic_train={batch * 12}",
        "data.synthetic_test=50", "data.num_workers=2", f"model.stem_stride={stem}",
        f"ressl.queue_size={batch * 16}", f"train.batch_size={batch}", "train.knn_every=0", "train.epochs=1",
        "train.log_every=2", "train.device=cpu", f"output_dir={out}", *extra])


def _median_ms(fn, repeats: int) -> float:
    fn(), fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def step_times(size: int, stem: int, batch: int, repeats: int, extra: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(_config(size, stem, batch, Path(tmp), *extra))
    layout = R.memory_format(trainer.cfg)
    strong, weak = (torch.randn(batch, 3, size, size).contiguous(memory_format=layout) for _ in range(2))
    student, teacher, opt = trainer.model.student, trainer.model.teacher, trainer.optimizer

    def bare() -> None:
        opt.zero_grad(set_to_none=True)
        student(strong).sum().backward()
        with torch.no_grad():
            teacher(weak)
        opt.step()

    full = _median_ms(lambda: trainer.train_step(strong, weak), repeats)
    return full, _median_ms(bare, repeats)


def end_to_end(size: int, stem: int, batch: int, batched: bool, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        pretrain(_config(size, stem, batch, Path(tmp), f"data.batched_augment={str(batched).lower()}", *extra))
        with RunFolder(Path(tmp)).metrics.open() as fh:
            speeds = [float(r["img_per_s"]) for r in csv.DictReader(fh) if r["img_per_s"]]
    return statistics.median(speeds[1:] or speeds)  # the first log interval includes worker start-up


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every case")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("| input | batch | ReSSL step ms | bare compute ms | ratio | step-only img/s | end-to-end img/s "
          "(per-image aug) | end-to-end img/s (batched aug) |")
    print("|---|---|---|---|---|---|---|---|")
    for size, stem, batch in CASES:
        full, bare = step_times(size, stem, batch, args.repeats, args.set)
        e2e = [end_to_end(size, stem, batch, b, args.set) for b in (False, True)]
        print(f"| {size} px | {batch} | {full:.0f} | {bare:.0f} | {full / bare:.2f}x | {1000 * batch / full:.0f} "
              f"| {e2e[0]:.0f} | {e2e[1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
