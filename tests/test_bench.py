"""make bench: the benchmark script runs, writes its figures and times what it says."""

import json
import subprocess
import sys

import numpy as np
import pytest

from earth_lib.params import TrainSettings
from earth_lib.report.tables import bench_markdown

settings = TrainSettings.of  # the table's defaults with a few values changed


def test_bench_writes_its_figures(root, tmp_path):
    """The benchmark runs and writes bench.json (figures only: nothing about speed asserted)."""
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "benchmarks/bench.py", "--out", str(out),
                          "--skip", "train,memory,workers", "--pre-images", "12",
                          "--pre-source-px", "32", "--pre-output-px", "24", "--workers", "1"],
                         cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["preprocessing"]["images"] == 12 and figures["preprocess_speedup"] > 0
    assert figures["preprocessing"]["skimage_speedup"] > 0  # both engines measured
    pp = figures["preprocessing"]  # decoding alone bounds any pipeline that decodes
    assert pp["speedup_ceiling"] == pytest.approx(
        pp["decode_images_per_s"] / pp["original_images_per_s"], rel=0.01)
    table = bench_markdown(out)  # README's table: a row per engine beside its target
    assert "engine skimage" in table and "engine opencv" in table and "| x20 |" in table
    assert "PNGs alone" in table
    assert set(figures["search_seconds_per_suggestion"]) == {"20", "60", "150"}
    # the Ray part (search_workers_seconds) is left out: tests/test_distributed.py runs Ray


@pytest.fixture
def bench(root):
    """benchmarks/bench.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench", root / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_memory_runs_parse_with_passes_and_modes(bench):
    """`--memory 27000x64,2100x224/8:disk`: each run's size, passes and (optional) only mode."""
    assert bench.parse_memory_sizes("27000x64,2100x224/8:disk,10x32:memory") == [
        (27000, 64, 0, None), (2100, 224, 8, "disk"), (10, 32, 0, "memory")]
    with pytest.raises(ValueError, match="2100x224:ram"):
        bench.parse_memory_sizes("2100x224:ram")


def test_bench_epoch_timer_leaves_the_validation_pass_out_of_the_training_steps(bench):
    """The training rate's timer: each epoch whole, and up to its validation pass."""
    import time

    import keras

    from earth_lib.data import Split
    from earth_lib.nn.training import train_model

    class SlowValidation(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            time.sleep(0.3)

    rng = np.random.default_rng(0)
    data = Split(rng.integers(0, 255, (16, 8, 8, 3), dtype=np.uint8), np.arange(16) % 2)
    hp = {"rotation": 0, "zoom": 0, "width_shift": 0, "height_shift": 0, "horizontal_flip": 0,
          "vertical_flip": 0, "learning_rate": 1e-3, "batch_size": 8, "kernel_size": 3}
    timer = bench.epoch_timer()
    train_model(hp, data, data, 2, (8, 8, 3),
                settings(preset="tiny", epochs=3, early_stopping=False), verbose=False,
                callbacks=[timer, SlowValidation()], seed=42)
    assert len(timer.epoch_seconds) == len(timer.train_seconds) == 3
    for whole, steps in zip(timer.epoch_seconds, timer.train_seconds, strict=True):
        assert 0 < steps and whole - steps >= 0.3


def test_bench_training_rows_in_bfloat16_beside_float32(bench, tmp_path):
    """A bfloat16 row has its own key and is measured against both matrix products."""
    rows = bench.bench_training([("tiny", 16, 32, "float32"), ("tiny", 16, 32, "mixed_bfloat16")],
                                gemm=0.01, batch=8, epochs=2, gemm_bf16=0.04)
    assert set(rows) == {"tiny_16px", "tiny_16px_bf16"}
    low = rows["tiny_16px_bf16"]
    assert low["precision"] == "mixed_bfloat16" and rows["tiny_16px"]["precision"] == "float32"
    assert "train_flop_fraction_of_bf16_gemm" not in rows["tiny_16px"]
    assert low["train_flop_fraction_of_bf16_gemm"] == pytest.approx(
        low["train_flop_fraction"] / 4, rel=0.01)  # the same FLOP/s, a 4x faster product
    # (products this slow keep the fractions, rounded to 4 decimals, far from 0)
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"gemm_gflops": 100.0, "gemm_gflops_bfloat16": 400.0,
                               "training": rows}))
    table = bench_markdown(out)
    assert "| bfloat16 matrix product, TensorFlow | 400.0 GFLOP/s | - |" in table
    assert table.count("% of the bfloat16 product") == 1 and "`tiny_16px_bf16`" in table


def test_bench_augmentation_times_both_ways_and_makes_a_row(bench, tmp_path):
    """The augmentation row: earth_lib's resampling and Keras' layers, each timed in tf.data."""
    row = bench.bench_augmentation(batch=4, size=16, batches=3)
    assert row["batch_size"] == 4 and row["image_px"] == 16
    assert row["affine_ms_per_batch"] > 0 and row["keras_layers_ms_per_batch"] > 0
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"augmentation": row}))
    assert "| augmenting a batch of 4 at 16 px in `tf.data`" in bench_markdown(out)
