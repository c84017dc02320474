"""Training and evaluation: compile, fit with warm-up + cosine decay and early stopping, test.

The search objective is built here (``make_objective``) and handed to the generic search
module, which never sees a network. The objective is the validation cross-entropy of
the best epoch (plain cross-entropy, whatever label smoothing the training loss uses).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import classification_report, confusion_matrix  # noqa: E402

from earth_lib.augmentation import augmentation_layers, make_dataset  # noqa: E402
from earth_lib.io import atomic_write_json  # noqa: E402
from earth_lib.model import build_from_preset  # noqa: E402


@dataclass
class Split:
    """Arrays of one split: images (or PCA scores) and integer labels."""

    x: np.ndarray
    y: np.ndarray


def compile_model(model: keras.Model, learning_rate: float, steps_per_epoch: int, epochs: int,
                  warmup_epochs: int = 1, weight_decay: float = 1e-4,
                  label_smoothing: float = 0.0) -> keras.Model:
    """Compile with AdamW, linear warm-up then cosine decay, and a plain cross-entropy metric."""
    total = max(1, steps_per_epoch * epochs)
    warm = min(steps_per_epoch * warmup_epochs, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate * 0.1 if warm else learning_rate,
        decay_steps=max(1, total - warm), alpha=0.01,
        warmup_target=learning_rate if warm else None, warmup_steps=warm)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy", keras.metrics.CategoricalCrossentropy(name="ce")],
    )
    return model


def use_mixed_precision_on_gpu() -> bool:
    """Compute in float16 where a GPU is present (the classifier layer stays float32)."""
    import tensorflow as tf

    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    if on_gpu and keras.mixed_precision.global_policy().name != "mixed_float16":
        keras.mixed_precision.set_global_policy("mixed_float16")
    return on_gpu


class EpochLog(keras.callbacks.Callback):
    """One short line per epoch (readable in notebooks and terminals alike)."""

    def __init__(self, prefix: str = "", every: int = 1):
        super().__init__()
        self.prefix, self.every = prefix, every

    def on_epoch_end(self, epoch, logs=None):
        """Print the epoch's training and validation figures."""
        logs = logs or {}
        if (epoch + 1) % self.every == 0:
            print(f"{self.prefix}epoch {epoch + 1}: loss={logs.get('loss', float('nan')):.4f} "
                  f"acc={logs.get('accuracy', float('nan')):.3f} "
                  f"val_ce={logs.get('val_ce', float('nan')):.4f} "
                  f"val_acc={logs.get('val_accuracy', float('nan')):.3f}", flush=True)


def train_model(
    hp: dict[str, Any],
    train: Split,
    val: Split,
    num_classes: int,
    input_shape: tuple[int, int, int],
    *,
    preset: str = "small",
    epochs: int = 10,
    patience: int = 5,
    warmup_epochs: int = 1,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.0,
    dropout: float = 0.0,
    seed: int = 42,
    decoder: tuple | None = None,
    verbose: bool = True,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build and train one ResNet with these hyperparameters; best-val-loss weights restored.

    ``hp`` holds the augmentation values, learning_rate, batch_size, kernel_size and,
    optionally, epochs (which then overrides ``epochs``).
    """
    keras.utils.set_random_seed(int(seed))
    use_mixed_precision_on_gpu()
    epochs = int(hp.get("epochs", epochs))
    batch = int(hp["batch_size"])
    model = build_from_preset(input_shape, num_classes, preset, int(hp["kernel_size"]), dropout)
    steps = math.ceil(len(train.y) / batch)
    compile_model(model, float(hp["learning_rate"]), steps, epochs, warmup_epochs, weight_decay,
                  label_smoothing)
    train_ds = make_dataset(train.x, train.y, num_classes, batch, augmentation_layers(hp, seed),
                            shuffle=True, seed=seed, decoder=decoder)
    val_ds = make_dataset(val.x, val.y, num_classes, 256, decoder=decoder)
    stop = keras.callbacks.EarlyStopping(monitor="val_ce", mode="min", patience=patience,
                                         restore_best_weights=True)
    callbacks = [stop] + ([EpochLog("  ")] if verbose else [])
    hist = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0, shuffle=False,
                     callbacks=callbacks)
    return model, {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def make_objective(train: Split, val: Split, num_classes: int, input_shape: tuple[int, int, int],
                   *, seed: int = 42, **train_kwargs) -> Callable[[dict], dict[str, float]]:
    """The search objective: train with ``hp`` and return the best epoch's val cross-entropy."""
    def objective(hp: dict) -> dict[str, float]:
        _, hist = train_model(hp, train, val, num_classes, input_shape, seed=seed,
                              verbose=False, **train_kwargs)
        ce = np.array(hist["val_ce"], dtype=float)
        ce = np.where(np.isfinite(ce), ce, np.inf)
        best = int(np.argmin(ce))
        keras.backend.clear_session()
        return {"val_loss": float(ce[best]), "val_accuracy": float(hist["val_accuracy"][best])}

    return objective


def dihedral_views(images: np.ndarray) -> list[np.ndarray]:
    """The eight flips/rotations of a batch (N, H, W, C) of square images."""
    views = []
    for k in range(4):
        r = np.rot90(images, k, axes=(1, 2))
        views += [r, r[:, :, ::-1]]
    return views


def predict_proba(model: keras.Model, images: np.ndarray, tta: bool = False,
                  batch_size: int = 128) -> np.ndarray:
    """Class probabilities; with ``tta``, averaged over the eight flips/rotations."""
    views = dihedral_views(images) if tta else [images]
    probs = [model.predict(v.astype(np.float32), batch_size=batch_size, verbose=0) for v in views]
    return np.mean(probs, axis=0)


def evaluate_predictions(y_true: np.ndarray, proba: np.ndarray,
                         class_names: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, confusion matrix and cross-entropy."""
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


def split_arrays(images: np.ndarray, labels: np.ndarray, split: np.ndarray) -> dict[str, Split]:
    """The train/val/test arrays for a split assignment."""
    return {name: Split(images[split == name], labels[split == name])
            for name in ("train", "val", "test")}


def train_settings(params: dict[str, Any], final: bool) -> dict[str, Any]:
    """Keyword arguments of :func:`train_model` from checked parameters (search or final)."""
    m, t = params["model"], params["train"]
    return {"preset": m["preset"], "weight_decay": m["weight_decay"],
            "label_smoothing": m["label_smoothing"], "dropout": m["dropout"],
            "warmup_epochs": t["warmup_epochs"],
            "epochs": t["epochs"] if final else params["search"]["epochs"],
            "patience": t["patience"] if final else params["search"]["epochs"]}


def search_data(train: Split, val: Split, params: dict[str, Any], pca=None,
                seed: int = 42) -> tuple[Split, Split, tuple | None]:
    """What the search trains on: a seeded subsample, as PCA scores when use_pca_images is on."""
    limit = params["search"]["max_train_images"]
    if limit and limit < len(train.y):
        idx = np.sort(np.random.default_rng(seed).choice(len(train.y), limit, replace=False))
        train = Split(train.x[idx], train.y[idx])
    if not params["search"]["use_pca_images"]:
        return train, val, None
    decoder = (pca.components_, pca.mean_, pca.image_shape)
    return Split(pca.transform(train.x), train.y), Split(pca.transform(val.x), val.y), decoder


def baseline_hyperparameters(params: dict[str, Any]) -> dict[str, Any]:
    """The literature values (METHOD.md) for the names the search explores."""
    hp = {k: v for k, v in params["baseline"].items() if k != "enabled"}
    if "epochs" in params["search"]["space"]:
        hp["epochs"] = params["search"]["epochs"]
    return hp


def save_model(model: keras.Model, run_dir, class_names: list[str],
               preprocess: dict[str, Any], hyperparameters: dict[str, Any],
               tta: bool = False, band_pca=None) -> None:
    """Save ``model.keras`` and ``model_card.json`` (classes, preprocessing) atomically.

    The card lets evaluate/predict apply exactly the preprocessing the model was trained with.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "model.partial.keras"
    model.save(tmp)
    tmp.replace(run_dir / "model.keras")
    if band_pca is not None:
        band_pca.save(run_dir / "band_pca.npz")
    atomic_write_json(run_dir / "model_card.json", {
        "class_names": class_names, "input_shape": list(model.input_shape[1:]),
        "preprocess": preprocess, "hyperparameters": hyperparameters, "tta": tta,
        "band_pca": "band_pca.npz" if band_pca is not None else None})
