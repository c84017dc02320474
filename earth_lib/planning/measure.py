"""Measuring what a plan needs: the folder (images, classes, native size) and this machine.

Training speed is timed on random images at two sizes (TensorFlow loads here, when a plan
is made, never when one is read); preprocessing and the classical baseline's features on
a few images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from earth_lib.classical import image_features
from earth_lib.data import index_folder, select_files
from earth_lib.errors import DEFAULT_BAD_FILE_POLICY, BadImageError, skip_or_raise
from earth_lib.images import read_image
from earth_lib.io import atomic_write_json
from earth_lib.params import data_selection
from earth_lib.planning.evidence import read_evidence
from earth_lib.planning.plan import (
    CPU_RECIPE,
    GPU_PRESET,
    MEASURED_SIZES,
    DataSummary,
    RunPlan,
    Speed,
    plan_run,
)
from earth_lib.preprocessing import ENHANCE_KEYS, enhance


def summarize_folder(raw_dir: str | Path, selection: dict[str, Any], seed: int,
                     sample: int = 12, on_bad_file: str = DEFAULT_BAD_FILE_POLICY,
                     log: Callable[[str], None] = print) -> tuple[DataSummary, list[Path]]:
    """Count the images (of ``selection``), read ``sample`` of them for their size and bands.

    An unreadable image is skipped (and another read in its place) or raised, as
    ``on_bad_file`` (``data.on_bad_file``) says, like preprocessing does. Returns the
    summary and the sampled files (preprocessing is timed on them).
    """
    index = select_files(index_folder(raw_dir), **selection)
    n = len(index.files)
    rng = np.random.default_rng(seed)
    first = rng.choice(n, size=min(sample, n), replace=False)
    files, shapes, skipped = [], [], []
    for i in [*first, *rng.permutation(np.setdiff1d(np.arange(n), first))]:
        path = index.files[i][0]
        try:
            shapes.append(read_image(path).shape)
        except BadImageError as err:
            skip_or_raise(on_bad_file, err, path, skipped)
            log(f"  skipped (data.on_bad_file = skip): {err}")
            continue
        files.append(path)
        if len(files) == len(first):
            break
    if not files:
        raise BadImageError(f"{raw_dir}: none of its {n:,} images can be read "
                            f"(the first: {skipped[0][1]}).")
    side = int(np.median([min(s[0], s[1]) for s in shapes]))
    bands = int(np.median([s[2] if len(s) > 2 else 1 for s in shapes]))
    return DataSummary(n, len(index.classes), side, bands), files


def measure_speed(params: dict[str, Any], data: DataSummary, files: list[Path],
                  log: Callable[[str], None] = print) -> Speed:
    """Time training at two sizes, and preprocessing (on ``files``) and features."""
    from earth_lib.nn.training import gpu_trains, seconds_per_training_image  # loads TF

    gpu = gpu_trains()
    preset = GPU_PRESET if gpu else CPU_RECIPE["model.preset"]
    hp = {k: v for k, v in params["baseline"].items() if k != "enabled"}
    per_image = {}
    for size in MEASURED_SIZES:
        per_image[size] = seconds_per_training_image(size, max(2, data.classes), preset, hp)
        log(f"  measured: {per_image[size] * 1000:.2f} ms a training image at {size} px")
    small, large = MEASURED_SIZES
    slope = max(0.0, (per_image[large] - per_image[small]) / (large ** 2 - small ** 2))
    fixed = max(0.0, per_image[small] - slope * small ** 2)
    settings = {k: params["preprocess"][k] for k in ENHANCE_KEYS}
    t0 = time.perf_counter()
    for path in files:
        enhance(read_image(path), **{**settings, "image_size": 64})
    preprocess = (time.perf_counter() - t0) / len(files)
    rng = np.random.default_rng(0)
    sample = rng.integers(0, 255, (64, 64, 64, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    image_features(sample)
    features = (time.perf_counter() - t0) / len(sample) / 64 ** 2
    return Speed(fixed, slope, preprocess, features, gpu)


def make_plan(params: dict[str, Any], given: Any, path: str | Path | None,
              log: Callable[[str], None] = print) -> RunPlan:
    """Measure, plan, print the plan and write it to ``path`` (``plan.json``; None: nowhere)."""
    t0 = time.time()
    log(f"planning the run for budget_minutes = {params['budget_minutes']:g} ...")
    data, files = summarize_folder(params["data"]["raw_dir"], data_selection(params),
                                   params["seed"], on_bad_file=params["data"]["on_bad_file"],
                                   log=log)
    plan = plan_run(params, given or {}, measure_speed(params, data, files, log), data,
                    read_evidence())
    plan.started = t0  # the budget counts from the start of planning
    plan.stages = {"planning": round(time.time() - t0, 1), **plan.stages}
    log(plan.describe())
    if path is not None:
        atomic_write_json(path, plan.to_json())
    return plan
