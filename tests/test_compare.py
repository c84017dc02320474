"""The comparison's plans, table and verdict (no training here; the smoke run is in
test_pipeline)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earth_lib.errors import ParameterError
from earth_lib.experiments.compare import (
    ARMS,
    ArmResult,
    arm_plan,
    budget_trial_epochs,
    paired_differences,
    paired_markdown,
    plan_summary,
    summary_table,
    verdict,
)
from earth_lib.params import baseline_hyperparameters, load_params, validate


@pytest.mark.parametrize("name", ["compare_smoke", "compare_eurosat_cpu", "default"])
def test_every_arm_spends_the_same_budget(root, name):
    p = load_params(root / "params" / f"{name}.yaml")
    plans = plan_summary(p)
    budget = budget_trial_epochs(p)
    for arm in ARMS[1:]:  # the literature arm spends one trial, for its loss
        spent = plans.loc[arm, "planned_trial_epochs"]
        assert budget - plans.loc[arm, "trial_epochs"] * 2 < spent <= budget, arm


def test_the_arms_search_as_named():
    p = validate({"search": {"finalists": 2, "finalist_budget": 2.0},
                  "compare": {"improved_epochs": 1}})
    assert arm_plan("literature", p)["search"] is None
    assert arm_plan("random", p)["search"].design == "random"
    assert arm_plan("gp_one_step", p)["search"].steps == 1
    method = arm_plan("method", p, seed=3)["search"]
    assert (method.steps, method.initial_points, method.seed) == (3, 5, 3)
    assert method.start_points is None and method.finalists == 0
    configured = validate({"search": {"start_from_baseline": True}})
    assert arm_plan("method", configured)["search"].start_points == \
        (baseline_hyperparameters(configured),)
    improved = arm_plan("improved", p)
    assert improved["epochs"] == 1 and improved["search"].finalists == 2
    assert improved["search"].finalist_budget == 2.0
    assert improved["search"].start_points[0]["rotation"] == 45.0


def test_finalists_that_eat_the_budget_are_refused():
    p = validate({"search": {"finalists": 10, "finalist_budget": 10.0}})
    with pytest.raises(ParameterError, match="leave no budget"):
        arm_plan("improved", p)


def _result(arm, seed, acc):
    return ArmResult(arm, seed, {}, 0.5, 3, 24.0, 1.0, 2.0, 10,
                     {"accuracy": acc, "macro_f1": acc - 0.01})


def test_table_and_verdict():
    accs = {"literature": [0.80, 0.82, 0.81], "random": [0.83, 0.85, 0.84],
            "method": [0.90, 0.91, 0.92]}
    results = [_result(a, s, v) for a, vals in accs.items() for s, v in enumerate(vals)]
    table = summary_table(results)
    assert list(table.index) == ["literature", "random", "method"]
    assert table.loc["method", "test_acc_mean"] == pytest.approx(0.91)
    assert table.loc["method", "test_acc_sd"] == pytest.approx(0.01)
    assert "method" in verdict(table) and "it wins by more than the spread" in verdict(table)
    close = pd.concat([table.drop("method"),
                       table.loc[["method"]].assign(test_acc_mean=0.845)])
    assert "does NOT win" in verdict(close)


def test_verdict_with_one_seed_says_there_is_no_spread():
    table = summary_table([_result("literature", 1, 0.8), _result("method", 1, 0.9)])
    assert "one seed only" in verdict(table)


def test_results_so_far_are_read_back_as_a_markdown_table(tmp_path):
    import json
    import subprocess
    import sys
    from dataclasses import asdict

    for arm, seed, acc in (("method", 2, 0.9), ("literature", 1, 0.8), ("method", 1, 0.92)):
        folder = tmp_path / "arms" / arm / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(asdict(_result(arm, seed, acc))))
    from earth_lib.experiments.compare import load_results

    assert [(r.arm, r.seed) for r in load_results(tmp_path)] == \
        [("literature", 1), ("method", 1), ("method", 2)]
    out = subprocess.run([sys.executable, "-m", "earth_lib.cli", "compare-results",
                          str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert "| method | 2 | 91.0 ± 1.4 |" in out and "Best search arm: method" in out


def test_evidence_reports_the_seed_spread_and_the_loss_test_correlation():
    from earth_lib.experiments.compare import evidence

    results = [ArmResult(a, s, {}, loss, 3, 24.0, 1.0, 2.0, 10,
                         {"accuracy": acc, "macro_f1": acc})
               for a, s, loss, acc in [("literature", 1, 0.9, 0.80), ("literature", 2, 0.9, 0.70),
                                       ("method", 1, 0.5, 0.90), ("method", 2, 0.6, 0.85),
                                       ("random", 1, 0.7, 0.82)]]
    said = evidence(results)
    assert "trained on 2 seeds, gave 80.0 %, 70.0 %" in said
    assert "Across the 5 runs with 8-epoch trials" in said and "rho = +0.97" in said
    assert "the trial loss predicts the test result" in said
    flat = [ArmResult("method", s, {}, 0.5, 3, 24.0, 1.0, 2.0, 10,
                      {"accuracy": 0.8 + s / 100, "macro_f1": 0.8}) for s in range(4)]
    assert "Spearman" not in evidence(flat)  # equal losses: no correlation to report


def _write_compare(folder, accs, overrides=""):
    import json
    from dataclasses import asdict

    for arm, seed, acc in accs:
        arm_dir = folder / "arms" / arm / f"seed{seed}"
        arm_dir.mkdir(parents=True)
        (arm_dir / "result.json").write_text(json.dumps(asdict(_result(arm, seed, acc))))
    (folder / "run.json").write_text(json.dumps({"overrides": overrides}))


def test_readme_blocks_are_regenerated_from_the_runs_and_kept_when_absent(tmp_path):
    from earth_lib.report.tables import regenerate_readme

    outputs = tmp_path / "outputs"
    _write_compare(outputs / "cmp", [("literature", 1, 0.8), ("literature", 2, 0.84),
                                     ("method", 1, 0.9), ("method", 2, 0.88)])
    _write_compare(outputs / "cmp.set-1", [("method", 1, 0.7), ("method", 2, 0.72)],
                   "compare.arms=[method] search.acquisition=LCB")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nprose 1\n<!-- generated: compare cmp -->\nold table\n"
                      "<!-- /generated -->\nprose 2\n<!-- generated: compare gone -->\nkept\n"
                      "<!-- /generated -->\n<!-- generated: variants cmp cmp.set-1 -->\n"
                      "<!-- /generated -->\n")
    report = regenerate_readme(readme, outputs)
    text = readme.read_text()
    assert report == ["compare cmp: regenerated", "compare gone: kept (gone not in "
                      f"{outputs} or {Path('results') / 'runs'})",
                      "variants cmp cmp.set-1: regenerated"]
    assert "old table" not in text and "| method | 2 | 89.0 ± 1.4 |" in text
    assert "Best search arm: method" in text and "gave 80.0 %, 84.0 %" in text
    assert "\nkept\n" in text and text.startswith("# x\n\nprose 1\n") and "prose 2" in text
    assert "| as in the file: method | 2 | 89.0 ± 1.4 |" in text
    assert "| search.acquisition=LCB: method | 2 | 71.0 ± 1.4 |" in text
    assert regenerate_readme(readme, outputs) and readme.read_text() == text  # stable


def test_a_recorded_run_regenerates_its_blocks_without_outputs(tmp_path):
    import shutil

    from earth_lib.errors import RunNotFoundError
    from earth_lib.report.tables import record_run, regenerate_readme

    outputs, records = tmp_path / "outputs", tmp_path / "results" / "runs"
    _write_compare(outputs / "cmp", [("literature", 1, 0.8), ("method", 1, 0.9)])
    (outputs / "cmp" / "arms" / "method" / "seed1" / "model.keras").write_bytes(b"x" * 100)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- generated: compare cmp -->\n<!-- /generated -->\n")
    regenerate_readme(readme, outputs, records)
    from_outputs = readme.read_text()
    dest = record_run(outputs / "cmp", records)
    assert not list(dest.rglob("*.keras"))  # records only, no models
    shutil.rmtree(outputs)
    readme.write_text("<!-- generated: compare cmp -->\n<!-- /generated -->\n")
    assert regenerate_readme(readme, outputs, records) == ["compare cmp: regenerated"]
    assert readme.read_text() == from_outputs and "| method | 1 | 90.0" in from_outputs
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunNotFoundError, match="no run records here"):
        record_run(tmp_path / "empty", records)


def test_the_bench_block_shows_each_figure_beside_its_target(tmp_path):
    import json

    from earth_lib.report.tables import regenerate_readme

    (tmp_path / "outputs" / "bench").mkdir(parents=True)
    (tmp_path / "outputs" / "bench" / "bench.json").write_text(json.dumps({
        "machine": {"cpus": 2, "gpus": []}, "seconds": 600,
        "preprocessing": {"images": 2000, "source_px": 256, "output_px": 224, "workers": 2,
                          "original_images_per_s": 10.0, "earth_lib_images_per_s": 30.0,
                          "preprocess_speedup": 3.0, "decode_images_per_s": 150.0,
                          "speedup_ceiling": 15.0},
        "gemm_gflops": 80.0, "training": {"small_64px": {
            "images_per_s": 400.0, "gflop_per_training_image": 0.3, "train_flop_fraction": 0.15},
            "cpu64_64px": {"images_per_s": 250.0, "batch_size": 64,
                           "gflop_per_training_image": 0.4, "train_flop_fraction": 0.5,
                           "train_flop_fraction_steps": 0.55}},
        "search_seconds_per_suggestion": {"20": 1.5}, "peak_rss_mb_27000_64px": 3100,
        "peak_rss_mb_27000_64px_on_disk": 1500,
        "search_workers_seconds": {"1": {"seconds": 100.0, "ray_start_seconds": 0.0},
                                   "2": {"seconds": 70.0, "ray_start_seconds": 9.0}}}))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- generated: bench bench -->\n<!-- /generated -->\n")
    assert regenerate_readme(readme, tmp_path / "outputs") == ["bench bench: regenerated"]
    text = readme.read_text()
    assert "= x3.00 the original loop (10.0 images/s) | x20 |" in text
    assert "| 15.0 % of the matrix product | 50 % |" in text
    assert "| training `cpu64_64px` (batch 64): 250.0 images/s" in text  # batch when recorded
    # the training steps without the validation passes, when the bench recorded them
    assert "| 50.0 % of the matrix product (55.0 % in the training steps alone) | 50 % |" in text
    assert "PNGs alone (2 workers): the most any pipeline reading them could reach | 150.0 " \
        "images/s = x15.00 the original loop |" in text
    assert "27,000 images of 64px, images in memory | 3,100 MB | 2,048 MB |" in text
    assert "27,000 images of 64px, images read from disk (`data.in_memory: false`) | 1,500 MB" \
        in text
    assert "| the same search trials as Ray tasks (2 at once) | 70 s (starting Ray 9 s) |" in text
    assert "Measured on 2 CPU cores in 600 s." in text


def test_paired_differences_count_images_only_one_arm_got_right():
    """Pairing on images: 3 seeds x 100 images, the method right on 15 more per seed."""
    rng = np.random.default_rng(0)
    results = []
    for seed in (1, 2, 3):
        lit = (rng.random(100) < 0.7).astype(int)
        better = lit.copy()
        better[np.flatnonzero(lit == 0)[:15]] = 1  # 15 images only the method gets right
        results += [ArmResult("literature", seed, {}, None, 1, 8, 0, 0, 1,
                              {"accuracy": lit.mean()}, test_correct=lit.tolist()),
                    ArmResult("method", seed, {}, None, 1, 8, 0, 0, 1,
                              {"accuracy": better.mean()}, test_correct=better.tolist()),
                    ArmResult("random", seed, {}, None, 1, 8, 0, 0, 1, {"accuracy": 0.7})]
    paired = paired_differences(results)
    assert list(zip(paired["arm"], paired["against"], strict=True)) == [("method", "literature")]
    row = paired.iloc[0]
    assert row["seeds"] == 3 and row["images"] == 300
    assert row["diff_points"] == pytest.approx(15.0)
    assert (row["only_arm_right"], row["only_ref_right"]) == (45, 0)
    assert 0 < row["ci_low"] < 15 < row["ci_high"] and row["mcnemar_p"] < 1e-6
    assert "| method | literature | 3 x 100 | +15.0 |" in paired_markdown(paired)
    assert paired_markdown(paired).endswith("so both are secondary to it.")  # seeds pooled
    # swapped roles: the same images, the sign turns and the p-value stays
    back = paired_differences(results, references=("method",))
    lit_row = back[back["arm"] == "literature"].iloc[0]
    assert lit_row["diff_points"] == pytest.approx(-15.0)
    assert lit_row["mcnemar_p"] == pytest.approx(row["mcnemar_p"])


def test_a_pair_block_says_what_make_pair_found_from_the_record(tmp_path):
    import shutil

    from earth_lib.report.tables import record_run, regenerate_readme

    outputs, records = tmp_path / "outputs", tmp_path / "results" / "runs"
    run = outputs / "a"
    (run / "paired").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "metrics.json").write_text("{}")
    (run / "paired" / "b.json").write_text(json.dumps({
        "run_a": "outputs/a", "run_b": "outputs/b", "accuracy_a": 0.9855, "accuracy_b": 0.9755,
        "images": 2200, "diff_points": 1.0, "ci_low": 0.41, "ci_high": 1.59,
        "mcnemar_p": 0.00126, "only_a_right": 33, "only_b_right": 11}))
    readme = tmp_path / "README.md"
    block = "<!-- generated: pair a b -->\n<!-- /generated -->\n"
    readme.write_text(block)
    assert regenerate_readme(readme, outputs, records) == ["pair a b: regenerated"]
    text = readme.read_text()
    assert "`a` against `b` on the same 2,200 test images: 98.55 % against 97.55 %, +1.00 " \
           "points (bootstrap 95 % interval +0.41 to +1.59); only `a` right on 33 images, " \
           "only `b` on 11; McNemar p = 0.0013." in text
    record_run(run, records)
    shutil.rmtree(outputs)
    readme.write_text(block)
    regenerate_readme(readme, outputs, records)
    assert readme.read_text() == text  # from the committed record alone
    readme.write_text(block.replace("pair a b", "pair a c"))
    assert regenerate_readme(readme, outputs, records) == ["pair a c: kept (no paired record)"]
