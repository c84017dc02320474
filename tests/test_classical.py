import numpy as np

from earth_lib.classical import classical_proba, fit_classical, image_features
from earth_lib.data import load_images, stratified_split


def test_features_shape():
    x = np.zeros((3, 8, 8, 2), np.uint8)
    assert image_features(x, bins=4).shape == (3, 2 * (4 + 4))


def test_classical_baseline_beats_chance_on_synthetic(tmp_path):
    from earth_lib.data.synthetic import generate_synthetic_dataset

    generate_synthetic_dataset(tmp_path, 20, 24, 6, seed=3, progress=False)
    ds = load_images(tmp_path, progress=False)
    split = stratified_split(ds.labels, 0.7, 0.15, 0.15, seed=0)
    tr, te = split == "train", split != "train"
    rf = fit_classical(ds.images[tr], ds.labels[tr], trees=100, seed=0)
    acc = (classical_proba(rf, ds.images[te], 6).argmax(1) == ds.labels[te]).mean()
    assert acc > 0.5  # chance is 1/6
