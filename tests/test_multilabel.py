"""Multi-label foundations: labels CSV (both layouts), iterative split, mosaics, metrics."""

import csv

import numpy as np
import pytest

from earth_lib.errors import ParameterError
from earth_lib.evaluation import evaluate_multilabel, tune_thresholds
from earth_lib.multilabel import (
    build_mosaics,
    iterative_split,
    missing_labels,
    read_labels_csv,
)
from tests.conftest import write_png


def _images(root, names):
    for n in names:
        write_png(root / n, np.full((8, 8, 3), len(n), np.uint8))
    return root


def test_labels_from_a_path_labels_csv(tmp_path):
    root = _images(tmp_path / "img", ["a/x1.png", "a/x2.png", "b/x3.png"])
    (tmp_path / "labels.csv").write_text("path,labels\na/x1.png,trees;water\na/x2.png,trees\n"
                                         "b/x3.png,buildings | cars\n")
    ml = read_labels_csv(tmp_path / "labels.csv", root)
    assert ml.names == ["buildings", "cars", "trees", "water"]
    assert ml.y.tolist() == [[0, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0]]
    assert ml.frequencies()["trees"] == 2 and ml.cooccurrence()[2, 3] == 1


def test_labels_in_the_uc_merced_one_hot_layout_matched_by_stem(tmp_path):
    """UC Merced's LandUse_Multilabeled.txt: tab-separated, IMAGE\\LABEL, names without
    extension, one 0/1 column per label."""
    root = _images(tmp_path / "Images", ["airplane/airplane00.tif", "beach/beach07.tif"])
    (tmp_path / "multi.txt").write_text("IMAGE\\LABEL\tairplane\tsand\tsea\n"
                                        "airplane00\t1\t0\t0\nbeach07\t0\t1\t1\n")
    ml = read_labels_csv(tmp_path / "multi.txt", root)
    assert ml.names == ["airplane", "sand", "sea"] and ml.y.tolist() == [[1, 0, 0], [0, 1, 1]]
    assert ml.paths[1].endswith("beach07.tif")


@pytest.mark.parametrize("rows, message", [
    ("path,labels\na.png,x\nb.png,y\nghost.png,x\n", r"1 listed image\(s\) not found.*ghost"),
    ("path,labels\na.png,x\nb.png,\n", r"without any label.*b.png"),
    ("path,labels\na.png,x\n", r"have no row in .*b.png"),
    ("image,x,y\na.png,1,maybe\nb.png,0,1\n", r":2: expected one 0/1 value per label"),
])
def test_labels_csv_errors_name_the_image(tmp_path, rows, message):
    root = _images(tmp_path / "img", ["a.png", "b.png"])
    (tmp_path / "l.csv").write_text(rows)
    with pytest.raises(ParameterError, match=message):
        read_labels_csv(tmp_path / "l.csv", root)


def test_iterative_split_keeps_every_label_in_every_split():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 8)) < [0.5, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.5]).astype(np.uint8)
    y[:3, 6] = 1  # a rare label: at least one image per split needed
    split = iterative_split(y, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=1)
    assert missing_labels(y, split, [str(i) for i in range(8)]) == {}
    assert abs((split == "train").mean() - 0.7) < 0.03
    for j in range(8):  # each label keeps about its share in train
        share = y[split == "train", j].sum() / y[:, j].sum()
        assert abs(share - 0.7) < 0.15, j
    np.testing.assert_array_equal(split, iterative_split(y, {"train": 0.7, "val": 0.15,
                                                             "test": 0.15}, seed=1))


def test_a_label_with_as_many_images_as_splits_reaches_every_split():
    y = np.zeros((100, 2), np.uint8)
    y[:, 0] = 1
    y[:3, 1] = 1  # three images of a rare label
    split = iterative_split(y, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    assert sorted(split[:3]) == ["test", "train", "val"]


def test_mosaics_are_deterministic_tile_disjoint_and_labelled(tmp_path):
    src = tmp_path / "src"
    for c in "abcd":
        for i in range(10):
            write_png(src / c / f"{c}{i}.png", np.full((4, 4, 3), 40 * "abcd".index(c) + i,
                                                       np.uint8))
    ml = build_mosaics(src, tmp_path / "m", counts={"train": 12, "val": 4, "test": 4},
                       labels_per_mosaic=(2, 3), seed=3, progress=False)
    assert ml.names == list("abcd") and ml.y.shape == (20, 4)
    assert set(ml.y.sum(axis=1)) <= {2, 3} and ml.y.sum(axis=1).min() >= 2
    with open(tmp_path / "m" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["split"] for r in rows].count("test") == 4
    tiles = {}  # every tile value seen per split: no tile shared between splits
    from earth_lib.io import read_image

    for r, labels in zip(rows, ml.y, strict=True):
        img = read_image(tmp_path / "m" / r["path"])
        assert img.shape == (8, 8, 3)
        values = {int(img[y, x, 0]) for y in (0, 4) for x in (0, 4)}
        present = {"abcd"[v // 40] for v in values}
        assert present == set(r["labels"].split(";")) == {c for c, b in zip("abcd", labels,
                                                                            strict=True) if b}
        tiles.setdefault(r["split"], set()).update(values)
    assert not tiles["train"] & tiles["test"] and not tiles["train"] & tiles["val"]
    again = build_mosaics(src, tmp_path / "m2", counts={"train": 12, "val": 4, "test": 4},
                          labels_per_mosaic=(2, 3), seed=3, progress=False)
    np.testing.assert_array_equal(again.y, ml.y)
    with pytest.raises(ParameterError, match="labels_per_mosaic"):
        build_mosaics(src, tmp_path / "m3", counts={"train": 1}, labels_per_mosaic=(3, 5))


def test_thresholds_tuned_on_validation_and_multilabel_metrics():
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    proba = np.array([[0.3, 0.1], [0.35, 0.9], [0.1, 0.8], [0.2, 0.2]])
    t = tune_thresholds(y, proba)
    assert t[0] == pytest.approx(0.3)  # 0.5 would miss both positives of label 0
    m = evaluate_multilabel(y, proba, ["a", "b"], t)
    assert m["micro_f1"] == 1.0 and m["exact_match"] == 1.0
    assert m["mean_average_precision"] == 1.0
    plain = evaluate_multilabel(y, proba, ["a", "b"])
    assert plain["per_label"]["a"]["recall"] == 0.0 and plain["macro_f1"] == pytest.approx(0.5)
