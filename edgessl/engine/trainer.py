"""The pretraining loop: one function, `pretrain(cfg)`, on one CPU/GPU or under torchrun (DDP), for any method.

Per step: the method's forward on the views (its loss, EMA update and teacher forward inside), backward, optimizer
step, then the method's `after_step` (e.g. its queue takes the global batch's keys). The loop knows no method: it
logs whatever metrics the method returns. Host syncs happen only every `train.log_every` steps (logging, NaN
check, signal agreement across ranks).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from edgessl import distributed as D
from edgessl.checkpoint import Checkpoint, RunFolder, remove_stale_temps
from edgessl.config import Config
from edgessl.data import build_dataset
from edgessl.data.batched_augment import BatchedTwoViews, ToUint8Tensor
from edgessl.data.transforms import EVAL_CROP_FRACTION, MEAN, STD, merge_view_pairs, ressl_views
from edgessl.engine import runtime as R
from edgessl.engine.optim import build_optimizer, lr_at, scaled_lr, set_lr
from edgessl.engine.run_log import RunLog
from edgessl.engine.run_setup import (StopFlag, agree_on_stop, check_resume_compatible, check_sizes, default_run_dir,
                                      initial_backbone)
from edgessl.engine.sampler import GlobalBatchSampler
from edgessl.errors import EdgeSSLError
from edgessl.folder_lock import hold
from edgessl.measure.knn import knn_top1
from edgessl.measure.loaders import eval_loader
from edgessl.methods import Context, StepOutput, describe, ignored_note, resolve
from edgessl.models.registry import check_arch, feature_dim, probe_output_shape
from edgessl.models.reparam import inference_form

@dataclass
class RunResult:
    """What `pretrain` returns: where the run is and its kNN history (epoch -> top-1)."""

    run_dir: Path
    steps: int
    knn: dict[int, float] = field(default_factory=dict)
    stopped_early: bool = False


class Trainer:
    """Holds one run's state; `fit()` trains it. Split out of `pretrain` so tests can drive single steps."""

    def __init__(self, cfg: Config, run_dir: Path | None = None, resume: bool | None = None) -> None:
        self.owns_group = R.init_distributed(cfg)
        self.cfg = cfg
        self.world, self.rank = D.world_size(), D.rank()
        self.device = R.resolve_device(cfg.train.device)
        R.check_amp(cfg.train.amp, self.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        check_arch(cfg.model.arch)
        self.run_dir = Path(run_dir or cfg.output_dir or default_run_dir(cfg))
        cfg.output_dir = str(self.run_dir)
        self._sync_run_dir()

        method, options = resolve(cfg)
        size = cfg.data.image_size
        small = cfg.data.small_size()
        # peers draw two strong views; ressl and infonce a strong and a `data.teacher_view` one
        second = cfg.data.teacher_view if method.second_view == "weak" else "strong"
        with R.local_main_first(cfg.data.download):  # one download a node, not one a rank
            if cfg.data.batched_augment:  # loader workers only decode; all views are made on the device
                load_size = round(size / EVAL_CROP_FRACTION) if cfg.data.format == "imagefolder" else None
                self.train_set = build_dataset(cfg.data, "train", ToUint8Tensor(load_size))
                self.augment = BatchedTwoViews(size, self.device, small_crops=cfg.data.small_crops,
                                               small_size=small, teacher_view=second)
            else:
                self.train_set = build_dataset(cfg.data, "train", ressl_views(size, cfg.data.small_crops, small,
                                                                                  second, cfg.data.view_pairs))
                self.augment = None
        check_sizes(cfg, self.world, len(self.train_set), options)
        self.local_batch = cfg.train.batch_size // self.world
        self.steps_per_epoch = len(self.train_set) // cfg.train.batch_size
        total = cfg.train.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.train.max_steps) if cfg.train.max_steps else total

        R.seed_everything(cfg.train.seed)
        backbone, self.encoder_extra = initial_backbone(cfg)
        if probe_output_shape(backbone, size)[-1] <= 0:
            raise EdgeSSLError(f"model.arch={cfg.model.arch} gives no features at data.image_size={size}")
        if cfg.data.small_crops and probe_output_shape(backbone, small)[-1] <= 0:
            raise EdgeSSLError(f"model.arch={cfg.model.arch} gives no features at data.small_crop_size={small}; "
                               f"raise it or set data.small_crops=0")
        ctx = Context(self.world, self.local_batch * cfg.data.view_pairs, self.total_steps, self.steps_per_epoch)
        self.model = R.apply_layout(method(cfg, options, backbone, ctx), cfg, self.device)
        self.peak_lr = scaled_lr(cfg.optim, cfg.train.batch_size)
        self.optimizer = build_optimizer(self.model.student, cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model.student = nn.parallel.DistributedDataParallel(self.model.student, device_ids=ids)
        self.forward = torch.compile(self.model) if cfg.train.compile else self.model

        self.step, self.epoch, self.epoch_step = 0, 0, 0
        self.knn_history: dict[int, float] = {}
        self.files = RunFolder(self.run_dir)
        ckpt_path = self.files.last
        if resume and not ckpt_path.exists():
            raise EdgeSSLError(f"--resume given but {ckpt_path} does not exist; drop --resume to start fresh")
        self.resumed = resume is not False and ckpt_path.exists()
        if self.resumed:
            self._load(ckpt_path)
        if D.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.files.config)
        self.log = RunLog(self.run_dir, D.is_main(), self.model.columns(),
                          resume_step=self.step if self.resumed else None)
        self._knn_loaders = None

    def _sync_run_dir(self) -> None:
        """Under DDP every rank must use rank 0's (timestamped) run folder."""
        if self.world == 1:
            return
        import torch.distributed as dist

        holder = [str(self.run_dir)]
        dist.broadcast_object_list(holder, src=0)
        self.run_dir = Path(holder[0])
        self.cfg.output_dir = holder[0]

    # ----- checkpoints -------------------------------------------------------------------------------------
    def model_state(self) -> dict[str, torch.Tensor]:
        """The method's state dict with DDP's `module.` removed, so any world size can load it."""
        return {k.replace("student.module.", "student."): v for k, v in self.model.state_dict().items()}

    @property
    def distill_record(self) -> dict | None:
        """The frozen teacher's arch, path and sha256 (its weights are never saved); None without distillation."""
        return None if self.model.distill is None else self.model.distill.teacher.source.record()

    def save(self, name: str = RunFolder.LAST) -> None:
        if not D.is_main():
            return
        cfg = self.cfg
        Checkpoint(
            config=cfg.to_dict(),
            encoder={"arch": cfg.model.arch, "stem_stride": cfg.model.stem_stride, "image_size": cfg.data.image_size,
                     "feature_dim": feature_dim(self.model.core_student().backbone), "mean": list(MEAN),
                     "std": list(STD), **self.encoder_extra},
            model=self.model_state(), epoch=self.epoch, step=self.step, epoch_step=self.epoch_step,
            distill=self.distill_record, optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict(),
            metrics={"knn_top1": {str(k): v for k, v in self.knn_history.items()}},
        ).save(self.files / name)

    def _load(self, path: Path) -> None:
        ckpt = Checkpoint.load(path)
        check_resume_compatible(ckpt.config, self.cfg, path, ckpt.encoder, self.encoder_extra)
        if ckpt.distill != self.distill_record:
            was, now = ckpt.distill or {}, self.distill_record or {}
            changed = ", ".join(f"{k} {str(was.get(k, 'none'))[:40]} -> {str(now.get(k, 'none'))[:40]}"
                                for k in sorted({*was, *now}) if was.get(k) != now.get(k))
            raise EdgeSSLError(f"cannot resume {path}: the distillation teacher checkpoint changed ({changed}); "
                               f"restore it or set output_dir to a new folder")
        state = ckpt.model
        if self.world > 1:
            state = {k.replace("student.", "student.module.", 1) if k.startswith("student.") else k: v
                     for k, v in state.items()}
        self.model.load_state_dict(state)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.scaler.load_state_dict(ckpt.scaler)
        self.step, self.epoch, self.epoch_step = ckpt.step, ckpt.epoch, ckpt.epoch_step
        self.knn_history = {int(k): v for k, v in ckpt.metrics["knn_top1"].items()}
        if D.is_main():
            print(f"resuming {path}: epoch {self.epoch}, step {self.step}")

    # ----- kNN monitor -------------------------------------------------------------------------------------
    def knn(self) -> dict[str, float]:
        """Weighted kNN top-1/top-5 of the student backbone, the same on every rank. Each rank extracts the
        features of its shard of the bank (`knn.bank_samples`) and of the test set on its device; the test features
        are gathered and each rank ranks its bank shard (`knn_top1(sharded=True)`), so no rank does it all."""
        cfg = self.cfg
        if self._knn_loaders is None:
            self._knn_loaders = [eval_loader(cfg, split, samples, shard=True, pin_memory=self.device.type == "cuda")
                                 for split, samples in (("train", cfg.knn.bank_samples), ("test", 0))]
        backbone = inference_form(self.model.core_student().backbone)  # a fused copy if reparameterizable
        return knn_top1(backbone, self._knn_loaders, k=cfg.knn.k, temperature=cfg.knn.temperature,
                        device=self.device, amp=cfg.train.amp, sharded=self.world > 1, on_device=True).scores

    def _log_knn(self, wall: float) -> float:
        res = self.knn()
        if D.is_main():
            self.knn_history[self.epoch] = res["top1"]
            self.log.log({"epoch": self.epoch, "step": self.step, "method": self.cfg.method, "knn_top1": res["top1"],
                          "knn_top5": res["top5"], "wall_s": wall})
            tqdm.write(f"epoch {self.epoch}: kNN top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%")
            return res["top1"]
        return float("nan")

    # ----- training ----------------------------------------------------------------------------------------
    def _loader(self, sampler: GlobalBatchSampler) -> DataLoader:
        gen = torch.Generator().manual_seed(R.epoch_seed(self.cfg.train.seed, self.epoch, self.rank))
        workers = self.cfg.data.num_workers
        # at most ~8 batches in flight a rank (4 a worker with 2 workers, 1 with 8): prefetched batches sit in
        # shared memory, and 8 ranks x 8 workers x 4 ImageNet batches would fill /dev/shm (README: GPU server)
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=workers, generator=gen,
                          pin_memory=self.device.type == "cuda", persistent_workers=False,
                          prefetch_factor=max(1, 8 // workers) if workers else None)

    def _views(self, batch) -> tuple[torch.Tensor, ...]:
        """(strong, weak, *small) on the device, `data.view_pairs` draws of each stacked: made here from uint8
        images with batched augmentation, else as loaded."""
        pairs = self.cfg.data.view_pairs
        if self.augment is not None:
            images = batch.to(self.device, non_blocking=True)
            return merge_view_pairs([v for _ in range(pairs) for v in self.augment(images)], pairs)
        return merge_view_pairs([v.to(self.device, non_blocking=True) for v in batch], pairs)

    def train_step(self, *views: torch.Tensor) -> StepOutput:
        """One optimizer step on a local batch's views (first, second, *multi-crop); returns the method's outputs
        (tensors, not synced)."""
        cfg = self.cfg
        set_lr(self.optimizer, lr_at(self.step, self.total_steps, self.warmup_steps, self.peak_lr))
        layout = R.memory_format(cfg)
        views = tuple(v.contiguous(memory_format=layout) for v in views)
        with R.autocast(cfg.train.amp, self.device):
            out = self.forward(views, self.model.schedule(self.step))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        if cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.student.parameters(), cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.model.after_step(out)
        self.step += 1
        self.epoch_step += 1
        return out

    @property
    def warmup_steps(self) -> int:
        return round(self.cfg.optim.warmup_epochs * self.steps_per_epoch)

    def fit(self) -> RunResult:
        cfg = self.cfg
        main = D.is_main()
        if main:
            ignored = ignored_note(cfg)
            print(f"run folder: {self.run_dir}  ({self.world} process(es), device {self.device}, "
                  f"{len(self.train_set)} train images, {self.steps_per_epoch} steps/epoch, "
                  f"global batch {cfg.train.batch_size}, lr {self.peak_lr:.4g})\nmethod {describe(cfg)}"
                  + (f"\n  {ignored}" if ignored else ""))
            if self.model.distill is not None:
                print(self.model.distill.teacher.source.describe())
        start = time.time()
        if not self.resumed and cfg.train.knn_every:
            self._log_knn(0.0)  # the untrained encoder: the baseline every later number is read against
        sampler = GlobalBatchSampler(len(self.train_set), cfg.train.batch_size, self.rank, self.world,
                                     cfg.train.seed)
        stopped = False
        with StopFlag() as stop:
            while self.epoch < cfg.train.epochs and self.step < self.total_steps and not stopped:
                stopped = self._run_epoch(sampler, stop, start)
                if stopped:
                    break
                self.epoch += 1
                self.epoch_step = 0
                last = self.epoch >= cfg.train.epochs or self.step >= self.total_steps
                if last or (cfg.train.knn_every and self.epoch % cfg.train.knn_every == 0):
                    self._log_knn(time.time() - start)
                if self.epoch % cfg.train.checkpoint_every == 0 or last:
                    self.save()
        if stopped:
            self.save()
            if main:
                print(f"stopped by signal at step {self.step}; checkpoint saved to {self.files.last}; "
                      f"run the same command again to resume")
        self.log.close()
        return RunResult(self.run_dir, self.step, dict(self.knn_history), stopped)

    def _run_epoch(self, sampler: GlobalBatchSampler, stop: StopFlag, start: float) -> bool:
        """Train one epoch (or its rest, after a mid-epoch resume); True if a signal asked to stop."""
        cfg = self.cfg
        sampler.set_epoch(self.epoch, start=self.epoch_step)
        remaining = min(len(sampler), self.total_steps - self.step)
        bar = tqdm(total=remaining, desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}", disable=not D.is_main(),
                   dynamic_ncols=True, leave=True)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        columns = self.model.columns()
        sums = torch.zeros(1 + len(columns), device=self.device)
        n_sum, t_log, seen, done = 0, time.time(), 0, 0
        self.model.train()
        # a step's random draws (augmentation, also in the loader when it has no workers; teacher shuffles) come
        # after seeding with its number, so they do not depend on where the run was resumed
        R.seed_step(cfg.train.seed, self.step, self.rank)
        for batch, _ in self._loader(sampler):
            if self.step >= self.total_steps:
                break
            out = self.train_step(*self._views(batch))
            R.seed_step(cfg.train.seed, self.step, self.rank)  # the next step's draws, its batch's included
            loss = out.loss.detach()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), self.step, first_bad)
            sums += torch.stack([loss.float(), *(out.metrics[c].float() for c in columns)])
            n_sum += 1
            seen += cfg.train.batch_size
            done += 1  # counted here, not by the bar: it is disabled (n stays 0) on ranks other than 0
            bar.update(1)
            at_log = self.step % cfg.train.log_every == 0 or done == remaining
            if not at_log and not (D.world_size() == 1 and stop.raised):
                continue
            bad_step, stop_now = agree_on_stop(first_bad, stop.raised)  # every rank leaves at the same step
            if bad_step >= 0:
                last = self.files.last
                raise EdgeSSLError(f"loss became NaN/inf at step {bad_step} (epoch {self.epoch + 1}); "
                                   f"lower optim.lr, set optim.grad_clip, or use train.amp=none; the last good "
                                   f"checkpoint is {last if last.exists() else 'none (none was saved yet)'}")
            if stop_now:
                return True
            mean = D.all_reduce_mean(sums / n_sum).tolist()
            now = time.time()
            row = {"epoch": self.epoch + (self.epoch_step / self.steps_per_epoch), "step": self.step,
                   "method": cfg.method, "loss_kind": out.loss_kind, "loss": mean[0], **dict(zip(columns, mean[1:])),
                   "lr": self.optimizer.param_groups[0]["lr"], "img_per_s": seen / (now - t_log),
                   "wall_s": now - start}
            self.log.log(row)
            bar.set_postfix(loss=f"{mean[0]:.3f}", kind=row["loss_kind"], lr=f"{row['lr']:.3g}",
                            img_s=f"{row['img_per_s']:.0f}")
            sums.zero_()
            n_sum, t_log, seen = 0, now, 0
        bar.close()
        return False


def pretrain(cfg: Config, run_dir: Path | None = None, resume: bool | None = None) -> RunResult:
    """Pretrain as `cfg` says (its `method`); resumes from `<run_dir>/last.pt` when it exists (unless resume=False).

    The run folder is held (`edgessl.folder_lock`, rank 0) for the whole run, and temp files of saves that a
    kill -9 interrupted are removed first."""
    run_dir = Path(run_dir or cfg.output_dir or default_run_dir(cfg))
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun, before the process group exists
    with hold(run_dir, "output_dir", enabled=main):
        stale = remove_stale_temps(run_dir) if main else []
        if stale:
            print(f"removed {len(stale)} temp file(s) of an interrupted save in {run_dir}")
        trainer = Trainer(cfg, run_dir, resume)
        try:
            return trainer.fit()
        finally:
            if trainer.owns_group:
                R.close_distributed()
