"""Training: compile, fit with warm-up + cosine decay and early stopping, predict.

The search objective is built here (``make_objective``) and handed to the generic search
module, which never sees a network. The objective is the validation cross-entropy of
the best epoch (plain cross-entropy, whatever label smoothing the training loss uses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from earth_lib.augmentation import augmentation_layers, make_dataset
from earth_lib.data import Split
from earth_lib.model import DEFAULT_PRESET, build_from_preset

if TYPE_CHECKING:
    from earth_lib.analysis import PCAResult


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
    preset: str = DEFAULT_PRESET,
    epochs: int = 10,
    patience: int = 5,
    warmup_epochs: int = 1,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.0,
    dropout: float = 0.0,
    seed: int = 42,
    decoder: PCAResult | None = None,
    verbose: bool = True,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build and train one ResNet with these hyperparameters; best-val-loss weights restored.

    ``hp`` holds the augmentation values, learning_rate, batch_size, kernel_size and,
    optionally, epochs (which then overrides ``epochs``). With a PCA ``decoder``, the
    splits hold PCA scores and the images are rebuilt batch by batch.
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
