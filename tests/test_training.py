import json

import numpy as np
import pytest

from earth_lib.data import Split
from earth_lib.metrics import evaluate_predictions
from earth_lib.nn.training import dihedral_views, make_objective, predict_proba, train_model
from earth_lib.params import TrainSettings
from earth_lib.run import Run

settings = TrainSettings.of  # the table's defaults with a few values changed

HP = {"rotation": 10, "zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1, "horizontal_flip": 1,
      "vertical_flip": 0, "learning_rate": 3e-3, "batch_size": 8, "kernel_size": 3}


def _toy(n=48, seed=0):
    """Two classes a tiny network separates at once: bright vs dark images."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = (rng.integers(0, 80, (n, 8, 8, 3)) + 150 * y[:, None, None, None]).astype(np.uint8)
    return Split(x, y)


def test_train_model_learns_a_trivial_task():
    model, hist = train_model(HP, _toy(), _toy(seed=1), 2, (8, 8, 3),
                              settings(preset="tiny", epochs=4, patience=4), verbose=False, seed=42)
    assert set(hist) >= {"loss", "val_ce", "val_accuracy"}
    assert max(hist["val_accuracy"]) > 0.9


def test_objective_returns_best_epoch_cross_entropy():
    obj = make_objective(_toy(), _toy(seed=1), 2, (8, 8, 3),
                         settings("trial", preset="tiny", epochs=2), seed=42)
    r = obj(HP)
    assert np.isfinite(r["val_loss"]) and 0 <= r["val_accuracy"] <= 1


def test_searched_epochs_override():
    _, hist = train_model(dict(HP, epochs=1), _toy(), _toy(1), 2, (8, 8, 3),
                          settings(preset="tiny", epochs=5), verbose=False, seed=42)
    assert len(hist["loss"]) == 1


def test_an_epoch_is_one_pass_over_the_training_set_partial_batch_included():
    # one repeated iterator serves the whole run: 50 images in batches of 8 are 7 steps an
    # epoch (the last of 2 images), never more (a second pass) nor fewer
    model, hist = train_model(HP, _toy(50), _toy(seed=1), 2, (8, 8, 3),
                              settings(preset="tiny", epochs=3, patience=3), verbose=False, seed=42)
    assert len(hist["loss"]) == 3
    assert int(model.optimizer.iterations) == 3 * 7


def test_each_validation_pass_is_the_whole_validation_set_once(monkeypatch):
    # 21 images in validation batches of 8 are 3 steps (the last of 5): each epoch's figures
    # are the model's on exactly these images, partial batch included, not a shifted window
    monkeypatch.setattr("earth_lib.nn.training.same_pixels_as_64px", lambda n, shape: 8)
    val = _toy(21, seed=1)
    model, hist = train_model(HP, _toy(), val, 2, (8, 8, 3),
                              settings(preset="tiny", epochs=3, early_stopping=False),
                              verbose=False, seed=42)
    x = val.x.astype("float32")
    y = np.eye(2, dtype="float32")[val.y]
    scores = model.evaluate(x, y, batch_size=21, verbose=0, return_dict=True)
    assert hist["val_ce"][-1] == pytest.approx(scores["ce"], rel=1e-4)
    assert hist["val_accuracy"][-1] == pytest.approx(scores["accuracy"])


def test_micro_batches_update_once_per_batch_and_still_learn():
    # batch 24 in passes of at most 10 images: 3 passes of 8, one update per 3 passes
    hp = dict(HP, batch_size=24)
    model, hist = train_model(hp, _toy(), _toy(seed=1), 2, (8, 8, 3),
                              settings(preset="tiny", epochs=4, patience=4, micro_batch=10),
                              verbose=False, seed=42)
    assert model.optimizer.gradient_accumulation_steps == 3
    assert hist["global_batch_size"] == [24.0]
    assert int(model.optimizer.iterations) == 4 * (48 // 8) // 3  # updates, not passes
    assert max(hist["val_accuracy"]) > 0.9
    _, whole = train_model(hp, _toy(), _toy(seed=1), 2, (8, 8, 3),
                           settings(preset="tiny", epochs=1, micro_batch=24), verbose=False,
                           seed=42)
    assert whole["global_batch_size"] == [24.0]  # a batch that fits: one pass, no accumulation


def test_dihedral_views_are_the_eight_symmetries():
    x = np.arange(9).reshape(1, 3, 3, 1)
    views = {v.tobytes() for v in dihedral_views(x)}
    assert len(views) == 8


def test_evaluate_predictions():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = evaluate_predictions(np.array([0, 1, 1, 1]), proba, ["a", "b"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["confusion_matrix"] == [[1, 0], [1, 2]]
    assert m["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.5)


def test_save_model_writes_model_and_card(tmp_path):
    model, _ = train_model(HP, _toy(), _toy(1), 2, (8, 8, 3), settings(preset="tiny", epochs=1),
                           verbose=False, seed=42)
    Run(tmp_path).save_model(model, ["dark", "bright"], {"image_size": 8}, HP, tta=True)
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["class_names"] == ["dark", "bright"] and card["input_shape"] == [8, 8, 3]
    assert card["schema"] == 2 and card["tta"] is True
    again, read_card = Run(tmp_path).load_model()
    assert read_card.class_names == ["dark", "bright"] and read_card.hyperparameters == HP
    assert not list(tmp_path.glob("*.partial.keras"))
    x = _toy().x[:4].astype(np.float32)
    assert np.allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_the_original_recipe_adam_constant_no_early_stopping():
    model, hist = train_model(
        HP,
        _toy(),
        _toy(1),
        2,
        (8, 8, 3),
        settings(
            preset="tiny",
            epochs=3,
            patience=1,
            optimizer="adam",
            schedule="constant",
            early_stopping=False,
        ),
        verbose=False,
        seed=42,
    )
    assert len(hist["loss"]) == 3  # no early stop, whatever the patience
    opt = model.optimizer
    assert type(opt).__name__ == "Adam" and float(opt.learning_rate) == pytest.approx(3e-3)


def test_default_recipe_is_adamw_with_a_decaying_rate():
    model, _ = train_model(HP, _toy(), _toy(1), 2, (8, 8, 3), settings(preset="tiny", epochs=2),
                           verbose=False, seed=42)
    assert type(model.optimizer).__name__ == "AdamW"
    assert float(model.optimizer.learning_rate) < 3e-3  # cosine-decayed by the end


def test_unknown_optimizer_is_refused():
    from earth_lib.nn.model import build_from_preset
    from earth_lib.nn.training import compile_model

    with pytest.raises(ValueError, match="optimizer must be one of"):
        compile_model(build_from_preset((8, 8, 3), 2, "tiny"), 1e-3, 2, 2,
                      settings(optimizer="sgd"))


def test_time_limit_stops_a_trial_and_says_so():
    obj = make_objective(_toy(), _toy(1), 2, (8, 8, 3),
                         settings("trial", preset="tiny", epochs=50, time_limit=1e-6), seed=42)
    r = obj(HP)
    assert r["status"] == "time_limit" and r["epochs_run"] == 1


def test_objective_budget_lengthens_the_trial():
    obj = make_objective(_toy(), _toy(1), 2, (8, 8, 3), settings("trial", preset="tiny", epochs=1),
                         seed=42)
    assert obj(HP)["epochs_run"] == 1
    assert obj(HP, budget=3, repeat=1)["epochs_run"] == 3


def test_final_training_logs_every_epoch_and_tensorboard(tmp_path, capsys):
    import pandas as pd

    _, hist = train_model(HP, _toy(), _toy(1), 2, (8, 8, 3),
                          settings(preset="tiny", epochs=3, patience=3),
                          csv_log=tmp_path / "training_log.csv", tensorboard_dir=tmp_path / "tb",
                          seed=42)
    log = pd.read_csv(tmp_path / "training_log.csv")
    assert list(log["epoch"]) == [0, 1, 2]
    assert np.allclose(log["val_ce"], hist["val_ce"])
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    out = capsys.readouterr().out
    assert "epoch 3 of 3:" in out and "min so far" in out


def test_search_trials_become_tensorboard_hparams_runs(tmp_path):
    from earth_lib.nn.training import log_trials_to_tensorboard

    history = [{"step": 1, "trial": t, **HP, "val_loss": v}
               for t, v in enumerate([0.9, float("nan"), 0.7])]
    assert log_trials_to_tensorboard(history, list(HP), None) == 0
    assert log_trials_to_tensorboard(history, list(HP), tmp_path / "search") == 2  # failed: out
    assert sorted(p.name for p in (tmp_path / "search").iterdir()) == ["trial0000", "trial0001"]
    assert log_trials_to_tensorboard(history[:1], list(HP), tmp_path / "search") == 1  # rewritten
    assert len(list((tmp_path / "search").iterdir())) == 1


def test_tensorboard_only_when_asked(tmp_path, root):
    from earth_lib.params import load_params

    p = load_params(root / "params" / "smoke.yaml")
    assert Run(tmp_path, p).training_logs() == {"csv_log": tmp_path / "training_log.csv",
                                                "tensorboard_dir": None}
    on = load_params(root / "params" / "smoke.yaml", "logging.tensorboard=true")
    assert Run(tmp_path, on).tensorboard_dir("search") == tmp_path / "tensorboard" / "search"


def test_tensorboard_asked_but_missing_says_what_to_install(tmp_path, root, monkeypatch):
    import importlib.util

    from earth_lib.errors import ParameterError
    from earth_lib.params import load_params

    on = load_params(root / "params" / "smoke.yaml", "logging.tensorboard=true")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ParameterError, match=r"logging.tensorboard is true but TensorBoard is "
                                             r"not installed: pip install tensorboard"):
        Run(tmp_path, on, "x.yaml").tensorboard_dir("final")


def test_export_serves_the_same_probabilities_without_this_package(tmp_path):
    import subprocess
    import sys

    model, _ = train_model(HP, _toy(), _toy(1), 2, (8, 8, 3), settings(preset="tiny", epochs=1),
                           verbose=False, seed=42)
    Run(tmp_path).save_model(model, ["dark", "bright"], {"image_size": 8, "bands": 3,
                                                         "clahe": True, "clahe_mode": "luminance"},
                             HP)
    x = _toy().x[:4].astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = subprocess.run([sys.executable, "-m", "earth_lib.cli", "export", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / "export"
    info = json.loads((out / "serving.json").read_text())
    assert info["class_names"] == ["dark", "bright"] and info["input_shape"] == [8, 8, 3]
    assert any("resize to 8 x 8" in s for s in info["steps"])
    assert any(s.startswith("CLAHE (luminance") for s in info["steps"])
    assert not (tmp_path / "export.partial").exists()
    # a fresh process with only TensorFlow: no earth_lib, no Keras model file
    code = ("import json, sys, numpy as np, tensorflow as tf\n"
            "assert 'earth_lib' not in sys.modules\n"
            f"m = tf.saved_model.load({str(out / 'saved_model')!r})\n"
            f"print(json.dumps(m.serve(np.load({str(tmp_path / 'x.npy')!r})).numpy().tolist()))\n")
    served = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert served.returncode == 0, served.stderr[-2000:]
    probs = np.array(json.loads(served.stdout.strip().splitlines()[-1]))
    assert np.allclose(probs, model.predict(x, verbose=0), atol=1e-5)


def test_training_from_disk_gives_the_same_results(tmp_path):
    """Data larger than memory: splits as on-disk arrays train through tf.data batch by batch,
    with the same batches, hence the same losses and predictions as arrays in memory."""
    train, val = _toy(40), _toy(16, seed=1)

    def on_disk(split, name):
        path = tmp_path / f"{name}.npy"
        np.save(path, split.x)
        return Split(np.load(path, mmap_mode="r"), split.y)

    results = []
    for tr, va in ((train, val), (on_disk(train, "train"), on_disk(val, "val"))):
        model, hist = train_model(HP, tr, va, 2, (8, 8, 3),
                                  settings(preset="tiny", epochs=2, patience=2), seed=3,
                                  verbose=False)
        results.append((hist, predict_proba(model, va.x, tta=True)))
    (h_ram, p_ram), (h_disk, p_disk) = results
    np.testing.assert_allclose(h_disk["loss"], h_ram["loss"], rtol=1e-5)
    np.testing.assert_allclose(h_disk["val_ce"], h_ram["val_ce"], rtol=1e-5)
    np.testing.assert_allclose(p_disk, p_ram, rtol=1e-5, atol=1e-6)


def test_bfloat16_training_learns_and_the_next_run_is_float32_again(root):
    import keras

    from earth_lib.params import load_params

    model, hist = train_model(
        HP,
        _toy(),
        _toy(seed=1),
        2,
        (8, 8, 3),
        settings(preset="tiny", epochs=4, patience=4, precision="mixed_bfloat16"),
        verbose=False,
        seed=42,
    )
    assert model.get_layer("stem").compute_dtype == "bfloat16"
    assert model.get_layer("classes").compute_dtype == "float32"  # the softmax stays float32
    assert max(hist["val_accuracy"]) > 0.9
    # the parameter reaches every training of a run, and auto sets float32 back on a CPU
    smoke = TrainSettings.final(load_params(root / "params" / "smoke.yaml",
                                            "train.precision=auto"))
    assert smoke.precision == "auto"
    model, _ = train_model(HP, _toy(), _toy(seed=1), 2, (8, 8, 3),
                           smoke.replace(preset="tiny", epochs=1), verbose=False, seed=42)
    assert model.get_layer("stem").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    from earth_lib.nn.training import cpu_has_native_bfloat16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_native_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not cpu_has_native_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")  # Arm
    assert cpu_has_native_bfloat16(cpuinfo)
    assert not cpu_has_native_bfloat16(tmp_path / "absent")


def test_emulated_bfloat16_warns_and_unknown_precision_is_refused(monkeypatch):
    import earth_lib.nn.training as training

    monkeypatch.setattr(training, "cpu_has_native_bfloat16", lambda: False)
    try:
        with pytest.warns(UserWarning, match="without native bfloat16"):
            assert training.set_precision("mixed_bfloat16") == "mixed_bfloat16"
    finally:
        training.set_precision("float32")
    with pytest.raises(ValueError, match="train.precision must be one of"):
        training.set_precision("bfloat16")


class _Interrupt(Exception):
    pass


def _interrupted(at_epoch: int, **kw) -> None:
    """A training killed as epoch ``at_epoch`` begins (its backup stays)."""
    import keras

    class StopAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == at_epoch:
                raise _Interrupt

    with pytest.raises(_Interrupt):
        train_model(HP, _toy(), _toy(1), 2, (8, 8, 3), callbacks=[StopAt()], **kw)


def test_an_interrupted_training_goes_on_from_its_backup(tmp_path):
    import pandas as pd

    kw = dict(settings=settings(preset="tiny", epochs=4, early_stopping=False), seed=42,
              verbose=False, backup_dir=tmp_path / "backup", csv_log=tmp_path / "log.csv")
    _interrupted(2, **kw)
    assert (tmp_path / "backup" / "training_metadata.json").is_file()
    model, hist = train_model(HP, _toy(), _toy(1), 2, (8, 8, 3), **kw)
    assert hist["resumed_at_epoch"] == [2.0] and len(hist["loss"]) == 2
    assert hist["seconds_before_resume"][0] > 0  # the two epochs before count in its time
    assert int(model.optimizer.iterations) == 4 * 6  # the schedule went on, not over
    assert list(pd.read_csv(tmp_path / "log.csv")["epoch"]) == [0, 1, 2, 3]
    assert not (tmp_path / "backup").exists()  # a finished training leaves no backup


def test_an_unreadable_backup_is_dropped_and_early_stopping_refused(tmp_path):
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable training backup"):
        _, hist = train_model(HP, _toy(), _toy(1), 2, (8, 8, 3),
                              settings(preset="tiny", epochs=1, early_stopping=False), seed=42,
                              verbose=False, backup_dir=tmp_path / "backup")
    assert "resumed_at_epoch" not in hist and len(hist["loss"]) == 1
    with pytest.raises(ValueError, match="early stopping"):
        train_model(HP, _toy(), _toy(1), 2, (8, 8, 3),
                    settings(preset="tiny", epochs=1, early_stopping=True), seed=42,
                    verbose=False, backup_dir=tmp_path / "b2")


def test_a_warm_up_never_takes_more_than_half_the_training():
    s = settings(warmup_epochs=1)
    assert s.warmup_steps(157, 1) == 78 and s.warmup_capped(157, 1)  # a one-epoch trial
    assert s.warmup_steps(79, 2) == 79 and not s.warmup_capped(79, 2)
    assert s.warmup_steps(16, 38) == 16
    from earth_lib.nn.model import build_from_preset
    from earth_lib.nn.training import compile_model

    model = compile_model(build_from_preset((8, 8, 3), 2, "tiny"), 1e-2, 10, 1,
                          settings(warmup_epochs=1))
    schedule = model.optimizer._learning_rate  # the schedule itself, a function of the step
    assert float(schedule(5)) == pytest.approx(1e-2)  # the peak at half the training
    assert float(schedule(9)) < 0.5e-2  # then it decays: the training does not end at its peak


def test_a_backup_of_another_training_is_not_resumed(tmp_path):
    kw = dict(settings=settings(preset="tiny", epochs=3, early_stopping=False), seed=42,
              verbose=False, backup_dir=tmp_path / "backup")
    _interrupted(1, **kw)
    other = dict(HP, learning_rate=1e-3)  # another training: its backup is no use
    with pytest.warns(UserWarning, match="a backup of another training"):
        _, hist = train_model(other, _toy(), _toy(1), 2, (8, 8, 3), **kw)
    assert "resumed_at_epoch" not in hist and len(hist["loss"]) == 3


def test_a_batchnorm_refresh_takes_the_mean_of_clean_batch_statistics():
    import keras

    from earth_lib.nn.training import refresh_batchnorm

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.BatchNormalization(),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    data = _toy(n=40)
    # five batches of 8 images: the mean of their means is the mean of all 40
    assert refresh_batchnorm(model, data, batch_size=8) == 5
    bn = model.layers[0]
    want = data.x.reshape(-1, 3).astype(float).mean(axis=0)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), want, rtol=1e-4)
    assert bn.momentum == pytest.approx(0.99)  # its own momentum back
    assert refresh_batchnorm(model, data, batch_size=8, images=16) == 2  # at most 16 images


def test_the_refresh_finds_batchnorm_in_nested_models_and_in_the_resnet():
    import keras

    from earth_lib.nn.model import build_from_preset
    from earth_lib.nn.training import batchnorm_layers

    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.BatchNormalization()])
    outer = keras.Sequential([keras.Input((8, 8, 3)), inner, keras.layers.BatchNormalization(),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    assert len(batchnorm_layers(outer)) == 2
    resnet = build_from_preset((8, 8, 3), 2, "tiny")
    bns = [la for la in resnet.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and batchnorm_layers(resnet) == bns


def test_a_refreshed_trial_scores_after_the_refresh_and_keeps_the_trained_score():
    plain = make_objective(_toy(), _toy(seed=1), 2, (8, 8, 3),
                           settings("trial", preset="tiny", epochs=2), seed=42)(HP)
    fresh = make_objective(_toy(), _toy(seed=1), 2, (8, 8, 3),
                           settings("trial", preset="tiny", epochs=2, refresh_bn=True),
                           seed=42)(HP)
    assert "moving_stats_val_loss" not in plain
    # the same training (same seed): the score as trained is kept beside the refreshed one
    assert fresh["moving_stats_val_loss"] == pytest.approx(plain["val_loss"])
    assert np.isfinite(fresh["val_loss"]) and fresh["val_loss"] != plain["val_loss"]


@pytest.mark.parametrize("multilabel", [False, True])
def test_compile_model_creates_the_training_state_before_fit(multilabel):
    # what fit would otherwise create inside its first trace (and then trace again)
    from earth_lib.nn.model import build_from_preset
    from earth_lib.nn.training import compile_model

    model = compile_model(build_from_preset((8, 8, 3), 3, "tiny", multilabel=multilabel),
                          1e-3, 4, 2, settings(), multilabel=multilabel, accumulation=2)
    assert model.optimizer.built and model.optimizer.variables
    names = {v.path.split("/")[0] for v in model.metrics_variables}
    assert {"accuracy", "ce"} <= names, names  # the compiled metrics, not only the loss


def test_the_training_state_built_early_trains_to_the_same_bits(monkeypatch):
    # the early build only saves a trace: switched off, the same seed gives the same weights
    run = dict(hp=dict(HP, batch_size=16), train=_toy(40), val=_toy(9, seed=1), num_classes=2,
               input_shape=(8, 8, 3), settings=settings(preset="tiny", epochs=2),
               verbose=False, seed=3)
    early, hist_early = train_model(**run)
    monkeypatch.setattr("earth_lib.nn.training.build_training_state", lambda model: None)
    late, hist_late = train_model(**run)
    assert hist_early["loss"] == hist_late["loss"]
    for a, b in zip(early.get_weights(), late.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_seconds_before_a_resume_come_from_the_ledger_beside_the_backup(tmp_path):
    from earth_lib.nn.training import ELAPSED_FILE, seconds_before_resume

    assert seconds_before_resume(tmp_path, 2) == 0.0  # no ledger: nothing known
    (tmp_path / ELAPSED_FILE).write_text('{"epoch": 2, "seconds": 30.0}')
    assert seconds_before_resume(tmp_path, 2) == 30.0
    assert seconds_before_resume(tmp_path, 3) == 45.0  # a kill between backup and ledger
    assert seconds_before_resume(tmp_path, 0) == 0.0
    (tmp_path / ELAPSED_FILE).write_text("{not json")
    assert seconds_before_resume(tmp_path, 2) == 0.0
