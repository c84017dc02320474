"""Pure metrics of predictions: labels and probabilities in, scores and tables out.

Accuracy, per-class scores, confusion, multi-label scores, decision thresholds, and the
tables a notebook shows; nothing here reads files or models.
"""

from __future__ import annotations

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
