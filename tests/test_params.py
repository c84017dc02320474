import copy

import pytest
import yaml

from earth_lib.errors import ParameterError
from earth_lib.params import (
    DEFAULT_SPACE,
    REQUIRED_HYPERPARAMETERS,
    load_params,
    parameter_table,
    parse_overrides,
    validate,
)


def test_defaults_are_valid_and_complete():
    p = validate({})
    assert p["seed"] == 42
    assert set(p["search"]["space"]) == set(REQUIRED_HYPERPARAMETERS)
    assert p["split"]["train"] == pytest.approx(0.7)


@pytest.mark.parametrize("name", ["default", "smoke", "paper", "eurosat", "eurosat_ms",
                                  "ucmerced", "eurosat_cpu", "compare_smoke",
                                  "compare_eurosat_cpu", "eurosat_full_cpu"])
def test_shipped_parameter_files_load(root, name):
    p = load_params(root / "params" / f"{name}.yaml")
    assert p["search"]["steps"] == (2 if name == "compare_smoke" else 3)


def test_paper_file_keeps_the_original_settings(root):
    p = load_params(root / "params" / "paper.yaml")
    assert p["preprocess"]["image_size"] == 224
    assert p["model"]["preset"] == "paper"
    assert p["search"]["initial_points"] == 20
    assert p["search"]["iterations_per_step"] == 150
    assert p["search"]["space"]["batch_size"]["values"] == [1.0, 2.0, 3.0]
    t = p["train"]
    assert (t["optimizer"], t["schedule"], t["early_stopping"]) == ("adam", "constant", False)


def _write(tmp_path, raw):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"preproces": {}},
         r"bad.yaml: unknown parameter 'preproces'. Did you mean 'preprocess'"),
        ({"preprocess": {"imagesize": 32}},
         r"unknown parameter 'preprocess.imagesize'. Did you mean 'image_size'"),
        ({"preprocess": {"image_size": "big"}},
         r"'preprocess.image_size' parameter must be an int"),
        ({"preprocess": {"image_size": 2}}, r"in the range \[8, 4096\]. Got 2"),
        ({"preprocess": {"grayscale": "yes"}}, r"'preprocess.grayscale' parameter must be a bool"),
        ({"data": {"on_bad_file": "ignore"}}, r"must be one of 'skip', 'error'"),
        ({"split": {"train": 0.5}}, r"must add up to 1"),
        ({"seed": True}, r"'seed' parameter must be an int"),
        ({"compare": {"arms": ["method", "bayes"]}}, r"unknown parameter 'compare.arms: bayes'"),
        ({"compare": {"seeds": [1, 1]}}, r"'compare.seeds' parameter must be a non-empty list"),
        ({"train": {"optimizer": "sgd"}}, r"must be one of 'adamw', 'adam'"),
    ],
    ids=["top-typo", "nested-typo", "wrong-type", "too-small", "bool", "choice", "split-sum",
         "bool-as-int", "unknown-arm", "repeated-seed", "optimizer"],
)
def test_bad_parameters_name_file_and_key(tmp_path, raw, match):
    with pytest.raises(ParameterError, match=match):
        load_params(_write(tmp_path, raw))


def _space(**changes):
    space = copy.deepcopy(DEFAULT_SPACE)
    for k, v in changes.items():
        if v is None:
            del space[k]
        else:
            space[k] = v
    return {"search": {"space": space}}


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"rotation": {"type": "continuous", "bounds": [90, 10]}}, r"low < high"),
        ({"zoom": {"type": "continuous", "bounds": [-2, 1]}}, r"within \[-1.0, 1.0\]"),
        ({"learning_rate": {"type": "continuous", "bounds": [0, 0.1], "log": True}},
         r"(positive|within)"),
        ({"kernel_size": {"type": "discrete", "values": [2, 3]}}, r"odd kernel sizes"),
        ({"batch_size": {"type": "discrete", "values": []}}, r"non-empty list"),
        ({"batch_size": {"type": "continuous", "bounds": [1, 8]}}, r"'discrete' for this"),
        ({"rotaton": {"type": "continuous", "bounds": [0, 1]}}, r"Did you mean 'rotation'"),
        ({"zoom": {"type": "continous", "bounds": [0, 1]}}, r"'continuous' or 'discrete'"),
    ],
    ids=["reversed", "outside-limits", "log-zero", "even-kernel", "empty", "wrong-type",
         "unknown-name", "type-typo"],
)
def test_impossible_search_space_is_an_error(changes, match):
    with pytest.raises(ParameterError, match=match):
        validate(_space(**changes), source="x.yaml")


def test_a_partial_search_space_overrides_only_the_entries_it_names():
    zoom = {"type": "continuous", "bounds": [0.0, 0.1], "log": False}
    space = validate({"search": {"space": {"zoom": zoom}}})["search"]["space"]
    assert space["zoom"] == zoom
    assert {k: v for k, v in space.items() if k != "zoom"} == {
        k: v for k, v in validate({})["search"]["space"].items() if k != "zoom"}
    assert list(space) == list(DEFAULT_SPACE)


def test_epochs_may_be_searched_as_tenth():
    p = validate(_space(epochs={"type": "discrete", "values": [2, 4]}))
    assert p["search"]["space"]["epochs"]["values"] == [2.0, 4.0]


def test_parameter_table_flattens_every_key():
    rows = dict(parameter_table(validate({})))
    assert rows["preprocess.image_size"] == 32
    assert "search.space.rotation" in rows


def test_values_owned_elsewhere_are_not_declared_twice():
    """The table takes presets, the default preset and the bad-file rule from their owners,
    and the enhancement takes its defaults from the table: a drift would fail here."""
    import inspect

    from earth_lib import errors, preprocessing
    from earth_lib.nn import model
    from earth_lib.params import SCHEMA

    assert SCHEMA["model"]["preset"].choices == tuple(model.PRESETS)
    assert SCHEMA["model"]["preset"].default == model.DEFAULT_PRESET
    assert inspect.signature(model.build_from_preset).parameters["preset"].default \
        == model.DEFAULT_PRESET
    assert SCHEMA["data"]["on_bad_file"].choices == errors.BAD_FILE_POLICIES
    assert SCHEMA["data"]["on_bad_file"].default == errors.DEFAULT_BAD_FILE_POLICY
    enhance = inspect.signature(preprocessing.enhance).parameters
    for key in preprocessing.ENHANCE_KEYS:
        assert enhance[key].default == SCHEMA["preprocess"][key].default, key
    clahe = inspect.signature(preprocessing.apply_clahe).parameters
    assert clahe["clip_limit"].default == SCHEMA["preprocess"]["clahe_clip_limit"].default
    assert clahe["tiles"].default == SCHEMA["preprocess"]["clahe_tiles"].default


def test_typed_settings_carry_the_file_and_the_stages_own_no_defaults_of_theirs():
    """Training and the search take their settings from the table (or a file), never from
    defaults of their own: a value the table owns has no default in their signatures."""
    import dataclasses
    import inspect

    from earth_lib.nn import training
    from earth_lib.params import (
        SCHEMA,
        TrainSettings,
        baseline_hyperparameters,
        search_data_settings,
        search_plan,
    )
    from earth_lib.search import SearchLoop, search_or_baseline

    p = validate({"search": {"epochs": 4, "enabled": False, "max_train_images": 50,
                             "finalist_budget": 2.0, "start_from_baseline": True},
                  "train": {"epochs": 30, "patience": 6}, "baseline": {"enabled": False},
                  "model": {"preset": "tiny"}, "seed": 7})
    trial, final = TrainSettings.trial(p), TrainSettings.final(p)
    assert (trial.epochs, trial.early_stopping, trial.preset) == (4, False, "tiny")
    assert (final.epochs, final.patience, final.preset) == (30, 6, "tiny")
    assert "time_limit" in trial.record() and "time_limit" not in final.record()
    assert "patience" not in trial.record() and "role" not in final.record()
    plan = search_plan(p)
    assert (plan.seed, plan.finalist_budget) == (7, 2.0)
    assert plan.start_points == (baseline_hyperparameters(p),)
    assert search_plan(steps=1).finalist_budget == SCHEMA["search"]["finalist_budget"].default
    assert TrainSettings.of().epochs == SCHEMA["train"]["epochs"].default
    assert search_data_settings(p) == {"max_images": 50, "use_pca": False, "seed": 7}
    hp = baseline_hyperparameters(p)
    assert hp["rotation"] == 45.0 and set(hp) == set(REQUIRED_HYPERPARAMETERS)
    owned = {f.name for f in dataclasses.fields(TrainSettings)} | {"seed", "enabled",
                                                                   "evaluate_baseline"}
    for fn in (training.train_model, training.make_objective, training.compile_model,
               SearchLoop.__init__, search_or_baseline):
        for name, param in inspect.signature(fn).parameters.items():
            if name in owned:
                assert param.default is inspect.Parameter.empty, f"{fn.__name__}({name}=...)"


def test_parameter_table_keeps_the_sections_asked_for():
    rows = dict(parameter_table(validate({}), ("seed", "preprocess")))
    assert rows["seed"] == 42 and rows["preprocess.image_size"] == 32
    assert not [k for k in rows if k.startswith("search")]


# --- Overrides (make ... SET="key=value ...", papermill -p overrides) ----------------------

def test_overrides_set_values_read_as_yaml(root):
    f = root / "params" / "smoke.yaml"
    p = load_params(f, "train.epochs=5  search.acquisition=LCB preprocess.clahe=false "
                       "search.max_train_images=null")
    assert p["train"]["epochs"] == 5 and p["search"]["acquisition"] == "LCB"
    assert p["preprocess"]["clahe"] is False and p["search"]["max_train_images"] is None
    assert load_params(f, ["seed=3"])["seed"] == 3
    assert parse_overrides("curve.length_check={500:8,1000:{a:[1,2]}}") == [
        ("curve.length_check", {500: 8, 1000: {"a": [1, 2]}})]  # not 500:8 = 30008 (base 60)
    assert parse_overrides("curve.length_check={} a={'b':1}") == [("curve.length_check", {}),
                                                                  ("a", {"b": 1})]
    assert load_params(f, "")["train"]["epochs"] == load_params(f)["train"]["epochs"]


def test_a_space_override_edits_the_default_space(tmp_path):
    path = _write(tmp_path, {"seed": 1})
    p = load_params(path, "search.space.rotation.bounds=[0,90]")
    assert p["search"]["space"]["rotation"]["bounds"] == [0.0, 90.0]
    assert set(p["search"]["space"]) == set(REQUIRED_HYPERPARAMETERS)


@pytest.mark.parametrize("overrides, match", [
    ("train.epoch=5", r"with overrides 'train.epoch=5': unknown parameter 'train.epoch'. "
                      r"Did you mean 'epochs'"),
    ("train.epochs=many", r"with overrides .*'train.epochs' parameter must be an int"),
    ("train.epochs", r"override 'train.epochs': expected section.key=value"),
    ("train..epochs=1", r"expected section.key=value"),
    ("seed.value=1", r"override seed.value: seed is a value, not a section"),
    ("search.space.rotation.bounds=[90,0]", r"search.space.rotation.bounds' parameter must be "
                                            r"\[low, high\] with low < high"),
    ("train.epochs=[1", r"override 'train.epochs=\[1': the value is not valid YAML"),
], ids=["typo", "type", "no-equals", "empty-part", "not-a-section", "bounds", "yaml"])
def test_bad_overrides_name_the_key_and_say_where_it_came_from(root, overrides, match):
    with pytest.raises(ParameterError, match=match):
        load_params(root / "params" / "smoke.yaml", overrides)


def test_a_mapping_written_without_spaces_in_a_file_gets_a_hint(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("curve:\n  length_check: {500:8}\n")
    with pytest.raises(ParameterError, match=r"curve.length_check.*Got \{30008: None\}.*"
                                             r"write \{500: 8\}"):
        load_params(path)


def test_overrides_leave_the_file_untouched(tmp_path):
    path = _write(tmp_path, {"train": {"epochs": 3}})
    before = path.read_text()
    assert load_params(path, "train.epochs=9")["train"]["epochs"] == 9
    assert path.read_text() == before and load_params(path)["train"]["epochs"] == 3
