"""Policy-free augmentation: the dihedral group, TrivialAugment and RandAugment, per image.

What the field uses instead of a searched policy, beside the method's six values:

* ``dihedral``: one of the eight flips and quarter turns, uniformly (free for nadir scenes:
  every one is a scene that could have been photographed);
* ``trivialaugment``: one operation per image, drawn uniformly from the "wide" set, at a
  strength drawn uniformly from 31 levels (Müller & Hutter 2021);
* ``randaugment``: two operations per image in a row, each drawn uniformly, at the fixed
  strength 9 of 30 (Cubuk et al. 2020).

The operations and their ranges follow torchvision's ``TrivialAugmentWide`` and
``RandAugment`` (the field's reference code): identity, auto-contrast, equalise, rotate,
solarise, colour, posterise, contrast, brightness, sharpness, shear x/y, translate x/y,
signed at random where a sign means something. Translations are a fraction of the side
(torchvision's wide 32 px are half of a 64-px scene). Two departures, both for Earth scenes
and both shared with the method's arms: pixels moved in from outside are reflected, not
black, and every operation is drawn per image. Keras' own ``RandAugment`` layer draws one
operation per batch and computes all eleven on every image.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

from earth_lib.nn.augmentation import affine_transforms, augmentation_layers
from earth_lib.params import POLICIES  # the policies, by name (hp["policy"]); none adds none

#: The operations, in torchvision's order.
OPERATIONS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
              "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
              "auto_contrast", "equalize")
#: The largest strength of each ranged operation: shear (tangent), translation (share of
#: the side), rotation (degrees), the four enhancements (|factor - 1|), bits removed by
#: posterise (of 8), the solarise threshold's fall (share of 255).
RANGES = {
    "trivialaugment": {"shear": 0.99, "translate": 0.5, "rotate": 135.0, "enhance": 0.99,
                       "posterize": 6.0, "solarize": 1.0},
    "randaugment": {"shear": 0.3, "translate": 150 / 331, "rotate": 30.0, "enhance": 0.9,
                    "posterize": 4.0, "solarize": 1.0},
}
#: Operations per image and strength (of 30; None: drawn per image) of each policy.
SCHEDULE = {"trivialaugment": (1, None), "randaugment": (2, 9)}
LEVELS = 30


def _gray(x: tf.Tensor) -> tf.Tensor:
    """Luma (ITU-R 601), one channel kept; a single band is its own gray."""
    if x.shape[-1] != 3:
        return tf.reduce_mean(x, axis=-1, keepdims=True)
    return tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def _blend(base: tf.Tensor, x: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """``base + factor (x - base)`` per image, clipped to 0-255 (PIL's ImageEnhance)."""
    return tf.clip_by_value(base + factor[:, None, None, None] * (x - base), 0.0, 255.0)


def _smoothed(x: tf.Tensor) -> tf.Tensor:
    """PIL's SMOOTH filter (3 x 3, centre 5, sum 13) inside, the border pixels unchanged."""
    k = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    c = x.shape[-1]
    kernel = tf.tile(k[:, :, None, None], [1, 1, c, 1])
    inner = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")
    inner = tf.pad(inner, [[0, 0], [1, 1], [1, 1], [0, 0]])
    border = tf.pad(tf.zeros_like(inner[:, 1:-1, 1:-1]), [[0, 0], [1, 1], [1, 1], [0, 0]],
                    constant_values=1.0)
    return border * x + (1.0 - border) * inner


def _auto_contrast(x: tf.Tensor) -> tf.Tensor:
    """Each image's bands stretched to 0-255 (a flat band left as it is)."""
    lo = tf.reduce_min(x, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(x, axis=[1, 2], keepdims=True)
    span = hi - lo
    return tf.where(span > 0, (x - lo) * 255.0 / tf.maximum(span, 1e-6), x)


def _equalize(x: tf.Tensor) -> tf.Tensor:
    """Each image's bands histogram-equalised (one ``bincount`` for the whole batch)."""
    shape = tf.shape(x)
    n, c = shape[0], shape[3]
    v = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.int32)
    offset = (tf.range(n)[:, None, None, None] * c + tf.range(c)[None, None, None, :]) * 256
    hist = tf.math.bincount(tf.reshape(v + offset, [-1]), minlength=n * c * 256,
                            maxlength=n * c * 256)
    cdf = tf.cast(tf.cumsum(tf.reshape(hist, [n * c, 256]), axis=1), tf.float32)
    first = tf.reduce_min(tf.where(cdf > 0, cdf, tf.float32.max), axis=1, keepdims=True)
    total = cdf[:, -1:]
    lut = tf.where(total > first, tf.round((cdf - first) / tf.maximum(total - first, 1.0)
                                           * 255.0), tf.cast(tf.range(256), tf.float32))
    return tf.gather(tf.reshape(lut, [-1]), v + offset)


class PolicyAugment(layers.Layer):
    """A policy-free augmentation (:data:`POLICIES`), every draw made per image."""

    def __init__(self, policy: str, seed: int | None = None, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        if policy not in POLICIES[1:]:
            raise ValueError(f"policy must be one of {', '.join(POLICIES[1:])}. "
                             f"Got {policy!r} instead.")
        self.policy, self.seed = policy, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, n, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
        return keras.random.uniform((n,), low, high, seed=self.seed_generator)

    def _integers(self, n, high: int) -> tf.Tensor:
        return keras.random.randint((n,), 0, high, seed=self.seed_generator)

    def call(self, images, training: bool = True):
        """Each image of the (N, H, W, C) batch changed by its own draw; as is at inference."""
        if not training or self.policy == "none":
            return images
        x = tf.convert_to_tensor(images, tf.float32)
        n, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
        if self.policy == "dihedral":
            zeros = tf.zeros((n,))
            angle = tf.cast(self._integers(n, 4), tf.float32) * 90.0
            mirror = tf.cast(self._integers(n, 2), tf.float32)
            t = affine_transforms(angle, 1.0 + zeros, zeros, zeros, mirror, zeros, height, width)
            return keras.ops.image.affine_transform(x, t, interpolation="bilinear",
                                                    fill_mode="reflect")
        rounds, level = SCHEDULE[self.policy]
        for _ in range(rounds):
            op = self._integers(n, len(OPERATIONS))
            strength = (self._integers(n, LEVELS + 1) if level is None
                        else tf.fill((n,), level))
            sign = tf.where(self._uniform(n) < 0.5, -1.0, 1.0)
            x = self.apply_operations(x, op, tf.cast(strength, tf.float32) / LEVELS, sign)
        return x

    def apply_operations(self, x: tf.Tensor, op: tf.Tensor, strength: tf.Tensor,
                         sign: tf.Tensor) -> tf.Tensor:
        """Operation ``op[i]`` at ``strength[i]`` (0-1) and ``sign[i]`` on image ``i``."""
        r = RANGES[self.policy]
        x = tf.cast(x, tf.float32)
        height, width = x.shape[1], x.shape[2]

        def chosen(name: str) -> tf.Tensor:
            return tf.cast(tf.equal(op, OPERATIONS.index(name)), tf.float32)

        signed = sign * strength
        # one resampling for all the geometric operations: each image draws at most one
        shear_x, shear_y = chosen("shear_x") * signed * r["shear"], \
            chosen("shear_y") * signed * r["shear"]
        theta = chosen("rotate") * signed * r["rotate"] * (math.pi / 180.0)
        tx = chosen("translate_x") * signed * r["translate"] * width
        ty = chosen("translate_y") * signed * r["translate"] * height
        cos, sin = tf.cos(theta), tf.sin(theta)
        m00, m01 = cos - sin * shear_y, cos * shear_x - sin
        m10, m11 = sin + cos * shear_y, sin * shear_x + cos
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        zeros = tf.zeros_like(cos)
        t = tf.stack([m00, m01, cx - m00 * (cx + tx) - m01 * (cy + ty),
                      m10, m11, cy - m10 * (cx + tx) - m11 * (cy + ty), zeros, zeros], axis=1)
        moved = keras.ops.image.affine_transform(x, t, interpolation="bilinear",
                                                 fill_mode="reflect")
        geometric = sum(chosen(k) for k in ("shear_x", "shear_y", "translate_x",
                                            "translate_y", "rotate"))
        x = tf.where(geometric[:, None, None, None] > 0, moved, x)
        factor = 1.0 + signed * r["enhance"]
        gray = _gray(x)
        bits = 8.0 - tf.round(strength * r["posterize"])
        step = tf.pow(2.0, 8.0 - bits)[:, None, None, None]
        threshold = (255.0 * (1.0 - strength * r["solarize"]))[:, None, None, None]
        candidates = {
            "brightness": _blend(tf.zeros_like(x), x, factor),
            "color": _blend(gray, x, factor),
            "contrast": _blend(tf.reduce_mean(gray, axis=[1, 2, 3], keepdims=True), x, factor),
            "sharpness": _blend(_smoothed(x), x, factor),
            "posterize": tf.floor(tf.round(x) / step) * step,
            "solarize": tf.where(x >= threshold, 255.0 - x, x),
            "auto_contrast": _auto_contrast(x),
            "equalize": _equalize(x),
        }
        for name, value in candidates.items():
            x = tf.where(chosen(name)[:, None, None, None] > 0, value, x)
        return x

    def compute_output_shape(self, input_shape):
        """The input's shape: the images keep their size."""
        return input_shape

    def get_config(self) -> dict:
        """The policy and the seed, so that the layer can be rebuilt."""
        return {**super().get_config(), "policy": self.policy, "seed": self.seed}


def training_augmentation(hp: dict, seed: int = 0) -> keras.Sequential:
    """The augmentation a training applies: the method's six values, then ``hp["policy"]``.

    Without a policy (or ``none``) this is :func:`augmentation_layers`; the policy arms set
    the six values to 0 and name a policy.
    """
    stack = augmentation_layers(hp, seed)
    policy = hp.get("policy") or "none"
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}. Got {policy!r} instead.")
    if policy != "none":
        stack.add(PolicyAugment(policy, seed=seed))
    return stack
