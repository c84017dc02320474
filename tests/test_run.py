"""The run folder: records written and read back, old formats read, new ones refused."""

import json
from dataclasses import asdict

import pytest

from earth_lib.errors import RunFormatError, RunNotFoundError
from earth_lib.paths import run_dir_for
from earth_lib.run import METRICS_SCHEMA, Metrics, Run, load_run


def _metrics(**over) -> Metrics:
    base = dict(test={"accuracy": 0.9, "macro_f1": 0.88, "n": 10}, classical_baseline=None,
                class_names=["a", "b"], split_sizes={"train": 7, "val": 2, "test": 1},
                duplicates_across_splits=0, pca={"components": 3},
                search={"best_hyperparameters": {"zoom": 0.1}, "chosen_by": "search",
                        "trials": 4, "best_val_loss": 0.3, "stop_reasons": []},
                literature_baseline={"hyperparameters": {"zoom": 0.2}, "val_loss": 0.5},
                final_training={"epochs_run": 3, "tta": False})
    return Metrics(**{**base, **over})


def test_metrics_round_trip_with_schema(tmp_path):
    run = Run(tmp_path)
    run.save_metrics(_metrics())
    saved = json.loads(run.metrics_path.read_text())
    assert saved["schema"] == METRICS_SCHEMA and saved["search"]["chosen_by"] == "search"
    assert run.load_metrics() == _metrics()


def test_metrics_from_an_older_schema_are_refused(tmp_path):
    """A metrics.json written by earlier versions (no schema field) says to rerun."""
    old = asdict(_metrics())
    del old["schema"]
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    with pytest.raises(RunFormatError, match="older earth-resnet.*Rerun"):
        Run(tmp_path).load_metrics()


@pytest.mark.parametrize("content, match", [
    ({"schema": 99}, "schema 99; this earth-resnet reads up to"),
    ({"surprise": 1}, r"not a Metrics record .*unknown \['surprise'\]"),
    ("[1, 2]", "expected a JSON object"),
    ("{not json", "cannot be read as JSON"),
])
def test_unreadable_metrics_are_refused_naming_the_file(tmp_path, content, match):
    text = content if isinstance(content, str) else json.dumps({**asdict(_metrics()), **content})
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(RunFormatError, match=match) as err:
        Run(tmp_path).load_metrics()
    assert "metrics.json" in str(err.value)


def test_missing_metrics_and_folders_are_named(tmp_path):
    with pytest.raises(RunNotFoundError, match="has not finished"):
        Run(tmp_path).load_metrics()
    with pytest.raises(RunNotFoundError, match="Run folder not found"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunNotFoundError, match="model.keras not found"):
        load_run(tmp_path)
    assert load_run(tmp_path, need_model=False).path == tmp_path


def test_begin_and_finish_record_each_stage(tmp_path, root):
    run = Run.begin("classifier", root / "params" / "smoke.yaml", tmp_path / "r")
    assert run.params["seed"] == 7 and run.figures.is_dir()
    stage = run.read_record()["stages"]["classifier"]
    assert "started" in stage and "finished" not in stage
    rec = run.read_record()
    assert rec["packages"]["numpy"] and rec["params"]["seed"] == 7
    assert rec["installed"]["numpy"] == rec["packages"]["numpy"] and "pytest" in rec["installed"]
    run.finish("classifier", written=3)
    rec = run.read_record()
    assert rec["stages"]["classifier"]["written"] == 3 and "finished" in rec["stages"]["classifier"]
    assert 10 < rec["stages"]["classifier"]["peak_rss_mb"] < 100_000  # this process's, in MB
    assert run.wall_minutes() is not None and run.wall_minutes() >= 0
    Run.begin("preprocessing", root / "params" / "smoke.yaml", tmp_path / "r")
    assert set(run.read_record()["stages"]) == {"classifier", "preprocessing"}


def test_the_commit_recorded_is_the_one_a_stage_began_with(tmp_path, root, monkeypatch):
    import earth_lib.run

    head = iter(["aaa", "bbb", "bbb", "ccc"])
    monkeypatch.setattr(earth_lib.run, "git_commit", lambda: next(head))
    run = Run.begin("preprocessing", root / "params" / "smoke.yaml", tmp_path / "r")
    run.finish("preprocessing")  # the checkout moved while it ran: the code was aaa's
    rec = run.read_record()
    assert rec["git_commit"] == "aaa" and rec["stages"]["preprocessing"]["git_commit"] == "aaa"
    assert rec["stages"]["preprocessing"]["git_commit_at_finish"] == "bbb"
    run = Run.begin("classifier", root / "params" / "smoke.yaml", tmp_path / "r")
    run.finish("classifier")
    rec = run.read_record()
    assert rec["git_commit"] == "bbb" and "git_commit_at_finish" in rec["stages"]["classifier"]
    assert rec["stages"]["preprocessing"]["git_commit"] == "aaa"


def test_overrides_go_to_their_own_folder_and_into_the_record(tmp_path, root):
    plain = run_dir_for("params/smoke.yaml")
    tagged = run_dir_for("params/smoke.yaml", overrides="train.epochs=2 seed=3")
    assert plain.name == "smoke" and tagged.name.startswith("smoke.set-")
    assert run_dir_for("params/smoke.yaml", overrides="  train.epochs=2\tseed=3 ") == tagged
    assert run_dir_for("params/smoke.yaml", overrides="train.epochs=3 seed=3") != tagged
    run = Run.begin("preprocessing", root / "params" / "smoke.yaml", tmp_path / "r",
                    " train.epochs=2  seed=3")
    rec = run.read_record()
    assert rec["overrides"] == "train.epochs=2 seed=3"
    assert rec["params"]["train"]["epochs"] == 2 and rec["params"]["seed"] == 3


def test_a_stage_that_ran_tensorflow_records_device_precision_and_threads(tmp_path, root):
    import keras
    import tensorflow as tf  # noqa: F401  (a training stage has it loaded)

    recorded = {}
    for policy in ("mixed_bfloat16", "float32"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            run = Run.begin("classifier", root / "params" / "smoke.yaml", tmp_path / "r")
            run.finish("classifier")
        finally:
            keras.mixed_precision.set_global_policy("float32")
        rec = run.read_record()
        compute = rec["stages"]["classifier"]["compute"]
        recorded[policy] = (compute["mixed_precision"], compute["precision_policy"])
    assert recorded == {"mixed_bfloat16": (True, "mixed_bfloat16"),
                        "float32": (False, "float32")}
    assert compute["device"].startswith("CPU: ") or compute["gpus"]
    assert "intra_op_threads" in compute and rec["machine"]["cpu"]


def test_run_paths():
    run = Run(run_dir_for("params/eurosat_cpu.yaml"))
    assert run.path.as_posix() == "outputs/eurosat_cpu"
    assert run.figure("samples").as_posix() == "outputs/eurosat_cpu/figures/samples.png"
    assert run.search_history.name == "search_history.csv"
