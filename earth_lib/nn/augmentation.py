"""Data augmentation: one random affine resampling per image, inside a ``tf.data`` pipeline.

The method's augmentation hyperparameters have the meaning of Keras' preprocessing layers:
rotation (degrees) -> a random angle in [-deg, +deg] (``RandomRotation(deg / 360)``); zoom
``z`` -> a scale in [1 - |z|, 1 + |z|] (``RandomZoom((-|z|, |z|))``; the sign carries no
meaning, |z| is capped at 0.9); width and height shift ``s`` -> a shift of up to |s| of
the side (``RandomTranslation``); flips 0/1 -> each axis mirrored with probability 1/2,
independently, as the original's ``ImageDataGenerator`` did (Keras 3's
``RandomFlip("horizontal_and_vertical")`` draws one coin for both axes: identity or a
half turn, never a mirror). Empty space is filled by reflection, which suits nadir
Earth scenes.

:class:`RandomAffine` composes the four into one matrix per image and resamples once:
one bilinear interpolation instead of three in a row (less blur), one pass over the batch
instead of four (``make bench``: 24.2 -> 8.0 ms per batch of 32 at 64 px in ``tf.data``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from earth_lib.data import read_rows
from earth_lib.params import AUGMENT_KEYS

if TYPE_CHECKING:
    from earth_lib.analysis import PCAResult



def affine_transforms(angle: tf.Tensor, zoom: tf.Tensor, shift_x: tf.Tensor,
                      shift_y: tf.Tensor, mirror_x: tf.Tensor, mirror_y: tf.Tensor,
                      height: int, width: int) -> tf.Tensor:
    """Per-image (N, 8) projective transforms (output pixel -> input pixel), as Keras uses.

    The composition of Keras' layers applied in turn: flip, rotation by ``angle``
    degrees, zoom (scale ``zoom``), shift by (``shift_x``, ``shift_y``) pixels, all about
    the image centre; ``mirror_*`` are 1 (flip) or 0 per image. All arguments are (N,).
    """
    ops = keras.ops
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    theta = angle * (np.pi / 180.0)
    ex, ey = 1.0 - 2.0 * mirror_x, 1.0 - 2.0 * mirror_y
    cos, sin = ops.cos(theta) * zoom, ops.sin(theta) * zoom
    a0, a1, b0, b1 = ex * cos, -ex * sin, ey * sin, ey * cos
    # input = c + L (output - shift - c), L = mirror x rotation x zoom
    a2 = cx - a0 * (cx + shift_x) - a1 * (cy + shift_y)
    b2 = cy - b0 * (cx + shift_x) - b1 * (cy + shift_y)
    zeros = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


class RandomAffine(layers.Layer):
    """Random flips, rotation, zoom and shift (the method's six values) in one resampling."""

    def __init__(self, rotation: float = 0.0, zoom: float = 0.0, width_shift: float = 0.0,
                 height_shift: float = 0.0, horizontal_flip: bool = False,
                 vertical_flip: bool = False, seed: int | None = None, **kwargs):
        # float32 whatever the precision policy: pixels, not activations
        super().__init__(**{"dtype": "float32", **kwargs})
        self.rotation, self.zoom = min(abs(float(rotation)), 360.0), min(abs(float(zoom)), 0.9)
        self.width_shift, self.height_shift = abs(float(width_shift)), abs(float(height_shift))
        # flips are 0/1 values of the search: rounded, as the search's points may be floats
        self.horizontal_flip = bool(round(float(horizontal_flip)))
        self.vertical_flip = bool(round(float(vertical_flip)))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = True):
        """Each image of the (N, H, W, C) batch moved by its own draw; unchanged at inference."""
        if not training:
            return images
        n, height, width = keras.ops.shape(images)[0], images.shape[1], images.shape[2]

        def uniform(bound: float) -> tf.Tensor:
            return keras.random.uniform((n,), -bound, bound, seed=self.seed_generator)

        def coin(enabled: bool) -> tf.Tensor:
            draw = keras.random.uniform((n,), seed=self.seed_generator)
            return keras.ops.cast(draw < 0.5, "float32") * float(enabled)

        transforms = affine_transforms(
            uniform(self.rotation), 1.0 + uniform(self.zoom), uniform(self.width_shift) * width,
            uniform(self.height_shift) * height, coin(self.horizontal_flip),
            coin(self.vertical_flip), height, width)
        return keras.ops.image.affine_transform(images, transforms, interpolation="bilinear",
                                                fill_mode="reflect")

    def compute_output_shape(self, input_shape):
        """The input's shape: the images keep their size."""
        return input_shape

    def get_config(self) -> dict:
        """The six values and the seed, so that the layer can be rebuilt."""
        return {**super().get_config(), **{k: getattr(self, k) for k in AUGMENT_KEYS},
                "seed": self.seed}


def augmentation_layers(hp: dict, seed: int = 0) -> keras.Sequential:
    """A Sequential holding one :class:`RandomAffine` for these values (empty when all are 0)."""
    layer = RandomAffine(**{k: hp.get(k, 0) for k in AUGMENT_KEYS}, seed=seed)
    stack = [layer] if any(getattr(layer, k) for k in AUGMENT_KEYS) else []
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
