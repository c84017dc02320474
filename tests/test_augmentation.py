import numpy as np

from earth_lib.analysis import PCAResult
from earth_lib.augmentation import augmentation_layers, make_dataset


def test_all_zero_values_mean_no_augmentation():
    aug = augmentation_layers({"rotation": 0, "zoom": 0, "width_shift": 0, "height_shift": 0,
                               "horizontal_flip": 0, "vertical_flip": 0})
    assert aug.layers == []


def test_each_value_maps_to_a_layer():
    aug = augmentation_layers({"rotation": 90, "zoom": -0.3, "width_shift": 0.1,
                               "height_shift": 0, "horizontal_flip": 1, "vertical_flip": 1})
    names = [type(layer).__name__ for layer in aug.layers]
    assert names == ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation"]
    assert aug.layers[0].mode == "horizontal_and_vertical"
    assert aug.layers[2].height_factor == (-0.3, 0.3)  # the sign carries no meaning


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
