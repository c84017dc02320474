"""Figures, drawn at the edge from returned results. Each function returns a Figure."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from earth_lib.io import atomic_write_bytes


def to_display(image: np.ndarray) -> np.ndarray:
    """An (H, W, C) image as something imshow can show: gray, RGB, or B4-B3-B2 for 13 bands."""
    img = np.asarray(image, dtype=np.float32)
    if img.max() > 1.0:
        img = img / 255.0
    c = img.shape[-1]
    if c == 1:
        return np.clip(img[..., 0], 0, 1)
    if c == 13:  # Sentinel-2 order B1..B12 with B8A: true colour is B4, B3, B2
        img = img[..., [3, 2, 1]]
    elif c != 3:
        img = img[..., :3] if c > 3 else np.repeat(img[..., :1], 3, axis=-1)
    return np.clip(img, 0, 1)


def save_figure(fig: plt.Figure, path: str | Path, show: bool = False, dpi: int = 110) -> Path:
    """Save a figure as PNG atomically and close it; ``show``: display that PNG in a notebook.

    Displayed with its file name as alternative text (:func:`earth_lib.cli.notebook_html`
    keeps it in the notebook's HTML page).
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    if show:
        from IPython.display import Image, display

        display(Image(data=buf.getvalue(), format="png",
                      alt=f"figure: {Path(path).stem.replace('_', ' ')}"))
    return Path(path)


def show_image(ax, img) -> None:
    """Show a scene on an axis without ticks (see :func:`to_display`)."""
    shown = to_display(img)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_before_after(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> plt.Figure:
    """Raw (top) and enhanced (bottom) example per class: pairs of (class, raw, processed)."""
    fig, axes = plt.subplots(2, len(pairs), figsize=(1.8 * len(pairs), 3.8), squeeze=False)
    for j, (name, raw, proc) in enumerate(pairs):
        show_image(axes[0, j], raw)
        show_image(axes[1, j], proc)
        axes[0, j].set_title(name, fontsize=8)
    axes[0, 0].set_ylabel("raw")
    axes[1, 0].set_ylabel("processed")
    fig.tight_layout()
    return fig


def plot_sample_grid(images: np.ndarray, labels: np.ndarray, class_names: list[str],
                     per_class: int = 6, seed: int = 0) -> plt.Figure:
    """A grid of random images, one row per class (multi-label: images showing the label)."""
    rng = np.random.default_rng(seed)
    k = len(class_names)
    fig, axes = plt.subplots(k, per_class, figsize=(1.3 * per_class, 1.3 * k), squeeze=False)
    for r, name in enumerate(class_names):
        idx = np.flatnonzero(labels[:, r] == 1 if labels.ndim == 2 else labels == r)
        pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else []
        for c in range(per_class):
            ax = axes[r, c]
            if c < len(pick):
                show_image(ax, images[pick[c]])
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_class_counts(table) -> plt.Figure:
    """Bar chart of images per class and split (from ``analysis.class_counts``)."""
    df = table.drop(index=["total", "images"], columns="total", errors="ignore")
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(df)), 3.2))
    df.plot.bar(ax=ax, stacked=True)
    ax.set_ylabel("images")
    fig.tight_layout()
    return fig


def plot_band_histograms(hists: np.ndarray, class_names: list[str]) -> plt.Figure:
    """Intensity histogram per class, one panel per band."""
    n_bands = hists.shape[1]
    cols = min(n_bands, 4)
    rows = int(np.ceil(n_bands / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    centres = (np.arange(hists.shape[2]) + 0.5) * 256 / hists.shape[2]
    palette = sns.color_palette("tab10", len(class_names))
    for b in range(rows * cols):
        ax = axes.flat[b]
        if b >= n_bands:
            ax.axis("off")
            continue
        for k, name in enumerate(class_names):
            ax.plot(centres, hists[k, b], label=name, color=palette[k % 10])
        ax.set_title(f"band {b + 1}", fontsize=9)
        ax.set_xlabel("intensity (0-255)")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_image_row(images: np.ndarray, titles: list[str], cmap_signed: bool = False) -> plt.Figure:
    """A row of images (mean images per class, eigen-images...) with titles."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(1.8 * n, 2.1), squeeze=False)
    for ax, img, title in zip(axes[0], images, titles, strict=True):
        if cmap_signed:
            shown = img.mean(-1)
            m = np.abs(shown).max() or 1
            ax.imshow(shown, cmap="RdBu_r", vmin=-m, vmax=m)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            show_image(ax, img)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_pca_variance(ratio: np.ndarray, k: int, variance: float) -> plt.Figure:
    """Cumulative explained variance with the threshold and the number of components kept."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    cum = np.cumsum(ratio)
    ax.plot(np.arange(1, len(cum) + 1), cum)
    ax.axhline(variance, ls="--", c="grey")
    ax.axvline(k, ls=":", c="red", label=f"{k} components = {variance:.0%}")
    ax.set_xlabel("components")
    ax.set_ylabel("cumulative explained variance")
    ax.set_xscale("log")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_projection(scores: np.ndarray, labels: np.ndarray, class_names: list[str]) -> plt.Figure:
    """Images on the first two principal components, coloured by class (or first label)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    first = np.argmax(labels, axis=1) if labels.ndim == 2 else labels
    sns.scatterplot(x=scores[:, 0], y=scores[:, 1], ax=ax, s=12,
                    hue=[class_names[i] for i in first], hue_order=class_names,
                    palette="tab10")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, markerscale=0.8, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_convergence(history: list[dict], baseline: float | None = None) -> plt.Figure:
    """Search convergence: each trial's val loss and the best so far, steps marked.

    ``history`` holds the trials as rows (``step``, ``val_loss``); with none (search off)
    the figure says so, and nothing else (the run's report names the values trained).
    """
    if not history:
        fig, ax = plt.subplots(figsize=(6.5, 1.2))
        ax.text(0.5, 0.5, "no search ran: no trials to draw", ha="center", va="center")
        ax.axis("off")
        return fig
    steps = np.array([r["step"] for r in history], dtype=int)
    losses = np.array([r["val_loss"] for r in history], dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    x = np.arange(1, len(losses) + 1)
    ax.scatter(x, losses, c=steps, cmap="viridis", s=18, label="trial")
    finite = np.where(np.isfinite(losses), losses, np.inf)
    ax.plot(x, np.minimum.accumulate(finite), c="black", label="best so far")
    if baseline is not None:
        ax.axhline(baseline, ls="--", c="red", label="literature baseline")
    for s in np.unique(steps)[1:]:
        ax.axvline(x[np.argmax(steps == s)] - 0.5, c="grey", lw=0.8)
    ax.set_xlabel("trial")
    ax.set_ylabel("validation cross-entropy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_training_curves(history: dict[str, list[float]]) -> plt.Figure:
    """Loss and accuracy per epoch, training and validation."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(history["loss"], label="train loss")
    axes[0].plot(history["val_ce"], label="val cross-entropy")
    axes[1].plot(history["accuracy"], label="train")
    axes[1].plot(history["val_accuracy"], label="val")
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("accuracy")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm: np.ndarray, class_names: list[str], title: str = "") -> plt.Figure:
    """Confusion matrix (counts), true classes as rows."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    sns.heatmap(np.asarray(cm), annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=class_names, yticklabels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_mistakes(images: np.ndarray, y_true: np.ndarray, proba: np.ndarray,
                  class_names: list[str], n: int = 12,
                  thresholds: np.ndarray | None = None) -> plt.Figure:
    """The most confident mistakes: image, true class, predicted class and its probability.

    Multi-label (``y_true`` (N, L), ``thresholds`` per label): the images with the most
    wrong labels, each titled with the labels missed and the labels added.
    """
    multi = y_true.ndim == 2
    if multi:
        pred = proba >= (0.5 if thresholds is None else np.asarray(thresholds))
        errors = (pred != y_true.astype(bool)).sum(axis=1)
        wrong = np.flatnonzero(errors)
        wrong = wrong[np.lexsort((-np.abs(proba[wrong] - 0.5).sum(1), -errors[wrong]))][:n]
    else:
        pred = proba.argmax(1)
        wrong = np.flatnonzero(pred != y_true)
        wrong = wrong[np.argsort(-proba[wrong, pred[wrong]])][:n]
    cols = max(1, min(6, len(wrong)))
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        show_image(ax, images[i])
        ax.axis("on")
        if multi:
            row = list(zip(class_names, y_true[i], pred[i], strict=True))
            missed = [c for c, t, p in row if t and not p]
            added = [c for c, t, p in row if p and not t]
            title = f"missed {', '.join(missed) or '-'}\nadded {', '.join(added) or '-'}"
        else:
            title = (f"true {class_names[y_true[i]]}\npred {class_names[pred[i]]} "
                     f"{proba[i, pred[i]]:.2f}")
        ax.set_title(title, fontsize=7)
    if not len(wrong):
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center")
    fig.tight_layout()
    return fig


def plot_cooccurrence(table) -> plt.Figure:
    """Images showing both labels (from ``analysis.label_cooccurrence``); diagonal: per label."""
    n = len(table)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 0.8 + 0.5 * n))
    sns.heatmap(table, annot=True, fmt="d", cmap="Greens", cbar=False, ax=ax)
    ax.set_title("images showing both labels")
    fig.tight_layout()
    return fig


def test_summary_name(metrics: dict) -> str:
    """File name (no suffix) of :func:`plot_test_summary`'s figure for these metrics."""
    return "confusion_matrix" if "confusion_matrix" in metrics else "per_label_scores"


def plot_test_summary(metrics: dict, class_names: list[str], title: str = "") -> plt.Figure:
    """The test result at a glance: confusion matrix, or per-label P/R/F1/AP (multi-label)."""
    if "confusion_matrix" in metrics:
        return plot_confusion_matrix(metrics["confusion_matrix"], class_names, title)
    df = pd.DataFrame(metrics["per_label"]).T[["precision", "recall", "f1-score",
                                                 "average_precision"]]
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(df)), 3.4))
    df.plot.bar(ax=ax, width=0.8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{title}: micro F1 {metrics['micro_f1']:.3f}, "
                 f"mAP {metrics['mean_average_precision']:.3f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def _arm_colours(arms: list[str]) -> dict[str, Any]:
    palette = sns.color_palette("tab10", len(arms))
    return {a: palette[i] for i, a in enumerate(arms)}


def plot_budget_curves(results: list, trial_epochs: float) -> plt.Figure:
    """Best validation loss so far against trial-epochs spent, for every arm and seed.

    Only ordinary trials count for the loss (a longer finalist trial's loss is not on the
    same scale); their epochs still count for the budget.
    """
    arms = list(dict.fromkeys(r.arm for r in results))
    colour = _arm_colours(arms)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for r in results:
        budgets = np.array([row.get("budget", 1.0) for row in r.history], dtype=float)
        spent = np.cumsum(budgets) * r.trial_epochs / max(budgets.sum(), 1e-9)
        loss = np.array([row["val_loss"] if row.get("budget", 1.0) == 1.0 else np.inf
                         for row in r.history], dtype=float)
        best = np.minimum.accumulate(np.where(np.isfinite(loss), loss, np.inf))
        shown = np.isfinite(best)
        ax.step(spent[shown], best[shown], where="post", color=colour[r.arm], alpha=0.8,
                marker="o" if len(spent) == 1 else None,
                label=r.arm if r.seed == min(x.seed for x in results if x.arm == r.arm) else None)
    ax.axvline(trial_epochs, color="grey", lw=0.8, ls="--", label="budget")
    ax.set_xlabel("trial-epochs spent")
    ax.set_ylabel("best validation cross-entropy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_arm_accuracy(results: list) -> plt.Figure:
    """Test accuracy of every arm: one dot per seed, the mean as a bar."""
    arms = list(dict.fromkeys(r.arm for r in results))
    colour = _arm_colours(arms)
    fig, ax = plt.subplots(figsize=(1.3 * len(arms) + 1.5, 3.4))
    for i, arm in enumerate(arms):
        acc = [r.test["accuracy"] for r in results if r.arm == arm]
        ax.bar(i, np.mean(acc), color=colour[arm], alpha=0.35, width=0.6)
        ax.scatter(np.full(len(acc), i), acc, color=colour[arm], s=22, zorder=3)
    ax.set_xticks(range(len(arms)), arms, rotation=20)
    lo = min(r.test["accuracy"] for r in results)
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.set_ylabel("test accuracy")
    fig.tight_layout()
    return fig


def plot_trial_values(results: list, names: list[str]) -> plt.Figure:
    """Where each arm's trials went, per hyperparameter; the chosen values circled."""
    arms = list(dict.fromkeys(r.arm for r in results))
    colour = _arm_colours(arms)
    cols = 3
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.4 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes.ravel(), names, strict=False):
        for i, arm in enumerate(arms):
            mine = [r for r in results if r.arm == arm]
            vals = [row[name] for r in mine for row in r.history if name in row]
            ax.scatter(i + rng.uniform(-0.25, 0.25, len(vals)), vals, s=6, alpha=0.45,
                       color=colour[arm])
            ax.scatter(np.full(len(mine), i), [r.hyperparameters[name] for r in mine], s=60,
                       facecolors="none", edgecolors="black", lw=1.2)
        if name == "learning_rate":
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(len(arms)), arms, rotation=30, fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
