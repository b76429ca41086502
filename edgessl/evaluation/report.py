"""`edgessl report`: one HTML page per run that a person reads instead of logs.

Sections: a summary, training curves from `metrics.csv` (loss, lr, kNN over epochs, img/s and any other numeric
column), the resolved recipe (`config.yaml`), `eval.json` results, the export table with a bar chart, and a
t-SNE map of test features coloured by class. The PNGs go to `<run>/report/` and are referenced relatively, so
the page opens from disk without a server; copy the folder along with `report.html`.

Export table: rows are read from `<run>/export_report.json` (`edgessl export` writes it there), a JSON list of objects (or {"rows": [...]}) with
columns target, runtime, precision, method, size_mb, latency_ms, cosine_mean, knn_delta (missing values are shown as
"-"); the runtime column tells a consumer row (e.g. OpenCV DNN on the ONNX file) from the target's own runtime.
"""

from __future__ import annotations

import csv
import html
import json
import math
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from edgessl.checkpoint import RunFolder
from edgessl.errors import EdgeSSLError
from edgessl.evaluation import plots
from edgessl.evaluation.device_results import device_rows
from edgessl.export.model_card import recipe_hash

EVAL_FILE, REPORT_FILE, ASSET_DIR = RunFolder.EVAL, RunFolder.REPORT, RunFolder.REPORT_ASSETS
EXPORT_COLUMNS = ("target", "runtime", "precision", "method", "size_mb", "latency_ms", "cosine_mean", "knn_delta")

# metrics.csv columns with a fixed meaning; any other numeric column gets a plot titled by its name
TITLES = {"loss": "Training loss", "lr": "Learning rate", "img_per_s": "Throughput (images/s)",
          "pt_entropy": "Entropy of the teacher's target p_t", "key_cosine": "Mean in-batch cosine of teacher keys",
          "momentum": "EMA momentum"}
NOT_PLOTTED_VS_STEP = {"epoch", "step", "wall_s", "method", "loss_kind", "knn_top1", "knn_top5"}


def _number(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_metrics(path: Path) -> list[dict[str, str]]:
    """Rows of `metrics.csv` as dicts (missing cells are absent or empty; extra columns are kept)."""
    try:
        with path.open(newline="") as fh:
            return [{k: v for k, v in row.items() if k is not None} for row in csv.DictReader(fh)]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise EdgeSSLError(f"{path}: not a readable CSV ({exc})") from None


def _points(rows: list[dict[str, str]], x: str, y: str) -> tuple[list[float], list[float]]:
    """(x, y) pairs of the rows where both are numbers; x = "index" uses the row number."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        xv = float(i) if x == "index" else _number(row.get(x))
        yv = _number(row.get(y))
        if xv is not None and yv is not None:
            xs.append(xv)
            ys.append(yv)
    return xs, ys


def _training_figures(rows: list[dict[str, str]], out: Path, ln_k: float | None) -> list[tuple[str, Path]]:
    """One PNG per numeric metric (against step) plus kNN accuracy against epoch."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    x = "step" if "step" in columns else "index"
    figures = []
    knn = {name: _points(rows, "epoch", col) for name, col in (("top-1", "knn_top1"), ("top-5", "knn_top5"))}
    if knn["top-1"][0]:
        figures.append(("kNN accuracy (%)", plots.plot_curves(
            out / "knn.png", {k: v for k, v in knn.items() if v[0]}, "kNN accuracy on the test split (%)",
            "epoch", marker="o")))
    ordered = [c for c in TITLES if c in columns] + [c for c in columns if c not in TITLES]
    for col in ordered:
        if col in NOT_PLOTTED_VS_STEP:
            continue
        if col == "loss" and len({r.get("loss_kind") for r in rows if _number(r.get("loss")) is not None}) > 1:
            kinds = dict.fromkeys(r.get("loss_kind") or "?" for r in rows)  # e.g. infonce warm-up, then relation
            series = {k: _points([r for r in rows if (r.get("loss_kind") or "?") == k], x, col) for k in kinds}
        else:
            series = {col: _points(rows, x, col)}
        series = {k: v for k, v in series.items() if v[0]}
        if not series:
            continue
        ref = ("ln K (uniform over the queue)", ln_k) if col in ("loss", "pt_entropy") and ln_k else None
        title = TITLES.get(col, col)
        figures.append((title, plots.plot_curves(out / f"{col}.png", series, title, x, reference=ref)))
    return figures


def _summary(cfg: dict[str, Any], rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    """Key facts of the run as (label, value) pairs."""
    model, data, train = (cfg.get(name) or {} for name in ("model", "data", "train"))
    epochs = [v for v in (_number(r.get("epoch")) for r in rows) if v is not None]
    steps = [v for v in (_number(r.get("step")) for r in rows) if v is not None]
    losses = _points(rows, "index", "loss")[1]
    knn_ep, knn = _points(rows, "epoch", "knn_top1")
    speed = _points(rows, "index", "img_per_s")[1]
    wall = _points(rows, "index", "wall_s")[1]
    kinds = ", then ".join(dict.fromkeys(r["loss_kind"] for r in rows if r.get("loss_kind")))
    out = [("method", f"{cfg.get('method', 'ressl')}" + (f" (trained loss: {kinds})" if kinds else "")),
           ("architecture", f"{model.get('arch', '?')} (stem stride {model.get('stem_stride', '?')})"),
           ("data", f"{data.get('format', '?')} {data.get('root', '')} at {data.get('image_size', '?')} px"),
           ("progress", f"epoch {int(max(epochs, default=0))} of {train.get('epochs', '?')}, "
                        f"step {int(max(steps, default=0))}")]
    if losses:
        out.append(("last loss", f"{losses[-1]:.4g}"))
    if knn:
        best = max(range(len(knn)), key=lambda i: (knn[i], i))  # the latest of equal bests
        out.append(("kNN top-1", f"{knn[-1]:.2f}% last; {knn[best]:.2f}% best (epoch {int(knn_ep[best])})"))
    if speed:
        out.append(("throughput", f"{statistics.median(speed):.0f} images/s (median)"))
    if wall:
        out.append(("wall time", f"{max(wall) / 60:.1f} min"))
    return out


def _eval_rows(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(method, top-1, top-5) rows of an eval.json."""
    rows = []
    if isinstance(result.get("knn"), dict):
        r = result["knn"]
        rows.append((f"kNN (k={r.get('k')}, T={r.get('temperature')})", r.get("top1"), r.get("top5")))
    for which in ("best", "last"):
        r = (result.get("linear") or {}).get(which)
        if isinstance(r, dict):
            rows.append((f"linear probe, {which} (epoch {r.get('epoch')})", r.get("top1"), r.get("top5")))
    return rows


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgeSSLError(f"{path}: not valid JSON ({exc}); re-create it or delete it") from None


def _export_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of the export table, or [] when the run has none."""
    path = run_dir / RunFolder.EXPORT_TABLE
    if not path.is_file():
        return []
    data = _read_json(path)
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise EdgeSSLError(f"{path}: expected a list of rows with {', '.join(EXPORT_COLUMNS)}")
    return rows


def _export_figure(rows: list[dict[str, Any]], out: Path) -> Path:
    labels = [" ".join(str(r[k]) for k in ("runtime", "precision", "method") if r.get(k)) or str(r.get("target", "?"))
              for r in rows]
    panels = {"latency (ms)": [_number(r.get("latency_ms")) for r in rows],
              "kNN top-1 change vs fp32 (points)": [_number(r.get("knn_delta")) for r in rows]}
    return plots.plot_bars(out / "export.png", labels, panels, "Exported encoders")


def _tsne_figure(ckpt: Path, overrides: Sequence[str], out: Path, max_samples: int, progress: bool) -> Path:
    """t-SNE of L2-normalized backbone features of up to `max_samples` test images."""
    from sklearn.manifold import TSNE

    from edgessl.engine.runtime import resolve_device
    from edgessl.measure.features import extract_features
    from edgessl.measure.loaders import eval_loader
    from edgessl.models.encoder_loading import load_trained_encoder

    enc = load_trained_encoder(ckpt, overrides)
    device = resolve_device(enc.cfg.train.device)
    loader = eval_loader(enc.cfg, "test", max_samples)
    feats, labels = extract_features(enc.model.to(device), loader, device, enc.cfg.train.amp, progress)
    if len(feats) < 5:
        raise EdgeSSLError(f"only {len(feats)} test images; t-SNE needs at least 5")
    xy = TSNE(n_components=2, perplexity=min(30.0, (len(feats) - 1) / 3), init="pca",
              random_state=0).fit_transform(feats.numpy())
    dataset = loader.dataset
    names = getattr(getattr(dataset, "dataset", dataset), "classes", None)
    title = f"t-SNE of {len(feats)} test images, {enc.info['arch']} epoch {enc.epoch}"
    return plots.plot_embedding(out / "tsne.png", xy, labels.numpy(), names, title)


def _cell(v: Any) -> str:
    if v is None or v == "":
        return "-"
    return html.escape(f"{v:.4g}" if isinstance(v, float) else str(v))


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]]) -> str:
    head = ""
    if header is not None:
        head = "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _figure(run_dir: Path, title: str, png: Path) -> str:
    """An <img> of a PNG under the run folder, by relative path (the plot carries its own title)."""
    return f'<img src="{html.escape(png.relative_to(run_dir).as_posix())}" alt="{html.escape(title)}">'


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .7em;text-align:left}
th{background:#f4f4f4}.grid{display:flex;flex-wrap:wrap;gap:1em}img{max-width:520px;width:100%}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}
.note{color:#666;font-style:italic}"""


def _read_run(run_dir: Path) -> tuple[str, dict[str, Any], list[dict[str, str]]]:
    """The run's config.yaml text and mapping, and its metrics rows; a one-line error if it is not a run."""
    config_path, metrics_path = RunFolder(run_dir).config, RunFolder(run_dir).metrics
    missing = [p.name for p in (config_path, metrics_path) if not p.is_file()]
    if not run_dir.is_dir() or missing:
        raise EdgeSSLError(f"'{run_dir}' is not a run folder (no {' or '.join(missing or ['folder'])}); "
                           "pass the output folder of `edgessl pretrain`, e.g. runs/<name>")
    text = config_path.read_text()
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise EdgeSSLError(f"{config_path}: not valid YAML; it should be the resolved recipe of the run") from None
    if not isinstance(cfg, dict):
        raise EdgeSSLError(f"{config_path}: expected a mapping (the resolved recipe); got {type(cfg).__name__}")
    return text, cfg, read_metrics(metrics_path)


def _training_section(run_dir: Path, cfg: dict[str, Any], rows: list[dict[str, str]]) -> str:
    queue = (cfg.get("ressl") or {}).get("queue_size")
    ln_k = math.log(queue) if isinstance(queue, int) and queue > 1 else None
    figures = _training_figures(rows, run_dir / ASSET_DIR, ln_k)
    if not figures:
        return "<h2>Training</h2><p class=note>metrics.csv has no rows yet.</p>"
    return ("<h2>Training</h2><div class=grid>" + "".join(_figure(run_dir, t, p) for t, p in figures) + "</div>"
            "<p class=note>The loss is not a progress signal (it depends on the temperatures and the queue size); "
            "watch kNN. A loss and a p_t entropy near ln K mean the teacher's target is almost uniform.</p>")


def _eval_section(run_dir: Path) -> str:
    path = run_dir / EVAL_FILE
    if not path.is_file():
        return (f"<h2>Evaluation</h2><p class=note>No {EVAL_FILE} yet: run "
                f"<code>edgessl eval {html.escape(str(run_dir))}</code>.</p>")
    result = _read_json(path)
    if not isinstance(result, dict):
        raise EdgeSSLError(f"{path}: expected the JSON object `edgessl eval` writes; re-run it")
    counts = result.get("data") or {}
    return (f"<h2>Evaluation</h2><p>{html.escape(str(result.get('arch', '')))} epoch {result.get('epoch', '?')}, "
            f"{html.escape(str(result.get('branch', '')))} backbone; {counts.get('train', '?')} train / "
            f"{counts.get('test', '?')} test images</p>" + _table(("method", "top-1 %", "top-5 %"), _eval_rows(result)))


def _export_section(run_dir: Path, device: Sequence[str | Path] = ()) -> str:
    rows = _export_rows(run_dir) + device_rows(device)
    if not rows:
        return ""
    return ("<h2>Exports</h2>" + _table(EXPORT_COLUMNS, [[r.get(c) for c in EXPORT_COLUMNS] for r in rows])
            + _figure(run_dir, "Latency and kNN change per export target", _export_figure(rows, run_dir / ASSET_DIR)))


def _tsne_section(run_dir: Path, overrides: Sequence[str], samples: int, progress: bool) -> str:
    ckpt = RunFolder(run_dir).last
    if not ckpt.is_file():
        return ""
    try:
        png = _tsne_figure(ckpt, overrides, run_dir / ASSET_DIR, samples, progress)
    except EdgeSSLError as exc:  # e.g. the dataset is not on this machine: the rest of the report still helps
        print(f"edgessl report: no t-SNE plot: {exc}", file=sys.stderr)
        return f"<h2>Embedding</h2><p class=note>No t-SNE plot: {html.escape(str(exc))}</p>"
    return "<h2>Embedding</h2>" + _figure(run_dir, "t-SNE of test features, coloured by class", png)


def build_report(run_dir: str | Path, tsne: bool = True, overrides: Sequence[str] = (), tsne_samples: int = 2000,
                 progress: bool = True, device: Sequence[str | Path] = ()) -> Path:
    """Write `<run_dir>/report.html` (and `<run_dir>/report/*.png`); returns the HTML path.

    The t-SNE plot needs the run's last.pt and test data; `overrides` (`key=value`) change the checkpoint's
    recipe for it, e.g. data.root=...; `device` lists boards' device_check.json files for the export table.
    """
    run_dir = Path(run_dir)
    recipe_text, cfg, rows = _read_run(run_dir)
    name = html.escape(str(cfg.get("name", run_dir.name)))
    sections = [
        f"<h1>{name}</h1><p class=sub>{html.escape(str(run_dir.resolve()))} &middot; report written "
        f"{datetime.now():%Y-%m-%d %H:%M}</p>",
        "<h2>Summary</h2>" + _table(None, _summary(cfg, rows)),
        _training_section(run_dir, cfg, rows),
        _eval_section(run_dir),
        _export_section(run_dir, device),
        _tsne_section(run_dir, overrides, tsne_samples, progress) if tsne else "",
        f"<h2>Recipe</h2><p>config.yaml, recipe hash <code>{recipe_hash(cfg)}</code></p>"
        f"<pre>{html.escape(recipe_text)}</pre>",
    ]
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>edgessl report: {name}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(s for s in sections if s) + "\n</body></html>\n")
    path = run_dir / REPORT_FILE
    path.write_text(page)
    return path
