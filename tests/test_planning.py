"""A run that plans itself from the data and a budget: choices, limits, hand-set values."""

from __future__ import annotations

import json
import time

import pytest

from earth_lib.errors import ParameterError
from earth_lib.params import TrainSettings, validate
from earth_lib.planning import (
    DataSummary,
    RunPlan,
    Speed,
    budget_line,
    fit_final,
    plan_is_current,
    plan_run,
    with_plan,
)
from earth_lib.planning.plan import MAX_EPOCHS

#: This machine's measured speed on the cpu64 preset (2 cores, float32): 3.0 ms a training
#: image at 32 px, 26.7 ms at 96 px.
CPU = Speed(train_fixed=3.0e-4, train_per_pixel=2.9e-6, preprocess=4e-3,
            features_per_pixel=2e-7)
EUROSAT = DataSummary(images=22000, classes=10, native_size=64, bands=3)
AERIAL = DataSummary(images=10000, classes=30, native_size=150, bands=3)


def _plan(budget, data, given=None, speed=CPU):
    given = {"data": {"raw_dir": "data/raw/mine"}, "budget_minutes": budget, **(given or {})}
    return plan_run(validate(given), given, speed, data)


@pytest.mark.parametrize("data", [EUROSAT, AERIAL])
@pytest.mark.parametrize("budget", [15, 30, 60, 240])
def test_a_plan_fits_its_budget_and_trains_enough(data, budget):
    plan = _plan(budget, data)
    assert plan.expected_minutes <= budget
    assert 1 <= plan.choices["train.epochs"] <= MAX_EPOCHS
    assert plan.choices["preprocess.image_size"] <= data.native_size
    assert set(plan.reasons) == set(plan.choices)
    assert f"{budget:g} min" in plan.describe()


def test_more_time_buys_larger_images_then_a_search():
    sizes = [_plan(b, AERIAL).choices["preprocess.image_size"] for b in (15, 60, 240, 2000)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert _plan(15, AERIAL).choices["search.enabled"] is False
    big = _plan(3000, EUROSAT)  # native 64 px: the surplus goes to trials
    assert big.choices["search.enabled"] is True and big.choices["preprocess.image_size"] == 64
    assert "search" in big.stages and big.expected_minutes <= 3000
    assert big.choices["search.refresh_bn"] is True  # trials scored after a BatchNorm refresh
    assert "search.refresh_bn" not in _plan(15, AERIAL).choices  # no search, no trials


def test_a_budget_too_small_says_the_smallest_that_would_do():
    with pytest.raises(ParameterError, match=r"budget_minutes: 2 min .* at least (\d+)") as err:
        _plan(2, EUROSAT)
    need = int(str(err.value).split("at least ")[1].split(",")[0])
    assert _plan(need, EUROSAT).expected_minutes <= need


def test_hand_set_values_win_and_are_kept():
    plan = _plan(30, AERIAL, {"preprocess": {"image_size": 48}, "train": {"epochs": 20},
                              "model": {"preset": "small"}})
    for key in ("preprocess.image_size", "train.epochs", "model.preset"):
        assert key not in plan.choices
    assert plan.kept == {"preprocess.image_size": 48, "train.epochs": 20, "model.preset": "small"}
    assert plan.choices["preprocess.processed_dir"] == "data/processed/mine-48px"


def test_large_sets_stream_from_disk():
    huge = DataSummary(images=200_000, classes=10, native_size=64, bands=3)
    assert _plan(600, huge).choices["data.in_memory"] is False
    assert _plan(60, EUROSAT).choices["data.in_memory"] is True


def test_the_plan_goes_under_the_file_and_a_changed_file_needs_a_new_plan():
    given = {"data": {"raw_dir": "data/raw/mine"}, "budget_minutes": 30}
    plan = plan_run(validate(given), given, CPU, AERIAL)
    params = with_plan(given, "f.yaml", plan)
    assert params["preprocess"]["image_size"] == plan.choices["preprocess.image_size"]
    assert params["train"]["epochs"] == plan.choices["train.epochs"]
    # a value set by hand after the plan was made still wins, and the plan is stale
    later = {**given, "train": {"epochs": 3}}
    assert with_plan(later, "f.yaml", plan)["train"]["epochs"] == 3
    assert plan_is_current(plan, validate(given), given)
    assert not plan_is_current(plan, validate(later), later)
    assert not plan_is_current(plan, validate({**given, "budget_minutes": 31}),
                               {**given, "budget_minutes": 31})
    assert RunPlan.from_json(plan.to_json()) == plan


def test_a_rerun_plans_again_with_a_new_clock(tmp_path):
    import os
    from dataclasses import replace

    from earth_lib.planning import needs_new_plan

    given = {"data": {"raw_dir": "data/raw/mine"}, "budget_minutes": 30}
    params = validate(given)
    plan = replace(plan_run(params, given, CPU, AERIAL), started=1000.0)
    first, second = tmp_path / "01_preprocessing.ipynb", tmp_path / "02_earth_classifier.ipynb"
    assert needs_new_plan(None, params, given, first)  # no plan yet
    assert not needs_new_plan(plan, params, given, first)  # the first pass: not run yet
    first.write_text("{}")
    os.utime(first, (1100.0, 1100.0))  # notebook 1 finished under this plan
    assert not needs_new_plan(plan, params, given, second)  # notebook 2 of the same pass
    assert needs_new_plan(plan, params, given, first)  # make all again: a new pass
    second.write_text("{}")
    os.utime(second, (900.0, 900.0))  # notebook 2 of an older pass
    assert not needs_new_plan(plan, params, given, second)
    assert not needs_new_plan(plan, validate({"data": given["data"]}), {"data": given["data"]},
                              first)  # no budget: no plan


def test_a_late_run_cuts_the_final_training_and_says_so():
    plan = _plan(30, EUROSAT)
    epochs = plan.choices["train.epochs"]
    settings = TrainSettings.of(epochs=epochs, patience=epochs)  # as the plan sets them
    size, lines = plan.choices["preprocess.image_size"], []
    before = ("planning", "start-up and figures", "preprocessing")
    plan.started = time.time() - sum(plan.stages.get(k, 0.0) for k in before)  # on time
    on_time = fit_final(plan, settings, 15400, 3300, size, lines.append)
    assert abs(on_time.epochs - settings.epochs) <= 1
    plan.started = time.time() - 25 * 60  # 25 of 30 minutes gone before the final training
    late = fit_final(plan, settings, 15400, 3300, size, lines.append)
    assert 1 <= late.epochs < settings.epochs and late.patience <= late.epochs
    assert any("is cut" in m for m in lines)
    assert "25.0 of 30 min used" in budget_line(plan, "final training")
    assert fit_final(None, settings, 15400, 3300, 64) is settings
    # ahead of the plan (its stages took no time): more epochs, up to what a plan gives
    plan.started = time.time()
    plan.stages = {"test": 0.0, "classical baseline": 0.0}
    ahead = fit_final(plan, settings, 15400, 3300, size, lines.append)
    assert settings.epochs < ahead.epochs <= MAX_EPOCHS and ahead.patience == ahead.epochs
    assert any("gets more" in m for m in lines)
    plan.given = {**plan.given, "train.epochs": settings.epochs}  # set by hand: never more
    assert fit_final(plan, settings, 15400, 3300, size).epochs == settings.epochs


def test_a_two_line_file_plans_from_its_folder_and_the_run_takes_the_plan(tmp_path,
                                                                         monkeypatch, root):
    """Measured for real on a tiny folder: the plan is written, printed, and Run.begin
    applies it under the file (the processed folder follows from the raw one)."""
    from earth_lib.data.synthetic import generate_synthetic_dataset
    from earth_lib.params import read_given
    from earth_lib.planning.measure import make_plan
    from earth_lib.run import Run

    raw = tmp_path / "my_scenes"
    generate_synthetic_dataset(raw, 6, 40, 3, seed=0, progress=False)
    params_file = tmp_path / "mine.yaml"
    params_file.write_text(f"data: {{dataset: folder, raw_dir: {raw}}}\nbudget_minutes: 5\n")
    given, source = read_given(params_file)
    params = validate(given, source)
    assert params["preprocess"]["processed_dir"] == "data/processed/my_scenes"
    run_dir, lines = tmp_path / "run", []
    monkeypatch.setattr("earth_lib.planning.measure.MEASURED_SIZES", (16, 32))  # quick
    plan = make_plan(params, given, run_dir / "plan.json", lines.append)
    assert plan.data == DataSummary(images=18, classes=3, native_size=40, bands=3)
    assert plan.speed.train(96) > plan.speed.train(32) > 0
    assert any("ms a training image at 32 px" in m for m in lines)
    assert plan.choices["preprocess.image_size"] <= 40
    assert any(m.startswith("plan for 5 min: 18 images, 3 classes") for m in lines)
    monkeypatch.chdir(root)
    run = Run.begin("preprocessing", params_file, run_dir)
    assert run.plan == plan
    assert run.params["preprocess"]["image_size"] == plan.choices["preprocess.image_size"]
    assert run.params["preprocess"]["processed_dir"] == plan.choices["preprocess.processed_dir"]
    assert run.read_record()["plan"]["choices"] == plan.choices


def test_the_budget_table_reads_its_records():
    from earth_lib.report.tables import budget_markdown

    row = {"data": {"images": 22000, "classes": 10, "native_size": 64, "bands": 3},
           "budget_minutes": 30.0, "planned_minutes": 28.5, "minutes": 20.3, "image_size": 32,
           "epochs": 18, "epochs_run": 18, "search": False, "accuracy": 0.7646,
           "classical_accuracy": 0.739, "cpus": 2, "cpu": "AMD EPYC"}
    table = budget_markdown([{**row, "budget_minutes": 60.0, "peak_rss_mb": 2048}, row])
    lines = table.splitlines()
    assert len(lines) == 4 and "| 30 min | 28.5 min | 20.3 min | 32 px | 18 (18) | no" in lines[2]
    assert "| 0.765 | 0.739 | - |" in lines[2] and "| 2,048 MB |" in lines[3]


def test_the_budget_block_draws_its_figure_from_the_records(tmp_path, monkeypatch):
    from earth_lib.report import tables

    records = tmp_path / "budget"
    records.mkdir()
    row = {"data": {"images": 900, "classes": 6, "native_size": 64, "bands": 3},
           "planned_minutes": 14.0, "image_size": 32, "epochs": 8, "epochs_run": 8,
           "search": False, "cpus": 2, "cpu": "x"}
    for minutes, acc in ((15, 0.7), (30, 0.8)):
        (records / f"{minutes}.json").write_text(json.dumps(
            {**row, "budget_minutes": minutes, "minutes": minutes - 1, "accuracy": acc,
             "classical_accuracy": 0.65}))
    monkeypatch.setattr(tables, "BUDGET_FIGURE", str(tmp_path / "fig.png"))
    block = tables.outside_outputs("budget", [str(records)])
    assert block.count("| 900 images") == 2 and block.endswith(f"]({tmp_path / 'fig.png'})")
    assert (tmp_path / "fig.png").stat().st_size > 10_000
    assert tables.outside_outputs("budget", [str(tmp_path / "none")]) is None


def test_make_plan_previews_a_budgeted_run_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """`earth-resnet plan` (make plan): the plan printed, no run folder; no budget, no plan."""
    from earth_lib.cli import main
    from earth_lib.data.synthetic import generate_synthetic_dataset

    raw = tmp_path / "my_scenes"
    generate_synthetic_dataset(raw, 6, 40, 3, seed=0, progress=False)
    params_file = tmp_path / "mine.yaml"
    params_file.write_text(f"data: {{dataset: folder, raw_dir: {raw}}}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("earth_lib.planning.measure.MEASURED_SIZES", (16, 32))  # quick
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["plan", str(params_file)]) == 0  # no budget: what search.enabled: auto does
    out = capsys.readouterr().out
    assert "budget_minutes is not set, so nothing is planned" in out
    assert "18 images, about 13 to train" in out and "search.enabled is auto" in out
    assert "search.enabled = True: the learning curve has not measured the search near 13" \
        in out
    assert main(["plan", str(params_file), "--set", "search.enabled=false"]) == 0
    assert "The learning curve has not measured the search near 13" in capsys.readouterr().out
    assert main(["plan", str(params_file), "--set", "budget_minutes=5"]) == 0
    out = capsys.readouterr().out
    assert "plan for 5 min: 18 images, 3 classes" in out and "search.enabled = " in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no outputs/, no plan.json
    params_file.write_text("data: {dataset: folder, raw_dir: nowhere}\nbudget_minutes: 5\n")
    assert main(["plan", str(params_file)]) == 2
    assert "data.raw_dir nowhere is not a folder" in capsys.readouterr().err


def test_make_plan_says_where_a_folder_differs_from_the_curves_data(tmp_path, capsys):
    """Without a budget, near a measured size: the advice, and how the run's data differ."""
    from earth_lib.cli import main
    from earth_lib.data.synthetic import generate_synthetic_dataset
    from earth_lib.planning.evidence import describe_data, read_evidence

    curve = read_evidence().get("data")
    if not curve:
        pytest.skip("the committed evidence names no data")
    raw = tmp_path / "scenes"
    generate_synthetic_dataset(raw, 120, 24, 3, seed=0, progress=False)  # 252 to train
    params_file = tmp_path / "mine.yaml"
    params_file.write_text(f"data: {{dataset: folder, raw_dir: {raw}}}\n"
                           "preprocess: {image_size: 24}\n")
    assert main(["plan", str(params_file)]) == 0
    out = capsys.readouterr().out
    assert f"({describe_data(curve)}; this run: 3 bands, 24 px) at 250 training images" in out


def test_sizing_a_folder_skips_an_unreadable_image_or_names_it(tmp_path):
    """The planner reads a sample for the images' size: an unreadable one is skipped (and
    another read instead) as preprocessing would, or raised with data.on_bad_file=error."""
    from earth_lib.data.synthetic import generate_synthetic_dataset
    from earth_lib.errors import BadImageError
    from earth_lib.planning.measure import summarize_folder

    raw = tmp_path / "scenes"
    generate_synthetic_dataset(raw, 4, 40, 3, seed=0, progress=False)
    broken = next(raw.rglob("*.png")).with_name("broken.png")
    broken.write_bytes(b"not a png")
    lines = []
    data, files = summarize_folder(raw, {}, seed=0, sample=13, log=lines.append)
    assert broken not in files and len(set(files)) == 12  # every readable one, once
    assert data == DataSummary(images=13, classes=3, native_size=40, bands=3)
    assert len(lines) == 1 and "broken.png: cannot read image" in lines[0]
    with pytest.raises(BadImageError, match="broken.png"):
        summarize_folder(raw, {}, seed=0, sample=13, on_bad_file="error")
    for path in raw.rglob("*.png"):
        path.write_bytes(b"")
    with pytest.raises(BadImageError, match=r"scenes: none of its 13 images can be read"):
        summarize_folder(raw, {}, seed=0, log=lines.append)
