"""The pre-activation ResNet of the method: a pure builder, shapes and settings in, model out.

Each residual block is two (BatchNorm -> ReLU -> Conv) units added to a shortcut; the
shortcut is the identity, or a 1x1 convolution (named ``*_proj``) exactly where the
number of filters or the spatial size changes. Each new stage halves the spatial size.
Batch normalisation is Keras' own, computed by TensorFlow's fused kernel
(:class:`earth_lib.nn.layers.FusedBatchNormalization`: the same statistics, twice as fast in
bfloat16 on a CPU).

Keras is imported inside the builders, so that the parameter table can read the preset
names from here without starting TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

#: Stage depths and widths. ``paper`` is the original [2, 10, 10, 2] x 64..512 network
#: (GPU); ``medium`` (ResNet-18-like depth, half width) suits full data sets on a GPU;
#: ``cpu64`` (0.3M parameters) suits 64 px scenes on a CPU; ``small``/``tiny`` quick runs.
#: BatchNorm moving-average momentum. Keras' 0.99 needs hundreds of steps before the
#: validation statistics settle, which short search trials never reach; 0.9 settles in tens.
BN_MOMENTUM = 0.9

PRESETS: dict[str, dict[str, tuple[int, ...]]] = {
    "tiny": {"stage_depths": (1, 1), "filters": (8, 16)},
    "small": {"stage_depths": (1, 1, 1), "filters": (16, 32, 64)},
    "cpu64": {"stage_depths": (1, 1, 1, 1), "filters": (16, 32, 64, 128)},
    "medium": {"stage_depths": (2, 2, 2, 2), "filters": (32, 64, 128, 256)},
    "paper": {"stage_depths": (2, 10, 10, 2), "filters": (64, 128, 256, 512)},
}
#: The preset used when none is named (``model.preset`` takes its default from here).
DEFAULT_PRESET = "small"


def _batch_norm(name: str):
    """The network's batch normalisation layer (Keras' statistics, TensorFlow's fused kernel)."""
    from earth_lib.nn.layers import FusedBatchNormalization

    return FusedBatchNormalization(momentum=BN_MOMENTUM, name=name)


def _block(x, filters: int, kernel_size: int, stride: int, name: str):
    """One pre-activation residual block; projection shortcut only where the shape changes."""
    from keras import layers

    pre = _batch_norm(f"{name}_bn1")(x)
    pre = layers.Activation("relu", name=f"{name}_relu1")(pre)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                 name=f"{name}_proj")(pre)
    else:
        shortcut = x
    y = layers.Conv2D(filters, kernel_size, strides=stride, padding="same", use_bias=False,
                      name=f"{name}_conv1")(pre)
    y = _batch_norm(f"{name}_bn2")(y)
    y = layers.Activation("relu", name=f"{name}_relu2")(y)
    y = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                      name=f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([shortcut, y])


def build_resnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    stage_depths: Sequence[int] = (1, 1, 1),
    filters: Sequence[int] = (16, 32, 64),
    kernel_size: int = 3,
    dropout: float = 0.0,
    multilabel: bool = False,
    name: str = "earth_resnet",
) -> keras.Model:
    """Build (not compile, not train) a pre-activation ResNet for 0-255 inputs of any band count.

    Args:
        input_shape: (height, width, bands).
        num_classes: size of the softmax output.
        stage_depths: residual blocks per stage, e.g. (2, 10, 10, 2).
        filters: filters per stage, same length as ``stage_depths``.
        kernel_size: convolution kernel size (searched by the method: 1, 3 or 5).
        dropout: dropout rate before the classifier.
        multilabel: one sigmoid per label (several labels per image) instead of a softmax.
    """
    if len(stage_depths) != len(filters) or not stage_depths:
        raise ValueError(f"stage_depths {tuple(stage_depths)} and filters {tuple(filters)} "
                         "must be non-empty and of the same length.")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2. Got {num_classes} instead.")
    import keras
    from keras import layers

    kernel_size = int(kernel_size)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = layers.Conv2D(filters[0], kernel_size, padding="same", use_bias=False, name="stem")(x)
    for s, (depth, width) in enumerate(zip(stage_depths, filters, strict=True)):
        for b in range(depth):
            stride = 2 if (s > 0 and b == 0) else 1
            x = _block(x, width, kernel_size, stride, name=f"stage{s + 1}_block{b + 1}")
    x = _batch_norm("final_bn")(x)
    x = layers.Activation("relu", name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="sigmoid" if multilabel else "softmax",
                           dtype="float32", name="classes")(x)
    return keras.Model(inputs, outputs, name=name)


def build_from_preset(input_shape: tuple[int, int, int], num_classes: int,
                      preset: str = DEFAULT_PRESET, kernel_size: int = 3,
                      dropout: float = 0.0, multilabel: bool = False) -> keras.Model:
    """Build a ResNet from a named preset (see :data:`PRESETS`)."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    return build_resnet(input_shape, num_classes, kernel_size=kernel_size, dropout=dropout,
                        multilabel=multilabel, **PRESETS[preset])


def projection_shortcuts(model: keras.Model) -> list[str]:
    """Names of the 1x1 projection shortcuts (where a block changes width or size)."""
    return [layer.name for layer in model.layers if layer.name.endswith("_proj")]
