"""Metrics of predictions; evaluate a trained run on any labelled folder, or predict any folder.

The images go through the same enhancement the run's training data had (stored in the
run's model card), in memory: the user's folder is never written to.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from earth_lib.analysis import BandPCA
from earth_lib.data import index_folder
from earth_lib.errors import (
    DEFAULT_BAD_FILE_POLICY,
    BadImageError,
    DatasetNotFoundError,
    skip_or_raise,
)
from earth_lib.io import IMAGE_EXTENSIONS, atomic_write_csv, atomic_write_json, read_image
from earth_lib.preprocessing import enhance
from earth_lib.progress import progress_bar
from earth_lib.run import ModelCard, load_run


def evaluate_predictions(y_true: np.ndarray, proba: np.ndarray, class_names: list[str],
                         thresholds: np.ndarray | float | None = None) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, confusion matrix and cross-entropy.

    Multi-label (``y_true`` (N, L)): :func:`evaluate_multilabel` at ``thresholds``
    (default 0.5).
    """
    if np.ndim(y_true) == 2:
        return evaluate_multilabel(y_true, proba, class_names,
                                   0.5 if thresholds is None else thresholds)
    y_pred = proba.argmax(axis=1)
    labels = list(range(len(class_names)))
    report = classification_report(y_true, y_pred, labels=labels, target_names=class_names,
                                   output_dict=True, zero_division=0)
    eps = 1e-7
    ce = float(-np.mean(np.log(np.clip(proba[np.arange(len(y_true)), y_true], eps, 1))))
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "cross_entropy": ce,
        "n": int(len(y_true)),
        "per_class": {c: {k: float(v) for k, v in report[c].items()} for c in class_names},
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def tune_thresholds(y_val: np.ndarray, proba_val: np.ndarray) -> np.ndarray:
    """Per-label decision thresholds that maximise each label's F1 on validation.

    Tuned on validation only and applied unchanged to test; 0.5 for a label that
    validation never shows (no evidence to move it).
    """
    y_val = np.asarray(y_val, dtype=bool)
    out = np.full(y_val.shape[1], 0.5)
    for j in range(y_val.shape[1]):
        if not y_val[:, j].any():
            continue
        candidates = np.unique(proba_val[:, j])
        f1 = [f1_score(y_val[:, j], proba_val[:, j] >= t, zero_division=0) for t in candidates]
        out[j] = float(candidates[int(np.argmax(f1))])
    return out


def evaluate_multilabel(y_true: np.ndarray, proba: np.ndarray, label_names: list[str],
                        thresholds: np.ndarray | float = 0.5) -> dict[str, Any]:
    """Multi-label metrics: per-label precision/recall/F1 and AP, micro and macro F1, mAP.

    ``thresholds`` (one per label, e.g. from :func:`tune_thresholds`) turn probabilities
    into label sets; mean average precision uses the probabilities themselves (labels
    absent from ``y_true`` are left out of it).
    """
    y_true = np.asarray(y_true, dtype=bool)
    pred = proba >= np.broadcast_to(np.asarray(thresholds, dtype=float), (proba.shape[1],))
    p, r, f, support = precision_recall_fscore_support(y_true, pred, zero_division=0)
    present = y_true.any(axis=0)
    ap = [float(average_precision_score(y_true[:, j], proba[:, j])) if present[j]
          else float("nan") for j in range(len(label_names))]
    eps = 1e-7
    bce = float(-np.mean(y_true * np.log(np.clip(proba, eps, 1))
                         + ~y_true * np.log(np.clip(1 - proba, eps, 1))))
    return {
        "micro_f1": float(f1_score(y_true, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, pred, average="macro", zero_division=0)),
        "mean_average_precision": float(np.nanmean(ap)) if present.any() else float("nan"),
        "exact_match": float(np.mean((pred == y_true).all(axis=1))),
        "binary_cross_entropy": bce,
        "n": int(len(y_true)),
        "thresholds": dict(zip(label_names, np.broadcast_to(
            np.asarray(thresholds, dtype=float), (len(label_names),)).tolist(), strict=True)),
        "per_label": {name: {"precision": float(p[j]), "recall": float(r[j]),
                             "f1-score": float(f[j]), "support": int(support[j]),
                             "average_precision": ap[j]}
                      for j, name in enumerate(label_names)},
    }


def headline(metrics: dict[str, Any]) -> str:
    """The test result in one line: accuracy, or micro F1 and mAP (multi-label)."""
    if "micro_f1" in metrics:
        return (f"test micro F1 {metrics['micro_f1']:.3f}, mAP "
                f"{metrics['mean_average_precision']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
                f"on {metrics['n']} images")
    return f"test accuracy {metrics['accuracy']:.3f} on {metrics['n']} images"


def per_class_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (per label, with AP, if multi-label)."""
    return pd.DataFrame(metrics.get("per_class") or metrics["per_label"]).T.round(3)


def comparison_table(results: dict[str, dict[str, Any] | None]) -> pd.DataFrame:
    """Test accuracy and macro F1 of several models side by side (a None result is left out).

    Multi-label: micro F1, mean average precision and macro F1.
    """
    def row(m: dict[str, Any]) -> dict[str, float]:
        if "micro_f1" in m:
            return {"micro F1": m["micro_f1"], "mAP": m["mean_average_precision"],
                    "macro F1": m["macro_f1"]}
        return {"test accuracy": m["accuracy"], "macro F1": m["macro_f1"]}

    return pd.DataFrame({name: row(m) for name, m in results.items() if m}).T.round(3)


def prepare_images(paths: list[Path], card: ModelCard, band_pca: BandPCA | None = None,
                   on_bad_file: str = DEFAULT_BAD_FILE_POLICY, progress: bool = True
                   ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Enhance images as the run's training data was; returns (images, kept indices, skipped)."""
    settings = card.preprocess
    images, kept, skipped = [], [], []
    shape = (settings["image_size"], settings["image_size"], settings["bands"])
    for i, p in enumerate(progress_bar(paths, desc="preparing images", disable=not progress,
                                       mininterval=2)):
        try:
            img = enhance(read_image(p), **settings)
            if img.shape != shape:
                raise BadImageError(f"{p}: gives shape {img.shape}, the model takes {shape}")
        except (BadImageError, ValueError) as err:
            skip_or_raise(on_bad_file, err, p, skipped)
            continue
        images.append(img)
        kept.append(i)
    out = np.stack(images) if images else np.zeros((0, *shape), np.uint8)
    if band_pca is not None:
        out = band_pca.transform(out)
    return out, kept, skipped


def _name(folder: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.resolve().name) or "data"


def output_name(folder: str | Path) -> str:
    """``<folder name>-<8 hex of its full path>``: a folder's evaluation or predictions.

    Two data folders with one name (``/a/test``, ``/b/test``) never collide.
    """
    path = Path(folder).resolve()
    return f"{_name(path)}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def _labelled_images(data_dir: str | Path, names: list[str], labels_csv: str | Path | None,
                     multilabel: bool) -> tuple[list[Path], np.ndarray, list[tuple[str, str]]]:
    """The images to evaluate, their labels in the model's order, and files skipped.

    One class per image: class folders matched by name. Multi-label: every image of
    ``data_dir`` listed in ``labels_csv``. A class or label the model does not know is an
    error naming it.
    """
    if multilabel:
        from earth_lib.multilabel import read_labels_csv

        if not labels_csv:
            raise ValueError("this run is multi-label: give the labels CSV of the folder "
                             "(make evaluate ... LABELS=<csv>, or --labels).")
        table = read_labels_csv(labels_csv, data_dir)
        unknown = [n for n in table.names if n not in names]
        if unknown:
            raise ValueError(f"{labels_csv}: label {unknown[0]!r} is not one the model knows "
                             f"({', '.join(names)}).")
        y = np.zeros((len(table.paths), len(names)), dtype=np.uint8)
        y[:, [names.index(n) for n in table.names]] = table.y
        return [Path(p) for p in table.paths], y, []
    index = index_folder(data_dir, min_classes=1)
    unknown = [c for c in index.classes if c not in names]
    if unknown:
        raise ValueError(f"{data_dir}: class {unknown[0]!r} is not one the model knows "
                         f"({', '.join(names)}); rename or remove that folder.")
    return ([p for p, _ in index.files], np.array([names.index(c) for _, c in index.files]),
            index.skipped)


def evaluate_folder(run_dir: str | Path, data_dir: str | Path, name: str | None = None,
                    progress: bool = True, labels_csv: str | Path | None = None
                    ) -> dict[str, Any]:
    """Evaluate a run's model on a labelled set; writes ``evaluation/<name>/``.

    One class per image: class folders matched to the model's classes by name.
    Multi-label runs: the images of ``data_dir`` with their labels from ``labels_csv``,
    scored at the run's validation-tuned thresholds. Writes metrics.json, the confusion
    matrix (or per-label scores) and a grid of the worst mistakes.
    """
    from earth_lib import plotting
    from earth_lib.training import predict_proba

    run = load_run(run_dir)
    model, card = run.load_model()
    names = card.class_names
    paths, labels, unreadable = _labelled_images(data_dir, names, labels_csv,
                                                 card.thresholds is not None)
    images, kept, skipped = prepare_images(paths, card, run.load_band_pca(card),
                                           progress=progress)
    if not len(images):
        raise ValueError(f"{data_dir}: no readable images to evaluate.")
    y = labels[kept]
    proba = predict_proba(model, images, tta=card.tta)
    thresholds = None if card.thresholds is None else np.asarray(card.thresholds)
    metrics = evaluate_predictions(y, proba, names, thresholds)
    metrics.update({"data": str(data_dir), "skipped": skipped + unreadable})
    out = run.output_dir("evaluation", name or output_name(data_dir))
    atomic_write_json(out / "metrics.json", metrics)
    plotting.save_figure(plotting.plot_test_summary(metrics, names, _name(Path(data_dir))),
                         out / "figures" / f"{plotting.test_summary_name(metrics)}.png")
    plotting.save_figure(plotting.plot_mistakes(images, y, proba, names, thresholds=thresholds),
                         out / "figures" / "mistakes.png")
    return metrics


def predict_folder(run_dir: str | Path, data_dir: str | Path, name: str | None = None,
                   progress: bool = True) -> Path:
    """Predict every image under ``data_dir``; writes ``predictions/<name>/predictions.csv``.

    Columns: path, predicted class, then the probability of every class. Multi-label
    runs: path, the predicted labels (each label at or above its threshold, joined by
    ``;``), then every label's probability. Unreadable files are listed in
    ``unreadable.csv`` beside it; they do not stop the run.
    """
    from earth_lib.training import predict_proba

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Folder not found: {data_dir}")
    paths = sorted(p for p in data_dir.rglob("*") if p.is_file()
                   and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not paths:
        raise DatasetNotFoundError(f"{data_dir}: no image files in it (or its sub-folders); "
                                   "nothing to predict.")
    run = load_run(run_dir)
    model, card = run.load_model()
    names = card.class_names
    images, kept, skipped = prepare_images(paths, card, run.load_band_pca(card),
                                           progress=progress)
    proba = (predict_proba(model, images, tta=card.tta) if len(images)
             else np.zeros((0, len(names))))
    out = run.output_dir("predictions", name or output_name(data_dir))
    if card.thresholds is None:
        header, chosen = ["path", "predicted_class"], [names[int(p.argmax())] for p in proba]
    else:
        header = ["path", "predicted_labels"]
        chosen = [";".join(n for n, v, t in zip(names, p, card.thresholds, strict=True) if v >= t)
                  for p in proba]
    atomic_write_csv(out / "predictions.csv", [*header, *[f"p_{c}" for c in names]],
                     ([str(paths[i]), c, *[f"{v:.6f}" for v in p]]
                      for i, c, p in zip(kept, chosen, proba, strict=True)))
    run.write_skipped(skipped, out / "unreadable.csv")
    return out / "predictions.csv"
