"""Compatibility matrix: which timm edge encoders pretrain with edgessl and survive fp32/int8 export to ONNX Runtime,
OpenVINO and LiteRT.

Per model, in a child process (a converter crash or hang costs one row, not the run), 1 torch thread:
- build (pretrained=False), parameters and MACs at 224 px of the deployed (fused) form;
- `edgessl pretrain recipes/quickstart.yaml model.arch=NAME` for 2 steps at 224 px (batch 8, synthetic images)
  and 2 at 32 px with `model.stem_stride=1`, each in its own process (a crash is retried with NCHW and stays a failure);
- `edgessl export` of the 224 px checkpoint per runtime, fp32 and int8 (16 calibration images), with the check:
  int8 cosine to PyTorch fp32 on the fixed synthetic test batch (16 images), and the int8 speed-up over fp32 at
  224 px (batch 1, 1 thread, 30 paired timed runs); the ONNX files are also run in OpenCV DNN where it is installed
  (the `consumers` extra), which must agree with ONNX Runtime.
One JSON line per model is appended to --out as it finishes; --table prints the README table from that file.
`--jobs 2` runs two models at once (one per core); their latencies are then timed beside each other.

  python benchmarks/compat_matrix.py --out /work/runs/issue23/matrix.jsonl [--jobs 2] [--models a,b] [--skip-done]
  python benchmarks/compat_matrix.py --out /work/runs/issue23/matrix.jsonl --table
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FAMILIES: dict[str, tuple[str, ...]] = {
    "MobileNetV2/V3": ("mobilenetv2_100", "mobilenetv3_small_100", "mobilenetv3_small_075", "mobilenetv3_large_100",
                       "tf_mobilenetv3_small_minimal_100", "tf_mobilenetv3_large_minimal_100"),
    "MobileNetV4": ("mobilenetv4_conv_small_050", "mobilenetv4_conv_small", "mobilenetv4_hybrid_medium_075"),
    "EfficientNet": ("efficientnet_lite0",),
    "RepViT": ("repvit_m0_9",),
    "FastViT": ("fastvit_t8",),
    "MobileOne": ("mobileone_s0",),
    "EfficientViT": ("efficientvit_b0", "efficientvit_m0"),
    "GhostNet": ("ghostnet_100", "ghostnetv2_100"),
    "RepGhost": ("repghostnet_050",),
    "LCNet": ("lcnet_050",),
    "MobileViT": ("mobilevit_xxs", "mobilevitv2_050"),
    "EfficientFormer": ("efficientformer_l1", "efficientformerv2_s0"),
    "RegNet": ("regnetx_002", "regnety_002"),
    "ResNet": ("resnet18",),
}
FAMILY = {name: family for family, names in FAMILIES.items() for name in names}
TARGETS = ("onnx", "openvino", "tflite")
SIZE = 224
PRETRAIN = ["data.format=synthetic", "data.synthetic_train=16", "data.synthetic_test=16", "data.num_workers=0",
            "train.batch_size=8", "train.epochs=1", "train.max_steps=2", "train.knn_every=0", "train.device=cpu",
            "train.threads=1", "infonce.queue_size=16", "infonce.bn_splits=2", "knn.k=5",
            "optim.warmup_epochs=0"]
APPEND = threading.Lock()  # --jobs > 1: one line at a time into --out
PROFILE = {"warmup": 5, "runs": 30, "calibration": 16}  # over the repo's export/*.yaml


def _reason(exc: BaseException) -> str:
    """A failure in a few words; `TRACEBACK` marks one edgessl did not turn into a one-line error."""
    from edgessl.errors import EdgeSSLError

    text = " ".join(str(exc).split())[:300]
    return text if isinstance(exc, EdgeSSLError) else f"TRACEBACK {type(exc).__name__}: {text}"


def _pretrain(name: str, out: Path, *extra: str) -> bool | str:
    """`edgessl pretrain recipes/quickstart.yaml model.arch=NAME ...` for 2 steps, the command a user runs, in its
    own process; True, or the failure in a few words (its one-line error; `TRACEBACK` for anything else). A crash
    is retried once with `train.channels_last=false`, so the row can still be exported, and stays a failure."""
    def run(*more: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "edgessl", "pretrain", str(ROOT / "recipes" / "quickstart.yaml"), *PRETRAIN,
               f"model.arch={name}", f"output_dir={out}", *extra, *more]
        shutil.rmtree(out, ignore_errors=True)
        return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    proc = run()
    if proc.returncode == 0:
        return True
    lines = proc.stderr.strip().splitlines() or [""]
    if proc.returncode == 2:
        return lines[-1]  # edgessl's one-line error
    if proc.returncode > 0:
        return f"TRACEBACK {lines[-1][:200]}"
    crash = f"TRACEBACK crashed in training ({signal.Signals(-proc.returncode).name})"
    return crash + ("; ok with train.channels_last=false" if run("train.channels_last=false").returncode == 0
                    else "; also with train.channels_last=false")


def _agrees(note: str) -> bool | str:
    """True when a consumer row agrees with the target's runtime (its pass rule without the kNN tolerance, which
    16 test images cannot judge: one image is 6.25 pt; an agreeing row's note starts "vs <runtime>"), else its
    one-line reason (disagrees, crashed, failed to load)."""
    return True if note.startswith("vs ") else note


def _profiles(work: Path) -> Path:
    """The repo's export profiles with a shorter latency check and calibration."""
    folder = work / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    for target in TARGETS:
        data = yaml.safe_load((ROOT / "export" / f"{target}.yaml").read_text())
        (folder / f"{target}.yaml").write_text(yaml.safe_dump({**data, **PROFILE}))
    return folder


def _export(row: dict, ckpt: Path, target: str, work: Path, save) -> None:
    """Export one runtime in fp32 and int8 and record ok / cosine / speed-up, or where and why it failed."""
    from edgessl.export.pipeline import export_checkpoint

    stage: list[str] = []
    cell = row["runtimes"][target] = {"fp32": False, "int8": False}
    try:
        result = export_checkpoint(ckpt, [target], ["fp32", "int8"], work / target, profiles=_profiles(work),
                                   name=target, log=stage.append)
        own, consumers = result.rows[1:3], result.rows[3:]  # the target's fp32 and int8 rows, then consumer rows
        for r in own:
            cell[r.precision] = True
            if r.precision == "int8":
                cell.update(cosine=r.cosine_mean, cosine_min=r.cosine_min, speedup=r.speedup)
        for r in consumers:  # OpenCV DNN on the ONNX files: agrees with ONNX Runtime, or the consumer's reason
            cell.setdefault("consumers", {})[f"{r.runtime} {r.precision}"] = (_agrees(r.note), r.cosine_mean)
    except Exception as exc:  # noqa: BLE001 - every failure is a matrix cell
        done = " ".join(stage)
        cell["fp32"] = f"[{target} fp32] pass" in done or f"[{target} fp32] fail" in done
        failed = "int8" if cell["fp32"] else "fp32"
        cell["error"] = f"{failed}: {_reason(exc)}"
    save()


def one(name: str, work: Path, partial: Path, stages: str) -> None:
    """Fill the row of `name`, writing it to `partial` after every stage (the parent reads it on a timeout).
    `stages`: "train" (build, cost, both pretrainings), "export" (of the train phase's checkpoint), or "all"."""
    import torch

    torch.set_num_threads(1)
    row: dict = json.loads(partial.read_text()) if partial.is_file() and stages == "export" else \
        {"model": name, "runtimes": {}}
    row.update(family=FAMILY.get(name, "other"), stage="")
    clock = [time.time()]

    def save(stage: str = "") -> None:  # `stage` is what starts now; the time of the one that ended is kept
        if row.get("stage"):
            row.setdefault("timing", {})[row["stage"]] = round(time.time() - clock[0], 1)
        clock[0] = time.time()
        row["stage"] = stage
        partial.write_text(json.dumps(row))

    ckpt = work / "run224" / "last.pt"
    if stages in ("train", "all") and not _train(name, work, row, save):
        return
    if stages in ("export", "all") and ckpt.is_file():
        for target in TARGETS:
            save(f"export {target}")
            _export(row, ckpt, target, work, lambda: save(f"export {target} done"))
    save("done")


def _train(name: str, work: Path, row: dict, save) -> bool:
    """Build, cost at 224 px, and the two 2-step pretrainings; False when the model does not build."""
    from edgessl.models.registry import build_backbone
    from edgessl.models.reparam import inference_form, is_reparameterizable
    from edgessl.pruning.prune import cost

    save("build")
    try:
        model = build_backbone(name)
        row["reparameterizable"] = is_reparameterizable(model)
        c = cost(inference_form(model), SIZE)
        row.update(params_m=c.params / 1e6, gmacs=c.macs / 1e9)
    except Exception as exc:  # noqa: BLE001
        row["build"] = _reason(exc)
        save()
        return False
    save("pretrain 32 px")
    row["pretrain32"] = _pretrain(name, work / "run32", "data.image_size=32", "model.stem_stride=1")
    save("pretrain 224 px")
    row["pretrain"] = _pretrain(name, work / "run224", f"data.image_size={SIZE}", "model.stem_stride=2")
    save()
    return True


def _child(cmd: list[str], env: dict, timeout: float) -> str | None:
    """Run one child; None when it succeeded, else why it did not (exit signal, timeout)."""
    try:
        proc = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return f"timeout after {timeout:.0f} s"
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode}"
    return None if proc.returncode == 0 else f"child exit {proc.returncode}: {proc.stderr.strip()[-200:]}"


def _run_child(name: str, out: Path, work: Path, timeout: float, stages: str) -> dict:
    """Run `one(name)` in a child process; a crash or timeout becomes the row's failure reason."""
    partial = work / name / "row.json"
    if stages != "export":
        shutil.rmtree(partial.parent, ignore_errors=True)  # a fresh run folder: no resume from an earlier attempt
    partial.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--one", name, "--work", str(work / name), "--stages", stages]
    crash = _child(cmd, env, timeout)
    row = json.loads(partial.read_text()) if partial.is_file() else {"model": name, "runtimes": {}}
    if crash and row.get("stage") != "done":  # a timeout while the finished child exits loses nothing
        row["crash"] = f"{crash} (during {row.get('stage') or 'start'})"
        partial.write_text(json.dumps(row))
    row["seconds"] = round(row.get("seconds", 0) + time.time() - start, 1)
    partial.write_text(json.dumps(row))
    with APPEND, out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def _mark(value) -> str:
    """ok, FAIL, or - (not run)."""
    if value is True:
        return "ok"
    if value in (None, False):
        return "-"
    return "n/a" if "cannot take model.stem_stride=1" in value else "FAIL"  # n/a: refused by design, one line


def _runtime_cell(cell: dict | None) -> str:
    if not cell:
        return "-"
    if not cell.get("int8"):
        return f"{_mark(cell.get('fp32'))} / FAIL" if cell.get("fp32") else "FAIL / -"
    speed = f"{cell['speedup']:.2f}x" if cell.get("speedup") else "?"
    opencv = [ok for ok, _ in cell.get("consumers", {}).values()]  # True, or the consumer's reason (`_agrees`)
    also = (", OpenCV " + ("ok" if all(ok is True for ok in opencv) else "FAIL")) if opencv else ""
    return f"ok / ok {cell['cosine']:.3f} {speed}{also}"


def _why(row: dict) -> str:
    """The failure reasons of a row, a few words each."""
    reasons = [row[k] for k in ("build", "crash") if row.get(k)]
    for key, label in (("pretrain32", "32 px"), ("pretrain", "224 px")):
        if isinstance(row.get(key), str):  # the command's one-line error without its "edgessl pretrain: error:"
            reasons.append(f"{label}: " + re.sub(r"^(edgessl pretrain: )?error: ", "", row[key]).split("; use ")[0])
    reasons += [f"{t}: " + c['error'].split(" (Failed to run converter passes")[0]  # the converter's words, no path
                for t, c in row.get("runtimes", {}).items() if c.get("error")]
    reasons += [f"OpenCV {name.split()[-1]}: " + re.sub(r"^opencv ", "", str(ok).split("; do not deploy")[0])
                for c in row.get("runtimes", {}).values()
                for name, (ok, _) in c.get("consumers", {}).items() if ok is not True]
    return "; ".join(" ".join(r.split())[:160].replace("|", "/") for r in reasons)


def table(rows: list[dict]) -> str:
    """The README table: one row per model, each runtime as `fp32 / int8 cosine speed-up`."""
    head = ("| model | family | params (M) | GMACs 224 | pretrain 224 | 32 px stem 1 | ONNX Runtime | OpenVINO "
            "| LiteRT | why it fails |\n|---|---|---:|---:|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        name = r["model"] + (" (rep)" if r.get("reparameterizable") else "")
        cells = [name, r.get("family", ""), f"{r['params_m']:.2f}" if "params_m" in r else "-",
                 f"{r['gmacs']:.3f}" if "gmacs" in r else "-",
                 *(_mark(r.get(k)) for k in ("pretrain", "pretrain32")),
                 *(_runtime_cell(r.get("runtimes", {}).get(t)) for t in TARGETS), _why(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/work/runs/issue23/matrix.jsonl"))
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: beside --out)")
    parser.add_argument("--models", default="", help="comma-separated timm names (default: the matrix)")
    parser.add_argument("--skip-done", action="store_true", help="skip models already in --out")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per model")
    parser.add_argument("--jobs", type=int, default=1, help="models run at once, each a 1-thread child process")
    parser.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    parser.add_argument("--stages", choices=("all", "train", "export"), default="all",
                        help="train: build + pretrainings only; export: only the exports of an earlier train run")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        try:
            one(args.one, args.work, args.work / "row.json", args.stages)
        except Exception:
            traceback.print_exc()
            sys.exit(1)
        return
    lines = args.out.read_text().splitlines() if args.out.is_file() else []
    done = list({row["model"]: row for row in map(json.loads, lines)}.values())  # a model's newest line wins
    if args.table:
        order = list(FAMILY)
        print(table(sorted(done, key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))))
        return
    names = args.models.split(",") if args.models else list(FAMILY)
    if args.skip_done:
        names = [n for n in names if n not in {r["model"] for r in done}]
    work = args.work or args.out.parent / "work"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()

    def run(name: str) -> None:
        row = _run_child(name, args.out, work, args.timeout, args.stages)
        print(f"{name}: {row['seconds']} s {_why(row) or 'all ok'}", flush=True)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # threads only wait on child processes
        list(pool.map(run, names))
    print(f"{len(names)} models in {time.time() - start:.0f} s ({args.jobs} at once, 1 thread each)")


if __name__ == "__main__":
    main()
