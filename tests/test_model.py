import numpy as np
import pytest

from earth_lib.nn.model import PRESETS, build_from_preset, build_resnet


def _proj(model):
    return [layer.name for layer in model.layers if layer.name.endswith("_proj")]


def test_output_shape_and_softmax():
    m = build_resnet((16, 16, 3), 5, stage_depths=(1, 1), filters=(8, 16))
    out = m.predict(np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3)), verbose=0)
    assert out.shape == (2, 5)
    assert np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_projection_exactly_where_shape_changes():
    m = build_resnet((32, 32, 3), 4, stage_depths=(2, 2, 2), filters=(16, 32, 64))
    assert _proj(m) == ["stage2_block1_proj", "stage3_block1_proj"]
    # a first stage wider than the stem would need one too: here filters stay at 16
    m2 = build_resnet((32, 32, 3), 4, stage_depths=(1, 1), filters=(16, 16))
    assert _proj(m2) == ["stage2_block1_proj"]  # same width, but stride 2


def test_stages_halve_the_spatial_size():
    m = build_resnet((32, 32, 3), 4, stage_depths=(1, 1, 1), filters=(8, 16, 32))
    shapes = {layer.name: layer.output.shape for layer in m.layers if layer.name.endswith("_add")}
    assert shapes["stage1_block1_add"][1:3] == (32, 32)
    assert shapes["stage2_block1_add"][1:3] == (16, 16)
    assert shapes["stage3_block1_add"][1:3] == (8, 8)


def test_kernel_size_changes_the_convolutions():
    m1 = build_resnet((16, 16, 3), 3, stage_depths=(1,), filters=(8,), kernel_size=1)
    m5 = build_resnet((16, 16, 3), 3, stage_depths=(1,), filters=(8,), kernel_size=5)
    assert m1.get_layer("stage1_block1_conv1").kernel.shape[:2] == (1, 1)
    assert m5.get_layer("stage1_block1_conv1").kernel.shape[:2] == (5, 5)
    assert m5.count_params() > m1.count_params()


def test_any_band_count():
    m = build_from_preset((16, 16, 13), 10, "tiny")
    assert m.input_shape == (None, 16, 16, 13) and m.output_shape == (None, 10)


def test_paper_preset_is_the_original_24_block_network():
    m = build_from_preset((64, 64, 3), 3, "paper")
    blocks = {layer.name.split("_conv")[0] for layer in m.layers if "_conv" in layer.name}
    assert len(blocks) == sum(PRESETS["paper"]["stage_depths"]) == 24
    assert len(_proj(m)) == 3
    assert 15e6 < m.count_params() < 40e6


@pytest.mark.parametrize("kwargs, match", [
    ({"stage_depths": (1, 1), "filters": (8,)}, "same length"),
    ({"stage_depths": (1,), "filters": (8,), "num_classes": 1}, "at least 2"),
])
def test_bad_settings(kwargs, match):
    n = kwargs.pop("num_classes", 3)
    with pytest.raises(ValueError, match=match):
        build_resnet((8, 8, 1), n, **kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown model preset 'huge'"):
        build_from_preset((8, 8, 3), 2, "huge")


def _bn_pair(momentum=0.9):
    import keras

    from earth_lib.nn.layers import FusedBatchNormalization

    return FusedBatchNormalization(momentum=momentum), keras.layers.BatchNormalization(
        momentum=momentum)


def test_fused_batch_norm_computes_what_keras_batch_norm_does():
    import tensorflow as tf

    fused, plain = _bn_pair()
    x = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (8, 5, 5, 4)), tf.float32)
    for layer in (fused, plain):
        layer.build(x.shape)
        layer.gamma.assign([0.5, 1.0, 1.5, 2.0])
        layer.beta.assign([0.1, -0.2, 0.3, 0.0])
    w = tf.constant(np.random.default_rng(3).normal(size=x.shape), tf.float32)
    grads = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * w)
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
        grads[-1].append(y)
    for a, b in zip(*grads, strict=True):  # d/dx, d/dgamma, d/dbeta, the training output
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    # the moving averages move alike (the biased batch variance, as Keras keeps it)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(),
                               rtol=1e-5)
    assert not np.allclose(fused.moving_mean.numpy(), 0)  # they did move
    np.testing.assert_allclose(fused(x, training=False).numpy(), plain(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_fused_batch_norm_falls_back_to_keras_where_the_kernel_does_not_apply():
    import tensorflow as tf

    fused, plain = _bn_pair()
    x = tf.constant(np.random.default_rng(1).normal(size=(16, 6)), tf.float32)  # rank 2
    np.testing.assert_allclose(fused(x, training=True).numpy(), plain(x, training=True).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_fused_batch_norm_keeps_bfloat16_activations_and_float32_statistics():
    import tensorflow as tf

    from earth_lib.nn.layers import FusedBatchNormalization

    x = tf.constant(np.random.default_rng(2).normal(1.0, 3.0, (8, 4, 4, 3)), tf.float32)
    low = FusedBatchNormalization(dtype="mixed_bfloat16")
    y = low(tf.cast(x, tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16 and low.moving_mean.dtype == tf.float32
    full = FusedBatchNormalization()
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), full(x, training=True).numpy(),
                               atol=0.05)
    np.testing.assert_allclose(low.moving_mean.numpy(), full.moving_mean.numpy(), rtol=0.02)


def test_a_saved_network_loads_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    build_from_preset((16, 16, 3), 3, preset="tiny").save(tmp_path / "m.keras")
    code = ("import keras, earth_lib.nn.layers, numpy as np; "
            f"m = keras.models.load_model({str(tmp_path / 'm.keras')!r}); "
            "print(type(m.get_layer('final_bn')).__name__, m.predict(np.zeros((1, 16, 16, 3)), "
            "verbose=0).shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[:1] == ["FusedBatchNormalization"] and "(1, 3)" in out.stdout
