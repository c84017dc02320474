"""The figures of the reports: a run's, and those drawn from the budgeted runs' records.

A run's: scores beside the baseline, the search, Grad-CAM. Each function takes results
(metrics, a search history, maps, records) and returns a Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from earth_lib.report.plotting import show_image


def plot_confusion_normalised(cm: np.ndarray, class_names: list[str], title: str = ""
                              ) -> plt.Figure:
    """Confusion matrix with each true class's row as fractions (recall on the diagonal)."""
    cm = np.asarray(cm, dtype=float)
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.6 + 0.6 * n, 1.0 + 0.5 * n))
    sns.heatmap(rows, annot=n <= 15, fmt=".2f", cmap="Blues", vmin=0, vmax=1, ax=ax,
                xticklabels=class_names, yticklabels=class_names,
                annot_kws={"fontsize": 7}, cbar_kws={"label": "share of the true class"})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_f1_beside(scores: dict[str, dict[str, float]]) -> plt.Figure:
    """Per-class F1 of each model (``{model: {class: f1}}``), side by side."""
    df = pd.DataFrame(scores)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(df) + 2), 3.4))
    df.plot.bar(ax=ax, width=0.8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 on the test images")
    ax.legend(fontsize=7, loc="lower left")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def plot_hyperparameter_scores(history: pd.DataFrame, names: list[str],
                               score: str = "val_loss") -> plt.Figure:
    """Each searched hyperparameter against the trial's score, one panel each, by step."""
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False)
    ok = history[history["status"] == "ok"]
    for ax, name in zip(axes.flat, names, strict=False):
        for step, part in ok.groupby("step"):
            ax.scatter(part[name], part[score], s=14, alpha=0.75,
                       label=f"step {step}" if step else "literature values")
        if name == "learning_rate" and len(ok) and (ok[name] > 0).all():
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel(score, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("each trial's value and score (lower is better)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_step_bounds(step_bounds: list[dict]) -> plt.Figure:
    """The range searched for each hyperparameter at each step (the bounds tightening)."""
    names = [k for k in step_bounds[0] if k != "step"]
    fig, axes = plt.subplots(1, len(names), figsize=(1.25 * len(names) + 1, 2.8),
                             squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for i, step in enumerate(step_bounds):
            spec = step[name]
            values = spec.get("bounds") or spec.get("values")
            if "bounds" in spec:  # a range
                ax.plot([i + 1, i + 1], [min(values), max(values)], lw=6,
                        solid_capstyle="butt", color=f"C{i}")
            else:  # the values a discrete hyperparameter may take
                ax.scatter([i + 1] * len(values), values, color=f"C{i}", s=18, zorder=3)
        if spec.get("log"):
            ax.set_yscale("log")
            _log_axis(ax.yaxis)
        ax.set_xlim(0.4, len(step_bounds) + 0.6)
        ax.set_xticks(range(1, len(step_bounds) + 1))
        ax.set_title(name, fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_xlabel("step", fontsize=7)
    fig.suptitle("the bounds searched at each step", fontsize=9)
    fig.tight_layout()
    return fig


def _log_axis(axis) -> None:
    """A log axis with a few plain labels (the default crowds its minor ticks)."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def plot_grad_cam(images: np.ndarray, maps: np.ndarray, titles: list[str],
                  per_row: int = 6) -> plt.Figure:
    """Each image beside itself with its Grad-CAM map over it (red: where the class was seen)."""
    n = len(images)
    cols = max(1, min(per_row, n))
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(2 * rows, cols, figsize=(1.7 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        show_image(axes[2 * r, c], images[i])
        axes[2 * r, c].set_title(titles[i], fontsize=6)
        show_image(axes[2 * r + 1, c], images[i])
        axes[2 * r + 1, c].imshow(maps[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
    if not n:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center")
    fig.tight_layout()
    return fig


def plot_budget_accuracy(records: list[dict]) -> plt.Figure:
    """Test accuracy against the time budget: the ResNet and the same runs' classical baseline."""
    df = pd.DataFrame([{"data": f"{r['data']['images']:,} images, {r['data']['classes']} "
                        f"classes, {r['data']['native_size']} px", "budget": r["budget_minutes"],
                        "took": r["minutes"], "ResNet": 100 * r["accuracy"],
                        "classical baseline": None if r["classical_accuracy"] is None
                        else 100 * r["classical_accuracy"]} for r in records])
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, (data, g) in enumerate(df.sort_values("budget").groupby("data", sort=False)):
        ax.plot(g["budget"], g["ResNet"], "-o", color=f"C{i}", label=f"ResNet, {data}")
        if g["classical baseline"].notna().any():
            ax.plot(g["budget"], g["classical baseline"], "--s", color=f"C{i}", alpha=0.6,
                    label=f"classical baseline, {data}")
        for _, r in g.iterrows():
            ax.annotate(f"took {r['took']:.0f} min", (r["budget"], r["ResNet"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=7)
    ax.set_xticks(sorted(df["budget"].unique()))
    ax.set(xlabel="budget (minutes, 2 CPU cores)", ylabel="test accuracy (%)",
           title="A run that plans itself: accuracy against its time budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
