"""One report per run, read in a minute: ``report.md`` and a self-contained ``report.html``.

Built from what the run wrote (metrics.json, run.json, search_history.csv, its figures)
plus the Grad-CAM examples handed in, so it can be rebuilt without training again. The
report is a list of blocks rendered twice: Markdown beside the figures, and HTML with the
figures embedded (one file to send).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from earth_lib.experiments.report import markdown_table
from earth_lib.io import atomic_write_text
from earth_lib.nn.explain import CamExamples
from earth_lib.planning.evidence import CURVE_TASK, search_note, shape_data
from earth_lib.report import report_figures as rf
from earth_lib.report.plotting import plot_mistakes, save_figure, test_summary_name
from earth_lib.run import Run, read_json
from earth_lib.search.selection import baseline_name, trained_with

REPORT_MD, REPORT_HTML = "report.md", "report.html"


@dataclass
class Report:
    """A title and its blocks, in order.

    Blocks: ("h2", text), ("p", text), ("table", DataFrame), ("img", caption, path relative
    to the report's folder).
    """

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def add(self, *block: Any) -> Report:
        """Append a block; returns the report so calls chain."""
        self.blocks.append(block)
        return self


def main_score(metrics: dict[str, Any]) -> tuple[str, str]:
    """The share of test images answered right: accuracy, or exact match (multi-label)."""
    return ("accuracy", "test accuracy") if "accuracy" in metrics else \
        ("exact_match", "exact match (every label right)")


def accuracy_interval(metrics: dict[str, Any]) -> tuple[float, float]:
    """Wilson 95 % interval of that share, from the count of test images."""
    n = int(metrics["n"])
    k = int(round(metrics[main_score(metrics)[0]] * n))
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def headline_table(models: dict[str, dict[str, Any] | None]) -> pd.DataFrame:
    """Each scored model's share right with its interval, and its F1 (and mAP)."""
    rows = {}
    for name, m in models.items():
        if not m or "n" not in m:
            continue
        key, label = main_score(m)
        low, high = accuracy_interval(m)
        rows[name] = {label: f"{100 * m[key]:.1f} %",
                      "95 % interval": f"{100 * low:.1f} to {100 * high:.1f} %",
                      "macro F1": f"{m['macro_f1']:.3f}"}
        if "mean_average_precision" in m:
            rows[name].update({"micro F1": f"{m['micro_f1']:.3f}",
                               "mAP": f"{m['mean_average_precision']:.3f}"})
        rows[name]["test images"] = f"{int(m['n']):,}"
    return pd.DataFrame(rows).T


def headline_sentence(test: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    """What the ResNet got right, and by how much it beat (or lost to) the baseline."""
    key = main_score(test)[0]
    n, share = int(test["n"]), test[key]
    what = "is right on" if key == "accuracy" else "gets every label right on"
    text = f"The ResNet {what} {round(share * n):,} of {n:,} test images ({100 * share:.1f} %)"
    if baseline and key in baseline:
        diff = 100 * (share - baseline[key])
        text += (f", {abs(diff):.1f} points {'above' if diff >= 0 else 'below'} the classical "
                 f"baseline (colour and texture features, random forest) on the same images")
    return text + ". Intervals: each model's own (Wilson); `make pair` pairs two runs image " \
        "by image."


def _cam_titles(cams: CamExamples, names: list[str]) -> list[str]:
    return [f"{names[t]}" + ("" if t == p else f"\nseen as {names[p]}") + f" {c:.2f}"
            for t, p, c in zip(cams.true, cams.predicted, cams.confidence, strict=True)]


def quality_blocks(report: Report, folder: Path, test: dict[str, Any], names: list[str],
                   baseline: dict[str, Any] | None) -> None:
    """Confusion matrix, per-class F1 beside the baseline's: shared with evaluate."""
    figures = folder / "figures"
    if "confusion_matrix" in test:
        save_figure(rf.plot_confusion_normalised(test["confusion_matrix"], names,
                                                 "ResNet, test: rows are the true classes"),
                    figures / "report_confusion.png")
        report.add("img", "Confusion matrix, each row as shares of its true class",
                   "figures/report_confusion.png")
    else:
        report.add("img", "Per-label scores", f"figures/{test_summary_name(test)}.png")
    per_class = test.get("per_class") or test.get("per_label") or {}
    f1 = {"ResNet": {c: per_class[c]["f1-score"] for c in names if c in per_class}}
    base = (baseline or {}).get("per_class") or (baseline or {}).get("per_label")
    if base:
        f1["classical baseline"] = {c: base[c]["f1-score"] for c in names if c in base}
    save_figure(rf.plot_f1_beside(f1), figures / "report_f1.png")
    report.add("img", "F1 of each class", "figures/report_f1.png")
    worst = sorted(f1["ResNet"], key=f1["ResNet"].get)[:3]
    report.add("p", "Hardest classes for the ResNet: " + ", ".join(
        f"{c} (F1 {f1['ResNet'][c]:.2f})" for c in worst) + ".")


def cam_blocks(report: Report, folder: Path, names: list[str], cams: CamExamples | None
               ) -> None:
    """Grad-CAM maps over a few test images of each class."""
    if cams is not None and len(cams.images):
        save_figure(rf.plot_grad_cam(cams.images, cams.maps, _cam_titles(cams, names)),
                    folder / "figures" / "grad_cam.png")
        report.add("h2", "Where the network looked (Grad-CAM)")
        report.add("p", "Test images of each class (top) and, over each, the regions that "
                   "raised the score of the class the network chose (red: most). A title "
                   "'seen as' marks a wrong answer.")
        report.add("img", "Grad-CAM", "figures/grad_cam.png")


def _why_no_search(run: Run, run_record: dict[str, Any], train_images: int | None,
                   task: str, run_data: dict[str, int] | None) -> str:
    """Why a run searched nothing: its plan's, the curve's (``auto``) or its parameters'."""
    reason = run.plan.reasons.get("search.enabled") if run.plan else None
    if reason:
        return f"its plan (plan.json) says {reason}."
    auto = run_record.get("evidence", {}).get("reasons", {}).get("search.enabled")
    if auto:
        return f"search.enabled is auto, and {auto}."
    curve = f" {search_note(train_images, False, task=task, run_data=run_data)}" \
        if train_images else ""
    return f"search.enabled is false in its parameters.{curve}"


def search_blocks(report: Report, run: Run, record: dict[str, Any],
                  run_record: dict[str, Any]) -> None:
    """The search: convergence, each value against its score, the bounds of each step.

    ``record``: the run's metrics; ``run_record``: its ``run.json``.
    """
    search = record.get("search") or {}
    train_images = record.get("split_sizes", {}).get("train")
    task = run_record.get("params", {}).get("task", CURVE_TASK)
    # the network's input (height, width, bands): the curve's advice says where it differs
    run_data = shape_data(run.load_card().input_shape) if run.card_path.is_file() else None
    report.add("h2", "The search")
    if not run.search_history.is_file() or not search.get("trials"):
        why = _why_no_search(run, run_record, train_images, task, run_data)
        report.add("p", "No search ran in this run: the final training used the "
                   f"{trained_with(record)}. Why: {why}")
        return
    history = pd.read_csv(run.search_history)
    lit = (record.get("literature_baseline") or {}).get("val_loss")
    report.add("p", f"{search['trials']} trials ({search.get('failed_trials', 0)} failed); "
               f"best validation loss {search['best_val_loss']:.3f}"
               + (f" against {lit:.3f} for the {baseline_name(record.get('literature_baseline'))}"
                  if lit is not None else "")
               + f"; the final training used the {trained_with(record)}.")
    if train_images:
        report.add("p", search_note(train_images, True, task=task, run_data=run_data))
    values = pd.DataFrame({"chosen": search["best_hyperparameters"]})
    report.add("table", values.T)
    if run.figure("convergence").is_file():
        report.add("img", "Best validation loss so far, trial by trial", "figures/convergence.png")
    names = [k for k in search["best_hyperparameters"] if k in history.columns]
    save_figure(rf.plot_hyperparameter_scores(history, names), run.figure("report_values"))
    report.add("img", "Each hyperparameter against the trial's score", "figures/report_values.png")
    if search.get("step_bounds"):
        save_figure(rf.plot_step_bounds(search["step_bounds"]), run.figure("report_bounds"))
        report.add("img", "Bounds of each step", "figures/report_bounds.png")


def commit_words(commit: str | None) -> str:
    """A run's commit, shortened, saying when the code differed from it (``-dirty``)."""
    if not commit:
        return "unknown (not a git checkout)"
    sha, dirty = commit.removesuffix("-dirty"), commit.endswith("-dirty")
    return f"`{sha[:12]}`" + (" with uncommitted changes" if dirty else "")


def run_report(run: Run, cams: CamExamples | None = None) -> Report:
    """The report of a finished classifier run, from its folder."""
    m, record = read_json(run.metrics_path), read_json(run.record_path)
    names, test, base = m["class_names"], m["test"], m.get("classical_baseline")
    params = record.get("params", {})
    sizes = m.get("split_sizes", {})
    report = Report(f"Run report: {run.path.name}")
    report.add("p", f"{len(names)} classes; {', '.join(f'{v:,} {k}' for k, v in sizes.items())} "
               f"images of {params.get('preprocess', {}).get('image_size', '?')} px; model "
               f"`{params.get('model', {}).get('preset', '?')}`; parameters "
               f"`{record.get('params_file')}`"
               + (f" with `{record['overrides']}`" if record.get("overrides") else "")
               + f"; commit {commit_words(record.get('git_commit'))}.")
    report.add("h2", "Headline")
    chosen = trained_with(m)
    report.add("table", headline_table({f"ResNet ({chosen})": test,
                                        "classical baseline": base}))
    report.add("p", headline_sentence(test, base))
    report.add("h2", "Where it errs")
    quality_blocks(report, run.path, test, names, base)
    if run.figure("mistakes").is_file():
        report.add("img", "The most confident mistakes", "figures/mistakes.png")
    if run.figure("training_curves").is_file():
        report.add("h2", "Training")
        report.add("img", "Final training, epoch by epoch", "figures/training_curves.png")
    search_blocks(report, run, m, record)
    cam_blocks(report, run.path, names, cams)
    return report


def evaluation_report(folder: Path, metrics: dict[str, Any], names: list[str],
                      images: np.ndarray, y: np.ndarray, proba: np.ndarray,
                      cams: CamExamples | None, thresholds: np.ndarray | None = None
                      ) -> Report:
    """The same kind of report for a run's model scored on new images (``make evaluate``)."""
    report = Report(f"Evaluation: {metrics.get('data', folder.name)}")
    report.add("p", f"{int(metrics['n']):,} images; {len(metrics.get('skipped', []))} file(s) "
               "skipped (listed in metrics.json).")
    report.add("h2", "Headline")
    report.add("table", headline_table({"ResNet": metrics}))
    report.add("h2", "Where it errs")
    save_figure(plot_mistakes(images, y, proba, names, thresholds=thresholds),
                folder / "figures" / "mistakes.png")
    quality_blocks(report, folder, metrics, names, None)
    report.add("img", "The most confident mistakes", "figures/mistakes.png")
    cam_blocks(report, folder, names, cams)
    return report


def _markdown_table(df: pd.DataFrame) -> str:
    rows = [[str(i), *map(_fmt, row)]
            for i, row in zip(df.index, df.itertuples(index=False), strict=True)]
    return markdown_table(["", *map(str, df.columns)], rows)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def to_markdown(report: Report) -> str:
    """The report as Markdown, its figures linked (relative to the report's folder)."""
    out = [f"# {report.title}"]
    for kind, *rest in report.blocks:
        if kind == "h2":
            out.append(f"## {rest[0]}")
        elif kind == "p":
            out.append(rest[0])
        elif kind == "table":
            out.append(_markdown_table(rest[0]))
        elif kind == "img":
            out.append(f"![{rest[0]}]({rest[1]})")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def to_html(report: Report, folder: Path) -> str:
    """The report as one HTML file, its figures embedded (nothing else to send along)."""
    body = [f"<h1>{_inline(report.title)}</h1>"]
    for kind, *rest in report.blocks:
        if kind == "h2":
            body.append(f"<h2>{_inline(rest[0])}</h2>")
        elif kind == "p":
            body.append(f"<p>{_inline(rest[0])}</p>")
        elif kind == "table":
            body.append(rest[0].to_html(border=0, float_format=lambda v: f"{v:.4g}"))
        elif kind == "img":
            data = base64.b64encode((folder / rest[1]).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(rest[0])}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f"{_inline(rest[0])}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;"
             "padding:0 1em;color:#222}img{max-width:100%}table{border-collapse:collapse}"
             "td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}"
             "figcaption{color:#555;font-size:.9em}code{background:#f3f3f3}")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(report.title)}</title><style>{style}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(report: Report, folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder`` (atomically); returns both."""
    folder = Path(folder)
    md, page = folder / REPORT_MD, folder / REPORT_HTML
    atomic_write_text(md, to_markdown(report))
    atomic_write_text(page, to_html(report, folder))
    return md, page
