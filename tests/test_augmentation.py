import keras
import numpy as np
from keras import layers

from earth_lib.analysis import PCAResult
from earth_lib.nn.augmentation import (
    RandomAffine,
    affine_transforms,
    augmentation_layers,
    make_dataset,
)


def test_all_zero_values_mean_no_augmentation():
    aug = augmentation_layers({"rotation": 0, "zoom": 0, "width_shift": 0, "height_shift": 0,
                               "horizontal_flip": 0, "vertical_flip": 0})
    assert aug.layers == []


def test_values_make_one_affine_layer():
    aug = augmentation_layers({"rotation": 90, "zoom": -0.3, "width_shift": 0.1,
                               "height_shift": 0, "horizontal_flip": 1, "vertical_flip": 0})
    (layer,) = aug.layers
    assert isinstance(layer, RandomAffine)
    assert (layer.rotation, layer.zoom, layer.width_shift) == (90, 0.3, 0.1)  # sign: no meaning
    assert (layer.horizontal_flip, layer.vertical_flip) == (True, False)


def _smooth_images(n: int, size: int) -> np.ndarray:
    """Images whose bilinear resampling barely depends on the grid (geometry tests)."""
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    base = np.stack([100 + 60 * np.sin(i / 9.0) * np.cos(j / 13.0), 2.0 * i + j,
                     128 + 50 * np.cos((i + 2 * j) / 11.0)], -1)
    return np.repeat(base[None], n, 0).astype(np.float32)


def test_affine_transform_is_keras_layers_in_turn():
    """Flip, rotation, zoom and shift as Keras' own layers apply them, composed into one."""
    n, size = 6, 64
    x = _smooth_images(n, size)
    flip_x, flip_y = layers.RandomFlip("horizontal"), layers.RandomFlip("vertical")
    rot = layers.RandomRotation(20 / 360, fill_mode="reflect", seed=1)
    zoom = layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", seed=2)
    shift = layers.RandomTranslation((-0.05, 0.05), (-0.05, 0.05), fill_mode="reflect", seed=3)
    mirror_x = np.array([0, 1, 0, 1, 1, 0], bool)
    mirror_y = np.array([0, 0, 1, 1, 0, 1], bool)
    keras_out = flip_x.transform_images(x, {"flips": mirror_x[:, None, None, None]})
    keras_out = flip_y.transform_images(keras_out, {"flips": mirror_y[:, None, None, None]})
    steps = []
    for layer in (rot, zoom, shift):
        t = layer.get_random_transformation(x, training=True)
        keras_out = layer.transform_images(keras_out, t, training=True)
        steps.append(t)
    angle, zooms, moves = (steps[0]["angle"], steps[1]["height_zoom"][:, 0],
                           steps[2]["translations"])
    assert float(np.ptp(angle)) > 5 and float(np.ptp(zooms)) > 0.02  # the draws vary
    transforms = affine_transforms(angle, zooms, moves[:, 0], moves[:, 1],
                                   mirror_x.astype("float32"), mirror_y.astype("float32"),
                                   size, size)
    ours = keras.ops.image.affine_transform(x, transforms, fill_mode="reflect")
    inner = slice(20, 44)  # away from the borders, where only the fill would differ
    diff = np.abs(np.asarray(ours) - np.asarray(keras_out))[:, inner, inner]
    assert diff.mean() < 0.5 and diff.max() < 3  # three bilinear passes against one
    assert np.abs(np.asarray(ours) - x)[:, inner, inner].mean() > 10  # and it did move


def test_flips_mirror_each_axis_independently():
    x = np.repeat(np.arange(35, dtype=np.float32).reshape(1, 5, 7, 1), 64, 0)  # no symmetry
    out = np.asarray(RandomAffine(horizontal_flip=True, vertical_flip=True, seed=0)(x))
    variants = [x[0], x[0, :, ::-1], x[0, ::-1], x[0, ::-1, ::-1]]
    seen = [next(k for k, v in enumerate(variants) if np.allclose(o, v, atol=1e-3))
            for o in out]
    assert sorted(set(seen)) == [0, 1, 2, 3]  # Keras' RandomFlip gives only 0 and 3


def test_same_seed_same_draws_and_identity_at_inference():
    x = _smooth_images(4, 16)
    hp = {"rotation": 45, "zoom": 0.2, "width_shift": 0.2, "height_shift": 0.2}
    first, again = (np.asarray(augmentation_layers(hp, seed=5)(x, training=True))
                    for _ in range(2))
    other = np.asarray(augmentation_layers(hp, seed=6)(x, training=True))
    assert np.array_equal(first, again) and not np.allclose(first, other)
    assert np.array_equal(np.asarray(augmentation_layers(hp)(x, training=False)), x)


def test_dataset_batches_float_images_and_one_hot_labels():
    x = np.random.default_rng(0).integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    y = np.arange(10) % 3
    aug = augmentation_layers({"rotation": 30, "horizontal_flip": 1})
    xb, yb = next(iter(make_dataset(x, y, 3, batch_size=4, augment=aug, shuffle=True)))
    assert xb.shape == (4, 8, 8, 3) and xb.dtype.name == "float32"
    assert yb.shape == (4, 3) and np.allclose(yb.numpy().sum(1), 1)


def test_unaugmented_dataset_keeps_order_and_values():
    x = np.random.default_rng(0).integers(0, 255, (5, 4, 4, 1), dtype=np.uint8)
    xb, yb = next(iter(make_dataset(x, np.arange(5), 5, batch_size=5)))
    assert np.array_equal(xb.numpy(), x.astype(np.float32))
    assert list(yb.numpy().argmax(1)) == [0, 1, 2, 3, 4]


def test_pca_decoder_rebuilds_images_from_scores():
    rng = np.random.default_rng(0)
    comps = np.linalg.qr(rng.normal(size=(48, 4)))[0].T.astype(np.float32)  # (4, 48)
    mean = np.full(48, 100, np.float32)
    scores = rng.normal(0, 10, (6, 4)).astype(np.float32)
    pca = PCAResult(mean, comps, np.ones(4) / 4, 4, 0.95, (4, 4, 3))
    xb, _ = next(iter(make_dataset(scores, np.zeros(6, int), 2, batch_size=6, decoder=pca)))
    expected = np.clip(scores @ comps + mean, 0, 255).reshape(6, 4, 4, 3)
    assert np.allclose(xb.numpy(), expected, atol=1e-3)
    assert np.allclose(pca.reconstruct(scores), expected, atol=1e-3)
