"""Data augmentation with Keras 3 preprocessing layers inside a ``tf.data`` pipeline.

The method's augmentation hyperparameters map onto layers as follows: rotation (degrees)
-> ``RandomRotation(deg / 360)``, i.e. a random angle in [-deg, +deg]; zoom ``z`` ->
``RandomZoom((-|z|, |z|))`` (the sign carries no meaning, |z| is capped at 0.9); width
and height shift ``s`` -> ``RandomTranslation`` by up to |s| of the side; flips 0/1 ->
``RandomFlip``. Empty space is filled by reflection, which suits nadir Earth scenes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from earth_lib.data import read_rows

if TYPE_CHECKING:
    from earth_lib.analysis import PCAResult

AUGMENT_KEYS = ("rotation", "zoom", "width_shift", "height_shift", "horizontal_flip",
                "vertical_flip")


def augmentation_layers(hp: dict, seed: int = 0) -> keras.Sequential:
    """A Sequential of random layers for these augmentation values (identity when all are 0)."""
    stack = []
    h, v = bool(round(hp.get("horizontal_flip", 0))), bool(round(hp.get("vertical_flip", 0)))
    if h or v:
        mode = "horizontal_and_vertical" if (h and v) else ("horizontal" if h else "vertical")
        stack.append(layers.RandomFlip(mode, seed=seed))
    rot = float(hp.get("rotation", 0.0))
    if rot > 0:
        stack.append(layers.RandomRotation(min(rot, 360.0) / 360.0, fill_mode="reflect",
                                           seed=seed + 1))
    zoom = min(abs(float(hp.get("zoom", 0.0))), 0.9)
    if zoom > 0:
        stack.append(layers.RandomZoom((-zoom, zoom), fill_mode="reflect", seed=seed + 2))
    hs, ws = abs(float(hp.get("height_shift", 0.0))), abs(float(hp.get("width_shift", 0.0)))
    if hs > 0 or ws > 0:
        stack.append(layers.RandomTranslation((-hs, hs), (-ws, ws), fill_mode="reflect",
                                              seed=seed + 3))
    return keras.Sequential(stack, name="augmentation")


def _read_rows(images: np.ndarray, index: tf.Tensor) -> tf.Tensor:
    """The rows ``index`` of an array (in memory or on disk), read inside the pipeline."""
    rows = tf.numpy_function(lambda i: read_rows(images, i), [index], tf.as_dtype(images.dtype))
    return tf.ensure_shape(rows, (None, *images.shape[1:]))


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int = 32,
    augment: keras.Sequential | None = None,
    shuffle: bool = False,
    seed: int = 0,
    decoder: PCAResult | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 images in 0-255, one-hot or multi-label 0/1 rows), maybe augmented.

    With a PCA ``decoder``, ``images`` holds PCA scores and each batch is rebuilt by
    ``decoder.reconstruct`` inside the pipeline: only the scores sit in memory. An
    on-disk ``images`` (``np.memmap``) is read batch by batch: only a batch sits in memory.
    """
    # the pipeline carries indices and reads each batch's rows from the array where it
    # lies: the images are neither copied into a tensor nor into the shuffle buffer (two
    # copies of the training set; bench, 27,000 images of 64 px: 2,384 -> 2,005 MB)
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(labels)), labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size)).map(lambda i, y: (_read_rows(images, i), y))
    if decoder is not None:
        # rebuilt by numpy on the basis where it lies: as a TensorFlow matmul the basis was
        # held twice more (a tensor copy and a reordered one: +1.1 GB at 224 px, 942
        # components), and as a graph constant copied per pipeline (19 GB)
        shape = (None, *decoder.image_shape)
        ds = ds.map(lambda x, y: (tf.ensure_shape(tf.numpy_function(
            decoder.reconstruct, [tf.cast(x, tf.float32)], tf.float32), shape), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if np.ndim(labels) == 2:  # multi-label: the 0/1 rows as they are
        ds = ds.map(lambda x, y: (x, tf.cast(y, tf.float32)))
    else:
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))
    if augment is not None and augment.layers:
        # one call at a time: the layers draw from one seed generator, and parallel calls
        # would draw in a racy order (measured: the same seed gave other losses run to run)
        ds = ds.map(lambda x, y: (augment(x, training=True), y))
    return ds.prefetch(tf.data.AUTOTUNE)
