"""The network's one custom layer: batch normalisation as TensorFlow's fused kernel.

Keras 3 normalises with a dozen separate operations (mean, variance, broadcasts, their
gradients) and casts bfloat16 activations to float32 first. On a CPU they took 28 % of a
``cpu64`` training step's operation time, and the casts cancelled what bfloat16 saves; one
``FusedBatchNormV3`` does the same normalisation (measured on 2 cores, batches of 64 at 64
px: 262 -> 282 images/s in float32, 271 -> 501 in ``mixed_bfloat16``). The statistics and
the moving averages are those of ``keras.layers.BatchNormalization``; settings the fused
kernel does not cover (masks, renorm, synchronised, other axes or ranks) use Keras' code.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="earth_lib")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by one fused TensorFlow kernel."""

    def _fusable(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4
                and self.axis in (-1, 3) and self.center and self.scale)

    def call(self, inputs, training=None, mask=None):
        """Normalise with the batch's statistics when training, the moving ones otherwise."""
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16) else tf.cast(inputs, tf.float32)
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
                epsilon=self.epsilon, is_training=True)
            # the kernel returns the unbiased variance; Keras averages the biased one
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            variance = variance * ((n - 1.0) / tf.maximum(n, 1.0))
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                moving.assign(moving * self.momentum
                              + tf.cast(batch, moving.dtype) * (1.0 - self.momentum))
        else:
            y, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                is_training=False)
        return tf.cast(y, self.compute_dtype)
