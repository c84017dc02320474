"""make bench: the benchmark script runs, writes its figures and times what it says."""

import json
import subprocess
import sys

import numpy as np
import pytest

from earth_lib.cli import bench_markdown


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
    from earth_lib.training import train_model

    class SlowValidation(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            time.sleep(0.3)

    rng = np.random.default_rng(0)
    data = Split(rng.integers(0, 255, (16, 8, 8, 3), dtype=np.uint8), np.arange(16) % 2)
    hp = {"rotation": 0, "zoom": 0, "width_shift": 0, "height_shift": 0, "horizontal_flip": 0,
          "vertical_flip": 0, "learning_rate": 1e-3, "batch_size": 8, "kernel_size": 3}
    timer = bench.epoch_timer()
    train_model(hp, data, data, 2, (8, 8, 3), preset="tiny", epochs=3, early_stopping=False,
                verbose=False, callbacks=[timer, SlowValidation()])
    assert len(timer.epoch_seconds) == len(timer.train_seconds) == 3
    for whole, steps in zip(timer.epoch_seconds, timer.train_seconds, strict=True):
        assert 0 < steps and whole - steps >= 0.3
