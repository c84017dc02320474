"""Evaluate and predict on folders with a trained run (a tiny model trained here)."""

import csv
import json
import re
import shutil

import numpy as np
import pytest

from earth_lib.data import Split
from earth_lib.data.synthetic import generate_synthetic_dataset
from earth_lib.errors import RunNotFoundError
from earth_lib.evaluation import evaluate_folder, predict_folder
from earth_lib.nn.training import train_model
from earth_lib.params import TrainSettings
from earth_lib.preprocessing import preprocess_folder, read_settings
from earth_lib.run import Run

settings = TrainSettings.of  # the table's defaults with a few values changed


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder with a small model trained on the synthetic set (3 classes, 16 px)."""
    from earth_lib.data import load_images
    from earth_lib.params import validate

    tmp = tmp_path_factory.mktemp("run")
    generate_synthetic_dataset(tmp / "raw", 20, 32, 3, seed=0, progress=False)
    enhancement = validate({"preprocess": {"image_size": 16, "clahe_tiles": 2}})["preprocess"]
    preprocess_folder(tmp / "raw", tmp / "proc", enhancement, progress=False)
    ds = load_images(tmp / "proc", progress=False)
    hp = {"learning_rate": 3e-3, "batch_size": 16, "kernel_size": 3, "horizontal_flip": 1}
    model, _ = train_model(hp, Split(ds.images, ds.labels), Split(ds.images, ds.labels), 3,
                           (16, 16, 3), settings(preset="tiny", epochs=6), verbose=False, seed=42)
    Run(tmp / "run").save_model(model, ds.class_names, read_settings(tmp / "proc"), hp)
    generate_synthetic_dataset(tmp / "new", 6, 32, 3, seed=99, progress=False)
    (tmp / "new" / "dataset.json").unlink()
    return tmp


def test_evaluate_writes_metrics_and_figures(run):
    m = evaluate_folder(run / "run", run / "new", progress=False)
    assert m["n"] == 18 and 0 <= m["accuracy"] <= 1
    from earth_lib.evaluation import output_name

    out = run / "run" / "evaluation" / output_name(run / "new")
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["accuracy"] == m["accuracy"] and len(saved["confusion_matrix"]) == 3
    assert (out / "figures" / "confusion_matrix.png").is_file()
    assert (out / "figures" / "mistakes.png").is_file()
    report = (out / "report.md").read_text()
    assert f"| ResNet | {100 * m['accuracy']:.1f} %" in report and "Grad-CAM" in report
    for link in re.findall(r"\]\((figures/[^)]+)\)", report):
        assert (out / link).is_file(), link
    assert (out / "report.html").read_text().count("data:image/png;base64,") == \
        report.count("![")


def test_evaluate_beats_chance_on_unseen_images(run):
    m = evaluate_folder(run / "run", run / "new", name="again", progress=False)
    assert m["accuracy"] > 0.5  # three classes: chance is 1/3


def test_evaluate_on_a_subset_of_classes(run, tmp_path):
    shutil.copytree(run / "new" / "water", tmp_path / "water")
    m = evaluate_folder(run / "run", tmp_path, progress=False)
    assert m["n"] == 6


def test_unknown_class_is_named(run, tmp_path):
    shutil.copytree(run / "new" / "water", tmp_path / "water")
    shutil.copytree(run / "new" / "forest", tmp_path / "glacier")
    with pytest.raises(ValueError, match="class 'glacier' is not one the model knows"):
        evaluate_folder(run / "run", tmp_path, progress=False)


def test_predict_writes_probabilities_and_lists_unreadable(run, tmp_path):
    for p in sorted((run / "new").rglob("*.png"))[:5]:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (tmp_path / "notes.txt").write_text("ignored")
    out = predict_folder(run / "run", tmp_path, progress=False)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5
    assert set(rows[0]) == {"path", "predicted_class", "p_cropland", "p_forest", "p_water"}
    for r in rows:
        probs = [float(r[f"p_{c}"]) for c in ("cropland", "forest", "water")]
        assert abs(sum(probs) - 1) < 1e-4 and r["predicted_class"] == \
            ("cropland", "forest", "water")[int(np.argmax(probs))]
    bad = list(csv.DictReader((out.parent / "unreadable.csv").open()))
    assert [b["path"].rsplit("/", 1)[-1] for b in bad] == ["broken.jpg"]


def test_missing_run_is_a_clear_error(tmp_path):
    from tests.conftest import write_png

    write_png(tmp_path / "imgs" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(RunNotFoundError, match="finished run folder"):
        predict_folder(tmp_path, tmp_path / "imgs")
    with pytest.raises(RunNotFoundError, match="Run folder not found"):
        evaluate_folder(tmp_path / "nope", tmp_path)


def test_a_card_from_a_newer_version_is_refused(run, tmp_path):
    shutil.copytree(run / "run", tmp_path / "run")
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    (tmp_path / "run" / "model_card.json").write_text(json.dumps({**card, "schema": 99}))
    with pytest.raises(ValueError, match="schema 99; this earth-resnet reads up to 2"):
        predict_folder(tmp_path / "run", run / "new", progress=False)


def test_a_card_from_an_older_version_is_refused(run, tmp_path):
    """Schema-1 cards (no ``schema`` key) say to rerun, rather than feed the model wrongly."""
    shutil.copytree(run / "run", tmp_path / "run")
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    del card["schema"]
    (tmp_path / "run" / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="older earth-resnet"):
        evaluate_folder(tmp_path / "run", run / "new", progress=False)


def _pair_runs_folder(run, tmp_path):
    """Run A (the trained model) with a split.csv whose test rows are every processed image."""
    a = tmp_path / "outputs" / "a"
    shutil.copytree(run / "run", a)
    files = sorted((run / "proc").rglob("*.png"))
    (a / "split.csv").write_text("path,class,split\n" + "".join(
        f"{f},{f.parent.name},{'test' if i % 4 else 'train'}\n" for i, f in enumerate(files)))
    return a


def test_pair_runs_counts_the_images_each_model_alone_got_right(run, tmp_path):
    from earth_lib.experiments.pairing import pair_runs
    from earth_lib.nn.model import build_from_preset

    a = _pair_runs_folder(run, tmp_path)
    same = pair_runs(a, a, progress=False)  # a model against itself: nothing to tell apart
    assert same["images"] == 45 and same["diff_points"] == 0 and same["mcnemar_p"] == 1.0
    assert same["only_a_right"] == same["only_b_right"] == 0
    assert same["matches_record_a"] is None  # no metrics.json to check against
    # B: an untrained network (its own weights) with the same card, and a wrong record
    b = tmp_path / "outputs" / "cmp" / "arms" / "random" / "seed1"
    card = json.loads((a / "model_card.json").read_text())
    Run(b).save_model(build_from_preset((16, 16, 3), 3, "tiny", 3, 0.0), card["class_names"],
                      read_settings(run / "proc"), card["hyperparameters"])
    (b / "result.json").write_text(json.dumps({"test": {"accuracy": 0.5},
                                               "test_correct": [1] * 45}))
    r = pair_runs(a, b, progress=False)
    n, diff = r["images"], r["accuracy_a"] - r["accuracy_b"]
    assert r["only_a_right"] - r["only_b_right"] == round(diff * n)
    assert r["diff_points"] == pytest.approx(100 * diff)
    assert r["ci_low"] <= r["diff_points"] <= r["ci_high"] and 0 <= r["mcnemar_p"] <= 1
    assert r["matches_record_b"] is False  # the answers are not those recorded
    saved = json.loads((a / "paired" / "cmp_arms_random_seed1.json").read_text())
    assert saved["only_a_right"] == r["only_a_right"]
    # A's own record, from its measured accuracy: checked and matched
    (a / "metrics.json").write_text(json.dumps({"test": {"accuracy": r["accuracy_a"]}}))
    assert pair_runs(a, b, progress=False)["matches_record_a"] is True


def test_pair_runs_refuses_runs_that_did_not_see_the_same_images(run, tmp_path):
    from earth_lib.errors import ParameterError
    from earth_lib.experiments.pairing import pair_runs

    a = _pair_runs_folder(run, tmp_path)
    other = tmp_path / "outputs" / "other"
    shutil.copytree(a, other)
    rows = (a / "split.csv").read_text().splitlines()
    (other / "split.csv").write_text("\n".join(rows[:-1]) + "\n")  # one test image fewer
    with pytest.raises(ValueError, match="lists other test images"):
        pair_runs(a, other, progress=False)
    card = json.loads((a / "model_card.json").read_text())
    card["preprocess"]["clahe_tiles"] = 8
    (other / "split.csv").unlink()
    (other / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ParameterError, match="preprocessed differently .clahe_tiles: 2 vs 8"):
        pair_runs(a, other, progress=False)
    (other / "model_card.json").write_text((a / "model_card.json").read_text())
    (other / "split.csv").write_text(rows[0] + "\nproc/gone.png,water,test\n")
    with pytest.raises(FileNotFoundError, match="proc/gone.png .a test image of .*not found"):
        pair_runs(other, run / "run", progress=False)  # B without a split of its own
    with pytest.raises(FileNotFoundError, match="split.csv not found"):
        pair_runs(run / "run", a, progress=False)  # run A must say which images are test
