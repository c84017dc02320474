"""The per-run report (report.md / report.html) and the Grad-CAM maps it shows."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from earth_lib.metrics import evaluate_predictions
from earth_lib.report.run_report import (
    accuracy_interval,
    headline_sentence,
    run_report,
    write_report,
)
from earth_lib.run import Run

NAMES = ["forest", "river", "urban"]


def test_the_interval_is_wilsons():
    low, high = accuracy_interval({"accuracy": 0.5, "n": 100})
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = accuracy_interval({"accuracy": 1.0, "n": 20})
    assert high == pytest.approx(1.0) and 0.83 < low < 0.84  # never above 100 %


def test_the_sentence_says_above_or_below_the_baseline():
    test = {"accuracy": 0.9, "n": 50}
    assert "45 of 50 test images (90.0 %), 10.0 points above" in headline_sentence(
        test, {"accuracy": 0.8})
    assert "5.0 points below" in headline_sentence(test, {"accuracy": 0.95})


def _scored(rng, right: float, n: int = 60):
    y = np.arange(n) % 3
    pred = np.where(rng.random(n) < right, y, (y + 1) % 3)
    proba = np.full((n, 3), 0.1)
    proba[np.arange(n), pred] = 0.8
    return evaluate_predictions(y, proba, NAMES)


def _run_folder(tmp_path, searched: bool) -> Run:
    rng = np.random.default_rng(0)
    run = Run(tmp_path / "r")
    run.figures.mkdir(parents=True)
    hp = {"rotation": 30.0, "learning_rate": 0.002, "batch_size": 32}
    search = {"best_hyperparameters": hp, "chosen_by": "search" if searched else "baseline",
              "trials": 6 if searched else 0, "failed_trials": 0, "best_val_loss": 0.41,
              "step_bounds": [{"step": 1, "rotation": {"bounds": [0, 180]},
                               "learning_rate": {"bounds": [5e-4, 5e-3], "log": True},
                               "batch_size": {"values": [16, 32]}}] if searched else []}
    metrics = {"test": _scored(rng, 0.9), "classical_baseline": _scored(rng, 0.7),
               "class_names": NAMES, "split_sizes": {"train": 200, "val": 40, "test": 60},
               "search": search, "literature_baseline": {"val_loss": 0.52}}
    run.metrics_path.write_text(json.dumps(metrics))
    run.record_path.write_text(json.dumps({"params_file": "params/x.yaml", "overrides": "",
                                           "git_commit": "abc", "params": {}}))
    if searched:
        pd.DataFrame({"step": [0, 1, 1, 2, 2, 2], "status": ["ok"] * 6,
                      "rotation": rng.uniform(0, 180, 6),
                      "learning_rate": rng.uniform(5e-4, 5e-3, 6),
                      "batch_size": [16, 32] * 3, "val_loss": rng.uniform(0.4, 0.9, 6)}
                     ).to_csv(run.search_history, index=False)
    return run


@pytest.mark.parametrize("searched", [True, False])
def test_a_run_report_has_its_headline_figures_and_search(tmp_path, searched):
    from earth_lib.nn.explain import CamExamples

    run = _run_folder(tmp_path, searched)
    m = json.loads(run.metrics_path.read_text())
    cams = CamExamples(np.full((3, 8, 8, 3), 120.0), np.array([0, 1, 2]), np.array([0, 2, 2]),
                       np.array([0.9, 0.6, 0.8]), np.random.default_rng(1).random((3, 8, 8)))
    md_path, html_path = write_report(run_report(run, cams), run.path)
    md = md_path.read_text()
    acc, base = m["test"]["accuracy"], m["classical_baseline"]["accuracy"]
    assert f"| ResNet ({'search' if searched else 'literature'} values) | {100 * acc:.1f} %" in md
    assert f"| classical baseline | {100 * base:.1f} %" in md
    assert f"{100 * (acc - base):.1f} points above the classical baseline" in md
    links = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert {"figures/report_confusion.png", "figures/report_f1.png",
            "figures/grad_cam.png"} <= set(links)
    assert ("figures/report_values.png" in links and "figures/report_bounds.png" in links
            and "6 trials" in md) == searched
    assert ("No search ran" in md) != searched
    from earth_lib.planning.evidence import search_note

    train = m["split_sizes"]["train"]
    assert search_note(train, searching=searched) in md  # what the curve says at its size
    assert "; this run:" not in md  # no model card: the run's data unknown, no comparison
    from dataclasses import asdict

    from earth_lib.run import ModelCard

    card = ModelCard(NAMES, [128, 128, 3], {}, m["search"]["best_hyperparameters"])
    run.card_path.write_text(json.dumps(asdict(card)))
    md = write_report(run_report(run, cams), run.path)[0].read_text()
    assert "; this run: 3 bands, 128 px) at 250 training images" in md  # the curve: 64 px
    for link in links:
        assert (run.path / link).is_file(), link
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == len(links) and "<table" in page


def test_the_report_names_the_commit_and_says_when_the_code_differed_from_it():
    from earth_lib.report.run_report import commit_words

    sha = "1dfd361843a6bd8221fb78c521f948d4ca303c28"
    assert commit_words(sha) == "`1dfd361843a6`"
    assert commit_words(sha + "-dirty") == "`1dfd361843a6` with uncommitted changes"
    assert commit_words(None) == "unknown (not a git checkout)"


def test_a_run_trained_with_a_policy_says_so_not_the_literature_values(tmp_path):
    run = _run_folder(tmp_path, searched=False)
    m = json.loads(run.metrics_path.read_text())
    m["literature_baseline"] = {"hyperparameters": {"rotation": 0, "policy": "dihedral"},
                                "val_loss": 0.52}
    run.metrics_path.write_text(json.dumps(m))
    md = write_report(run_report(run), run.path)[0].read_text()
    assert "| ResNet (dihedral augmentation) |" in md and "literature" not in md
    assert ("the final training used the dihedral augmentation. Why: search.enabled is false "
            "in its parameters.") in md
    from earth_lib.planning.evidence import search_note

    assert search_note(200, searching=False) in md  # and what the curve says at its size
    why = "no search: no gain shown in the learning curve at 500 training images"
    from dataclasses import replace

    from tests.test_evidence import _plan

    plan = replace(_plan(None), reasons={"search.enabled": why})
    run.plan_path.write_text(json.dumps(plan.to_json()))
    md = write_report(run_report(run), run.path)[0].read_text()
    assert f"Why: its plan (plan.json) says {why}." in md  # the plan's own reason
    run.plan_path.unlink()  # search.enabled: auto, settled by the curve (Run.follow_evidence)
    record = json.loads(run.record_path.read_text())
    record["evidence"] = {"reasons": {"search.enabled": "it loses in the learning curve"}}
    run.record_path.write_text(json.dumps(record))
    md = write_report(run_report(run), run.path)[0].read_text()
    assert "Why: search.enabled is auto, and it loses in the learning curve." in md



def test_the_results_table_names_the_baselines_policy(tmp_path, root):
    import shutil

    from earth_lib.report.tables import results_markdown

    # a committed record: all 22,000 EuroSAT images, the dihedral group, no search
    shutil.copytree(root / "results" / "runs" / "eurosat_full_cpu.set-026eba00", tmp_path / "r")
    table = results_markdown(tmp_path, runs=["r"])
    assert "| baseline val loss |" in table.splitlines()[0]
    assert "| baseline (dihedral augmentation) | - | 0.771 |" in table
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    del m["literature_baseline"]["hyperparameters"]["policy"]
    (tmp_path / "r" / "metrics.json").write_text(json.dumps(m))
    assert "| baseline (literature values) |" in results_markdown(tmp_path, runs=["r"])


def _linear_net():
    """image -> 1x1 conv (identity: the features are the bands) -> mean -> Dense -> softmax.

    Class 0 reads band 0, class 1 band 1, class 2 band 2, so Grad-CAM of class k must be
    band k itself, scaled to a peak of 1.
    """
    import keras

    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="bands")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="classes")(x)
    model = keras.Model(inputs, out)
    model.get_layer("bands").set_weights([np.eye(3).reshape(1, 1, 3, 3)])
    model.get_layer("classes").set_weights([np.eye(3) * 2.0, np.zeros(3)])
    return model


def test_grad_cam_is_the_class_evidence_where_it_lies():
    from earth_lib.nn.explain import grad_cam, last_feature_layer

    model = _linear_net()
    assert last_feature_layer(model) == "bands"
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (5, 6, 6, 3)).astype(np.float32)
    classes = np.array([0, 1, 2, 0, 2])
    maps = grad_cam(model, x, classes, batch_size=2)
    want = np.stack([x[i, :, :, k] / x[i, :, :, k].max() for i, k in enumerate(classes)])
    np.testing.assert_allclose(maps, want, atol=1e-5)  # the logit's gradient, not softmax's


def test_cam_examples_take_a_few_images_of_each_class():
    from earth_lib.nn.explain import cam_examples

    model = _linear_net()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (30, 6, 6, 3)).astype(np.float32)
    y = np.arange(30) % 3
    proba = model.predict(x, verbose=0)
    ex = cam_examples(model, x, y, proba, per_class=2, seed=1)
    assert list(ex.true) == [0, 0, 1, 1, 2, 2] and ex.maps.shape == (6, 6, 6)
    picked = model.predict(ex.images, verbose=0)
    assert np.array_equal(ex.predicted, picked.argmax(1))
    np.testing.assert_allclose(ex.confidence, picked.max(1), rtol=1e-5)
    again = cam_examples(model, x, y, proba, per_class=2, seed=1)
    assert np.array_equal(again.images, ex.images)  # the seed picks the same images
    both = np.eye(3)[y].astype(int)
    both[:, 0] = 1  # every image also shows class 0
    multi = cam_examples(model, x, both, proba, per_class=1, seed=1)
    assert list(multi.true) == [0, 1, 2] and list(multi.predicted) == [0, 1, 2]
    np.testing.assert_allclose(multi.confidence, [proba[x.tolist().index(img.tolist()), c]
                                                  for img, c in zip(multi.images, [0, 1, 2],
                                                                    strict=True)])
