"""The bad-input catalogue: every case `tests/test_bad_input.py` drives through `edgessl.cli.main`, and the table
in docs/troubleshooting.md made from it (between the markers below).

Rewrite the table after changing `CASES`:  PYTHONPATH=. python -m tests.bad_inputs
"""

from __future__ import annotations

import errno
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.tiny_run import TINY

DOC = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
BEGIN = "<!-- bad-input table: generated from tests/bad_inputs.py; rewrite: PYTHONPATH=. python -m tests.bad_inputs -->"
END = "<!-- end of bad-input table -->"
RECIPE = "recipes/quickstart.yaml"
UNWRITABLE = "/sys/edgessl-bad-input"  # mkdir there fails with EPERM even for root


@dataclass
class Ctx:
    """What a case's argv builder may use: a fresh folder, the tiny checkpoint, monkeypatch, a lock holder."""

    tmp: Path
    checkpoint: Callable[[], Path]  # a tiny untrained edgessl checkpoint (built once per session)
    monkeypatch: pytest.MonkeyPatch
    holders: list[subprocess.Popen] = field(default_factory=list)

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def held(self, name: str) -> Path:
        """A folder held by another process (`edgessl.folder_lock.hold`), until the test ends."""
        folder = self.tmp / name
        code = ("import sys, time\nfrom edgessl.folder_lock import hold\nwith hold(sys.argv[1], 'x'):\n"
                "    print('held', flush=True)\n    time.sleep(120)\n")
        proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
        self.holders.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return folder


@dataclass(frozen=True)
class Case:
    """One bad input: the sub-command, what is wrong (the table's wording), the argv after the command, the words the
    one-line message must contain, and the exit code."""

    command: str
    what: str
    argv: Callable[[Ctx], list[str]]
    shows: str
    code: int = 2
    after: Callable[[Path], None] | None = None  # more checks on the folder afterwards (e.g. nothing lost)

    @property
    def id(self) -> str:
        return f"{self.command}: {self.what}"


def _tiny(ctx: Ctx, *extra: str) -> list[str]:
    """The tiny run (synthetic 16 px, 64 images) writing into ctx.tmp/run, with extra overrides."""
    return [RECIPE, *TINY, "method=ressl", "train.threads=1", f"output_dir={ctx.tmp / 'run'}", *extra]


def _image_folder(ctx: Ctx, n: int) -> Path:
    from PIL import Image

    for i in range(n):
        path = ctx.tmp / "images" / "train" / "a" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (i * 40 % 255, 0, 0)).save(path)
    return ctx.tmp / "images"


def _edited_arch(ctx: Ctx) -> Path:
    import torch

    ckpt = torch.load(ctx.checkpoint(), weights_only=True)
    ckpt["encoder"]["arch"] = "mobilenetv3_large_100"
    path = ctx.tmp / "edited" / "last.pt"
    path.parent.mkdir()
    torch.save(ckpt, path)
    return path


def _code_running_pickle(ctx: Ctx) -> Path:
    """A checkpoint whose unpickling would call os.system (it must be refused, not run)."""
    import torch

    class Payload:
        def __reduce__(self):
            return (__import__("os").system, (f"touch {ctx.tmp / 'PWNED'}",))

    path = ctx.tmp / "evil.pt"
    torch.save({"edgessl": 1, "model": Payload()}, path)
    return path


def _plain_torch_file(ctx: Ctx) -> Path:
    import torch

    path = ctx.tmp / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2)}, path)
    return path


def _onnx(ctx: Ctx, cut: int | None) -> Path:
    """A valid one-node ONNX model, or its first `cut` bytes."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    data = helper.make_model(graph).SerializeToString()
    return ctx.write("model.onnx", data[:cut] if cut else data)


def _disk_full(ctx: Ctx) -> list[str]:
    import torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    ctx.monkeypatch.setattr(torch, "save", full)
    return _tiny(ctx, "train.epochs=1", "train.knn_every=0")


def _disk_full_later(ctx: Ctx) -> list[str]:
    """The disk fills after the first checkpoint: the second save fails, the first stays."""
    import torch

    real, calls = torch.save, []

    def fills_up(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    ctx.monkeypatch.setattr(torch, "save", fills_up)
    return _tiny(ctx, "train.knn_every=0")


def _first_checkpoint_kept(tmp: Path) -> None:
    import torch

    assert torch.load(tmp / "run" / "last.pt", weights_only=True)["step"] == 4  # epoch 1's, intact
    assert not list((tmp / "run").glob(".*.tmp"))


def _resumed_other_recipe(ctx: Ctx) -> list[str]:
    ckpt = ctx.checkpoint()
    return [str(ckpt.parent / "config.yaml"), f"output_dir={ckpt.parent}", "optim.lr=0.5"]


CASES: list[Case] = [
    # ----- pretrain: the recipe file
    Case("pretrain", "recipe file missing", lambda c: ["nope.yaml"], "recipe 'nope.yaml' not found"),
    Case("pretrain", "recipe is a folder", lambda c: [str(c.tmp)], "is a folder; pass a YAML file"),
    Case("pretrain", "recipe not UTF-8", lambda c: [str(c.write("r.yaml", b"name: caf\xe9\n"))],
         "not UTF-8 text (byte 0xe9 at offset 9); save the recipe as UTF-8"),
    Case("pretrain", "recipe not YAML", lambda c: [str(c.write("r.yaml", "data: [\n"))], "not valid YAML"),
    Case("pretrain", "recipe is a list", lambda c: [str(c.write("r.yaml", "- a\n- b\n"))],
         "a recipe must be a mapping of sections"),
    Case("pretrain", "empty recipe (warning, then trains)",
         lambda c: [str(c.write("r.yaml", "")), *TINY, "train.threads=1", f"output_dir={c.tmp / 'run'}",
                    "train.epochs=1",
                    "train.knn_every=0"],
         "is empty: every setting is a built-in default (see ", code=0),
    # ----- pretrain: keys and values
    Case("pretrain", "misspelt key", lambda c: [RECIPE, "train.epochz=3"], "did you mean 'train.epochs'"),
    Case("pretrain", "override without =", lambda c: [RECIPE, "train.epochs"],
         "is not of the form key=value"),
    Case("pretrain", "text for an integer", lambda c: [RECIPE, "train.epochs=ten"],
         "'train.epochs' must be an integer"),
    Case("pretrain", "value out of range", lambda c: [RECIPE, "data.image_size=4"], "'data.image_size' must be >= 8"),
    Case("pretrain", "unknown choice", lambda c: [RECIPE, "train.amp=fp8"], "'train.amp' must be one of"),
    Case("pretrain", "optim.lr=.nan", lambda c: [RECIPE, "optim.lr=.nan"], "'optim.lr' must be a finite number"),
    Case("pretrain", "optim.lr=.inf", lambda c: [RECIPE, "optim.lr=.inf"], "'optim.lr' must be a finite number"),
    Case("pretrain", "ressl.tau_s=.nan", lambda c: [RECIPE, "ressl.tau_s=.nan"],
         "'ressl.tau_s' must be a finite number"),
    Case("pretrain", "unknown architecture", lambda c: [RECIPE, "model.arch=mobilenet_v9"],
         "unknown model.arch 'mobilenet_v9'"),
    Case("pretrain", "--nproc 0", lambda c: [RECIPE, "--nproc", "0"], "--nproc must be >= 1"),
    Case("pretrain", "--nproc -2", lambda c: [RECIPE, "--nproc", "-2"], "--nproc must be >= 1"),
    # ----- pretrain: sizes
    Case("pretrain", "train.batch_size=1", lambda c: _tiny(c, "train.batch_size=1"),
         "train.batch_size=1 leaves 1 image(s) per BatchNorm group (1 per process, ressl.bn_splits=4); BatchNorm "
         "needs more than 1 per process and split-BN group: use train.batch_size=5 or more"),
    Case("pretrain", "train.batch_size=2", lambda c: _tiny(c, "train.batch_size=2"),
         "train.batch_size=2 leaves 1 image(s) per BatchNorm group (2 per process, ressl.bn_splits=4)"),
    Case("pretrain", "queue not a multiple of the batch", lambda c: _tiny(c, "ressl.queue_size=100"),
         "ressl.queue_size=100 is not a multiple of the global batch"),
    Case("pretrain", "one-image dataset", lambda c: _tiny(c, "data.format=imagefolder",
                                                         f"data.root={_image_folder(c, 1)}"),
         "the training set has 1 images, fewer than one batch"),
    Case("pretrain", "data.root missing", lambda c: _tiny(c, "data.format=imagefolder", "data.root=/no/such/dir"),
         "data.root '/no/such/dir' is not a folder"),
    # ----- pretrain: the run folder
    Case("pretrain", "output_dir is a file", lambda c: [RECIPE, f"output_dir={c.write('f.txt', 'x')}"],
         "output_dir '{tmp}/f.txt' is an existing file, not a folder"),
    Case("pretrain", "output_dir not writable", lambda c: [RECIPE, f"output_dir={UNWRITABLE}"],
         "cannot be created (Operation not permitted); choose a writable folder"),
    Case("pretrain", "output_dir below a file", lambda c: [RECIPE, f"output_dir={c.write('f.txt', 'x')}/run"],
         "cannot be created (Not a directory)"),
    Case("pretrain", "output_dir in use by another run", lambda c: [RECIPE, f"output_dir={c.held('run')}"],
         "output_dir '{tmp}/run' is in use by another edgessl process (PID "),
    Case("pretrain", "--resume without a checkpoint", lambda c: [*_tiny(c), "--resume"],
         "--resume given but"),
    Case("pretrain", "resume under another recipe", _resumed_other_recipe, "'optim.lr' was 0.06, now 0.5"),
    Case("pretrain", "disk full while saving", _disk_full,
         "disk full while saving '{tmp}/run/last.pt': its partial copy was removed, nothing else was freed; the last "
         "good checkpoint is none"),
    Case("pretrain", "disk full at the second checkpoint", _disk_full_later,
         "nothing else was freed; the last good checkpoint is '{tmp}/run/last.pt' (unchanged)",
         after=_first_checkpoint_kept),
    Case("pretrain", "loss NaN before any checkpoint (optim.lr=1e30)",
         lambda c: _tiny(c, "optim.lr=1e30", "train.knn_every=0"),
         "loss became NaN/inf at step 2 (epoch 1); lower optim.lr, set optim.grad_clip, or use train.amp=none; the "
         "last good checkpoint is none (none was saved yet)"),
    # ----- eval
    Case("eval", "checkpoint missing", lambda c: [str(c.tmp / "nope.pt")], "nope.pt' not found"),
    Case("eval", "checkpoint that would run code", lambda c: [str(_code_running_pickle(c))],
         "refused: '{tmp}/evil.pt' is not a plain-weights checkpoint (it would run code when loaded: posix.system); "
         "only tensors and plain containers are read"),
    Case("eval", "random bytes as .pt", lambda c: [str(c.write("x.pt", bytes(range(256)) * 4))],
         "is not a readable PyTorch checkpoint"),
    Case("eval", "empty .pt", lambda c: [str(c.write("x.pt", b""))], "is not a readable PyTorch checkpoint"),
    Case("eval", "plain weights, not an edgessl checkpoint", lambda c: [str(_plain_torch_file(c))],
         "is not an edgessl checkpoint"),
    Case("eval", "encoder.arch edited", lambda c: [str(_edited_arch(c)), "--knn"],
         "encoder weights do not fit encoder.arch=mobilenetv3_large_100 (first mismatch"),
    Case("eval", "--k 0", lambda c: [str(c.tmp), "--k", "0"], "argument --k: must be > 0"),
    Case("eval", "misspelt override", lambda c: [str(c.checkpoint()), "data.rot=x"], "did you mean 'data.root'"),
    # ----- report
    Case("report", "not a run folder", lambda c: [str(c.tmp)], "is not a run folder"),
    Case("report", "--tsne-samples 2", lambda c: [str(c.tmp), "--tsne-samples", "2"], "--tsne-samples must be >= 5"),
    # ----- export
    Case("export", "--target ''", lambda c: [str(c.tmp / "x.pt"), "--target", ""], "--target is empty; choose"),
    Case("export", "unknown target", lambda c: [str(c.tmp / "x.pt"), "--target", "coreml"],
         "unknown export target 'coreml'"),
    Case("export", "--tolerance -1", lambda c: [str(c.tmp / "x.pt"), "--tolerance", "-1", "--out", str(c.tmp)],
         "--tolerance must be a kNN top-1 drop in points >= 0"),
    Case("export", "--tolerance nan", lambda c: [str(c.tmp / "x.pt"), "--tolerance", "nan", "--out", str(c.tmp)],
         "--tolerance must be a kNN top-1 drop in points >= 0"),
    Case("export", "--name ../x", lambda c: [str(c.tmp / "x.pt"), "--name", "../x", "--out", str(c.tmp)],
         "--name '../x' must be a plain file name"),
    Case("export", "two checkpoints", lambda c: ["a.pt", "b.pt", "--out", str(c.tmp)], "one checkpoint at a time"),
    Case("export", "--out is a file", lambda c: [str(c.tmp / "x.pt"), "--out", str(c.write("f.txt", "x"))],
         "--out '{tmp}/f.txt' is an existing file, not a folder"),
    Case("export", "--out not writable", lambda c: [str(c.tmp / "x.pt"), "--out", UNWRITABLE],
         "cannot be created (Operation not permitted)"),
    Case("export", "--out in use by another export", lambda c: [str(c.tmp / "x.pt"), "--out", str(c.held("out"))],
         "--out '{tmp}/out' is in use by another edgessl process (PID "),
    # ----- check
    Case("check", "artifact missing", lambda c: [str(c.tmp / "m.onnx")], "m.onnx' not found"),
    Case("check", "unknown artifact type", lambda c: [str(c.write("m.pb", "x"))], "is not an exported artifact"),
    Case("check", "zero-byte .onnx", lambda c: [str(c.write("m.onnx", b""))], "is not a readable onnx artifact"),
    Case("check", "random bytes as .onnx", lambda c: [str(c.write("m.onnx", bytes(range(256)) * 8))],
         "is not a readable onnx artifact"),
    Case("check", "truncated .onnx", lambda c: [str(_onnx(c, 20))], "is not a readable onnx artifact"),
    Case("check", ".onnx without edgessl metadata", lambda c: [str(_onnx(c, None))],
         "has no edgessl metadata naming its checkpoint; pass --checkpoint PATH"),
    Case("check", "truncated .tflite (header only)",
         lambda c: [str(c.write("m.tflite", b"\x1c\x00\x00\x00TFL3" + bytes(8)))],
         "is not a readable tflite artifact"),
    Case("check", "damaged OpenVINO .xml", lambda c: [str(c.write("m.xml", "<net name='x'></net>"))],
         "is not a readable openvino artifact"),
    Case("check", "--tolerance -1", lambda c: [str(c.tmp / "m.onnx"), "--tolerance", "-1"],
         "--tolerance must be a kNN top-1 drop in points >= 0"),
    Case("check", "--tolerance nan", lambda c: [str(c.tmp / "m.onnx"), "--tolerance", "nan"],
         "--tolerance must be a kNN top-1 drop in points >= 0"),
    # ----- prune
    Case("prune", "--macs 1.5", lambda c: [str(c.tmp), "--macs", "1.5"],
         "--macs must be a ratio strictly between 0 and 1"),
    Case("prune", "--macs nan", lambda c: [str(c.tmp), "--macs", "nan"], "--macs must be a ratio strictly between"),
    Case("prune", "--recover-epochs -1", lambda c: [str(c.tmp), "--recover-epochs", "-1"],
         "--recover-epochs must be >= 0"),
    Case("prune", "--out is a file", lambda c: [str(c.checkpoint()), "--out", str(c.write("f.txt", "x"))],
         "--out '{tmp}/f.txt' is an existing file, not a folder"),
    Case("prune", "--out not writable", lambda c: [str(c.checkpoint()), "--out", UNWRITABLE],
         "cannot be created (Operation not permitted)"),
    Case("prune", "--out in use by another prune", lambda c: [str(c.checkpoint()), "--out", str(c.held("out"))],
         "--out '{tmp}/out' is in use by another edgessl process (PID "),
]


def table() -> str:
    """The troubleshooting table: one row per case, the message with the test's folder shown as `DIR`."""
    rows = ["| command | bad input | what the user sees (one line on stderr) | exit code |",
            "|---|---|---|---|"]
    for case in CASES:
        kind = "warning" if case.code == 0 else "error"
        shows = case.shows.replace("{tmp}", "DIR").replace("|", "\\|")
        rows.append(f"| `{case.command}` | {case.what.replace('|', '/')} "
                    f"| `edgessl {case.command}: {kind}: …{shows}…` | {case.code} |")
    return "\n".join(rows)


def doc_with_table(text: str) -> str:
    """`text` (docs/troubleshooting.md) with the block between the markers replaced by `table()`."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC} lacks the markers {BEGIN!r} ... {END!r}")
    head, rest = text.split(BEGIN, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{rest.split(END, 1)[1]}"


if __name__ == "__main__":
    DOC.write_text(doc_with_table(DOC.read_text()))
    print(f"wrote the bad-input table ({len(CASES)} cases) into {DOC}")
