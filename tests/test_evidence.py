"""The learning curve's advice to a run: the evidence file, the advice, the plan that follows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from earth_lib.experiments import report as curve_report
from earth_lib.experiments.curve import planned_names
from earth_lib.params import baseline_hyperparameters, validate
from earth_lib.planning import DataSummary, plan_run
from earth_lib.planning.evidence import EVIDENCE_FILE, advice_for, advice_lines, read_evidence
from tests.test_planning import CPU, EUROSAT


def _evidence(verdict="no difference shown", best="trivialaugment", replicates=5):
    search = {"verdict": verdict, "arm": "method", "gain_points": 0.4,
              "interval": [-1.1, 1.9], "replicates": replicates}
    acc = {"none": 0.8, "literature": 0.85, "trivialaugment": 0.88, "method": 0.884}
    return {"sizes": {"1000": {"replicates": replicates, "best_no_search": best,
                               "accuracy": acc, "search": search, "final_steps": 600},
                      "5000": {"replicates": replicates, "best_no_search": "literature",
                               "accuracy": acc, "search": {**search, "verdict": "pays"}}}}


def test_a_run_takes_the_advice_of_the_nearest_measured_size_within_reach():
    ev = _evidence()
    assert advice_for(1000, ev).size == 1000
    assert advice_for(1900, ev).size == 1000  # nearer 1,000 than 5,000 on a log scale
    assert advice_for(3000, ev).size == 5000
    assert advice_for(400, ev).size is None  # more than a factor 2 from any measured size
    assert advice_for(20000, ev).size is None  # beyond a size where the search paid
    assert advice_for(1000, _evidence(replicates=2)).size is None  # too few replicates
    assert advice_for(1000, {"sizes": {}}).overrides() == {}


def test_beyond_the_largest_size_where_the_search_did_not_pay_its_advice_holds():
    from earth_lib.planning.evidence import auto_choices

    ev = _evidence()
    for verdict in ("loses", "no difference shown"):
        ev["sizes"]["5000"]["search"]["verdict"] = verdict
        far = advice_for(20000, ev)
        assert far.size == 5000 and far.beyond and far.search_pays() is False
        assert "(the largest measured, below 20,000)" in far.where
        assert far.search_reason().endswith("so none is expected with more")
    choices, why = auto_choices(20000, (), ev)
    assert choices == {"search.enabled": False}  # the literature values were best there
    assert "largest measured" in why["search.enabled"]
    assert advice_for(9000, ev).size == 5000 and not advice_for(9000, ev).beyond  # in reach
    assert advice_lines(ev)[-1].startswith("More than 10,000 images: as at 5,000 (trains "
                                           "with literature, no search)")
    assert not any(line.startswith("More") for line in advice_lines(_evidence()))
    assert advice_for(400, ev).size is None  # the method claims its gain below: not advised
    ev["sizes"]["5000"]["search"]["verdict"] = "not judged yet"
    assert advice_for(20000, ev).size is None


def test_the_advice_names_what_to_train_and_whether_to_search():
    a = advice_for(1200, _evidence())
    assert a.overrides() == {"baseline.policy": "trivialaugment"}
    assert a.search_pays() is False
    assert "nearest measured to 1,200" in a.search_reason()
    assert "88.0 % against 85.0 % for the literature values" in a.augmentation_reason()
    assert "trained 600 optimiser steps" in a.augmentation_reason()  # the verdict's length
    assert advice_for(5000, _evidence()).overrides() == {}  # the literature values won
    assert advice_for(5000, _evidence()).search_pays() is True
    none = advice_for(1000, _evidence(best="none")).overrides()
    assert set(none.values()) == {0} and "baseline.rotation" in none


def test_the_advice_names_the_data_the_curve_measured_on():
    about = {"dataset": "eurosat", "images": 22000, "classes": 10, "bands": 3,
             "image_size": 64}
    digest = {"data": "d1", "cell": "c", "settings": "s"}
    old, new = {"fingerprint": digest}, {"fingerprint": digest, "data": about}
    # records made before the field share their data digest with those that name it
    assert curve_report.curve_data([old, new, old]) == about
    assert curve_report.curve_data([old, old]) is None  # nothing names it
    other = {"fingerprint": {**digest, "data": "d2"}}
    assert curve_report.curve_data([old, new, other]) is None  # two data sets: none named
    assert curve_report.curve_data([new, {**new, "data": {**about, "bands": 13}}]) is None
    ev = {**_evidence(), "data": about}
    a = advice_for(1200, ev, run_data={"bands": 3, "image_size": 64})  # alike: not said
    assert "the learning curve (eurosat, 10 classes, 3 bands, 64 px) at 1,000 training " \
        "images (the nearest measured to 1,200)" in a.search_reason()
    assert "(eurosat" in a.augmentation_reason()
    assert "(eurosat" not in advice_for(1200, _evidence()).search_reason()
    assert advice_lines(ev) == advice_lines(_evidence())  # the page names the data once
    # a run on other data hears how they differ; what it does not say is not compared
    assert "(eurosat, 10 classes, 3 bands, 64 px; this run: 13 bands, 64 px) at 1,000" in \
        advice_for(1200, ev, run_data={"bands": 13, "image_size": 64}).search_reason()
    assert "64 px; this run: 256 px) at" in advice_for(
        1200, ev, run_data={"image_size": 256}).augmentation_reason()


def _tied(gain_none=-0.8, gain_dihedral=1.9):
    """5,000 images where no augmentation and the dihedral group tie, and the length check."""
    ev = _evidence()
    ev["sizes"]["5000"] |= {"best_no_search": "none",
                            "accuracy": {"none": 0.915, "dihedral": 0.914, "literature": 0.887},
                            "ties": {"dihedral": {"diff_points": -0.2, "interval": [-0.9, 0.5]}}}
    ev["length_gain"] = {"none": {"points": gain_none, "cells": 4, "sizes": [250, 500, 5000]},
                         "dihedral": {"points": gain_dihedral, "cells": 3, "sizes": [250, 500]}}
    return ev


def test_of_arms_the_curve_cannot_tell_apart_the_one_that_gains_from_longer_training_wins():
    a = advice_for(5000, _tied())
    assert a.best_no_search == "none" and a.arm == "dihedral"
    assert a.overrides() == {"baseline.policy": "dihedral"}
    reason = a.augmentation_reason()
    assert "tied with the best arm without a search, none (91.5 %; -0.2 points, 95 % " \
        "interval -0.9 to +0.5, 5 replicates)" in reason
    assert "(the length check, 250 and 500 images), dihedral gained +1.9 points on " \
        "average and none -0.8" in reason
    # the lead by mean stands when longer training does not make up for it
    assert advice_for(5000, _tied(gain_none=1.0, gain_dihedral=1.05)).arm == "none"
    # no length check for every candidate, or no tie: the best by mean
    ev = _tied()
    del ev["length_gain"]["dihedral"]
    assert advice_for(5000, ev).arm == "none"
    ev = _tied()
    del ev["sizes"]["5000"]["ties"]
    assert advice_for(5000, ev).arm == "none"
    assert advice_for(5000, ev).augmentation_reason().startswith("the best arm without a search")
    lines = advice_lines(_tied())  # what docs/curve.md says a run does at each size
    assert lines[0].startswith("1,000 images: trains with trivialaugment: the best arm")
    assert "; no search: no gain shown in the learning curve at 1,000" in lines[0]
    assert lines[1].startswith("5,000 images: trains with dihedral: 91.4 %")
    assert "; searches (budgeted: where trials fit): it pays in the learning curve at " \
        "5,000" in lines[1]
    assert advice_lines(_evidence(replicates=2)) == []  # too few replicates: no advice
    plan = _plan(_tied(), DataSummary(images=6000, classes=10, native_size=64, bands=3))
    assert plan.choices["baseline.policy"] == "dihedral"
    assert "tied with the best arm without a search, none" in plan.reasons["baseline.policy"]


def _plan(evidence, data=EUROSAT, budget=3000, given=None):
    given = {"data": {"raw_dir": "data/raw/mine"}, "budget_minutes": budget, **(given or {})}
    return plan_run(validate(given), given, CPU, data, evidence)


def test_the_plan_follows_the_evidence_and_says_why():
    small = DataSummary(images=1500, classes=10, native_size=64, bands=3)  # 1,050 to train
    without = _plan(None, small)
    assert without.choices["search.enabled"] is True  # the budget affords trials
    plan = _plan(_evidence(), small)
    assert plan.choices["search.enabled"] is False
    assert "no search: no gain shown in the learning curve at 1,000" in \
        plan.reasons["search.enabled"]
    assert plan.choices["baseline.policy"] == "trivialaugment"
    assert "search" not in plan.stages and plan.expected_minutes < without.expected_minutes
    about = {"dataset": "eurosat", "images": 22000, "classes": 10, "bands": 3, "image_size": 64}
    bands = _plan({**_evidence(), "data": about}, DataSummary(1500, 10, 64, 13))
    assert "3 bands, 64 px; this run: 13 bands) at 1,000" in bands.reasons["search.enabled"]
    big = DataSummary(images=6000, classes=10, native_size=64, bands=3)
    paid = _plan(_evidence(), big)
    assert paid.choices["search.enabled"] is True and "it pays" in paid.reasons["search.enabled"]
    short = _plan(_evidence(verdict="pays"), small, budget=20)  # no time for trials
    assert short.reasons["search.enabled"].endswith(
        "after the final training: trivialaugment augmentation (baseline.policy)")
    quiet = _plan(None, small, budget=20, given={"baseline": {"rotation": 0.0}})
    assert quiet.reasons["search.enabled"].endswith("the file's baseline values")
    hand = _plan(_evidence(), small, given={"baseline": {"policy": "dihedral"},
                                            "search": {"enabled": True}})
    assert "baseline.policy" not in hand.choices and "search.enabled" not in hand.choices
    labels = _plan(_evidence(), small, given={"task": "multilabel", "data": {
        "raw_dir": "data/raw/mine", "labels_csv": "labels.csv"}})  # the curve is single-label
    assert labels.choices["search.enabled"] is True and "baseline.policy" not in labels.choices


def test_a_policy_replaces_the_six_augmentation_values():
    hp = baseline_hyperparameters(validate({"baseline": {"policy": "randaugment"}}))
    assert hp["policy"] == "randaugment" and hp["rotation"] == 0 and hp["horizontal_flip"] == 0
    assert "policy" not in baseline_hyperparameters(validate({}))  # the literature values
    with pytest.raises(Exception, match="baseline.policy"):
        validate({"baseline": {"policy": "autoaugment"}})


def test_the_evidence_comes_from_the_records():
    rng = np.random.default_rng(1)
    rows = []
    for rep in range(4):
        for arm, acc in (("literature", 0.80), ("randaugment", 0.83), ("method", 0.835),
                         ("random", 0.82)):
            rows.append({"size": 500, "replicate": rep, "arm": arm,
                         "accuracy": acc + 0.005 * rng.random(), "macro_f1": acc,
                         "minutes": 1.0, "steps": 500})
    import pandas as pd

    acc = pd.DataFrame(rows)
    ev = curve_report.evidence(acc, curve_report.comparisons(acc))
    entry = ev["sizes"]["500"]
    assert entry["best_no_search"] == "randaugment" and entry["replicates"] == 4
    assert entry["final_steps"] == 500
    assert entry["search"]["arm"] == "method" and entry["search"]["verdict"] in (
        "pays", "no difference shown")
    assert advice_for(500, ev).overrides() == {"baseline.policy": "randaugment"}


def test_the_committed_evidence_is_the_committed_records():
    """``make curve-report`` regenerates the planner's evidence; it must be in step."""
    root = Path(__file__).resolve().parents[1]
    records = curve_report.load_records(root / "results" / "curve")
    expected = curve_report.planner_evidence(records, "results/curve")
    assert read_evidence(EVIDENCE_FILE) == json.loads(json.dumps(expected)), \
        "run make curve-report and commit earth_lib/planning/curve_evidence.json"


def test_the_readmes_curve_blocks_are_the_committed_records(monkeypatch):
    """README's opening answer and curve table regenerate from ``results/curve`` alone."""
    from earth_lib.report.tables import GENERATED

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    records = curve_report.load_records("results/curve")
    plan = planned_names("results/curve")
    blocks = {m["kind"]: m["body"] for m in GENERATED.finditer(Path("README.md").read_text())
              if m["args"].strip() == "results/curve"}
    assert set(blocks) == {"pays", "curve"}
    assert blocks["pays"] == curve_report.where_search_pays(records, plan) + "\n", \
        "run make readme"
    assert blocks["curve"] == curve_report.curve_verdicts(records, plan=plan) + "\n", \
        "run make readme"


def test_a_run_is_told_what_the_curve_says_of_its_search():
    from earth_lib.planning.evidence import search_note

    assert "has not measured" in search_note(300, True, _evidence())
    note = search_note(1000, True, _evidence())
    assert "no gain shown" in note and "baseline.policy=trivialaugment" in note
    assert "would save" not in search_note(1000, False, _evidence())
    assert "it pays" in search_note(5000, True, _evidence())


def test_search_enabled_auto_follows_the_curve_where_it_measured():
    from earth_lib.planning.evidence import auto_choices, search_note

    choices, why = auto_choices(1000, (), _evidence())  # no gain shown: no search
    assert choices == {"search.enabled": False, "baseline.policy": "trivialaugment"}
    assert why["search.enabled"].startswith("no gain shown in the learning curve at 1,000")
    assert "88.0 % against 85.0 %" in why["baseline.policy"]
    kept, _ = auto_choices(1000, {"baseline.policy"}, _evidence())  # set by hand: stays
    assert kept == {"search.enabled": False}
    paid, why = auto_choices(5000, (), _evidence())  # the search paid: it runs, as declared
    assert paid == {"search.enabled": True} and why["search.enabled"].startswith("it pays")
    far, why = auto_choices(300, (), _evidence())  # nothing measured near: the method
    assert far == {"search.enabled": True} and "not measured the search near 300" in \
        why["search.enabled"]
    labels, why = auto_choices(1000, (), _evidence(), task="multilabel")  # not measured either
    assert labels == {"search.enabled": True}
    assert why["search.enabled"].startswith("the learning curve measured the search on "
                                            "single-label scenes only, not multilabel")
    assert "single-label scenes only" in search_note(1000, True, _evidence(), "multilabel")
    assert advice_for(1000, _evidence(), "multilabel").overrides() == {}


def test_a_budgeted_plan_treats_search_enabled_auto_as_unset():
    small = DataSummary(images=1500, classes=10, native_size=64, bands=3)
    auto = _plan(_evidence(), small, given={"search": {"enabled": "auto"}})
    assert auto.choices["search.enabled"] is False
    assert auto.choices == _plan(_evidence(), small).choices


def _run(folder, text):
    """A run folder whose parameter file is ``text``."""
    import yaml

    from earth_lib.run import Run

    folder.mkdir(exist_ok=True)
    (folder / "p.yaml").write_text(text)
    run = Run(folder / "run", validate(yaml.safe_load(text)), str(folder / "p.yaml"))
    run.path.mkdir()
    return run


def test_a_run_settles_search_enabled_auto_records_why_and_keeps_what_was_set(tmp_path):
    run = _run(tmp_path, "baseline: {rotation: 10.0}\n")
    P, lines = run.params, []
    out = run.follow_evidence(1200, lines.append, _evidence())
    assert out is P and P["search"]["enabled"] is False  # in place: the notebook's P
    assert P["baseline"]["policy"] == "trivialaugment" and P["baseline"]["rotation"] == 10.0
    assert lines[0].startswith("search.enabled is auto") and "search.enabled = False: no gain" \
        in lines[1]
    record = json.loads(run.record_path.read_text())
    assert record["params"]["search"]["enabled"] is False
    assert record["evidence"]["choices"] == {"search.enabled": False,
                                             "baseline.policy": "trivialaugment"}
    assert record["evidence"]["train_images"] == 1200
    hand = _run(tmp_path / "hand", "search: {enabled: true}\n")
    said = []
    assert hand.follow_evidence(1200, said.append, _evidence())["search"]["enabled"] is True
    assert said == ["The search: no gain shown in the learning curve at 1,000 training images "
                    "(the nearest measured to 1,200), trained 600 optimiser steps: its best arm "
                    "(method) +0.4 points (95 % interval -1.1 to +1.9) against trivialaugment "
                    "without a search. search.enabled=false, training with "
                    "baseline.policy=trivialaugment, would save its time."]
    assert not hand.record_path.exists()
    said = []
    hand.follow_evidence(1200, said.append, {**_evidence(), "data": {
        "dataset": "eurosat", "images": 22000, "classes": 10, "bands": 3, "image_size": 64}},
        shape=(256, 256, 3))  # the notebook passes an image's shape
    assert "(eurosat, 10 classes, 3 bands, 64 px; this run: 3 bands, 256 px)" in said[0]


def test_the_search_refuses_an_unsettled_auto(tmp_path):
    from earth_lib.params import search_plan
    from earth_lib.search import SearchSpace, search_or_baseline

    space = SearchSpace.from_dict({"rotation": {"type": "continuous", "bounds": [0, 10]}})
    with pytest.raises(TypeError, match="'auto'"):
        search_or_baseline(lambda hp: {"val_loss": 1.0}, space, tmp_path / "h.csv", {},
                           search_plan(validate({})), enabled="auto", evaluate_baseline=False)
