"""Speed and memory figures (printed, not asserted): `make bench`.

Preprocessing throughput, ResNet training throughput per preset and image size,
GP-EI suggestion time of the search, and the process's peak memory.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from earth_lib.params import DEFAULT_SPACE, validate, validate_space
from earth_lib.preprocessing import preprocess_folder
from earth_lib.search import SearchSpace, suggest_next
from earth_lib.synthetic import generate_synthetic_dataset


def bench_preprocessing(tmp: Path) -> None:
    """Images per second through enhancement, with 1 and 2 workers."""
    generate_synthetic_dataset(tmp / "raw", 50, 64, 6, seed=0, progress=False)
    settings = validate({"preprocess": {"image_size": 32, "clahe_tiles": 4}})["preprocess"]
    for workers in (1, 2):
        t = time.perf_counter()
        preprocess_folder(tmp / "raw", tmp / f"p{workers}", settings, workers=workers,
                          progress=False)
        dt = time.perf_counter() - t
        print(f"preprocessing 300 images 64->32 px, CLAHE, {workers} worker(s): "
              f"{300 / dt:.0f} images/s")


def bench_training() -> None:
    """Training images per second for the CPU presets."""
    from earth_lib.data import Split
    from earth_lib.training import train_model

    hp = {"rotation": 90, "horizontal_flip": 1, "vertical_flip": 1, "learning_rate": 1e-3,
          "batch_size": 32, "kernel_size": 3}
    rng = np.random.default_rng(0)
    for preset, size in (("small", 32), ("cpu64", 64)):
        n = 640
        x = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
        y = np.arange(n) % 6
        train_model(hp, Split(x[:64], y[:64]), Split(x[:32], y[:32]), 6, (size, size, 3),
                    preset=preset, epochs=1, verbose=False)  # warm-up: graph building
        t = time.perf_counter()
        train_model(hp, Split(x, y), Split(x[:64], y[:64]), 6, (size, size, 3), preset=preset,
                    epochs=3, verbose=False)
        dt = time.perf_counter() - t
        print(f"training preset {preset} at {size} px, augmented: {3 * n / dt:.0f} images/s "
              f"({dt / 3:.1f} s per epoch of {n})")


def bench_search() -> None:
    """Seconds for one GP-EI suggestion."""
    space = SearchSpace.from_dict(validate_space(DEFAULT_SPACE))
    rng = np.random.default_rng(0)
    for n in (10, 40):
        xs = space.latin_hypercube(n, seed=0)
        t = time.perf_counter()
        suggest_next(space, xs, list(rng.random(n)), seed=0)
        print(f"GP-EI suggestion with {n} trials in a 9-D space: "
              f"{time.perf_counter() - t:.2f} s")


def main() -> None:
    """Print every figure."""
    print(f"machine: {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory() as tmp:
        bench_preprocessing(Path(tmp))
    bench_search()
    bench_training()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
