"""Recipes: YAML -> a typed, validated `Config`, with `dotted.key=value` overrides.

Every key is a dataclass field below, except the method sections: `method:` names the method that trains
(`edgessl/methods/`), and a top-level section named after a method (`ressl:`, `simclr:`, ...) holds its options,
kept here as a mapping and checked against the method's own options dataclass when the method is built (with
`build_section`, so its errors read the same). Unknown keys are errors that suggest the closest valid key; wrong
types, choices and ranges are errors that name the key and what is allowed. The resolved config
(`Config.to_dict`) is itself a valid recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edgessl.errors import EdgeSSLError


class EmptyRecipeWarning(UserWarning):
    """A recipe file with no settings: the run uses the built-in defaults of this module."""


def bounds(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict:
    return {"range": (lo, hi, lo_open)}


@dataclass
class DataConfig:
    """Where the images come from and how big they are."""

    format: Literal["synthetic", "imagefolder", "cifar10", "cifar100", "stl10", "npz", "jpegbytes"] = "synthetic"
    root: str = ""  # folder (imagefolder/cifar/stl) or .npz file; empty for synthetic
    download: bool = False  # torchvision datasets only, and only when online
    image_size: int = field(default=32, metadata=bounds(8, 1024))  # input side in px (training, eval, export)
    num_workers: int = field(default=2, metadata=bounds(0, 256))  # data loader processes a rank
    train_samples: int = field(default=0, metadata=bounds(0))  # 0 = all; else a fixed class-balanced subset
    synthetic_train: int = field(default=2000, metadata=bounds(10))  # built-in dataset sizes
    synthetic_test: int = field(default=500, metadata=bounds(10))
    batched_augment: bool = False  # augment both views as batched tensor ops on the training device
    # multi-crop (spec section 2): extra strong views for the student at `small_crop_size` px (0 = image_size / 2),
    # with proportionally smaller crop areas; the teacher's weak-view target is shared by all of them
    small_crops: int = field(default=0, metadata=bounds(0, 16))
    small_crop_size: int = field(default=0, metadata=bounds(0, 1024))
    # the teacher's view: weak (spec section 2: crop + flip) or strong (the student's augmentation, drawn
    # independently); an ablation, much worse at 780 steps (docs/benchmarks.md)
    teacher_view: Literal["weak", "strong"] = "weak"
    # independent (strong, weak) view pairs per image and step: 2 gives the student two strong views of every
    # image (SimCLR's student compute) with a teacher target of its own each; the model sees view_pairs x batch rows
    view_pairs: int = field(default=1, metadata=bounds(1, 8))

    def small_size(self) -> int:
        """The multi-crop views' side in pixels (`small_crop_size`, or half of `image_size` when 0)."""
        return self.small_crop_size or self.image_size // 2  # image_size >= 8


@dataclass
class ModelConfig:
    """The student: a timm backbone plus ReSSL's heads."""

    arch: str = "mobilenetv3_small_100"  # any timm model name (docs/students.md)
    stem_stride: int = field(default=2, metadata={"choices": (1, 2)})  # 1 for 32/64 px inputs
    projector_hidden: int = field(default=2048, metadata=bounds(1))  # the projector MLP's hidden width
    projector_dim: int = field(default=128, metadata=bounds(1))  # the embedding the loss compares
    projector_bn: bool = False  # official ReSSL: no BN in the projector
    projector_out_bn: bool = False  # parameter-free BN on the projector output (against bunched embeddings)
    projector_in_norm: bool = False  # L2-normalize the backbone features entering the projector (outlier norms)
    predictor: bool = False  # journal extension: asymmetric predictor on the student only
    predictor_hidden: int = field(default=512, metadata=bounds(1))
    # start the student backbone from this edgessl checkpoint's encoder (pruned ones included) instead of random
    # weights; `edgessl prune` sets it for the recovery run
    init_checkpoint: str = ""


@dataclass
class OptimConfig:
    """SGD with linear warm-up then cosine; lr scales linearly with the global batch."""

    lr: float = field(default=0.06, metadata=bounds(0, None, lo_open=True))  # at `base_batch`
    base_batch: int = field(default=256, metadata=bounds(1))  # lr = optim.lr x train.batch_size / base_batch
    momentum: float = field(default=0.9, metadata=bounds(0, 1))
    weight_decay: float = field(default=5e-4, metadata=bounds(0))
    exclude_bn_bias: bool = True  # no weight decay on BN and bias parameters
    warmup_epochs: float = field(default=5.0, metadata=bounds(0))  # linear lr warm-up, then cosine to 0
    grad_clip: float = field(default=0.0, metadata=bounds(0))  # max grad norm; 0 = off


@dataclass
class TrainConfig:
    """The loop: length, batch, device, precision, checkpoints and monitors."""

    epochs: int = field(default=10, metadata=bounds(1))  # passes over the training set
    batch_size: int = field(default=256, metadata=bounds(1))  # global batch (all processes)
    max_steps: int = field(default=0, metadata=bounds(0))  # stop after this many steps; 0 = run all epochs
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: Literal["none", "bf16", "fp16"] = "none"  # mixed precision: bf16 on any device, fp16 on CUDA
    seed: int = 0  # seeds the weights, the data order and each step's random draws
    threads: int = field(default=0, metadata=bounds(0))  # torch CPU threads; 0 = torch's default
    checkpoint_every: int = field(default=1, metadata=bounds(1))  # epochs
    knn_every: int = field(default=1, metadata=bounds(0))  # epochs; 0 = only at the end
    log_every: int = field(default=10, metadata=bounds(1))  # steps between host syncs for logging
    channels_last: bool = True  # NHWC model and inputs: faster on CPU for MobileNet/EfficientNet (docs/benchmarks.md)
    compile: bool = False


@dataclass
class KnnConfig:
    """kNN monitor (spec section 6)."""

    k: int = field(default=200, metadata=bounds(1))  # neighbours voting
    temperature: float = field(default=0.1, metadata=bounds(0, None, lo_open=True))
    batch_size: int = field(default=256, metadata=bounds(1))
    # the pretraining monitor's bank: 0 = every train image, else a fixed class-balanced subset of that many (the
    # ImageNet recipes: 100 a class); `edgessl eval` always uses the whole train split
    bank_samples: int = field(default=0, metadata=bounds(0))


@dataclass
class DistConfig:
    """torch.distributed settings (used under torchrun)."""

    backend: Literal["auto", "nccl", "gloo"] = "auto"  # auto: NCCL with GPUs, gloo on CPU


@dataclass
class DistillConfig:
    """Optional frozen teacher for relational distillation (spec section 5), any method; off when arch is empty.

    ("teacher" alone means a method's EMA teacher; this is the frozen one, hence the section's name.)"""

    arch: str = ""  # the teacher's architecture; empty = no distillation (docs/distillation.md)
    checkpoint: str = ""  # the teacher's weights: an edgessl last.pt or a ResNet state dict
    embedding: Literal["auto", "projector", "pooled"] = "auto"
    weight: float = field(default=1.0, metadata=bounds(0))  # loss = method loss + weight x distillation; 0 = off
    tau_s: float = field(default=0.1, metadata=bounds(0, None, lo_open=True))
    tau_t: float = field(default=0.04, metadata=bounds(0, None, lo_open=True))
    queue_size: int = field(default=4096, metadata=bounds(1))


@dataclass
class Config:
    """A whole recipe."""

    name: str = "run"  # the run's and the exported artifacts' name (default: the recipe file's)
    output_dir: str = ""  # default: runs/<name>-<timestamp>
    method: str = "ressl"  # the method that trains: a module of edgessl/methods/ (ressl, infonce, simclr, ...)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    # method sections by name (`ressl: {tau_s: 0.1}`): saved at the top level of the recipe, not under this name
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        methods = out.pop("methods")
        return {**out, **methods}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _keys(cls: type, prefix: str = "") -> list[str]:
    """All dotted keys of a config dataclass (sections and leaves)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        out.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            out += _keys(hints[f.name], key + ".")
    return out


def _unknown(key: str, cls: type, prefix: str, source: str) -> EdgeSSLError:
    valid = _keys(Config) if cls is Config or not prefix else [prefix + k for k in _keys(cls)] + _keys(Config)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not close:  # try the last part alone, e.g. `epochs` -> train.epochs
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in valid if k.rsplit(".", 1)[-1] == leaf][:1]
        close = close or difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return EdgeSSLError(f"{source}: unknown config key '{key}'{hint}")


def _convert(key: str, value: Any, typ: Any, meta: dict, source: str) -> Any:
    """Check one leaf value against its annotated type and metadata; return it converted."""
    origin = typing.get_origin(typ)
    if origin is Literal:
        allowed = typing.get_args(typ)
        if value not in allowed:
            raise EdgeSSLError(f"{source}: '{key}' must be one of {', '.join(map(str, allowed))}; got {value!r}")
        return value
    if typ is bool:
        if not isinstance(value, bool):
            raise EdgeSSLError(f"{source}: '{key}' must be true or false; got {value!r}")
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EdgeSSLError(f"{source}: '{key}' must be an integer; got {value!r}")
    elif typ is float:
        if isinstance(value, str):  # YAML 1.1 reads `5e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EdgeSSLError(f"{source}: '{key}' must be a number; got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise EdgeSSLError(f"{source}: '{key}' must be a finite number; got {value!r}")
    elif typ is str:
        if value is None:
            value = ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise EdgeSSLError(f"{source}: '{key}' must be a string; got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise EdgeSSLError(f"{source}: '{key}' must be one of {', '.join(map(str, meta['choices']))}; got {value!r}")
    if "range" in meta:
        lo, hi, lo_open = meta["range"]
        if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
            lo_s = "" if lo is None else (f"> {lo}" if lo_open else f">= {lo}")
            hi_s = "" if hi is None else f"<= {hi}"
            raise EdgeSSLError(f"{source}: '{key}' must be {' and '.join(s for s in (lo_s, hi_s) if s)}; got {value!r}")
    return value


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if not isinstance(data, dict):
        where = f"section '{prefix[:-1]}'" if prefix else "the recipe"
        raise EdgeSSLError(f"{source}: {where} must be a mapping of keys to values; got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if cls is not Config or f.name != "methods"}
    kwargs = {}
    for name, value in data.items():
        key = prefix + str(name)
        if cls is Config and name == "teacher":
            raise EdgeSSLError(f"{source}: the 'teacher:' section (the frozen distillation teacher) is now called "
                               "'distill:'; rename it (teacher.arch -> distill.arch, ...)")
        if cls is Config and name not in fields and isinstance(value, dict | None):
            kwargs.setdefault("methods", {})[name] = dict(value or {})  # checked when the method is built
            continue
        if name not in fields:
            raise _unknown(key, cls, prefix, source)
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value if value is not None else {}, key + ".", source)
        else:
            kwargs[name] = _convert(key, value, typ, dict(fields[name].metadata), source)
    return cls(**kwargs)


def build_section(cls: type, data: Any, prefix: str, source: str) -> Any:
    """Check a method's options section (`data`, a mapping) against its dataclass `cls`: the recipe's checks."""
    return _build(cls, data, prefix, source)


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """`a.b=value` strings -> (key, YAML-parsed value) pairs."""
    out = []
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise EdgeSSLError(f"override '{item}' is not of the form key=value (e.g. train.epochs=50)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def load_config(recipe: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a recipe (or the defaults when None), apply overrides, validate, return a `Config`."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if recipe is not None:
        path = Path(recipe)
        source = str(path)
        if path.is_dir():
            example = path / "config.yaml" if (path / "config.yaml").is_file() else "recipes/quickstart.yaml"
            raise EdgeSSLError(f"recipe '{path}' is a folder; pass a YAML file, e.g. {example}")
        if not path.is_file():
            raise EdgeSSLError(f"recipe '{path}' not found; pass a YAML file such as recipes/quickstart.yaml")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise EdgeSSLError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                               "save the recipe as UTF-8") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise EdgeSSLError(f"{path}: not valid YAML{where}; check indentation and colons") from None
        tree = {} if loaded is None else loaded
        if tree == {}:
            warnings.warn(f"recipe '{path}' is empty: every setting is a built-in default (see {Path(__file__)})",
                          EmptyRecipeWarning, stacklevel=2)
        if not isinstance(tree, dict):
            raise EdgeSSLError(f"{path}: a recipe must be a mapping of sections (data:, model:, ...); got {tree!r}")
        tree.setdefault("name", path.stem)
    _build(Config, tree, "", source)  # report recipe errors against the file before overrides
    for key, value in parse_overrides(overrides or []):
        _set_dotted(tree, key, value)
    return _build(Config, tree, "", "override" if overrides else source)


def config_from_dict(data: dict[str, Any], overrides: list[str] | None = None, source: str = "config") -> Config:
    """A resolved recipe dict (e.g. a checkpoint's `config`) plus `key=value` overrides -> a validated `Config`."""
    tree = copy.deepcopy(data)  # overrides must not mutate the caller's dict
    if "teacher" in tree and "distill" not in tree:  # a checkpoint written before the `distill:` rename
        tree["distill"] = tree.pop("teacher")
    _build(Config, tree, "", source)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(tree, key, value)
    return _build(Config, tree, "", "override" if overrides else source)
