"""The ReSSL pretraining loop: one function, `pretrain(cfg)`, on one CPU/GPU or under torchrun (DDP).

Per step: student forward on the strong view, EMA update, teacher forward on the weak view, loss, backward,
optimizer step, then the global batch's teacher keys are enqueued. Host syncs happen only every
`train.log_every` steps (logging, NaN check, signal agreement across ranks).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from edgessl import distributed as D
from edgessl.config import Config
from edgessl.data import build_dataset
from edgessl.data.batched_augment import BatchedTwoViews, ToUint8Tensor
from edgessl.data.transforms import EVAL_CROP_FRACTION, MEAN, STD, merge_view_pairs, ressl_views
from edgessl.engine import checkpoint as C
from edgessl.engine import runtime as R
from edgessl.engine.optim import build_optimizer, lr_at, scaled_lr, set_lr
from edgessl.engine.run_log import RunLog
from edgessl.engine.sampler import GlobalBatchSampler
from edgessl.errors import EdgeSSLError
from edgessl.evaluation.features import extract_features
from edgessl.evaluation.knn import knn_classify
from edgessl.evaluation.loading import eval_loader
from edgessl.method.distill import distillation_on
from edgessl.method.ema import ema_momentum
from edgessl.method.ressl import ReSSL
from edgessl.models.registry import build_backbone, check_arch, feature_dim, probe_output_shape

# Keys that may change when a run is resumed (they do not change what is being trained).
RESUMABLE_CHANGES = ("output_dir", "data.root", "data.num_workers", "data.download", "train.epochs",
                     "train.max_steps", "train.device", "train.threads", "train.checkpoint_every",
                     "train.knn_every", "train.log_every", "train.compile", "knn.batch_size", "dist.backend")


@dataclass
class RunResult:
    """What `pretrain` returns: where the run is and its kNN history (epoch -> top-1)."""

    run_dir: Path
    steps: int
    knn: dict[int, float] = field(default_factory=dict)
    stopped_early: bool = False


def default_run_dir(cfg: Config) -> Path:
    """runs/<name>-<timestamp>; under torchrun runs/<name>-<rendezvous id>, which stays the same when
    torchrun restarts the workers (--max-restarts), so a restarted job finds and resumes its checkpoint."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    tag = run_id if D.launched_by_torchrun() and run_id != "none" else datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.name}-{tag}"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def check_resume_compatible(saved: dict, cfg: Config, path: Path) -> None:
    """Refuse to resume a checkpoint under a recipe that trains something else."""
    old, new = _flatten(saved), _flatten(cfg.to_dict())
    for key in sorted(set(old) | set(new)):
        if key not in RESUMABLE_CHANGES and old.get(key) != new.get(key):
            raise EdgeSSLError(f"cannot resume {path}: '{key}' was {old.get(key)!r}, now {new.get(key)!r}; "
                               f"restore it or set output_dir to a new folder")


def check_sizes(cfg: Config, world: int, n_train: int) -> None:
    """The batch/queue/world-size rules that must hold before the first step."""
    b = cfg.train.batch_size
    if b % world:
        raise EdgeSSLError(f"train.batch_size={b} (global) is not divisible by the world size {world}; "
                           f"use a multiple of {world}")
    queues = {"ressl.queue_size": cfg.ressl.queue_size}
    if distillation_on(cfg.teacher):
        queues["teacher.queue_size"] = cfg.teacher.queue_size
    pairs = cfg.data.view_pairs
    per_step = b * pairs  # keys enqueued per step
    unit = f"the global batch train.batch_size={b}" if pairs == 1 else \
        f"the keys enqueued per step (train.batch_size={b} x data.view_pairs={pairs} = {per_step})"
    for key, k in queues.items():
        if k % per_step:
            raise EdgeSSLError(f"{key}={k} is not a multiple of {unit}; "
                               f"use e.g. {key}={max(per_step, k // per_step * per_step)}")
    if n_train < b:
        raise EdgeSSLError(f"the training set has {n_train} images, fewer than one batch "
                           f"(train.batch_size={b}); lower the batch or add data")


def initial_backbone(cfg: Config) -> tuple[nn.Module, dict]:
    """The student backbone to start from: a fresh registry model, or the encoder of `model.init_checkpoint` (e.g.
    a pruned one, for recovery). Also the `encoder` entries the run's checkpoints must carry on (a pruned
    structure), so they reload the same way."""
    if not cfg.model.init_checkpoint:
        return build_backbone(cfg.model.arch, cfg.model.stem_stride), {}
    model, info = C.load_encoder(cfg.model.init_checkpoint)
    if (info["arch"], info["stem_stride"]) != (cfg.model.arch, cfg.model.stem_stride):
        raise EdgeSSLError(f"model.init_checkpoint '{cfg.model.init_checkpoint}' holds a {info['arch']} with stem "
                           f"stride {info['stem_stride']}; set model.arch and model.stem_stride to match")
    return model.train(), {k: info[k] for k in ("pruned",) if k in info}


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint and exits at the next step."""

    def __init__(self) -> None:
        self.raised = False
        self._old = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised:  # second signal: stop now
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    """Holds one run's state; `fit()` trains it. Split out of `pretrain` so tests can drive single steps."""

    def __init__(self, cfg: Config, run_dir: Path | None = None, resume: bool | None = None) -> None:
        R.init_distributed(cfg)
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

        size = cfg.data.image_size
        small = cfg.data.small_size()
        if cfg.data.batched_augment:  # loader workers only decode; all views are made on the device
            load_size = round(size / EVAL_CROP_FRACTION) if cfg.data.format == "imagefolder" else None
            self.train_set = build_dataset(cfg.data, "train", ToUint8Tensor(load_size))
            self.augment = BatchedTwoViews(size, self.device, small_crops=cfg.data.small_crops, small_size=small,
                                           teacher_view=cfg.data.teacher_view)
        else:
            self.train_set = build_dataset(cfg.data, "train", ressl_views(size, cfg.data.small_crops, small,
                                                                              cfg.data.teacher_view,
                                                                              cfg.data.view_pairs))
            self.augment = None
        check_sizes(cfg, self.world, len(self.train_set))
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
        batchnorm = cfg.ressl.batchnorm
        if batchnorm == "auto":
            batchnorm = "shuffle" if self.world > 1 else "split"
        self.model = ReSSL(cfg, backbone, batchnorm, self.local_batch * cfg.data.view_pairs).to(
            self.device, memory_format=R.memory_format(cfg))
        self.peak_lr = scaled_lr(cfg.optim, cfg.train.batch_size)
        self.optimizer = build_optimizer(self.model.student, cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model.student = nn.parallel.DistributedDataParallel(self.model.student, device_ids=ids)
        self.forward = torch.compile(self.model) if cfg.train.compile else self.model

        self.step, self.epoch, self.epoch_step = 0, 0, 0
        self.knn_history: dict[int, float] = {}
        ckpt_path = self.run_dir / "last.pt"
        if resume and not ckpt_path.exists():
            raise EdgeSSLError(f"--resume given but {ckpt_path} does not exist; drop --resume to start fresh")
        self.resumed = resume is not False and ckpt_path.exists()
        if self.resumed:
            self._load(ckpt_path)
        if D.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.yaml")
        self.log = RunLog(self.run_dir, D.is_main(), resume_step=self.step if self.resumed else None)
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
        """The ReSSL state dict with DDP's `module.` removed, so any world size can load it."""
        return {k.replace("student.module.", "student."): v for k, v in self.model.state_dict().items()}

    @property
    def teacher_record(self) -> dict | None:
        """The frozen teacher's arch, path and sha256 (its weights are never saved); None without distillation."""
        return None if self.model.distill is None else self.model.distill.teacher.source.record()

    def save(self, name: str = "last.pt") -> None:
        if not D.is_main():
            return
        cfg = self.cfg
        C.save_atomic({
            "edgessl": C.FORMAT_VERSION,
            "config": cfg.to_dict(),
            "epoch": self.epoch, "step": self.step, "epoch_step": self.epoch_step,
            "encoder": {"arch": cfg.model.arch, "stem_stride": cfg.model.stem_stride,
                        "image_size": cfg.data.image_size, "feature_dim": feature_dim(self.model.core_student().backbone),
                        "mean": list(MEAN), "std": list(STD), **self.encoder_extra},
            "model": self.model_state(),
            "teacher": self.teacher_record,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": R.rng_state(),
            "metrics": {"knn_top1": {str(k): v for k, v in self.knn_history.items()}},
        }, self.run_dir / name)

    def _load(self, path: Path) -> None:
        ckpt = C.load_edgessl_checkpoint(path)
        check_resume_compatible(ckpt["config"], self.cfg, path)
        if ckpt.get("teacher") != self.teacher_record:
            was, now = ckpt.get("teacher") or {}, self.teacher_record or {}
            changed = ", ".join(f"{k} {str(was.get(k, 'none'))[:40]} -> {str(now.get(k, 'none'))[:40]}"
                                for k in sorted({*was, *now}) if was.get(k) != now.get(k))
            raise EdgeSSLError(f"cannot resume {path}: the teacher checkpoint changed ({changed}); restore it "
                               f"or set output_dir to a new folder")
        state = ckpt["model"]
        if self.world > 1:
            state = {k.replace("student.", "student.module.", 1) if k.startswith("student.") else k: v
                     for k, v in state.items()}
        self.model.load_state_dict(state)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.epoch, self.epoch_step = ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]
        self._resume_rng = ckpt["rng"] if self.epoch_step else None
        self.knn_history = {int(k): v for k, v in ckpt["metrics"]["knn_top1"].items()}
        if D.is_main():
            print(f"resuming {path}: epoch {self.epoch}, step {self.step}")

    # ----- kNN monitor -------------------------------------------------------------------------------------
    def knn(self) -> dict[str, float]:
        """Weighted kNN top-1/top-5 of the student backbone (rank 0; other ranks wait)."""
        result = {}
        if D.is_main():
            cfg = self.cfg
            if self._knn_loaders is None:
                self._knn_loaders = [eval_loader(cfg, split) for split in ("train", "test")]
            backbone = self.model.core_student().backbone
            was_training = backbone.training
            feats = [extract_features(backbone, loader, self.device, amp=cfg.train.amp, progress=False)
                     for loader in self._knn_loaders]
            backbone.train(was_training)
            result = knn_classify(*feats[0], *feats[1], k=cfg.knn.k, temperature=cfg.knn.temperature)
        D.barrier()
        return result

    def _log_knn(self, wall: float) -> float:
        res = self.knn()
        if D.is_main():
            self.knn_history[self.epoch] = res["top1"]
            self.log.log({"epoch": self.epoch, "step": self.step, "knn_top1": res["top1"],
                          "knn_top5": res["top5"], "wall_s": wall})
            tqdm.write(f"epoch {self.epoch}: kNN top-1 {res['top1']:.2f}%  top-5 {res['top5']:.2f}%")
            return res["top1"]
        return float("nan")

    # ----- training ----------------------------------------------------------------------------------------
    def _loader(self, sampler: GlobalBatchSampler) -> DataLoader:
        gen = torch.Generator().manual_seed(R.epoch_seed(self.cfg.train.seed, self.epoch, self.rank))
        workers = self.cfg.data.num_workers
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=workers, generator=gen,
                          pin_memory=self.device.type == "cuda", persistent_workers=False,
                          prefetch_factor=4 if workers else None)

    def _views(self, batch) -> tuple[torch.Tensor, ...]:
        """(strong, weak, *small) on the device, `data.view_pairs` draws of each stacked: made here from uint8
        images with batched augmentation, else as loaded."""
        pairs = self.cfg.data.view_pairs
        if self.augment is not None:
            images = batch.to(self.device, non_blocking=True)
            return merge_view_pairs([v for _ in range(pairs) for v in self.augment(images)], pairs)
        return merge_view_pairs([v.to(self.device, non_blocking=True) for v in batch], pairs)

    def train_step(self, strong: torch.Tensor, weak: torch.Tensor, *small: torch.Tensor) -> "StepOutput":  # noqa: F821
        """One optimizer step on a local batch (`small`: the multi-crop views); returns the method's outputs
        (tensors, not synced)."""
        cfg = self.cfg
        set_lr(self.optimizer, lr_at(self.step, self.total_steps, self.warmup_steps, self.peak_lr))
        momentum = ema_momentum(cfg.ressl.ema_momentum, cfg.ressl.ema_schedule, self.step, self.total_steps)
        infonce_weight = 1.0 if self.step < self.infonce_steps else cfg.ressl.infonce_weight
        layout = R.memory_format(cfg)
        strong, weak, *small = (v.contiguous(memory_format=layout) for v in (strong, weak, *small))
        with R.autocast(cfg.train.amp, self.device):
            out = self.forward(strong, weak, momentum, infonce_weight, small)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        if cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.student.parameters(), cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.model.enqueue(out)
        self.step += 1
        self.epoch_step += 1
        return out

    @property
    def warmup_steps(self) -> int:
        return round(self.cfg.optim.warmup_epochs * self.steps_per_epoch)

    @property
    def infonce_steps(self) -> int:
        return round(self.cfg.ressl.infonce_warmup_epochs * self.steps_per_epoch)

    def fit(self) -> RunResult:
        cfg = self.cfg
        main = D.is_main()
        if main:
            print(f"run folder: {self.run_dir}  ({self.world} process(es), device {self.device}, "
                  f"{len(self.train_set)} train images, {self.steps_per_epoch} steps/epoch, "
                  f"global batch {cfg.train.batch_size}, lr {self.peak_lr:.4g})")
            if self.model.distill is not None:
                print(self.model.distill.teacher.source.describe())
        start = time.time()
        if not self.resumed and cfg.train.knn_every:
            self._log_knn(0.0)  # the untrained encoder: the baseline every later number is read against
        sampler = GlobalBatchSampler(len(self.train_set), cfg.train.batch_size, self.rank, self.world,
                                     cfg.train.seed)
        stopped = False
        with _StopFlag() as stop:
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
                print(f"stopped by signal at step {self.step}; checkpoint saved to {self.run_dir / 'last.pt'}; "
                      f"run the same command again to resume")
        self.log.close()
        return RunResult(self.run_dir, self.step, dict(self.knn_history), stopped)

    def _run_epoch(self, sampler: GlobalBatchSampler, stop: _StopFlag, start: float) -> bool:
        """Train one epoch (or its rest, after a mid-epoch resume); True if a signal asked to stop."""
        cfg = self.cfg
        torch.manual_seed(R.epoch_seed(cfg.train.seed, self.epoch, self.rank))
        if getattr(self, "_resume_rng", None) is not None:
            R.set_rng_state(self._resume_rng)
            self._resume_rng = None
        sampler.set_epoch(self.epoch, start=self.epoch_step)
        remaining = min(len(sampler), self.total_steps - self.step)
        bar = tqdm(total=remaining, desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}", disable=not D.is_main(),
                   dynamic_ncols=True, leave=True)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        sums = torch.zeros(5, device=self.device)
        n_sum, t_log, seen, done = 0, time.time(), 0, 0
        self.model.train()
        for batch, _ in self._loader(sampler):
            if self.step >= self.total_steps:
                break
            out = self.train_step(*self._views(batch))
            loss = out.loss.detach()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), self.step, first_bad)
            sums += torch.stack([loss.float(), out.pt_entropy.float(), out.key_cosine.float(),
                                 out.loss_ressl.float(), out.loss_distill.float()])
            n_sum += 1
            seen += cfg.train.batch_size
            done += 1  # counted here, not by the bar: it is disabled (n stays 0) on ranks other than 0
            bar.update(1)
            at_log = self.step % cfg.train.log_every == 0 or done == remaining
            if D.world_size() == 1 and stop.raised:
                return True
            if not at_log:
                continue
            if D.world_size() > 1:  # agree on stopping: every rank must leave at the same step
                flag = D.all_reduce_mean(torch.tensor([float(stop.raised)], device=self.device))
                if flag.item() > 0:
                    return True
            if first_bad.item() >= 0:
                raise EdgeSSLError(f"loss became NaN/inf at step {first_bad.item()} (epoch {self.epoch + 1}); "
                                   f"lower optim.lr, set optim.grad_clip, or use train.amp=none; the last "
                                   f"good checkpoint is {self.run_dir / 'last.pt'}")
            mean = D.all_reduce_mean(sums / n_sum).tolist()
            now = time.time()
            row = {"epoch": self.epoch + (self.epoch_step / self.steps_per_epoch), "step": self.step,
                   "loss": mean[0], "loss_kind": out.loss_kind,
                   "loss_ressl": mean[3], "loss_distill": mean[4] if self.model.distill is not None else "",
                   "lr": self.optimizer.param_groups[0]["lr"],
                   "momentum": ema_momentum(cfg.ressl.ema_momentum, cfg.ressl.ema_schedule, self.step,
                                            self.total_steps),
                   "pt_entropy": mean[1], "key_cosine": mean[2], "img_per_s": seen / (now - t_log),
                   "wall_s": now - start}
            self.log.log(row)
            bar.set_postfix(loss=f"{mean[0]:.3f}", kind=row["loss_kind"], lr=f"{row['lr']:.3g}",
                            img_s=f"{row['img_per_s']:.0f}")
            sums.zero_()
            n_sum, t_log, seen = 0, now, 0
        bar.close()
        return False


def pretrain(cfg: Config, run_dir: Path | None = None, resume: bool | None = None) -> RunResult:
    """Pretrain with ReSSL as `cfg` says; resumes from `<run_dir>/last.pt` when it exists (unless resume=False)."""
    return Trainer(cfg, run_dir, resume).fit()
