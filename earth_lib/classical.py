"""The classical baseline beside every result: colour histograms + texture, random forest.

On small real sets a network trained from scratch can lose to this, so every run
reports both and the reader sees whether the deep model earned its cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.multiclass import OneVsRestClassifier

from earth_lib import data
from earth_lib.data import Split
from earth_lib.metrics import evaluate_predictions, tune_thresholds


def image_features(images: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per image: a histogram per band, band mean/std, and mean gradient magnitude per band.

    Chunk by chunk: memory stays bounded, and on-disk images are read piece by piece.
    """
    parts = list(data.chunks(len(images)))
    if len(parts) > 1:
        return np.concatenate([image_features(data.read_rows(images, part), bins)
                               for part in parts])
    n, _, _, c = images.shape
    x = np.asarray(images, dtype=np.float32)
    feats = []
    edges = np.linspace(0, 256, bins + 1)
    for b in range(c):
        band = x[..., b]
        hist = np.stack([np.histogram(im, bins=edges)[0] for im in band]) / band[0].size
        gy, gx = np.gradient(band, axis=(1, 2))
        grad = np.sqrt(gx ** 2 + gy ** 2)
        feats += [hist, band.mean(axis=(1, 2))[:, None] / 255, band.std(axis=(1, 2))[:, None] / 255,
                  grad.mean(axis=(1, 2))[:, None] / 255, grad.std(axis=(1, 2))[:, None] / 255]
    return np.concatenate(feats, axis=1).reshape(n, -1)


def fit_classical(images: np.ndarray, labels: np.ndarray, trees: int,
                  seed: int) -> RandomForestClassifier | OneVsRestClassifier:
    """Fit the random forest on image features (seeded, all cores).

    Multi-label (labels (N, L)): one forest per label, one-vs-rest.
    """
    rf = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=-1)
    if np.ndim(labels) == 2:
        rf = OneVsRestClassifier(rf)
    return rf.fit(image_features(images), labels)


def classical_proba(model: RandomForestClassifier | OneVsRestClassifier, images: np.ndarray,
                    num_classes: int) -> np.ndarray:
    """Class (or label) probabilities (N, num_classes), zero for classes absent from training."""
    p = model.predict_proba(image_features(images))
    if isinstance(model, OneVsRestClassifier):
        return p
    out = np.zeros((len(images), num_classes))
    out[:, model.classes_] = p
    return out


def baseline_metrics(train: Split, test: Split, class_names: list[str], *, enabled: bool,
                     trees: int, seed: int, val: Split | None = None
                     ) -> dict[str, Any] | None:
    """Fit on train, score on test: the same metrics as the network's (None when disabled).

    Multi-label: one-vs-rest forests, their thresholds tuned on ``val`` like the network's
    (0.5 without it).
    """
    if not enabled:
        return None
    rf = fit_classical(train.x, train.y, trees, seed)
    thresholds = None
    if np.ndim(train.y) == 2 and val is not None:
        thresholds = tune_thresholds(val.y, classical_proba(rf, val.x, len(class_names)))
    return evaluate_predictions(test.y, classical_proba(rf, test.x, len(class_names)),
                                class_names, thresholds)
