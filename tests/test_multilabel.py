"""Multi-label foundations: labels CSV (both layouts), iterative split, mosaics, metrics."""

import csv

import numpy as np
import pytest

from earth_lib.data import iterative_split
from earth_lib.data.multilabel import build_mosaics, missing_labels, read_labels_csv
from earth_lib.errors import ParameterError
from earth_lib.metrics import evaluate_multilabel, tune_thresholds
from earth_lib.params import TrainSettings
from tests.conftest import write_png

settings = TrainSettings.of  # the table's defaults with a few values changed


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
    ("path,labels\na.png,x\nb.png,y\nghost.png,x\n", r":4: image 'ghost.png' not found"),
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
    from earth_lib.images import read_image

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
        build_mosaics(src, tmp_path / "m3", counts={"train": 1}, labels_per_mosaic=(3, 5), seed=0)


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


# --- the multi-label task through the pipeline's functions ---------------------------------

def test_task_parameters_multilabel_needs_labels_and_mosaics_bring_theirs():
    from earth_lib.params import validate

    p = validate({"task": "multilabel", "data": {"dataset": "mosaic", "raw_dir": "data/m/"}})
    assert p["data"]["labels_csv"] == p["split"]["split_file"] == "data/m/labels.csv"
    with pytest.raises(ParameterError, match="data.labels_csv"):
        validate({"task": "multilabel"}, "f.yaml")
    with pytest.raises(ParameterError, match="'data.labels_csv' is for task: multilabel"):
        validate({"data": {"labels_csv": "x.csv"}}, "f.yaml")
    with pytest.raises(ParameterError, match="'task'"):
        validate({"data": {"dataset": "mosaic"}}, "f.yaml")
    with pytest.raises(ParameterError, match="mosaic_labels"):
        validate({"task": "multilabel", "data": {"dataset": "mosaic", "mosaic_labels": [2, 5]}})
    with pytest.raises(ParameterError, match="task"):
        validate({"task": "multi-label"})


def _loaded(root, names):
    from earth_lib.data import load_images

    for i, n in enumerate(names):
        write_png(root / n, np.full((8, 8, 3), 20 * i, np.uint8))
    return load_images(root, progress=False)


def test_labels_are_attached_to_the_loaded_images_in_their_order(tmp_path):
    from earth_lib.data.multilabel import attach_labels

    ds = _loaded(tmp_path / "img", ["x/b.png", "x/a.png", "y/c.png"])
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,labels,split\nx/a.png,river;forest,train\ny/c,forest,test\n"
                        "x/b.png,river,val\n")
    assert attach_labels(ds, None, "multiclass", tmp_path / "img") is ds
    ml = attach_labels(ds, csv_path, "multilabel", tmp_path / "img")
    assert ml.class_names == ["forest", "river"]
    got = {p.split("/img/")[1]: y.tolist() for p, y in zip(ml.paths, ml.labels, strict=True)}
    assert got == {"x/a.png": [1, 1], "x/b.png": [0, 1], "y/c.png": [1, 0]}
    np.testing.assert_array_equal(ml.images, ds.images)
    csv_path.write_text("path,labels\nx/a.png,river\n")
    with pytest.raises(ParameterError, match="have no row in"):
        attach_labels(ds, csv_path, "multilabel", tmp_path / "img")


def test_multilabel_split_is_iterative_and_a_label_unseen_in_training_is_an_error(tmp_path):
    from earth_lib.data import ImageSet, make_split, read_split_file

    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(np.uint8)
    y[y.sum(axis=1) == 0, 0] = 1
    ds = ImageSet(np.zeros((60, 4, 4, 3), np.uint8), y, ["a", "b", "c"],
                  [f"s/{i}.png" for i in range(60)], [])
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15, "split_file": None}
    split = make_split(ds, fractions, 3)
    assert not missing_labels(y, split, ds.class_names)
    np.testing.assert_array_equal(split, iterative_split(y, fractions, 3))
    only_test = tmp_path / "split.csv"
    y2 = y.copy()
    y2[:, 2] = 0
    y2[-1, 2] = 1  # label c on one image, which the split file puts in test
    only_test.write_text("path,split\n" + "".join(
        f"s/{i},{'test' if i == 59 else 'train'}\n" for i in range(60)))
    assert read_split_file(only_test, ds.paths)[-1] == "test"
    with pytest.raises(ValueError, match="c never seen in training"):
        make_split(ImageSet(ds.images, y2, ds.class_names, ds.paths, []),
                   {**fractions, "split_file": str(only_test)}, 3)


def test_label_counts_cooccurrence_and_per_label_statistics():
    from earth_lib.analysis import (
        band_histograms,
        class_counts,
        label_cooccurrence,
        labels_per_image,
        mean_images,
    )

    y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1]], np.uint8)
    split = np.array(["train", "train", "val", "test"])
    counts = class_counts(y, split, ["a", "b", "c"])
    assert counts.loc["a"].tolist() == [2, 0, 1, 3]
    assert counts.loc["images"].tolist() == [2, 1, 1, 4]
    cooc = label_cooccurrence(y, ["a", "b", "c"])
    assert cooc.loc["a", "b"] == 2 and cooc.loc["b", "c"] == 2 and cooc.loc["a", "a"] == 3
    assert labels_per_image(y, 3).to_dict() == {1: 1, 2: 2, 3: 1}
    diag = label_cooccurrence(np.array([0, 1, 1]), ["a", "b"])  # one class per image
    assert diag.values.tolist() == [[1, 0], [0, 2]]
    x = np.stack([np.full((2, 2, 1), v, np.uint8) for v in (10, 20, 30, 40)])
    means = mean_images(x, y, 3)
    # a: 10, 20, 40; b: 10, 30, 40; c: 30, 40
    assert means[:, 0, 0, 0].tolist() == pytest.approx([70 / 3, 80 / 3, 35])
    hists = band_histograms(x, y, 3, bins=4)
    assert hists[2, 0].tolist() == [1.0, 0, 0, 0]  # c: 30 and 40, both in the first bin


def test_mosaic_data_set_is_built_once_and_rebuilt_when_its_settings_change(tmp_path):
    from earth_lib.data.datasets import prepare_raw
    from earth_lib.params import validate

    src = tmp_path / "src"
    for c in "abc":
        for i in range(8):
            write_png(src / c / f"{i}.png", np.full((4, 4, 3), 30 * "abc".index(c), np.uint8))
    data = {"dataset": "mosaic", "raw_dir": str(tmp_path / "m"), "mosaic_source": str(src),
            "mosaic_count": 20, "mosaic_labels": [1, 2]}
    p = validate({"task": "multilabel", "data": data})
    out = prepare_raw(p, progress=False)
    first = (out / "labels.csv").read_text()
    assert len(first.splitlines()) == 21 and (out / "mosaics.json").is_file()
    stamp = (out / "labels.csv").stat().st_mtime_ns
    assert prepare_raw(p, progress=False) == out
    assert (out / "labels.csv").stat().st_mtime_ns == stamp  # not rebuilt
    fewer = validate({"task": "multilabel", "data": {**data, "mosaic_count": 10}})
    prepare_raw(fewer, progress=False)
    assert len(read_labels_csv(out / "labels.csv", out).paths) == 10  # no stale mosaic left
    stamp = (out / "labels.csv").stat().st_mtime_ns
    (src / "dataset.json").write_text('{"generator": "tiles v2"}')  # the tiles were remade
    prepare_raw(fewer, progress=False)
    assert (out / "labels.csv").stat().st_mtime_ns != stamp  # so were the mosaics
    missing = validate({"task": "multilabel", "data": {**data, "mosaic_source": "nowhere"}})
    from earth_lib.errors import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="data.mosaic_source"):
        prepare_raw(missing, progress=False)


def test_multilabel_training_sigmoid_head_bce_objective_and_thresholds():
    from earth_lib.data import Split
    from earth_lib.nn.training import make_objective, train_model, validation_thresholds

    rng = np.random.default_rng(0)
    y = (rng.random((24, 3)) < 0.5).astype(np.uint8)
    x = (rng.random((24, 8, 8, 3)) * 255).astype(np.uint8)
    tr, va = Split(x[:16], y[:16]), Split(x[16:], y[16:])
    hp = {"learning_rate": 1e-3, "batch_size": 8, "kernel_size": 3}
    model, hist = train_model(hp, tr, va, 3, (8, 8, 3), settings(preset="tiny", epochs=1),
                              verbose=False, seed=42)
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert model.loss.__class__.__name__ == "BinaryCrossentropy"
    assert np.isfinite(hist["val_ce"][0])
    t = validation_thresholds(model, va)
    assert t.shape == (3,) and ((t >= 0) & (t <= 1)).all()
    assert validation_thresholds(model, Split(va.x, va.y.argmax(axis=1))) is None
    scored = make_objective(
        tr, va, 3, (8, 8, 3), settings("trial", epochs=1, preset="tiny"), seed=42
    )(hp)
    assert np.isfinite(scored["val_loss"]) and 0 < scored["val_loss"] < 2


def test_classical_baseline_one_vs_rest_and_the_tables():
    from earth_lib.classical import baseline_metrics
    from earth_lib.data import Split
    from earth_lib.metrics import comparison_table, evaluate_predictions, headline

    rng = np.random.default_rng(1)
    y = (rng.random((60, 2)) < 0.5).astype(np.uint8)
    x = np.zeros((60, 6, 6, 3), np.uint8)
    x[..., 0] = 200 * y[:, :1, None]  # label 0: a red band; label 1: a green band
    x[..., 1] = 200 * y[:, 1:, None]
    s = {k: Split(x[a:b], y[a:b]) for k, a, b in (("train", 0, 40), ("val", 40, 50),
                                                 ("test", 50, 60))}
    m = baseline_metrics(s["train"], s["test"], ["red", "green"], enabled=True, trees=20, seed=0,
                         val=s["val"])
    assert m["micro_f1"] == 1.0 and m["mean_average_precision"] == 1.0
    table = comparison_table({"rf": m, "none": None})
    assert list(table.columns) == ["micro F1", "mAP", "macro F1"] and list(table.index) == ["rf"]
    assert headline(m).startswith("test micro F1 1.000, mAP 1.000")
    single = evaluate_predictions(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
    assert headline(single) == "test accuracy 1.000 on 2 images"
