"""Where the network looked: Grad-CAM maps (Selvaraju et al. 2017) for a few images.

Computation only: maps in, figures drawn by ``report`` from what these functions return.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from earth_lib.data.arrays import read_rows


@dataclass
class CamExamples:
    """Images with the class each map explains, the true class and the map (0-1)."""

    images: np.ndarray      # (n, H, W, C), as the model reads them (0-255)
    true: np.ndarray        # (n,) true class index
    predicted: np.ndarray   # (n,) predicted class index: the class each map explains
    confidence: np.ndarray  # (n,) probability of the predicted class
    maps: np.ndarray        # (n, H, W) in [0, 1]


def last_feature_layer(model: keras.Model) -> str:
    """The last layer whose output is a 4-D feature map (before the global pooling)."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        if shape is not None and len(layer.output.shape) == 4:
            return layer.name
    raise ValueError(f"{model.name}: no layer with a 4-D output; Grad-CAM needs a conv net.")


def grad_cam(model: keras.Model, images: np.ndarray, classes: np.ndarray,
             layer: str | None = None, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM of ``classes[i]`` for ``images[i]``: (n, H, W), each scaled to [0, 1].

    The gradient of the class score (the logit, when the model ends in a Dense layer) with
    respect to the last feature map, averaged over space, weighs that map's channels; the
    positive part is upsampled to the image.
    """
    layer = layer or last_feature_layer(model)
    head = model.layers[-1]
    # the class score before softmax/sigmoid, as Grad-CAM defines it: the probabilities'
    # gradients would also show the evidence against the other classes
    logits = isinstance(head, keras.layers.Dense)
    probe = keras.Model(model.inputs, [model.get_layer(layer).output,
                                       head.input if logits else model.output])
    height, width = images.shape[1:3]
    out = []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(np.asarray(images[start:start + batch_size], np.float32))
        cls = tf.convert_to_tensor(np.asarray(classes[start:start + batch_size], np.int32))
        with tf.GradientTape() as tape:
            features, scores = probe(x, training=False)
            if logits:
                scores = tf.matmul(scores, head.kernel) + (0 if head.bias is None else head.bias)
            score = tf.gather(scores, cls, axis=1, batch_dims=1)
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., None]
        cam = tf.image.resize(cam, (height, width), method="bilinear")[..., 0].numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
        out.append(np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0.0))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, height, width))


def cam_examples(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                 proba: np.ndarray, per_class: int = 2, *, seed: int) -> CamExamples:
    """Grad-CAM for ``per_class`` images of each class (drawn with ``seed``).

    Multi-label ``labels`` (n, L): an image counts for each of its labels. Each map explains
    the predicted class, so a wrong answer shows what misled the network (multi-label: the
    label the image was picked for, with its probability).
    """
    rng = np.random.default_rng(seed)
    members = labels.astype(bool) if labels.ndim == 2 else \
        labels[:, None] == np.arange(proba.shape[1])[None, :]
    picked: list[int] = []
    picked_for: list[int] = []
    for c in range(proba.shape[1]):
        pool = np.setdiff1d(np.flatnonzero(members[:, c]), picked)
        chosen = rng.choice(pool, min(per_class, len(pool)), replace=False).tolist()
        picked.extend(chosen)
        picked_for.extend([c] * len(chosen))
    idx = np.asarray(picked, dtype=int)
    x = read_rows(images, idx, np.float32)
    true = np.asarray(picked_for, dtype=int)
    # one class per image: the map explains the answer; several labels: the label it was
    # picked for (another label being predicted is no mistake)
    predicted = true if labels.ndim == 2 else proba[idx].argmax(1)
    return CamExamples(x, true, predicted, proba[idx, predicted], grad_cam(model, x, predicted))
