"""`edgessl prune` end to end: load a checkpoint, measure, prune, save the pruned encoder, recover, report.

Output folder (default: beside the source run, `<run>-pruned<pct>`):
- `pruned.pt`: the encoder right after pruning, an edgessl checkpoint (`encoder["pruned"]` holds its structure)
  that `edgessl eval`/`export` read like any other, plus a `pruning` record (settings, costs, kNN);
- with recovery, the recovery run's files (`last.pt`, `config.yaml`, `metrics.csv`, `tensorboard/`);
- `prune.json`: the report (also printed as a table).

Running the same command again reuses `pruned.pt` (when its settings match) and resumes the recovery.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from edgessl.checkpoint import Checkpoint, RunFolder, checkpoint_path
from edgessl.config import Config
from edgessl.errors import EdgeSSLError
from edgessl.folder_lock import hold
from edgessl.models.encoder_loading import LoadedEncoder, load_encoder, load_trained_encoder
from edgessl.models.structure import capture
from edgessl.pruning.prune import check_settings, prune_to_target, require_torch_pruning
from edgessl.pruning.recover import recovery_config
from edgessl.pruning.report import Stage, markdown, stage_knn, write_report
TAYLOR_BATCH = 64  # images per Taylor-importance gradient (one batch per pruning step)


@dataclass
class PruneResult:
    """Where the outputs are, the stages measured, and whether a signal stopped the recovery."""

    out: Path
    stages: list[Stage]
    checkpoint: Path  # the final encoder: the recovery's last.pt, or pruned.pt without recovery
    stopped_early: bool = False

    @property
    def markdown(self) -> str:
        return markdown(self.stages)


def default_out(checkpoint: Path, macs: float | None, params: float | None) -> Path:
    """`runs/<run>-pruned50` beside `runs/<run>/last.pt` (`-params40` added for a parameter target)."""
    tag = (f"{round(macs * 100)}" if macs else "") + (f"-params{round(params * 100)}" if params else "")
    return checkpoint.parent.with_name(f"{checkpoint.parent.name}-pruned{tag}")


def _views(cfg: Config) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled (strong, weak) training batches: the gradients Taylor importance needs."""
    from edgessl.data import TwoViews, build_dataset, strong_transform, weak_transform

    size = cfg.data.image_size
    data = build_dataset(cfg.data, "train", TwoViews(weak_transform(size), strong_transform(size)))
    loader = DataLoader(data, batch_size=min(TAYLOR_BATCH, len(data)), shuffle=True, drop_last=True,
                        num_workers=cfg.data.num_workers, generator=torch.Generator().manual_seed(cfg.train.seed))
    return (views for _ in itertools.count() for views, _ in loader)


def _prune_fresh(enc: LoadedEncoder, settings: dict[str, Any], path: Path, log: Callable[[str], None]) -> list[Stage]:
    """Measure the original, prune it in place, measure again and save `path` (pruned.pt); the two stages."""
    cfg, size = enc.cfg, enc.info["image_size"]
    log(f"kNN top-1 of the unpruned encoder on {cfg.data.format} data ...")
    before_knn = stage_knn(enc.model, cfg)
    torch.manual_seed(cfg.train.seed)
    views = _views(cfg) if settings["importance"] == "taylor" else None
    before, after = prune_to_target(enc.model, size, settings["macs"], settings["params"], settings["importance"],
                                    settings["keep_stem"], settings["keep_embedding"], settings["round_to"], views,
                                    log)
    stages = [Stage("unpruned", before.macs, before.params, before_knn),
              Stage("pruned", after.macs, after.params, stage_knn(enc.model, cfg))]
    structure = capture(enc.model)
    Checkpoint(cfg.to_dict(), {**enc.info, "feature_dim": structure["feature_dim"], "pruned": structure},
               {f"student.backbone.{k}": v for k, v in enc.model.state_dict().items()},
               pruning={"settings": settings, "stages": [asdict(s) for s in stages]}).save(path)
    load_encoder(path)  # fail here, not at export time, if the structure does not rebuild
    return stages


def _reuse(path: Path, settings: dict[str, Any]) -> list[Stage]:
    """The stages recorded in an existing pruned.pt made with the same settings."""
    record = Checkpoint.load(path).pruning or {}
    if record.get("settings") != settings:
        raise EdgeSSLError(f"'{path}' was pruned with other settings ({record.get('settings')}); "
                           "pass --out <new folder> or delete it")
    return [Stage(**s) for s in record["stages"]]


def prune_checkpoint(checkpoint: str | Path, macs: float | None = None, params: float | None = None,
                     importance: str = "magnitude", recover_epochs: int = 20, overrides: Sequence[str] = (),
                     out: str | Path | None = None, keep_stem: bool = True, keep_embedding: bool = True,
                     round_to: int = 4, log: Callable[[str], None] = print) -> PruneResult:
    """Prune an edgessl checkpoint's encoder to `macs`/`params` x its cost, recover it for `recover_epochs`
    (0 = none) by the original recipe's method + distillation from the unpruned encoder, and report the three stages.

    `overrides` are `key=value` changes to the checkpoint's recipe (e.g. data.root=...), used for the kNN and
    the recovery run.
    """
    check_settings(macs, params, importance, round_to)
    if recover_epochs < 0:
        raise EdgeSSLError(f"--recover-epochs must be >= 0 (0 = prune only); got {recover_epochs}")
    require_torch_pruning()
    path = checkpoint_path(checkpoint)
    enc = load_trained_encoder(path, overrides)
    if enc.info.get("pruned"):
        raise EdgeSSLError(f"'{path}' is already pruned; prune the original (unpruned) checkpoint with the "
                           "smaller target instead")
    out = Path(out) if out else default_out(path, macs, params)
    settings = {"source": str(path.resolve()), "importance": importance, "macs": macs, "params": params,
                "keep_stem": keep_stem, "keep_embedding": keep_embedding, "round_to": round_to}
    with hold(out, "--out"):  # one prune at a time per folder (its recovery run holds it again)
        return _prune_and_recover(enc, path, out, settings, recover_epochs, overrides, log)


def _prune_and_recover(enc: LoadedEncoder, path: Path, out: Path, settings: dict[str, Any], recover_epochs: int,
                       overrides: Sequence[str], log: Callable[[str], None]) -> PruneResult:
    """`prune_checkpoint` in the held output folder: prune (or reuse pruned.pt), recover, report."""
    pruned_path = RunFolder(out) / RunFolder.PRUNED
    if pruned_path.exists():
        log(f"reusing {pruned_path}")
        stages = _reuse(pruned_path, settings)
    else:
        stages = _prune_fresh(enc, settings, pruned_path, log)
    final, stopped = pruned_path, False
    if recover_epochs:
        from edgessl.engine.trainer import pretrain

        result = pretrain(recovery_config(enc.cfg.to_dict(), path, pruned_path, out, recover_epochs, overrides))
        final, stopped = RunFolder(out).last, result.stopped_early
        if not stopped:
            knn = result.knn[max(result.knn)]
            name = f"recovered ({recover_epochs} epoch{'s' if recover_epochs > 1 else ''})"
            stages.append(Stage(name, stages[1].macs, stages[1].params, knn))
    write_report(RunFolder(out) / RunFolder.PRUNE_REPORT, stages, {**settings, "pruned_checkpoint": str(pruned_path),
                                             "checkpoint": str(final), "recover_epochs": recover_epochs})
    return PruneResult(out, stages, final, stopped)
