"""The learning curve: policy-free augmentation, nested subsets, arm plans, records, statistics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from earth_lib.data import stratified_order
from earth_lib.errors import ParameterError
from earth_lib.experiments import curve, curve_run
from earth_lib.experiments import report as curve_report
from earth_lib.io import atomic_write_json
from earth_lib.nn.policies import OPERATIONS, PolicyAugment, training_augmentation
from earth_lib.nn.training import dihedral_views
from earth_lib.params import load_params, search_plan, validate
from earth_lib.provenance import cpu_model
from earth_lib.search import SearchLoop, SearchSpace, posterior_means


def _images(n=6, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype("float32")


# Policy-free augmentation ------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["dihedral", "trivialaugment", "randaugment"])
def test_policies_keep_shape_and_range_repeat_with_their_seed_and_rest_at_inference(policy):
    x = _images()
    a = np.asarray(PolicyAugment(policy, seed=3)(x, training=True))
    b = np.asarray(PolicyAugment(policy, seed=3)(x, training=True))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 255
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, x)
    np.testing.assert_array_equal(np.asarray(PolicyAugment(policy)(x, training=False)), x)


def test_dihedral_gives_each_image_one_of_its_eight_flips_and_quarter_turns():
    x = _images(n=16)
    out = np.asarray(PolicyAugment("dihedral", seed=1)(x, training=True))
    found = set()
    for i in range(len(x)):
        views = [v[0] for v in dihedral_views(x[i:i + 1])]
        match = [k for k, v in enumerate(views) if np.abs(out[i] - v).max() < 0.05]
        assert match, f"image {i} is not a flip or quarter turn of its input"
        found.add(match[0])
    assert len(found) > 2  # drawn per image, not once per batch


def _apply(policy, op, strength, x, sign=1.0):
    n = len(x)
    layer = PolicyAugment(policy)
    return np.asarray(layer.apply_operations(
        tf.constant(x), tf.fill((n,), OPERATIONS.index(op)), tf.fill((n,), float(strength)),
        tf.fill((n,), sign)))


def test_each_operation_does_what_its_name_says():
    x = np.round(_images(n=2, size=12))
    for op in ("identity", "brightness", "color", "contrast", "sharpness", "rotate", "shear_x",
               "translate_y"):  # at strength 0 every ranged operation is the identity
        np.testing.assert_allclose(_apply("trivialaugment", op, 0.0, x), x, atol=1e-3)
    np.testing.assert_allclose(_apply("trivialaugment", "brightness", 1.0, x, -1.0),
                               np.clip(x * 0.01, 0, 255), atol=1e-3)
    np.testing.assert_allclose(_apply("trivialaugment", "solarize", 1.0, x), 255 - x, atol=1e-3)
    posterized = _apply("trivialaugment", "posterize", 1.0, x)  # 8 - 6 bits: steps of 64
    assert set(np.unique(posterized)) <= {0.0, 64.0, 128.0, 192.0}
    assert set(np.unique(_apply("randaugment", "posterize", 1.0, x))) <= set(range(0, 256, 16))
    stretched = _apply("trivialaugment", "auto_contrast", 0.5, x * 0.5 + 20)
    assert stretched.min() == 0 and stretched.max() == pytest.approx(255)
    two = np.where(np.arange(12 * 12 * 3).reshape(1, 12, 12, 3) % 2, 100.0, 110.0)
    assert set(np.unique(_apply("trivialaugment", "equalize", 0.3, two))) == {0.0, 255.0}
    half = _apply("trivialaugment", "translate_x", 0.5, x)  # a quarter of the side
    assert not np.allclose(half, x)


def test_training_augmentation_adds_the_policy_after_the_methods_values():
    assert [type(lay).__name__ for lay in training_augmentation({"rotation": 10}).layers] \
        == ["RandomAffine"]
    stack = training_augmentation({"rotation": 0, "policy": "trivialaugment"})
    assert [type(lay).__name__ for lay in stack.layers] == ["PolicyAugment"]
    assert not training_augmentation({"policy": "none"}).layers
    with pytest.raises(ValueError, match="policy must be one of"):
        training_augmentation({"policy": "autoaugment"})


# Subsets, plans and parameters -------------------------------------------------------------

def test_a_stratified_order_keeps_every_prefix_in_proportion():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    order = stratified_order(labels, seed=5)
    assert sorted(order) == list(range(len(labels)))
    for n in (10, 50, 250, 1000):
        counts = np.bincount(labels[order[:n]], minlength=4)
        np.testing.assert_allclose(counts, n * np.array([0.1, 0.2, 0.3, 0.4]), atol=1.01)
    np.testing.assert_array_equal(order, stratified_order(labels, seed=5))
    assert not np.array_equal(order, stratified_order(labels, seed=6))


def _curve_data(n=600, classes=3):
    labels = np.arange(n) % classes
    images = np.zeros((n, 4, 4, 3), np.uint8)
    order = stratified_order(labels, 0)
    return curve.CurveData(images, labels, [f"c{i}" for i in range(classes)],
                           np.sort(order[:100]), np.sort(order[100:]), "x")


def test_subsets_are_nested_stratified_and_apart_from_validation_and_test():
    cd = _curve_data()
    small, val_small = cd.subset(30, 0, 0.25, seed=1)
    large, val_large = cd.subset(120, 0, 0.25, seed=1)
    assert set(small) <= set(large) and set(val_small) <= set(val_large)
    assert not set(large) & set(val_large) and not (set(large) | set(val_large)) & set(cd.test)
    assert np.bincount(cd.labels[small]).tolist() == [10, 10, 10]
    assert len(val_small) == 8 and len(val_large) == 30
    other, _ = cd.subset(30, 1, 0.25, seed=1)
    assert set(other) != set(small)  # a replicate is a new draw
    with pytest.raises(ParameterError, match="pool holds 500"):
        cd.subset(450, 0, 0.25, seed=1)


def test_the_plan_runs_the_fidelity_check_then_each_size_to_a_verdict_then_the_rest():
    c = validate({"curve": {"sizes": [100, 200], "replicates": {100: 5, 200: 3},
                            "final_steps": {100: 5, 200: 6}, "arms": ["literature", "method"],
                            "fidelity_sizes": [200], "fidelity_points": 2,
                            "fidelity_seeds": 2}})["curve"]
    names = [cell.name for cell in curve.plan_cells(c)]
    fidelity = ["fidelity-n00200-p0-s0", "fidelity-n00200-p0-s1", "fidelity-n00200-p1-s0",
                "fidelity-n00200-p1-s1"]
    first = [f"n{n:05d}-r{r}-{arm}" for n in (100, 200) for r in range(3)
             for arm in ("literature", "method")]
    rest = [f"n00100-r{r}-{arm}" for r in (3, 4) for arm in ("literature", "method")]
    assert names == fidelity + first + rest
    c = validate({"curve": {**c, "fidelity_trial_fractions": {200: [0.3], 100: [0.5]}}})["curve"]
    names = [cell.name for cell in curve.plan_cells(c)]
    assert names[4:8] == ["fidelity-n00200-p0-s0-t030", "fidelity-n00200-p0-s1-t030",
                          "fidelity-n00200-p1-s0-t030", "fidelity-n00200-p1-s1-t030"]
    assert names[8:] == first + rest  # 100 is no fidelity size: no longer trials there
    cell = curve.plan_cells(c)[4]
    assert curve.trial_steps(cell, c) == 2 and curve.planned_steps(cell, c) == 2  # 0.3 x 6


def test_refreshed_fidelity_trials_follow_the_longer_ones_and_keep_the_rest_as_they_were():
    given = {"sizes": [100, 200], "replicates": 3, "final_steps": {100: 5, 200: 10},
             "arms": ["literature", "method"], "fidelity_sizes": [200], "fidelity_points": 2,
             "fidelity_seeds": 1, "fidelity_trial_fractions": {200: [0.3]},
             "fidelity_refreshed": {200: [0.1]}}
    P = validate({"curve": given, "seed": 1})
    cells = curve.plan_cells(P["curve"])
    names = [cell.name for cell in cells]
    assert names[:6] == ["fidelity-n00200-p0-s0", "fidelity-n00200-p1-s0",
                         "fidelity-n00200-p0-s0-t030", "fidelity-n00200-p1-s0-t030",
                         "fidelity-n00200-p0-s0-t010-bn", "fidelity-n00200-p1-s0-t010-bn"]
    fresh, longer, full, arm = cells[4], cells[2], cells[0], curve.Cell(200, 0, "method")
    fixed = curve.Cell(200, 0, "literature")
    assert curve.trial_settings(fresh, P).refresh_bn and curve.trial_steps(fresh, P["curve"]) == 1
    cd = _curve_data()
    on = validate({"curve": given, "seed": 1, "search": {"refresh_bn": True}})
    # search.refresh_bn is the search arms' switch: it reruns their cells, not the fidelity
    # check's, nor those of the arms without a search (they run no trial)
    for cell in (fresh, longer, full, fixed):
        assert curve.cell_fingerprint(cell, P, cd) == curve.cell_fingerprint(cell, on, cd)
        assert curve.trial_settings(cell, on).refresh_bn == cell.refresh
    assert curve.trial_settings(arm, on).refresh_bn and not curve.trial_settings(arm, P).refresh_bn
    assert curve.cell_fingerprint(arm, P, cd) != curve.cell_fingerprint(arm, on, cd)
    with pytest.raises(ParameterError, match="curve.fidelity_refreshed"):
        validate({"curve": {**given, "fidelity_refreshed": {200: [1.5]}}})


def test_the_length_check_follows_its_sizes_first_replicates():
    c = validate({"curve": {"sizes": [100, 200], "replicates": {100: 5, 200: 3},
                            "final_steps": {100: 5, 200: 6}, "arms": ["none", "method"],
                            "fidelity_sizes": [], "length_check": {100: 3},
                            "length_check_replicates": 2}})["curve"]
    cells = curve.plan_cells(c)
    names = [cell.name for cell in cells]
    # after 100's three replicates, both arms of replicate 0, three times longer: the
    # search arm's after the cell whose values it trains
    assert names[5:8] == ["n00100-r2-method", "n00100-r0-none-x3", "n00100-r0-method-x3"]
    assert names[8] == "n00200-r0-none"
    # the second pass: the length check's other replicate, then the remaining replicates
    assert names[14:] == ["n00100-r1-none-x3", "n00100-r1-method-x3", "n00100-r3-none",
                          "n00100-r3-method", "n00100-r4-none", "n00100-r4-method"]
    assert len(names) == len(set(names)) == 5 * 2 + 3 * 2 + 2 * 2
    long, short, searched = cells[6], cells[0], cells[7]
    assert curve.final_steps(long, c) == 15 and curve.planned_steps(long, c) == 15
    # no trials: the values are those n00100-r0-method chose
    assert curve.planned_steps(searched, c) == 15 and curve.values_cell(searched) == cells[1]
    assert curve.values_cell(long) is None and curve.values_cell(cells[1]) is None
    assert curve.final_steps(short, c) == 5
    P = validate({"curve": c, "seed": 1})
    settings = curve.cell_settings(long, P)
    assert settings["final_steps"] == 15 and settings["values"] == curve.fixed_values("none", P)
    assert curve.cell_settings(short, P)["final_steps"] == 5
    assert curve.cell_settings(searched, P)["values_from"] == {"cell": "n00100-r0-method",
                                                               "final_steps": 5}
    # more length-check replicates than a size has: as many as it has
    few = validate({"curve": {**c, "length_check_replicates": 9}})["curve"]
    assert sum(cell.factor > 1 for cell in curve.plan_cells(few)) == 5 * 2
    # per size: 200's length check on one replicate, 100's on three
    per = validate({"curve": {**c, "length_check": {100: 3, 200: 2},
                              "length_check_replicates": {100: 3, 200: 1}}})["curve"]
    longer = [cell.name for cell in curve.plan_cells(per) if cell.factor > 1]
    assert len(longer) == 3 * 2 + 2 and "n00200-r0-method-x2" in longer
    assert "n00200-r1-none-x2" not in longer
    with pytest.raises(ParameterError, match="curve.length_check_replicates"):
        validate({"curve": {**c, "length_check_replicates": {100: 3}}})  # 200 missing


def test_a_search_arms_longer_cell_waits_for_the_values_its_cell_chose(tmp_path):
    P = validate({"curve": {"sizes": [100], "replicates": 1, "final_steps": {100: 5},
                            "arms": ["none", "method"], "fidelity_sizes": [],
                            "length_check": {100: 3}}, "seed": 1})
    cd = _curve_data()
    longer, fixed = curve.Cell(100, 0, "method", factor=3), curve.Cell(100, 0, "none", factor=3)
    assert curve_run.chosen_values(fixed, P, cd, tmp_path) is None  # it has its own values
    with pytest.raises(LookupError, match="n00100-r0-method-x3 trains the values "
                                          "n00100-r0-method chooses: not recorded yet"):
        curve_run.chosen_values(longer, P, cd, tmp_path)
    base = curve.Cell(100, 0, "method")
    chosen = {"rotation": 12.0, "learning_rate": 0.002, "batch_size": 32, "epochs": 2}
    record = {"hyperparameters": chosen, "fingerprint": curve.cell_fingerprint(base, P, cd)}
    (tmp_path / f"{base.name}.json").write_text(json.dumps(record))
    assert curve_run.chosen_values(longer, P, cd, tmp_path) == chosen
    # a record another setting made is no source: it is rerun first
    stale = {**record, "fingerprint": {**record["fingerprint"], "settings": "other"}}
    (tmp_path / f"{base.name}.json").write_text(json.dumps(stale))
    with pytest.raises(LookupError):
        curve_run.chosen_values(longer, P, cd, tmp_path)


def test_a_trials_share_of_the_final_training_can_differ_by_size():
    given = {"sizes": [100, 200], "final_steps": {100: 100, 200: 200}, "replicates": 1,
             "fidelity_sizes": []}
    one = validate({"curve": {**given, "trial_fraction": 0.1}})["curve"]
    assert [curve.trial_steps(curve.Cell(n, 0, "method"), one) for n in (100, 200)] == [10, 20]
    per = validate({"curve": {**given, "trial_fraction": {100: 0.3, 200: 0.1}}})["curve"]
    assert [curve.trial_steps(curve.Cell(n, 0, "method"), per) for n in (100, 200)] == [30, 20]
    assert curve.planned_steps(curve.Cell(100, 0, "method"), per) == 100 + 9 * 30
    # a fidelity training keeps its own first trial (curve.fidelity_first_trial, 0.1)
    assert curve.trial_steps(curve.Cell(100, 0, curve.FIDELITY), per) == 10


def test_the_plan_holds_every_cell_once_with_fewer_replicates_than_a_verdict_needs():
    c = validate({"curve": {"sizes": [100, 200], "replicates": {100: 1, 200: 4},
                            "final_steps": {100: 5, 200: 6}, "arms": ["method"],
                            "fidelity_sizes": []}})["curve"]
    names = [cell.name for cell in curve.plan_cells(c)]
    assert names == ["n00100-r0-method", "n00200-r0-method", "n00200-r1-method",
                     "n00200-r2-method", "n00200-r3-method"]


@pytest.mark.parametrize("trials", [3, 9, 12])
def test_every_search_arm_spends_the_same_number_of_trials(trials, tmp_path):
    P = validate({"curve": {"trials": trials}})
    curve.check_trial_budget(P)
    for arm in curve.SEARCH_ARMS:
        assert curve.loop_plan(arm, P, seed=0).planned_trials == trials, arm
    space, fixed, _ = curve.search_plan("lr_wd", P)
    assert set(space) == {"learning_rate", "weight_decay"} and fixed["rotation"] == 45
    assert curve.search_plan("noisy_gp", P)[2]["ard"] is True


def test_a_trial_count_the_methods_steps_cannot_share_is_refused():
    with pytest.raises(ParameterError, match=r"curve.trials: 8 trials .* 6 against 8 .* e.g. 9"):
        curve.check_trial_budget(validate({"curve": {"trials": 8}}))
    curve.check_trial_budget(validate({"curve": {"trials": 8, "arms": ["random", "none"]}}))


def test_the_fixed_arms_values():
    P = validate({})
    assert curve.fixed_values("none", P)["rotation"] == 0
    assert curve.fixed_values("literature", P)["rotation"] == 45
    assert curve.fixed_values("trivialaugment", P)["policy"] == "trivialaugment"
    both = curve.fixed_values("literature_dihedral", P)
    assert both == {**curve.fixed_values("literature", P), "policy": "dihedral"}
    assert [type(lay).__name__ for lay in training_augmentation(both).layers] \
        == ["RandomAffine", "PolicyAugment"]
    assert curve.epochs_for(300, 250, 64) == 75 and curve.epochs_for(10, 5000, 64) == 1


@pytest.mark.parametrize("given, key", [
    ({"sizes": [500, 250]}, "curve.sizes"),
    ({"replicates": {250: 5}}, "curve.replicates"),
    ({"replicates": [5, 5, 5, 5, 5]}, "curve.replicates"),
    ({"final_steps": {250: 1, 500: 2, 1000: 3, 2000: 4, 5000: 0}}, "curve.final_steps"),
    ({"arms": ["method", "hyperband"]}, "curve.arms"),
    ({"weight_decay_bounds": [0.1, 0.01]}, "curve.weight_decay_bounds"),
    ({"fidelity_sizes": [300]}, "curve.fidelity_sizes"),
    ({"fidelity_trial_fractions": {5000: [0.0]}}, "curve.fidelity_trial_fractions"),
    ({"fidelity_trial_fractions": {5000: 0.3}}, "curve.fidelity_trial_fractions"),
    ({"trails": 9}, "curve.trails"),
    ({"length_check": {300: 3}}, "curve.length_check"),
    ({"trial_fraction": 0.0}, "curve.trial_fraction"),
    ({"trial_fraction": {250: 0.3}}, "curve.trial_fraction"),  # not every size
    ({"length_check": {250: 1}}, "curve.length_check"),
])
def test_bad_curve_parameters_name_their_key(given, key):
    with pytest.raises(ParameterError, match=key.replace(".", r"\.")):
        validate({"curve": given})


def test_the_committed_curve_file_is_valid_and_one_cell_can_be_run_alone(root):
    P = load_params(root / "params" / "curve.yaml")
    assert P["curve"]["results_dir"] == "results/curve"
    c = P["curve"]
    longer = sum(len(f) for key in ("fidelity_trial_fractions", "fidelity_refreshed")
                 for f in c[key].values()) * 16
    lengths = sum(min(c["length_check_replicates"][size], c["replicates"][size]) for size in
                  c["length_check"]) * len(c["arms"])
    fidelity = len(c["fidelity_sizes"]) * c["fidelity_points"] * c["fidelity_seeds"]
    assert len(curve.plan_cells(c)) == (fidelity + longer + lengths
                                        + sum(c["replicates"].values()) * len(c["arms"]))
    one = load_params(root / "params" / "curve.yaml", "curve.sizes=[500] curve.replicates=1 "
                      "curve.arms=[method] curve.fidelity_sizes=[] curve.length_check={}")
    assert [c.name for c in curve.plan_cells(one["curve"])] == ["n00500-r0-method"]
    assert one["curve"]["final_steps"] == {500: P["curve"]["final_steps"][500]}


def test_an_extra_arm_runs_only_when_named():
    assert "literature_dihedral" not in validate({})["curve"]["arms"]
    named = validate({"curve": {"arms": ["literature", "literature_dihedral"], "sizes": [500],
                                "replicates": 1, "length_check": {500: 16},
                                "fidelity_sizes": []}})
    assert [c.name for c in curve.plan_cells(named["curve"])] == [
        "n00500-r0-literature", "n00500-r0-literature_dihedral",
        "n00500-r0-literature-x16", "n00500-r0-literature_dihedral-x16"]


# Search pieces the curve adds --------------------------------------------------------------

def test_posterior_means_discount_a_lucky_trial():
    space = SearchSpace.from_dict({"x": {"type": "continuous", "bounds": [0.0, 1.0]}})
    xs = [{"x": v} for v in np.linspace(0, 1, 11)]
    ys = [(p["x"] - 0.3) ** 2 for p in xs]
    ys[9] = -0.2  # one lucky draw far from where the loss is low
    means = posterior_means(space, xs, ys, seed=0, ard=True)
    assert len(means) == 11 and np.argmin(ys) == 9 and np.argmin(means) != 9


def test_finalists_at_the_trial_length_are_rescored_with_fresh_seeds(tmp_path):
    calls = []

    def objective(hp, budget=1.0, repeat=0):
        calls.append((budget, repeat))
        return {"val_loss": hp["x"] + 0.01 * repeat, "val_accuracy": 0.5}

    space = SearchSpace.from_dict({"x": {"type": "continuous", "bounds": [0.0, 1.0]}})
    plan = search_plan(steps=1, initial_points=4, iterations_per_step=0, finalists=2,
                       finalist_budget=1.0)
    SearchLoop(objective, space, tmp_path / "h.csv", plan, log=lambda m: None).run()
    assert calls[4:] == [(1.0, 1), (1.0, 1)]


# Records and statistics --------------------------------------------------------------------

def test_holm_and_paired_differences():
    assert curve_report.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(curve_report.holm([np.nan, 0.2])[0])
    d = curve_report.paired_difference(np.array([0.9, 0.8, 0.85, 0.9, 0.95]),
                                       np.array([0.8, 0.75, 0.8, 0.82, 0.9]))
    assert d["diff_points"] == pytest.approx(6.6) and d["ci_low"] > 0
    assert d["wilcoxon_p"] == pytest.approx(0.0625)  # 5 replicates, all positive: exact
    assert np.isnan(curve_report.paired_difference(np.array([0.9]), np.array([0.8]))["ci_low"])
    assert d["t_low"] < d["ci_low"] and d["t_high"] > d["ci_high"]  # t is wider with 5


def test_an_accuracy_interval_stays_within_0_and_1():
    rows = [{"size": 2000, "replicate": r, "arm": "dihedral", "accuracy": a}
            for r, a in enumerate((0.99, 0.80))]  # two replicates: t with one degree
    row = curve_report.summary(pd.DataFrame(rows).assign(macro_f1=0.0, minutes=1.0)).iloc[0]
    assert row["ci_low"] == 0.0 and row["ci_high"] == 1.0
    assert row["accuracy"] == pytest.approx(0.895)


def test_three_replicates_of_one_sign_are_not_a_verdict():
    # +1, +3 and +8 points: the bootstrap interval excludes zero; three replicates of one
    # sign happen one time in four by chance, and the t interval (Bonferroni) says so
    rows = []
    for rep, gain in enumerate((0.01, 0.03, 0.08)):
        rows += [{"size": 500, "replicate": rep, "arm": "literature", "accuracy": 0.8},
                 {"size": 500, "replicate": rep, "arm": "method", "accuracy": 0.8 + gain},
                 {"size": 500, "replicate": rep, "arm": "random", "accuracy": 0.79}]
    comp = curve_report.comparisons(pd.DataFrame(rows).assign(macro_f1=0.0, minutes=1.0))
    row = comp[(comp["arm"] == "method") & (comp["against"] == "best no-search")].iloc[0]
    assert row["ci_low"] > 0 > row["t_low"]
    assert "no difference shown" in curve_report.verdicts(comp)[500]
    assert "Bonferroni over 2 search arms" in curve_report.verdicts(comp)[500]
    one = curve_report.comparisons(pd.DataFrame(rows[:3]).assign(macro_f1=0.0, minutes=1.0))
    assert curve_report.verdicts(one)[500].startswith(  # one replicate judges nothing
        "500 images: not judged yet: the best search arm (method) +1.0 points")


def test_the_best_policy_free_arm_is_compared_only_where_it_is_not_the_best_no_search_arm():
    rows = []
    for rep in range(3):
        for size, best in ((250, "dihedral"), (500, "literature")):  # literature: not policy-free
            rows += [{"size": size, "replicate": rep, "arm": arm, "accuracy": acc}
                     for arm, acc in (("literature", 0.8), ("dihedral", 0.78), ("method", 0.7),
                                      ("trivialaugment", 0.75))]
            rows[-4 if best == "literature" else -3]["accuracy"] = 0.9
    comp = curve_report.comparisons(pd.DataFrame(rows).assign(macro_f1=0.0, minutes=1.0))
    free = comp[comp["against"] == "best policy-free"]
    assert set(free["size"]) == {500} and set(free["reference"]) == {"dihedral"}
    assert set(comp[comp["against"] == "best no-search"]["reference"]) == {"dihedral",
                                                                            "literature"}


def _record(size, rep, arm, acc, **extra):
    return {"size": size, "replicate": rep, "arm": arm, "test": {"accuracy": acc,
            "macro_f1": acc}, "seconds": {"search": 60, "final": 60, "test": 1}, **extra}


def _records():
    rng = np.random.default_rng(0)
    out = []
    for size, gain in ((250, 0.06), (1000, -0.02)):
        for rep in range(5):
            base = 0.7 + 0.05 * rng.random()
            for arm, shift in (("none", -0.05), ("literature", 0.0), ("trivialaugment", 0.01),
                               ("method", gain), ("random", 0.0)):
                out.append(_record(size, rep, arm, base + shift + 0.002 * rng.random(),
                                   **({"final_steps": 400} if size == 250 else {})))
    for point in range(4):
        for s in range(2):
            out.append(_record(1000, 0, "fidelity", 0.6 + 0.05 * point + 0.01 * s, point=point,
                               seed_index=s, trial_score={"val_loss": 1.5 - 0.1 * point},
                               hyperparameters={"batch_size": 32 if point < 2 else 64},
                               final_val_accuracy=0.9 - 0.1 * (point % 2)))
            out.append({"size": 1000, "replicate": 0, "arm": "fidelity_trial", "point": point,
                        "seed_index": s, "trial_steps": 60, "fraction": 0.1,
                        "trial_score": {"val_loss": 1.0 + 0.1 * point + 0.01 * s},
                        "seconds": {"search": 30, "final": 0.0, "test": 0.0}})
            out.append({"size": 1000, "replicate": 0, "arm": "fidelity_trial", "point": point,
                        "seed_index": s, "trial_steps": 60, "fraction": 0.1, "refresh_bn": True,
                        "trial_score": {"val_loss": 2.0 - 0.1 * point - 0.01 * s},
                        "seconds": {"search": 30, "final": 0.0, "test": 0.0}})
    for arm, acc in (("none", 0.99), ("trivialaugment", 0.9)):  # the length check
        out.append(_record(250, 0, arm, acc, final_steps=1200, length_factor=3))
    return out


def test_the_report_says_where_the_search_pays_from_the_records_alone(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    records = _records()
    for r in records[:3]:  # one machine named, the rest unrecorded
        r["provenance"] = {"cpu": "Example CPU"}
    for i, r in enumerate(records):
        (folder / f"{i:03d}.json").write_text(json.dumps(r))
    said = curve_report.verdicts(curve_report.comparisons(
        curve_report.accuracies(curve_report.load_records(folder))))
    assert said[250].startswith("250 images: the search pays: the best search arm (method)")
    assert said[1000].startswith("1,000 images: the search loses")
    fid = curve_report.fidelity(curve_report.load_records(folder))
    assert fid.loc[0, "rho"] > 0.9 and fid.loc[0, "rho_means"] == pytest.approx(1.0)
    assert fid.loc[0, "trainings"] == 8
    # within each batch size (2 configurations x 2 seeds) the losses still rank the errors
    assert fid.loc[0, "rho_within_batch"] > 0.8
    # configurations 5 points apart, seeds 1: there is something to rank
    assert fid.loc[0, "configurations_sd"] > 5 * fid.loc[0, "seeds_sd"] > 0
    # the first trials, the longer ones, then the full trainings' own validation error
    assert list(fid["trial_steps"]) == [0, 60, 60, curve_report.FULL_TRAINING]
    assert list(fid["refreshed"]) == [False, False, True, False]
    assert fid.loc[2, "rho"] > 0.9  # the same trials' refreshed losses rank them the right way
    assert abs(fid.loc[3, "rho"]) < 0.5  # a validation set that ranks by odd or even point
    # the longer trials rank the configurations backwards (their losses rise with accuracy)
    assert fid.loc[1, "rho"] < -0.9 and fid.loc[1, "trainings"] == 8
    assert fid.loc[1, "configurations_sd"] == fid.loc[0, "configurations_sd"]
    written = curve_report.write_curve_report(folder, tmp_path / "docs")
    page = written[0].read_text()
    # each size's training length beside its accuracies ("-": records without it)
    assert "| images | final steps | none |" in page
    assert f"Cells run: {len(records) - 3} on an unrecorded machine, 3 on Example CPU." in page
    assert "| 250 | 400 | " in page and "| 1,000 | - | " in page
    assert "| 1,000 | none: the full training's own validation error | 8 |" in page
    assert "| 1,000 | 60 steps, BatchNorm refreshed | 8 |" in page
    # the longer trainings: beside their cells, apart from the curve's accuracies
    assert "| 250 | none | 1 | " in page and "(1,200 steps)" in page
    assert "250 images (replicate 0): the best of these arms trained 1,200 steps is none, not " \
        "trivialaugment" in page
    assert "at the longer training" not in page  # one replicate, no search arm: no verdict
    assert "Fidelity" in page and all(p.stat().st_size > 10_000 for p in written[1:])
    assert {p.name for p in written[1:]} == {"curve_accuracy.png", "curve_gain.png",
                                              "curve_length.png", "curve_fidelity.png"}
    assert "](figures/curve_length.png)" in page
    assert "](figures/curve_fidelity.png)" in page
    readme_block = curve_report.curve_verdicts(curve_report.load_records(folder),
                                               str(tmp_path / "docs" / "figures"))
    assert f"]({tmp_path / 'docs' / 'figures'}/curve_accuracy.png)" in readme_block
    assert "| images | final steps | none | literature |" in readme_block
    # one row a size: its steps, the means (no interval), the verdict
    row = readme_block.split("| 250 | 400 |")[1].splitlines()[0]
    assert row.count("(5)") == 5 and row.endswith(" against trivialaugment |")
    assert re.search(r"\| pays: method \+\d\.\d \[\+\d\.\d, \+\d\.\d\] against", row)
    assert "| loses: random -" in readme_block.split("| 1,000 | - |")[1].splitlines()[0]
    # the length check: one replicate, no search arm, so no verdict
    assert "| 250 (longer) | 1,200 | 99.0 (1) |" in readme_block
    assert "curve_accuracy" not in curve_report.curve_verdicts(
        curve_report.load_records(folder), str(tmp_path / "nowhere"))
    # the README's opening sentence: where it pays, grouped by verdict, sizes from records
    pays = curve_report.where_search_pays(curve_report.load_records(folder))
    assert "5 arms on 250 and 1,000 training images" in pays
    assert re.search(r": at 250 training images\. The search pays at 250 images \(the best "
                     r"search arm against trivialaugment: \+\d\.\d points, on 5 replicates\)",
                     pays)
    assert "the search loses at 1,000 images (the best search arm against trivialaugment: -" in pays
    assert "Trained longer (the length check): not judged yet at 250 images" in pays
    assert curve_report.where_search_pays([]).endswith("has no record yet.")
    # "so far" until every planned cell has its record; the progress counts the plan's cells
    records = [{**r, "cell": f"cell{i}"} for i, r in enumerate(curve_report.load_records(folder))]
    names = [r["cell"] for r in records]
    assert pays.startswith("**Where the search pays**, so far (")  # no plan known
    assert curve_report.where_search_pays(records, names).startswith(
        "**Where the search pays** ([the learning curve]")
    more = [*names, "cell-to-come"]
    assert ", so far (" in curve_report.where_search_pays(records, more)
    assert curve_report.curve_verdicts(records, plan=more).startswith(
        f"{len(names)} of {len(more)} planned cells recorded, ")


def test_the_length_check_gets_its_own_verdict_and_advice_once_it_has_replicates(tmp_path):
    from earth_lib.planning.evidence import advice_for

    records = [r for r in _records() if not r.get("length_factor")]
    short = {(r["size"], r["replicate"], r["arm"]): r["test"]["accuracy"] for r in records
             if "test" in r}
    for rep in range(3):  # trained longer, literature overtakes, the search loses
        for arm, shift in (("none", -0.01), ("literature", 0.08), ("trivialaugment", 0.03),
                           ("method", 0.0)):
            records.append(_record(250, rep, arm, short[250, rep, arm] + shift + 0.001 * rep,
                                   final_steps=1200, length_factor=3))
    folder = tmp_path / "records"
    folder.mkdir()
    for i, r in enumerate(records):
        (folder / f"{i:03d}.json").write_text(json.dumps(r))
    curve_report.write_curve_report(folder, tmp_path / "docs", tmp_path / "evidence.json")
    page = (tmp_path / "docs" / "curve.md").read_text()
    assert "| 250 | literature | 3 | " in page
    assert "250 images (replicates 0, 1, 2): the best of these arms trained 1,200 steps is " \
        "literature, not method" in page
    assert "Verdict per size at the longer training" in page
    assert "- 250 images: trains with literature: the best arm without a search in the " \
        "learning curve at 250 training images, trained 1,200 optimiser steps" in page
    long_said = page.split("Verdict per size at the longer training")[1]
    assert "250 images: the search loses: the best search arm (method)" in long_said
    assert "against the best no-search arm (literature)" in long_said
    ev = json.loads((tmp_path / "evidence.json").read_text())
    longer = ev["sizes"]["250"]["longer"]
    assert longer["best_no_search"] == "literature" and longer["final_steps"] == 1200
    assert longer["replicates"] == 3 and longer["search"]["verdict"] == "loses"
    assert "longer" not in ev["sizes"]["1000"]
    # the advice follows the longer training where it has the replicates
    assert ev["sizes"]["250"]["best_no_search"] == "trivialaugment"
    advice = advice_for(250, ev)
    assert advice.overrides() == {} and advice.final_steps == 1200  # the literature values
    assert advice.search_pays() is False
    ev["sizes"]["250"]["longer"]["replicates"] = 2
    assert advice_for(250, ev).overrides() == {"baseline.policy": "trivialaugment"}
    block = curve_report.curve_verdicts(curve_report.load_records(folder), "nowhere")
    assert "| 250 (longer) | 1,200 | " in block
    assert re.search(r"\| loses: method -\d\.\d \[-\d\.\d, -\d\.\d\] against literature \|$",
                     block.split("| 250 (longer) |")[1].splitlines()[0])
    pays = curve_report.where_search_pays(curve_report.load_records(folder))
    assert "Trained longer (the length check): the search loses at 250 images (the best " \
        "search arm against literature: -" in pays and "points, on 3 replicates)" in pays


def _write_records(folder, records):
    folder.mkdir(parents=True)
    for i, r in enumerate(records):
        (folder / f"{i:03d}.json").write_text(json.dumps(r))
    return folder


def test_a_cell_trained_at_two_lengths_gets_a_row_each_and_the_verdict_the_shorter(tmp_path):
    records = [r for r in _records() if not r.get("length_factor")]
    for factor, acc in ((3, 0.8), (8, 0.9)):
        for arm in ("literature", "method"):
            records.append(_record(250, 0, arm, acc + (arm == "method") * 0.01,
                                   final_steps=400 * factor, length_factor=factor))
    longer = curve_report.accuracies(records, longer=True)
    assert set(longer["steps"]) == {1200} and len(longer) == 2  # the smallest factor only
    lengths = curve_report.length_check(records)
    assert list(zip(lengths["factor"], lengths["arm"], strict=True)) == [
        (3, "literature"), (3, "method"), (8, "literature"), (8, "method")]
    table = curve_report.length_markdown(lengths)
    assert "| 250 | literature | 1 | " in table and "| 90.0 (3,200 steps) | " in table
    assert "the best of these arms trained 3,200 steps is the same." in table
    assert curve_report.length_figure(lengths, tmp_path).stat().st_size > 10_000
    # no search arm among the records: no figure of its gain, nor a link to one
    plain = [r for r in records if r["arm"] in ("literature", "none")]
    written = curve_report.write_curve_report(_write_records(tmp_path / "plain", plain),
                                              tmp_path / "docs")
    assert {p.name for p in written[1:]} == {"curve_accuracy.png", "curve_length.png"}
    assert "curve_gain" not in written[0].read_text()


def test_another_records_folder_gets_its_own_page_and_leaves_the_planner_alone(tmp_path,
                                                                                monkeypatch):
    from earth_lib.cli import main
    from earth_lib.planning.evidence import EVIDENCE_FILE

    before = EVIDENCE_FILE.read_bytes()
    (tmp_path / "extra").mkdir()
    for i, r in enumerate(_records()):
        (tmp_path / "extra" / f"{i:03d}.json").write_text(json.dumps(r))
    monkeypatch.chdir(tmp_path)
    assert main(["curve-report", "extra", "--title", "Longer still"]) == 0
    page = (tmp_path / "docs" / "extra" / "curve.md").read_text()
    assert page.startswith("# Longer still\n") and "`extra`" in page
    assert "curve_gain.png" in page  # search arms compared: their gain's figure
    assert not (tmp_path / "docs" / "curve.md").exists()
    assert EVIDENCE_FILE.read_bytes() == before


# The curve end to end ----------------------------------------------------------------------

@pytest.mark.slow
def test_the_smoke_curve_runs_resumes_and_reruns_only_what_changed(tmp_path, root):
    from earth_lib.data.synthetic import generate_synthetic_dataset
    from earth_lib.preprocessing import DEFAULTS, preprocess_folder
    from earth_lib.run import Run, load_run

    images, processed = tmp_path / "raw", tmp_path / "processed"
    folders = f"data.raw_dir={images} preprocess.processed_dir={processed}"
    P = load_params(root / "params" / "curve_smoke.yaml", folders)
    d = P["data"]
    generate_synthetic_dataset(images, d["synthetic_images_per_class"], d["synthetic_image_size"],
                               d["synthetic_classes"], P["seed"], progress=False)
    preprocess_folder(images, processed, {**DEFAULTS, "image_size": 16}, progress=False)
    run, lines = Run(tmp_path / "run"), []
    assert curve_run.run_curve(P, run, log=lines.append) == 10
    records = sorted(p.stem for p in (run.path / "records").glob("*.json"))
    assert records == ["fidelity-n00024-p0-s0", "fidelity-n00024-p0-s0-t050-bn",
                       "fidelity-n00024-p1-s0", "fidelity-n00024-p1-s0-t050-bn",
                       "n00012-r0-literature", "n00012-r0-literature-x2", "n00012-r0-noisy_gp",
                       "n00012-r0-noisy_gp-x2", "n00024-r0-literature", "n00024-r0-noisy_gp"]
    searched, chose = (json.loads((run.path / "records" / f"n00012-r0-noisy_gp{x}.json")
                                  .read_text()) for x in ("-x2", ""))
    # the values the search chose, trained twice as long, without a search of its own
    assert searched["values_from"] == "n00012-r0-noisy_gp" and searched["trials"] == []
    assert {k: v for k, v in searched["hyperparameters"].items() if k != "epochs"} == \
        {k: v for k, v in chose["hyperparameters"].items() if k != "epochs"}
    assert searched["seconds"]["search"] < chose["seconds"]["search"]
    long, base = (json.loads((run.path / "records" / f"n00012-r0-literature{x}.json").read_text())
                  for x in ("-x2", ""))
    assert long["final_steps"] == 2 * base["final_steps"] and long["length_factor"] == 2
    assert long["seeds"] == base["seeds"] and long["hyperparameters"]["epochs"] == \
        2 * base["hyperparameters"]["epochs"]  # the same training, twice as long
    assert len(curve_report.accuracies(curve_report.load_records(run.path / "records"))) == 4
    fresh = json.loads((run.path / "records" / "fidelity-n00024-p1-s0-t050-bn.json").read_text())
    short = json.loads((run.path / "records" / "fidelity-n00024-p1-s0.json").read_text())
    assert fresh["trial_steps"] == 2 and "test" not in fresh  # a trial alone, no model
    assert short["trial_steps"] == 2  # its own trial: curve.fidelity_first_trial, 0.5 of 4
    assert fresh["seeds"]["train"] == short["seeds"]["train"]  # the full training's seed
    assert fresh["refresh_bn"] and "refresh_bn" not in short
    # the fidelity cell's own trial, scored once more after the refresh: its score as
    # trained is the other's, the refreshed one another
    assert fresh["trial_score"]["moving_stats_val_loss"] == pytest.approx(
        short["trial_score"]["val_loss"], rel=1e-3)
    assert fresh["trial_score"]["val_loss"] != short["trial_score"]["val_loss"]
    fid = curve_report.fidelity(curve_report.load_records(run.path / "records"))
    assert list(fid["trial_steps"]) == [0, 2, -1] and list(fid["trainings"]) == [2] * 3
    assert list(fid["refreshed"]) == [False, True, False]
    trials = fid[fid["trial_steps"] != curve_report.FULL_TRAINING]  # rows that ran a trial
    assert all(re.fullmatch(r"\d+ at batch \d+( / \d+ at batch \d+)*", e)
               for e in trials["trial_epochs"])  # the whole epochs the trials ran
    assert fid["trial_epochs"].iloc[-1] == ""  # the full training's row ran no trial
    rec = json.loads((run.path / "records" / "n00024-r0-noisy_gp.json").read_text())
    assert len(rec["trials"]) == 3 and len(rec["test_correct"]) == 12
    assert rec["trial_steps"] == 2  # curve.trial_fraction, 0.5 of 4
    assert rec["images"] == {"train": 24, "val": 6, "test": 12}
    # every record, trial or trained, names the data it measured on
    classes = d["synthetic_classes"]
    assert {json.dumps(json.loads(p.read_text())["data"]) for p in
            (run.path / "records").glob("*.json")} == {json.dumps(
                {"dataset": "synthetic", "images": classes * d["synthetic_images_per_class"],
                 "classes": classes, "bands": 3, "image_size": 16})}
    page = curve_report.curve_markdown(curve_report.load_records(run.path / "records"), None)
    assert page.startswith(f"The data: synthetic, {classes} classes, 3 bands, 16 px, "
                           f"{classes * d['synthetic_images_per_class']} images in all")
    assert load_run(run.path / "cells" / "n00024-r0-noisy_gp").load_card().class_names
    assert not list(run.path.rglob(curve_run.BACKUP))  # finished trainings leave no backup
    assert curve_run.run_curve(P, run, log=lines.append) == 0  # all done: nothing rerun
    stale = run.path / "records" / "n00012-r0-literature.json"  # as if made by other settings
    rec = json.loads(stale.read_text())
    stale.write_text(json.dumps({**rec, "fingerprint": {**rec["fingerprint"], "settings": "x"}}))
    assert curve_run.run_curve(P, run, log=lines.append) == 1  # that cell alone, rerun
    assert any("n00012-r0-literature (rerun: its settings changed)" in m for m in lines)
    assert json.loads(stale.read_text())["fingerprint"] == rec["fingerprint"]


def test_the_committed_records_still_match_the_code_that_would_rerun_them():
    """A change to a cell's settings makes its committed record stale (rerun): deliberately."""
    root = Path(__file__).resolve().parents[1]
    P = load_params(root / "params" / "curve.yaml")
    cells = {c.name: c for c in curve.plan_cells(P["curve"])}
    records = sorted((root / "results" / "curve").glob("*.json"))
    if not records:
        pytest.skip("no committed curve records")
    for path in records:
        record = json.loads(path.read_text())
        cell = cells[record["cell"]]
        settings = curve.digest({"settings": curve.cell_settings(cell, P)})["settings"]
        assert settings == record["fingerprint"]["settings"], f"{path.name} would rerun"


def test_the_time_left_counts_each_cells_steps():
    c = {"final_steps": {250: 400, 5000: 1200}, "trial_fraction": {250: 0.1, 5000: 0.1},
         "fidelity_first_trial": 0.1,
         "trials": 8, "workers": 2}
    assert curve.planned_steps(curve.Cell(250, 0, "literature"), c) == 400
    assert curve.planned_steps(curve.Cell(250, 0, "method"), c) == 400 + 8 * 40
    assert curve.planned_steps(curve.Cell(5000, 0, curve.FIDELITY), c) == 1200 + 120
    cells = [curve.Cell(250, 0, "literature"), curve.Cell(5000, 0, "method")]
    # (400 + 2,160 steps at 0.5 s, and two tests of 60 s) on two workers
    assert curve_run.hours_left(cells, c, 0.5, 60.0) == pytest.approx((1280 + 120) / 2 / 3600)


def test_the_pace_comes_from_the_latest_records_made_like_this_process(tmp_path):
    c = {"final_steps": {250: 400}, "trial_fraction": {250: 0.1}, "trials": 8, "workers": 2}
    cells = [curve.Cell(250, 0, "literature"), curve.Cell(250, 0, "method"),
             curve.Cell(250, 1, "literature")]
    here = {"cpu": cpu_model(), "threads": curve_run._threads()}

    def record(cell, seconds, finished, **prov):
        atomic_write_json(tmp_path / f"{cell.name}.json", {
            "cell": cell.name, "seconds": {"search": seconds[0], "final": seconds[1],
                                           "test": seconds[2]},
            "provenance": {**here, "finished": finished, **prov}})

    record(cells[0], (0.0, 200.0, 10.0), "2026-01-01T00:00:00+00:00")  # oldest: left out
    record(cells[1], (360.0, 400.0, 20.0), "2026-01-02T00:00:00+00:00")  # 720 steps
    record(cells[2], (0.0, 40.0, 30.0), "2026-01-03T00:00:00+00:00")     # 400 steps
    atomic_write_json(tmp_path / "n00250-r2-literature.json", {"cell": "not in the plan"})
    other = curve.Cell(250, 0, "dihedral")  # in the plan, on another machine: left out
    record(other, (0.0, 4000.0, 99.0), "2026-01-04T00:00:00+00:00", cpu="another CPU")
    cells.append(other)
    per_step, per_test = curve_run.recent_pace(tmp_path, cells, c, last=2)
    assert per_step == pytest.approx(800.0 / 1120) and per_test == pytest.approx(25.0)


def test_the_warm_up_cap_reruns_exactly_the_cells_it_changes():
    root = Path(__file__).resolve().parents[1]
    P = load_params(root / "params" / "curve.yaml")
    cells = {c.name: c for c in curve.plan_cells(P["curve"])}
    batch = {n: curve.fidelity_point(c, P)["batch_size"] for n, c in cells.items()
             if c.arm == curve.FIDELITY}
    for name, b in batch.items():
        settings = curve.cell_settings(cells[name], P)
        one_epoch_trial = cells[name].size == 5000 and b == 32  # 120 steps of 157 an epoch
        assert ("trial_warmup_steps" in settings) == one_epoch_trial, name
        assert "final_warmup_steps" not in settings  # final trainings run 8 epochs or more
    assert curve.cell_settings(cells["fidelity-n05000-p0-s0"], P)["trial_warmup_steps"] == 78
