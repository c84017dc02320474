"""Training: compile, fit with warm-up + cosine decay and early stopping, predict.

The search objective is built here (``make_objective``) and handed to the generic search
module, which never sees a network. The objective is the validation cross-entropy of
the best epoch (plain cross-entropy, whatever label smoothing the training loss uses).
Labels of shape (N, L) (multi-label) switch to a sigmoid head and binary cross-entropy;
the objective is then the validation binary cross-entropy.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from earth_lib.data import CHUNK, Split, chunks, read_rows, same_pixels_as_64px
from earth_lib.io import atomic_write_json
from earth_lib.metrics import tune_thresholds
from earth_lib.nn.augmentation import make_dataset
from earth_lib.nn.model import build_from_preset
from earth_lib.nn.policies import training_augmentation
from earth_lib.params import SCHEMA, TrainSettings

if TYPE_CHECKING:
    from earth_lib.analysis import PCAResult


#: Optimisers and learning-rate schedules (declared in the parameter table, first = default):
#: the original recipe is Adam at a constant rate; the default AdamW with warm-up + cosine.
OPTIMIZERS = SCHEMA["train"]["optimizer"].choices
SCHEDULES = SCHEMA["train"]["schedule"].choices
#: What the network computes in (``train.precision``; first = default).
PRECISIONS = SCHEMA["train"]["precision"].choices


def compile_model(model: keras.Model, learning_rate: float, steps_per_epoch: int, epochs: int,
                  settings: TrainSettings, *, multilabel: bool = False,
                  accumulation: int = 1) -> keras.Model:
    """Compile with the settings' optimiser and schedule, and a plain cross-entropy metric.

    ``multilabel``: binary cross-entropy per label, and the share of labels right as
    ``accuracy``; otherwise categorical cross-entropy and the share of images right.
    ``cosine``: linear warm-up then cosine decay; ``constant``: the rate as it is.
    ``adamw`` decays weights by the settings' ``weight_decay``; ``adam`` (the original)
    does not.
    ``accumulation`` > 1: one update per that many batches, on their mean gradient
    (``steps_per_epoch`` counts batches, as the schedule does).
    """
    optimizer, schedule = settings.optimizer, settings.schedule
    weight_decay = settings.weight_decay
    label_smoothing = settings.label_smoothing
    if optimizer not in OPTIMIZERS or schedule not in SCHEDULES:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} and schedule one of "
                         f"{SCHEDULES}. Got {optimizer!r} and {schedule!r} instead.")
    rate: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if schedule == "cosine":
        total = max(1, steps_per_epoch * epochs)
        warm = settings.warmup_steps(steps_per_epoch, epochs)
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate * 0.1 if warm else learning_rate,
            decay_steps=max(1, total - warm), alpha=0.01,
            warmup_target=learning_rate if warm else None, warmup_steps=warm)
    accumulate = {"gradient_accumulation_steps": accumulation} if accumulation > 1 else {}
    opt = (keras.optimizers.AdamW(rate, weight_decay=weight_decay, **accumulate)
           if optimizer == "adamw" else keras.optimizers.Adam(rate, **accumulate))
    if multilabel:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy"),
                   keras.metrics.BinaryCrossentropy(name="ce")]
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        metrics = ["accuracy", keras.metrics.CategoricalCrossentropy(name="ce")]
    model.compile(optimizer=opt, loss=loss, metrics=metrics)
    build_training_state(model)
    return model


def build_training_state(model: keras.Model) -> None:
    """Create the optimiser's and the metrics' variables now, before the first ``fit``.

    Keras (TensorFlow, no distribution strategy) creates them inside the first trace of the
    training step, and TensorFlow then traces the step a second time: about a second per
    training on the CPU, a quarter of a short trial's time. Zero-initialised either way,
    so the training is the same to the bit. Needs Keras' ``_symbolic_build`` (what ``fit``
    itself runs under a strategy); where a Keras lacks it, only the optimiser is built.
    """
    model.optimizer.build(model.trainable_variables)
    symbolic_build = getattr(model, "_symbolic_build", None)
    if symbolic_build is None:
        return
    x = np.zeros((1, *model.input_shape[1:]), np.float32)
    y = np.zeros((1, *model.output_shape[1:]), np.float32)
    symbolic_build(data_batch=(x, y, None))


def cpu_has_native_bfloat16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU multiplies bfloat16 natively (x86 avx512_bf16 or amx_bf16, Arm bf16).

    Read from the kernel's CPU flags; False where they cannot be read (not Linux).
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def set_precision(precision: str) -> str:
    """Set Keras' global dtype policy for ``precision`` and return the policy's name.

    ``auto``: ``mixed_float16`` where a GPU is present, ``float32`` on a CPU. The mixed
    policies keep the weights, the loss and the classifier in float32. ``mixed_bfloat16``
    on a CPU without native bfloat16 is emulated, slower than float32: a warning says so.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}. "
                         f"Got {precision!r} instead.")
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = ("mixed_float16" if on_gpu else "float32") if precision == "auto" else precision
    if policy == "mixed_bfloat16" and not on_gpu and not cpu_has_native_bfloat16():
        warnings.warn("train.precision: mixed_bfloat16 on a CPU without native bfloat16 "
                      "(no avx512_bf16/amx_bf16 flag): emulated, likely slower than float32; "
                      "set train.precision: float32 or auto", stacklevel=2)
    if keras.mixed_precision.global_policy().name != policy:
        keras.mixed_precision.set_global_policy(policy)
    return policy


def distribution_strategy(mode: str,
                          device_type: str = "GPU") -> tf.distribute.Strategy | None:
    """``MirroredStrategy`` over the visible ``device_type`` devices, or None.

    A strategy when ``mode`` is ``auto`` and there are two or more such devices; None (one
    device: nothing changes) otherwise.
    """
    if mode not in ("auto", "off"):
        raise ValueError(f"distribute must be 'auto' or 'off'. Got {mode!r} instead.")
    devices = [d.name for d in tf.config.list_logical_devices(device_type)]
    if mode == "off" or len(devices) < 2:
        return None
    return tf.distribute.MirroredStrategy(devices)


class TimeLimit(keras.callbacks.Callback):
    """Stop training at the end of the first batch that ends past ``seconds``.

    Checked at every batch, so one long epoch cannot run far past the limit.
    """

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.hit = seconds, False

    def on_train_begin(self, logs=None):
        """Start the clock."""
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        """Stop when the time is up."""
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training, self.hit = True, True


#: Beside a training's backup: the seconds its finished epochs took, across interruptions.
ELAPSED_FILE = "elapsed.json"


class ElapsedLedger(keras.callbacks.Callback):
    """Write, beside a backup, the training seconds of the epochs finished so far.

    ``before``: the seconds of the epochs an interrupted run finished (then resumed), so
    that a resumed training's time counts them as well as its own.
    """

    def __init__(self, path: str | Path, before: float = 0.0):
        super().__init__()
        self.path, self.before = Path(path), before

    def on_train_begin(self, logs=None):
        """Start the clock."""
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        """Record the finished epochs and their seconds (atomically: a kill keeps the last)."""
        atomic_write_json(self.path, {"epoch": epoch + 1, "seconds": round(
            self.before + time.perf_counter() - self.start, 2)})


def seconds_before_resume(backup_dir: str | Path, resumed: int) -> float:
    """The training seconds of the ``resumed`` epochs a backup holds (0.0: none recorded).

    Proportional where the record is an epoch behind the backup (a kill between the two).
    """
    if not resumed:
        return 0.0
    try:
        ledger = json.loads((Path(backup_dir) / ELAPSED_FILE).read_text(encoding="utf-8"))
        return float(ledger["seconds"]) * resumed / max(1, int(ledger["epoch"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


class EpochLog(keras.callbacks.Callback):
    """One short line per epoch, with the time so far and left (notebook, terminal, log file).

    The time left assumes every epoch runs; early stopping can only make it shorter.
    """

    def __init__(self, prefix: str = "", every: int = 1):
        super().__init__()
        self.prefix, self.every = prefix, every

    def on_train_begin(self, logs=None):
        """Start the clock."""
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        """Print the epoch's training and validation figures."""
        logs = logs or {}
        if (epoch + 1) % self.every == 0:
            total = self.params.get("epochs") or epoch + 1
            spent = time.perf_counter() - self.start
            left = spent / (epoch + 1) * (total - epoch - 1)
            print(f"{self.prefix}epoch {epoch + 1} of {total}: "
                  f"loss={logs.get('loss', float('nan')):.4f} "
                  f"acc={logs.get('accuracy', float('nan')):.3f} "
                  f"val_ce={logs.get('val_ce', float('nan')):.4f} "
                  f"val_acc={logs.get('val_accuracy', float('nan')):.3f}; "
                  f"{spent / 60:.1f} min so far, at most ~{left / 60:.1f} min left", flush=True)


class StepTimer(keras.callbacks.Callback):
    """Keeps each training step's end time (speed measurements)."""

    def __init__(self):
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        self.ends.append(time.perf_counter())

    def seconds_per_step(self) -> float:
        """The median step, the first two (tracing, warm-up) left out."""
        steps = np.diff(self.ends[2:])
        return float(np.median(steps)) if len(steps) else float("nan")


def gpu_trains() -> bool:
    """Whether TensorFlow sees a GPU to train on."""
    return bool(tf.config.list_physical_devices("GPU"))


def seconds_per_training_image(size: int, num_classes: int, preset: str,
                               hp: dict[str, Any], batch: int = 64) -> float:
    """Seconds one training image takes at ``size`` px (six steps of random images)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (batch * 6, size, size, 3), dtype=np.uint8)
    y = np.arange(len(x)) % num_classes
    timer = StepTimer()
    try:
        train_model({**hp, "batch_size": batch}, Split(x, y), Split(x[:8], y[:8]), num_classes,
                    (size, size, 3), TrainSettings.of(preset=preset, epochs=1,
                                                      early_stopping=False),
                    seed=0, verbose=False, callbacks=[timer])
    finally:
        keras.backend.clear_session()
    return timer.seconds_per_step() / batch


def train_model(
    hp: dict[str, Any],
    train: Split,
    val: Split,
    num_classes: int,
    input_shape: tuple[int, int, int],
    settings: TrainSettings,
    *,
    seed: int,
    decoder: PCAResult | None = None,
    verbose: bool = True,
    csv_log: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    backup_dir: str | Path | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build and train one ResNet with these hyperparameters, as ``settings`` say.

    ``hp`` holds the augmentation values, learning_rate, batch_size, kernel_size and,
    optionally, epochs and weight_decay (which then override the settings') and a
    policy-free augmentation ``policy`` (:mod:`earth_lib.nn.policies`).
    With ``settings.early_stopping`` the best-validation-loss weights are restored and
    training stops after ``patience`` epochs without progress; without it, all epochs run
    and the last weights are kept. With ``settings.time_limit`` (seconds) training stops at
    the first batch end past it, and the history holds ``time_limit_hit``.
    ``settings.distribute``: ``auto`` trains on every visible GPU when there are several
    (:func:`distribution_strategy`; ``batch_size`` is then per GPU, the learning rate as
    given), ``off`` on one device; ``strategy``, when given, is used instead.
    ``settings.micro_batch``: a larger batch is split into passes of at most that many
    images whose gradients are averaged before each update (memory grows with the pass).
    ``settings.precision``: the dtype policy (:func:`set_precision`), set before the build.
    With a PCA ``decoder``, the splits hold PCA scores and the images are rebuilt batch by
    batch. ``csv_log`` gets one row per epoch as it ends (kept if the run is interrupted);
    ``tensorboard_dir`` gets TensorBoard curves. ``callbacks``: more Keras callbacks, run
    after the built-in ones (e.g. a timer). ``backup_dir``: the weights, optimiser state
    and epoch are saved there at each epoch's end, and a training interrupted there goes
    on from its last finished epoch (the history then holds only the epochs run now, with
    ``resumed_at_epoch`` and ``seconds_before_resume``, what the epochs before took; the
    images after it come in a new shuffle, so a resumed training is not bit-identical);
    not with early stopping, whose state is not saved.
    """
    keras.utils.set_random_seed(int(seed) % 2**32)  # every valid seed (numpy takes 32 bits)
    set_precision(settings.precision)
    epochs = int(hp.get("epochs", settings.epochs))
    settings = settings.replace(weight_decay=float(hp.get("weight_decay", settings.weight_decay)))
    strategy = strategy or distribution_strategy(settings.distribute)
    batch = int(hp["batch_size"]) * (strategy.num_replicas_in_sync if strategy else 1)
    passes = math.ceil(batch / settings.micro_batch) if settings.micro_batch else 1
    batch = math.ceil(batch / passes)  # images per pass; passes x batch per update
    steps = math.ceil(len(train.y) / batch)
    multilabel = np.ndim(train.y) == 2
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_from_preset(input_shape, num_classes, settings.preset,
                                  int(hp["kernel_size"]), settings.dropout, multilabel)
        compile_model(model, float(hp["learning_rate"]), steps, epochs, settings,
                      multilabel=multilabel, accumulation=passes)
    # repeated, with the epoch's length given to fit: one iterator for the whole run. A new
    # iterator per epoch stalled at each epoch's start, the CPU idle, for 2 to 20 s (measured:
    # 4,096 images of 64 px, an epoch's ~20 s of work took up to 40 s)
    train_ds = make_dataset(train.x, train.y, num_classes, batch, training_augmentation(hp, seed),
                            shuffle=True, seed=seed, decoder=decoder).repeat()
    val_ds = validation_dataset(val, num_classes, input_shape, decoder)
    built_in: list[keras.callbacks.Callback] = []
    if settings.early_stopping:
        built_in.append(keras.callbacks.EarlyStopping(
            monitor="val_ce", mode="min", patience=settings.patience, restore_best_weights=True))
    limit = TimeLimit(settings.time_limit) if settings.time_limit else None
    built_in += ([limit] if limit else []) + ([EpochLog("  ")] if verbose else [])
    resumed = 0
    if backup_dir:
        if settings.early_stopping:
            raise ValueError("train_model: backup_dir cannot resume early stopping (its best "
                             "weights are not saved); train without it.")
        resumed = backed_up_epoch(backup_dir, {
            "hp": hp, "settings": settings.record(), "seed": int(seed),
            "images": [len(train.y), len(val.y)], "input_shape": list(input_shape)})
        built_in.append(keras.callbacks.BackupAndRestore(str(backup_dir),
                                                         double_checkpoint=True))
        before = seconds_before_resume(backup_dir, resumed)
        built_in.append(ElapsedLedger(Path(backup_dir) / ELAPSED_FILE, before))
    if csv_log:
        Path(csv_log).parent.mkdir(parents=True, exist_ok=True)
        built_in.append(keras.callbacks.CSVLogger(str(csv_log), append=resumed > 0))
    if tensorboard_dir:
        built_in.append(keras.callbacks.TensorBoard(str(tensorboard_dir), write_graph=False))
    hist = model.fit(train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps,
                     verbose=0, shuffle=False, callbacks=built_in + list(callbacks or []))
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    history["time_limit_hit"] = [float(bool(limit and limit.hit))]
    history["global_batch_size"] = [float(batch * passes)]
    if resumed:
        history["resumed_at_epoch"] = [float(resumed)]
        history["seconds_before_resume"] = [before]
    return model, history


def validation_dataset(val: Split, num_classes: int, input_shape: tuple[int, int, int],
                       decoder: PCAResult | None = None) -> tf.data.Dataset:
    """The validation images in inference batches, unshuffled and unaugmented."""
    # inference batches hold the pixels of 256 images of 64 px at any size (at 224 px,
    # batches of 256 images took 0.8 GB more than 32)
    return make_dataset(val.x, val.y, num_classes, same_pixels_as_64px(256, input_shape),
                        decoder=decoder)


def backed_up_epoch(backup_dir: str | Path, training: dict[str, Any] | None = None) -> int:
    """The epochs a backup in ``backup_dir`` has finished (0: none).

    ``training``: what defines the training (values, settings, seed, data sizes), kept
    beside the backup; a backup of another training is removed, as is an unreadable one,
    so the training starts over rather than going on from the wrong weights (a backup
    with no such note, from before notes were kept, is taken as this training's).
    """
    folder = Path(backup_dir)
    meta, tag = folder / "training_metadata.json", folder / "training.json"
    try:
        if training is not None:
            stamp = json.loads(json.dumps(training, default=str))
            if tag.is_file() and json.loads(tag.read_text(encoding="utf-8")) != stamp:
                warnings.warn(f"{backup_dir}: a backup of another training, removed; the "
                              "training starts over.", stacklevel=2)
                shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(tag, stamp)
        return int(json.loads(meta.read_text(encoding="utf-8"))["epoch"]) if meta.is_file() \
            else 0
    except (OSError, ValueError, KeyError, TypeError):
        warnings.warn(f"{backup_dir}: an unreadable training backup, removed; the training "
                      "starts over.", stacklevel=2)
        shutil.rmtree(folder, ignore_errors=True)
        return 0
    try:
        return int(json.loads(meta.read_text(encoding="utf-8"))["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        warnings.warn(f"{backup_dir}: an unreadable training backup, removed; the training "
                      "starts over.", stacklevel=2)
        shutil.rmtree(backup_dir, ignore_errors=True)
        return 0


def make_objective(train: Split, val: Split, num_classes: int, input_shape: tuple[int, int, int],
                   settings: TrainSettings, *, seed: int,
                   decoder: PCAResult | None = None) -> Callable[..., dict[str, Any]]:
    """The search objective: train with ``hp`` and return the best epoch's val cross-entropy.

    With ``settings.refresh_bn`` the score is the last weights' after
    :func:`refresh_batchnorm` (the best epoch's, as trained, kept beside it).

    ``objective(hp, budget=b, repeat=r)`` trains ``b`` times as many epochs (a promoted,
    longer trial) with training seed ``seed + 1000 r`` (a re-evaluation with fresh noise).
    Every epoch runs (``settings`` as :meth:`TrainSettings.trial` gives them).
    """
    def objective(hp: dict, budget: float = 1.0, repeat: int = 0) -> dict[str, Any]:
        n = max(1, round(float(hp.get("epochs", settings.epochs)) * budget))
        hp = {**hp, "epochs": n} if "epochs" in hp else hp
        try:
            model, hist = train_model(hp, train, val, num_classes, input_shape,
                                      settings.replace(epochs=n, patience=n), decoder=decoder,
                                      seed=seed + 1000 * repeat, verbose=False)
            # in the trial's batches, or its micro-batches where memory asked for them
            batch = min(int(hp["batch_size"]), settings.micro_batch or int(hp["batch_size"]))
            refreshed = refreshed_scores(
                model, train, val, batch, input_shape, seed=seed + 1000 * repeat,
                decoder=decoder) if settings.refresh_bn else None
        finally:
            keras.backend.clear_session()
        ce = np.array(hist["val_ce"], dtype=float)
        ce = np.where(np.isfinite(ce), ce, np.inf)
        best = int(np.argmin(ce))
        score = {"val_loss": float(ce[best]), "val_accuracy": float(hist["val_accuracy"][best])}
        if refreshed:
            score = {**refreshed, "moving_stats_val_loss": score["val_loss"]}
        return {**score, "epochs_run": len(ce),
                "status": "time_limit" if hist["time_limit_hit"][0] else "ok"}

    return objective


#: At most this many training images recompute the BatchNorm statistics of a trial.
REFRESH_IMAGES = 1024


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of ``model``, nested models' included, once each."""
    found: dict[int, keras.layers.BatchNormalization] = {}

    def walk(layer: keras.layers.Layer) -> None:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.setdefault(id(layer), layer)
        for inner in getattr(layer, "layers", ()):
            walk(inner)

    walk(model)
    return list(found.values())


def refresh_batchnorm(model: keras.Model, train: Split, batch_size: int, *, seed: int = 0,
                      decoder: PCAResult | None = None, images: int = REFRESH_IMAGES) -> int:
    """Replace every BatchNorm layer's moving statistics by those of clean training images.

    "Precise BN": the mean of the batch statistics of up to ``images`` training images (a
    sample drawn with ``seed``), in batches of ``batch_size``, unaugmented. After a short
    training the moving averages trail weights that still change fast and come from
    augmented batches (measured at 250 images, 40 steps: validation accuracy 0.16 as
    trained, 0.61 refreshed). Returns the number of batches used.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [la.momentum for la in layers]
    # a seeded sample, in order: a split sorted by class still gives every class its share
    pick = np.sort(np.random.default_rng(seed).permutation(len(train.y))[:images])
    ds = make_dataset(read_rows(train.x, pick), np.asarray(train.y)[pick],
                      model.output_shape[-1], batch_size, decoder=decoder)
    batches = 0
    try:
        for batches, (x, _) in enumerate(ds, start=1):
            for la in layers:  # moving = the running mean of the batch statistics so far
                la.momentum = (batches - 1) / batches
            model(x, training=True)
    finally:
        for la, m in zip(layers, momenta, strict=True):
            la.momentum = m
    return batches


def refreshed_scores(model: keras.Model, train: Split, val: Split, batch_size: int,
                     input_shape: tuple[int, int, int], *, seed: int = 0,
                     decoder: PCAResult | None = None) -> dict[str, float]:
    """Validation cross-entropy and accuracy after :func:`refresh_batchnorm`."""
    refresh_batchnorm(model, train, batch_size, seed=seed, decoder=decoder)
    got = model.evaluate(validation_dataset(val, model.output_shape[-1], input_shape, decoder),
                         verbose=0, return_dict=True)
    return {"val_loss": float(got["ce"]), "val_accuracy": float(got["accuracy"])}


def log_trials_to_tensorboard(history: list[dict[str, Any]], names: list[str],
                              log_dir: str | Path | None) -> int:
    """Every finished trial as a TensorBoard HParams run (values, val loss); returns the count.

    Nothing is written when ``log_dir`` is None (``logging.tensorboard: false``). The folder
    is rewritten from the whole history, so a resumed search logs each trial once.
    """
    if log_dir is None:
        return 0
    import shutil

    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams

    shutil.rmtree(log_dir, ignore_errors=True)
    done = [r for r in history if np.isfinite(float(r.get("val_loss", np.nan)))]
    for i, row in enumerate(done):
        with tf.summary.create_file_writer(str(Path(log_dir) / f"trial{i:04d}")).as_default():
            hparams.hparams({n: float(row[n]) for n in names if n in row},
                            trial_id=f"step{row.get('step', 0)}-trial{row.get('trial', i)}")
            tf.summary.scalar("val_loss", float(row["val_loss"]), step=1)
    return len(done)


def dihedral_views(images: np.ndarray) -> list[np.ndarray]:
    """The eight flips/rotations of a batch (N, H, W, C) of square images."""
    views = []
    for k in range(4):
        r = np.rot90(images, k, axes=(1, 2))
        views += [r, r[:, :, ::-1]]
    return views


def validation_thresholds(model: keras.Model, val: Split, tta: bool = False
                          ) -> np.ndarray | None:
    """Multi-label: per-label thresholds tuned on validation; None for one class per image.

    The thresholds are then applied unchanged to test and to new images.
    """
    if np.ndim(val.y) != 2:
        return None
    return tune_thresholds(val.y, predict_proba(model, val.x, tta=tta))


def predict_proba(model: keras.Model, images: np.ndarray, tta: bool = False,
                  batch_size: int | None = None) -> np.ndarray:
    """Class probabilities; with ``tta``, averaged over the eight flips/rotations.

    Chunk by chunk (as many pixels as 1,024 images of 64 px), so that an on-disk array is
    never read whole into memory and large images do not multiply the memory used.
    """
    batch_size = batch_size or same_pixels_as_64px(128, images.shape[1:])
    out = []
    for part in chunks(len(images), same_pixels_as_64px(CHUNK, images.shape[1:])):
        x = read_rows(images, part, np.float32)
        views = dihedral_views(x) if tta else [x]
        out.append(np.mean([model.predict(v, batch_size=batch_size, verbose=0)
                            for v in views], axis=0))
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]))
