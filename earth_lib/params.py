"""Parameter files: a declared table of every parameter, validated once on load.

A parameter file is YAML with the sections below. Every key is checked against
this table: an unknown or mistyped key, a wrong type or an impossible bound is a
:class:`ParameterError` that names the file and the key. Missing keys take the
defaults declared here, so the table is the one place defaults live.
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from earth_lib.errors import (
    BAD_FILE_POLICIES,
    DEFAULT_BAD_FILE_POLICY,
    DEFAULT_MAX_PIXELS,
    ParameterError,
)
from earth_lib.model import DEFAULT_PRESET, PRESETS
from earth_lib.paths import MOSAIC_LABELS
from earth_lib.search import ACQUISITIONS, DESIGNS

#: Hyperparameters the search may explore (the nine of the method, plus epochs).
HYPERPARAMETERS = (
    "rotation",
    "zoom",
    "width_shift",
    "height_shift",
    "horizontal_flip",
    "vertical_flip",
    "learning_rate",
    "batch_size",
    "kernel_size",
    "epochs",
)
REQUIRED_HYPERPARAMETERS = HYPERPARAMETERS[:9]

#: Hard limits each hyperparameter's declared bounds or values must respect.
HYPERPARAMETER_LIMITS = {
    "rotation": (0.0, 360.0),
    "zoom": (-1.0, 1.0),
    "width_shift": (-1.0, 1.0),
    "height_shift": (-1.0, 1.0),
    "horizontal_flip": (0, 1),
    "vertical_flip": (0, 1),
    "learning_rate": (1e-8, 1.0),
    "batch_size": (1, 4096),
    "kernel_size": (1, 15),
    "epochs": (1, 10000),
}

DATASETS = ("synthetic", "folder", "eurosat", "eurosat_ms", "ucmerced", "mosaic")
TASKS = ("multiclass", "multilabel")


@dataclass(frozen=True)
class Param:
    """One declared parameter: default, accepted type, optional range or choices."""

    default: Any
    kind: type | tuple[type, ...]
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    nullable: bool = False


def _p(default, kind, help, **kw) -> Param:
    return Param(default, kind, help, **kw)


SCHEMA: dict[str, dict[str, Param] | Param] = {
    "seed": _p(42, int, "one seed for data generation, splits, search and training", low=0),
    "task": _p(TASKS[0], str, "multiclass: one class per image (class folders); multilabel: "
               "every land cover present (labels from data.labels_csv; sigmoid head, binary "
               "cross-entropy)", choices=TASKS),
    "data": {
        "dataset": _p("synthetic", str, "where images come from", choices=DATASETS),
        "raw_dir": _p("data/raw/synthetic", str, "folder of class sub-folders (raw images)"),
        "download": _p(False, bool, "download a named public data set when missing"),
        "local_copy": _p(None, str, "a folder with the same class folders, used instead of "
                         "raw_dir (and the download) when it exists, e.g. a shared copy",
                         nullable=True),
        "file_list": _p(None, str, "use only these images: a SHA256SUMS-style list of "
                        "<class>/<file> paths (checksums verified), e.g. params/lists/*.txt",
                        nullable=True),
        "max_per_class": _p(None, int, "use at most this many images per class (a seeded "
                            "random choice)", nullable=True, low=1),
        "archive_dir": _p("data/archives", str, "where downloaded archives are kept"),
        "synthetic_images_per_class": _p(100, int, "synthetic set: images per class", low=2),
        "synthetic_image_size": _p(64, int, "synthetic set: side in pixels", low=16, high=1024),
        "synthetic_classes": _p(6, int, "synthetic set: number of classes", low=2, high=6),
        "labels_csv": _p(None, str, "task multilabel: CSV of the images' labels (path,labels "
                         "or one 0/1 column per label, as UC Merced's); mosaic: written to "
                         "<raw_dir>/labels.csv", nullable=True),
        "mosaic_source": _p(None, str, "mosaic: a single-label class-folder set whose "
                            "patches are tiled (null: the embedded synthetic set)",
                            nullable=True),
        "mosaic_grid": _p(2, int, "mosaic: tiles per side (k x k)", low=2, high=8),
        "mosaic_labels": _p([1, 3], list, "mosaic: fewest and most distinct labels per mosaic"),
        "mosaic_count": _p(600, int, "mosaic: mosaics in all (shared out by the split "
                           "fractions; tiles of one split never in another)", low=3),
        "in_memory": _p(True, bool, "load the processed images into memory; false for data "
                        "larger than memory: one uint8 file in <processed_dir>/.arrays, read "
                        "from disk batch by batch (same results)"),
        "on_bad_file": _p(DEFAULT_BAD_FILE_POLICY, str,
                          "unreadable image: skip (and list) or error",
                          choices=BAD_FILE_POLICIES),
        "max_image_pixels": _p(DEFAULT_MAX_PIXELS, int, "an image of more pixels (height x "
                               "width) is refused before decoding, whatever its format "
                               "(Pillow's decompression-bomb limit)", low=1),
    },
    "preprocess": {
        "processed_dir": _p("data/processed/synthetic", str, "where enhanced images go"),
        "image_size": _p(32, int, "output side in pixels (square)", low=8, high=4096),
        "grayscale": _p(False, bool, "convert to one band (the original method did)"),
        "clahe": _p(True, bool, "apply CLAHE"),
        "clahe_mode": _p("luminance", str, "colour CLAHE on luminance (Lab L) or each band",
                         choices=("luminance", "per_band")),
        "clahe_clip_limit": _p(0.01, float, "CLAHE clip limit (0-1, higher: more contrast)",
                               low=1e-6, high=1.0),
        "clahe_tiles": _p(8, int, "CLAHE grid: tiles per side", low=1, high=64),
        "scale_16bit": _p("percentile", str,
                          "how >8-bit images become 8-bit: per-band 1-99 percentile stretch, "
                          "or divide by fixed_max", choices=("percentile", "fixed")),
        "fixed_max": _p(10000.0, float, "value mapped to 255 when scale_16bit is fixed", low=1),
        "engine": _p("skimage", str, "what resizes and equalises: skimage (the original's "
                     "functions) or opencv (over 10 times faster, slightly other pixels)",
                     choices=("skimage", "opencv")),
        "overwrite": _p(False, bool, "redo images already processed"),
        "workers": _p(1, int, "processes used for preprocessing", low=1, high=256),
    },
    "split": {
        "train": _p(0.70, float, "fraction of images for training", low=0.01, high=0.98),
        "val": _p(0.15, float, "fraction for validation (search objective)", low=0.01, high=0.98),
        "test": _p(0.15, float, "fraction for the final test", low=0.01, high=0.98),
        "split_file": _p(None, str, "CSV (path,split) that fixes the split", nullable=True),
    },
    "eda": {
        "samples_per_class": _p(6, int, "images per class in the sample grid", low=1, high=32),
    },
    "pca": {
        "variance": _p(0.95, float, "variance the kept components must explain",
                       low=0.01, high=1.0),
        "max_images": _p(2000, int, "training images used to fit PCA", low=2),
        "band_components": _p(None, int, "reduce N bands to this many spectral components "
                              "(fitted on the training split) before the network", nullable=True,
                              low=1),
    },
    "model": {
        "preset": _p(DEFAULT_PRESET, str, "ResNet preset (see earth_lib.model.PRESETS)",
                     choices=tuple(PRESETS)),
        "dropout": _p(0.0, float, "dropout before the classifier", low=0.0, high=0.9),
        "weight_decay": _p(1e-4, float, "L2 weight decay of AdamW", low=0.0, high=1.0),
        "label_smoothing": _p(0.0, float, "label smoothing of the loss", low=0.0, high=0.5),
    },
    "search": {
        "enabled": _p(True, bool, "run the Bayesian search (off: use the baseline values)"),
        "steps": _p(3, int, "search steps, each tightening the bounds", low=1, high=10),
        "initial_points": _p(5, int, "Latin-hypercube points per step", low=1),
        "iterations_per_step": _p(5, int, "GP-EI iterations per step", low=0),
        "epochs": _p(3, int, "epochs per trial (unless epochs is searched)", low=1),
        "min_step": _p(1e-8, float, "stop a step when consecutive points are closer", low=0.0),
        "shrink": _p(0.5, float, "each step keeps this fraction of each continuous range",
                     low=0.01, high=1.0),
        "use_pca_images": _p(False, bool, "search on PCA-reconstructed images"),
        "design": _p(DESIGNS[0], str, "each step's initial points: Latin hypercube or uniform "
                     "random", choices=DESIGNS),
        "acquisition": _p(ACQUISITIONS[0], str, "GPyOpt acquisition: expected improvement, "
                          "probability of improvement, lower confidence bound",
                          choices=ACQUISITIONS),
        "start_from_baseline": _p(False, bool, "add the literature values to step 1's design "
                                  "and the best point so far to each later step's"),
        "finalists": _p(0, int, "after the steps, train the best N distinct points again, "
                        "longer; choose among them on those trials (0: off)", low=0),
        "finalist_budget": _p(3.0, float, "finalists' trials are this many times longer",
                              low=1.0, high=100.0),
        "finalist_repeats": _p(1, int, "finalists' trials per point (other training seeds); "
                               "the choice is by mean", low=1, high=10),
        "max_trial_seconds": _p(None, float, "stop a trial at the first epoch end past this "
                                "(recorded as time_limit)", nullable=True, low=1.0),
        "workers": _p(1, int, "trials run at once, as Ray tasks (pip install -e '.[distributed]'"
                      "); 1: in this process, without Ray", low=1, high=1024),
        "ray_address": _p(None, str, "a running Ray cluster to run the trials on "
                          "(RAY_ADDRESS is ignored); none: a local Ray when workers > 1",
                          nullable=True),
        "max_train_images": _p(None, int, "subsample the training split for trials",
                               nullable=True, low=2),
        "space": _p(None, dict, "hyperparameter space: name -> {type, bounds | values}; the "
                    "entries named replace the default space's, the others stay",
                    nullable=True),
    },
    "baseline": {
        "enabled": _p(True, bool, "evaluate the literature augmentation values"),
        "rotation": _p(45.0, float, "rotation range in degrees", low=0, high=360),
        "zoom": _p(0.2, float, "zoom range", low=-1, high=1),
        "width_shift": _p(0.2, float, "horizontal shift fraction", low=-1, high=1),
        "height_shift": _p(0.2, float, "vertical shift fraction", low=-1, high=1),
        "horizontal_flip": _p(1, int, "random horizontal flips (0/1)", choices=(0, 1)),
        "vertical_flip": _p(1, int, "random vertical flips (0/1)", choices=(0, 1)),
        "learning_rate": _p(1e-3, float, "Adam learning rate", low=1e-8, high=1.0),
        "batch_size": _p(32, int, "batch size", low=1),
        "kernel_size": _p(3, int, "convolution kernel size", low=1, high=15),
    },
    "train": {
        "epochs": _p(20, int, "final training epochs (unless searched)", low=1),
        "patience": _p(8, int, "early-stopping patience (best weights restored)", low=1),
        "warmup_epochs": _p(1, int, "linear learning-rate warm-up epochs", low=0),
        "optimizer": _p("adamw", str, "adamw (decoupled weight decay) or adam (the original; "
                        "no weight decay)", choices=("adamw", "adam")),
        "schedule": _p("cosine", str, "learning rate: warm-up then cosine decay, or constant "
                       "(the original)", choices=("cosine", "constant")),
        "early_stopping": _p(True, bool, "stop after `patience` epochs without progress and "
                             "restore the best weights (off: all epochs, last weights)"),
        "tta": _p(False, bool, "average predictions over the 8 flips/rotations at test"),
        "distribute": _p("auto", str, "final training on several GPUs: auto uses "
                         "tf.distribute.MirroredStrategy when more than one GPU is visible "
                         "(batch_size per GPU), off never", choices=("auto", "off")),
        "micro_batch": _p(None, int, "most images per forward/backward pass: a larger batch "
                          "averages the gradients of several passes before each update, so memory "
                          "stays bounded at large image sizes (batch norm then sees each "
                          "pass's statistics); null: the whole batch in one pass",
                          nullable=True, low=1),
        "precision": _p("auto", str, "what the network computes in (search trials and final "
                        "training): auto is float16 on a GPU and float32 on a CPU; "
                        "mixed_bfloat16 runs ~2x faster on CPUs with native bfloat16 "
                        "(avx512_bf16, amx_bf16) and slower elsewhere; weights, loss and the "
                        "classifier stay float32", choices=("auto", "float32", "mixed_bfloat16",
                                                            "mixed_float16")),
    },
    "logging": {
        "tensorboard": _p(False, bool, "also write TensorBoard logs: the final training's "
                          "curves (tensorboard/final) and every search trial as HParams "
                          "(tensorboard/search); `tensorboard --logdir outputs/<run>/tensorboard`"),
    },
    "compare": {
        "seeds": _p([1, 2, 3], list, "seeds of the comparison (make compare): each changes "
                    "the search and the training, never the split"),
        "arms": _p(["literature", "random", "gp_one_step", "method", "improved"], list,
                   "arms of the comparison (see earth_lib/experiments/compare.py)"),
        "improved_epochs": _p(None, int, "trial epochs of the improved arm's short trials "
                              "(null: search.epochs)", nullable=True, low=1),
        "improved_acquisition": _p(ACQUISITIONS[0], str, "the improved arm's acquisition",
                                   choices=ACQUISITIONS),
    },
    "curve": {
        "sizes": _p([250, 500, 1000, 2000, 5000], list, "training-set sizes of the learning "
                    "curve (make curve), in images, stratified"),
        "replicates": _p({250: 5, 500: 5, 1000: 5, 2000: 5, 5000: 3}, (dict, int),
                         "replicates per size ({size: n}, or one n for every size): a new "
                         "subset, search seed and training seed each; arms paired within one"),
        "test_images": _p(5000, int, "the curve's fixed stratified test set, used by nothing "
                          "else", low=10),
        "val_fraction": _p(0.25, float, "validation images per training image, drawn beside "
                           "each subset", low=0.05, high=1.0),
        "arms": _p(["none", "literature", "dihedral", "trivialaugment", "randaugment", "lr_wd",
                    "random", "method", "noisy_gp"], list,
                   "arms of the curve (see earth_lib/experiments/curve.py)"),
        "final_steps": _p({250: 250, 500: 300, 1000: 400, 2000: 500, 5000: 600}, dict,
                          "optimiser steps of every arm's final training, {size: steps} for "
                          "every size"),
        "trials": _p(9, int, "trials of each search arm (the same budget for all)", low=3),
        "trial_fraction": _p(0.15, float, "a trial's optimiser steps as a share of the final "
                             "training's", low=0.01, high=1.0),
        "weight_decay_bounds": _p([1e-4, 0.3], list, "the lr_wd arm's weight-decay range "
                                  "(log scale)"),
        "fidelity_sizes": _p([1000, 5000], list, "sizes of the fidelity check: does a trial's "
                             "score rank fully trained results? ([]: none)"),
        "fidelity_points": _p(8, int, "configurations of the fidelity check", low=2),
        "fidelity_seeds": _p(2, int, "seeds per configuration of the fidelity check", low=1),
        "workers": _p(1, int, "cells trained at once, each in its own process", low=1,
                      high=64),
        "results_dir": _p(None, str, "where each finished cell's record goes (null: "
                          "<run>/records; results/curve for the committed curve)",
                          nullable=True),
    },
    "classical": {
        "enabled": _p(True, bool, "colour-histogram + texture random-forest baseline"),
        "trees": _p(300, int, "random-forest trees", low=1),
    },
}

DEFAULT_SPACE = {
    "rotation": {"type": "continuous", "bounds": [0, 180]},  # +-180 deg is any angle already
    "zoom": {"type": "continuous", "bounds": [0.0, 0.5]},
    "width_shift": {"type": "continuous", "bounds": [0.0, 0.3]},
    "height_shift": {"type": "continuous", "bounds": [0.0, 0.3]},
    "horizontal_flip": {"type": "discrete", "values": [0, 1]},
    "vertical_flip": {"type": "discrete", "values": [0, 1]},
    "learning_rate": {"type": "continuous", "bounds": [1e-4, 3e-3], "log": True},
    "batch_size": {"type": "discrete", "values": [16, 32, 64]},
    "kernel_size": {"type": "discrete", "values": [1, 3, 5]},
}


def _fail(source: str, key: str, expected: str, got: Any) -> ParameterError:
    return ParameterError(
        f"{source}: the '{key}' parameter must be {expected}. Got {got!r} instead."
    )


def _describe(p: Param) -> str:
    if p.choices is not None:
        return "one of " + ", ".join(repr(c) for c in p.choices)
    kinds = p.kind if isinstance(p.kind, tuple) else (p.kind,)
    text = " or ".join("a number" if k is float else ("an int" if k is int else f"a {k.__name__}")
                       for k in kinds)
    if p.low is not None or p.high is not None:
        lo = "-inf" if p.low is None else p.low
        hi = "inf" if p.high is None else p.high
        text += f" in the range [{lo}, {hi}]"
    return text + (" (or null)" if p.nullable else "")


def _check_value(p: Param, value: Any, key: str, source: str) -> Any:
    if value is None:
        if p.nullable:
            return None
        raise _fail(source, key, _describe(p), value)
    kinds = p.kind if isinstance(p.kind, tuple) else (p.kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds:
        raise _fail(source, key, _describe(p), value)
    if not isinstance(value, kinds):
        raise _fail(source, key, _describe(p), value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(source, key, _describe(p), value)
    if p.choices is not None and value not in p.choices:
        raise _fail(source, key, _describe(p), value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
            raise _fail(source, key, _describe(p), value)
    return value


def _unknown(source: str, key: str, known: list[str]) -> ParameterError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else f" Known: {', '.join(sorted(known))}."
    return ParameterError(f"{source}: unknown parameter '{key}'.{hint}")


def validate_space(space: dict, source: str = "<params>") -> dict[str, dict]:
    """Check a search space declaration and return it normalised (floats, sorted values)."""
    if not isinstance(space, dict):
        raise _fail(source, "search.space", "a mapping of hyperparameter -> spec", space)
    out: dict[str, dict] = {}
    for name, spec in space.items():
        key = f"search.space.{name}"
        if name not in HYPERPARAMETERS:
            raise _unknown(source, key, list(HYPERPARAMETERS))
        if not isinstance(spec, dict):
            raise _fail(source, key, "a mapping with 'type' and 'bounds' or 'values'", spec)
        extra = set(spec) - {"type", "bounds", "values", "log"}
        if extra:
            raise _unknown(source, f"{key}.{sorted(extra)[0]}", ["type", "bounds", "values", "log"])
        lo_lim, hi_lim = HYPERPARAMETER_LIMITS[name]
        kind = spec.get("type")
        if kind == "continuous":
            if name in ("horizontal_flip", "vertical_flip", "batch_size", "kernel_size", "epochs"):
                raise _fail(source, f"{key}.type", "'discrete' for this hyperparameter", kind)
            b = spec.get("bounds")
            if (not isinstance(b, (list, tuple)) or len(b) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)):
                raise _fail(source, f"{key}.bounds", "a list [low, high] of two numbers", b)
            lo, hi = float(b[0]), float(b[1])
            if not lo < hi:
                raise _fail(source, f"{key}.bounds", "[low, high] with low < high", b)
            if lo < lo_lim or hi > hi_lim:
                raise _fail(source, f"{key}.bounds", f"within [{lo_lim}, {hi_lim}]", b)
            log = spec.get("log", False)
            if not isinstance(log, bool):
                raise _fail(source, f"{key}.log", "true or false", log)
            if log and lo <= 0:
                raise _fail(source, f"{key}.bounds", "positive when log is true", b)
            out[name] = {"type": "continuous", "bounds": [lo, hi], "log": log}
        elif kind == "discrete":
            vals = spec.get("values")
            if (not isinstance(vals, (list, tuple)) or not vals
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               for v in vals)):
                raise _fail(source, f"{key}.values", "a non-empty list of numbers", vals)
            if any(v < lo_lim or v > hi_lim for v in vals):
                raise _fail(source, f"{key}.values", f"numbers within [{lo_lim}, {hi_lim}]", vals)
            if name != "learning_rate" and any(float(v) != int(v) for v in vals):
                raise _fail(source, f"{key}.values", "whole numbers", vals)
            if name == "kernel_size" and any(int(v) % 2 == 0 for v in vals):
                raise _fail(source, f"{key}.values", "odd kernel sizes", vals)
            if "log" in spec:
                raise _unknown(source, f"{key}.log", ["type", "values"])
            out[name] = {"type": "discrete", "values": sorted({float(v) for v in vals})}
        else:
            raise _fail(source, f"{key}.type", "'continuous' or 'discrete'", kind)
    missing = [n for n in REQUIRED_HYPERPARAMETERS if n not in out]
    if missing:
        raise ParameterError(
            f"{source}: 'search.space' is missing {', '.join(repr(m) for m in missing)}; "
            f"the method searches all nine of {', '.join(REQUIRED_HYPERPARAMETERS)}."
        )
    return out


def validate(raw: dict | None, source: str = "<params>") -> dict[str, Any]:
    """Return a complete, checked parameter dict: defaults filled, every key validated."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParameterError(f"{source}: a parameter file must be a YAML mapping of sections.")
    out: dict[str, Any] = {}
    for key in raw:
        if key not in SCHEMA:
            raise _unknown(source, str(key), list(SCHEMA))
    for section, spec in SCHEMA.items():
        given = raw.get(section)
        if isinstance(spec, Param):
            out[section] = _check_value(spec, spec.default if given is None else given,
                                        section, source)
            continue
        given = {} if given is None else given
        if not isinstance(given, dict):
            raise _fail(source, section, "a mapping of parameters", given)
        for key in given:
            if key not in spec:
                raise _unknown(source, f"{section}.{key}", list(spec))
        out[section] = {
            key: _check_value(p, copy.deepcopy(given.get(key, p.default)), f"{section}.{key}",
                              source)
            for key, p in spec.items()
        }
    split = out["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        raise ParameterError(
            f"{source}: 'split.train' + 'split.val' + 'split.test' must add up to 1. "
            f"Got {total:g} instead."
        )
    space = out["search"]["space"]
    if space is not None and not isinstance(space, dict):
        raise _fail(source, "search.space", "a mapping of hyperparameter -> spec", space)
    # a partial space overrides only the entries it names; the others keep the default's
    out["search"]["space"] = validate_space({**DEFAULT_SPACE, **(space or {})}, source)
    _check_compare(out["compare"], source)
    _check_curve(out["curve"], source)
    _check_task(out, source)
    _check_folders(out, source)
    return out


def _check_folders(out: dict[str, Any], source: str) -> None:
    """The processed folder is written (and, with overwrite, replaced): never the raw images'."""
    processed = Path(out["preprocess"]["processed_dir"]).expanduser().resolve()
    for key in ("raw_dir", "local_copy"):
        if not out["data"][key]:
            continue
        raw = Path(out["data"][key]).expanduser().resolve()
        if processed == raw or raw in processed.parents or processed in raw.parents:
            raise ParameterError(
                f"{source}: 'preprocess.processed_dir' ({processed}) must be apart from "
                f"'data.{key}' ({raw}): equal, inside or containing it, preprocessing would "
                "write over or mix with the raw images. Use e.g. data/processed/<name>.")


def _check_task(out: dict[str, Any], source: str) -> None:
    """Multi-label needs labels; mosaics are multi-label and bring their labels and split."""
    d, task = out["data"], out["task"]
    if d["dataset"] == "mosaic":
        if task != "multilabel":
            raise _fail(source, "task", "multilabel with data.dataset: mosaic", task)
        lo_hi = d["mosaic_labels"]
        if (len(lo_hi) != 2 or not all(isinstance(v, int) for v in lo_hi)
                or not 1 <= lo_hi[0] <= lo_hi[1] <= d["mosaic_grid"] ** 2):
            raise _fail(source, "data.mosaic_labels", "[low, high] with 1 <= low <= high <= "
                        f"tiles per mosaic ({d['mosaic_grid'] ** 2})", lo_hi)
        csv = f"{d['raw_dir'].rstrip('/')}/{MOSAIC_LABELS}"
        d["labels_csv"] = d["labels_csv"] or csv
        out["split"]["split_file"] = out["split"]["split_file"] or csv  # tile-disjoint splits
    if task == "multilabel" and not d["labels_csv"]:
        raise _fail(source, "data.labels_csv", "a labels CSV for task: multilabel", None)
    if task == "multiclass" and d["labels_csv"]:
        raise ParameterError(f"{source}: 'data.labels_csv' is for task: multilabel; task is "
                             "multiclass (labels from the class folders). Set task: multilabel "
                             "or remove data.labels_csv.")


def _check_compare(c: dict[str, Any], source: str) -> None:
    """Seeds: distinct whole numbers; arms: known names, each once."""
    seeds, arms, known = c["seeds"], c["arms"], SCHEMA["compare"]["arms"].default
    if not seeds or len(set(seeds)) != len(seeds) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds):
        raise _fail(source, "compare.seeds", "a non-empty list of distinct whole numbers >= 0",
                    seeds)
    for arm in arms:
        if arm not in known:
            raise _unknown(source, f"compare.arms: {arm}", list(known))
    if not arms or len(set(arms)) != len(arms):
        raise _fail(source, "compare.arms", "a non-empty list of distinct arms", arms)


def _check_curve(c: dict[str, Any], source: str) -> None:
    """Sizes, replicates and steps line up; arms are known; the ranges are ranges."""
    def whole(v: Any, low: int = 1) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    sizes = c["sizes"]
    if not sizes or not all(whole(v, 2) for v in sizes) or sorted(set(sizes)) != sizes:
        raise _fail(source, "curve.sizes", "increasing whole numbers >= 2", sizes)
    if whole(c["replicates"]):
        c["replicates"] = dict.fromkeys(sizes, c["replicates"])
    for key in ("replicates", "final_steps"):
        given = c[key]
        if not isinstance(given, dict) or not all(
                size in given and whole(given[size]) for size in sizes):
            raise _fail(source, f"curve.{key}", f"{{size: whole number >= 1}} for every size "
                        f"of {sizes}", given)
        c[key] = {size: given[size] for size in sizes}
    known = SCHEMA["curve"]["arms"].default
    for arm in c["arms"]:
        if arm not in known:
            raise _unknown(source, f"curve.arms: {arm}", list(known))
    if not c["arms"] or len(set(c["arms"])) != len(c["arms"]):
        raise _fail(source, "curve.arms", "a non-empty list of distinct arms", c["arms"])
    lo_hi = c["weight_decay_bounds"]
    if len(lo_hi) != 2 or not all(isinstance(v, (int, float)) for v in lo_hi) \
            or not 0 < lo_hi[0] < lo_hi[1] <= 1:
        raise _fail(source, "curve.weight_decay_bounds", "[low, high] with 0 < low < high <= 1",
                    lo_hi)
    for size in c["fidelity_sizes"]:
        if size not in sizes:
            raise _fail(source, "curve.fidelity_sizes", f"sizes among curve.sizes {sizes}",
                        c["fidelity_sizes"])


def parse_overrides(overrides: str | list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    """``"train.epochs=5 search.steps=1"`` (or a list of items) -> ``[(key, value), ...]``.

    Values are read as YAML (``5``, ``true``, ``[0, 90]`` written ``[0,90]``), so an override
    means what the same value means in a file. Items are separated by whitespace.
    """
    items = overrides.split() if isinstance(overrides, str) else list(overrides)
    out = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ParameterError(
                f"override {item!r}: expected section.key=value (e.g. train.epochs=5).")
        try:
            out.append((key, yaml.safe_load(text)))
        except yaml.YAMLError as err:
            raise ParameterError(f"override {item!r}: the value is not valid YAML ({err})") \
                from err
    return out


def apply_overrides(raw: dict | None, items: list[tuple[str, Any]],
                    source: str) -> dict[str, Any]:
    """A copy of a file's raw mapping with parsed overrides set (validated later, like it).

    A ``search.space.*`` override on a file without a space edits the default space.
    """
    raw = copy.deepcopy(raw) if raw else {}
    for key, value in items:
        parts = key.split(".")
        if parts[:2] == ["search", "space"] and len(parts) > 2:
            if raw.get("search") is None:
                raw["search"] = {}
            search = raw["search"]
            if isinstance(search, dict) and search.get("space") is None:
                search["space"] = copy.deepcopy(DEFAULT_SPACE)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ParameterError(
                    f"{source}: override {key}: {'.'.join(parts[:i + 1])} is a value, not a "
                    "section, so it has no keys.")
            node = child
        node[parts[-1]] = value
    return raw


def load_params(path: str | Path,
                overrides: str | list[str] | tuple[str, ...] = "") -> dict[str, Any]:
    """Read and validate a YAML parameter file, with optional ``key=value`` overrides.

    Overrides are validated like the file; errors name the key and say it came from them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Parameter file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParameterError(f"{path}: not valid YAML ({err})") from err
    items = parse_overrides(overrides)
    if not items or (raw is not None and not isinstance(raw, dict)):
        return validate(raw, source=str(path))
    text = overrides if isinstance(overrides, str) else " ".join(overrides)
    source = f"{path} with overrides {' '.join(text.split())!r}"
    return validate(apply_overrides(raw, items, source), source=source)


def parameter_table(params: dict[str, Any],
                    sections: tuple[str, ...] | None = None) -> list[tuple[str, Any]]:
    """Flatten checked parameters into (dotted key, value) rows for display.

    ``sections`` keeps only the sections named (default: all).
    """
    rows: list[tuple[str, Any]] = []
    for section, value in params.items():
        if sections is not None and section not in sections:
            continue
        if not isinstance(value, dict):
            rows.append((section, value))
            continue
        for key, v in value.items():
            if key == "space":
                rows += [(f"search.space.{hp}", s) for hp, s in v.items()]
            else:
                rows.append((f"{section}.{key}", v))
    return rows


def section_defaults(section: str) -> dict[str, Any]:
    """The declared default of every key of one section (the one place defaults live)."""
    return {key: copy.deepcopy(p.default) for key, p in SCHEMA[section].items()}


# --- Parameters -> keyword arguments of the package's functions -------------------------

def train_settings(params: dict[str, Any], final: bool) -> dict[str, Any]:
    """Keyword arguments of ``training.train_model`` for a search trial or the final training."""
    m, t, s = params["model"], params["train"], params["search"]
    common = {"preset": m["preset"], "weight_decay": m["weight_decay"],
              "label_smoothing": m["label_smoothing"], "dropout": m["dropout"],
              "warmup_epochs": t["warmup_epochs"], "optimizer": t["optimizer"],
              "schedule": t["schedule"], "micro_batch": t["micro_batch"],
              "precision": t["precision"]}
    if final:
        return {**common, "epochs": t["epochs"], "patience": t["patience"],
                "early_stopping": t["early_stopping"], "distribute": t["distribute"]}
    # a trial runs all its epochs and is scored on its best one
    return {**common, "epochs": s["epochs"], "time_limit": s["max_trial_seconds"]}


def search_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``search.search_or_baseline``: whether and how to search."""
    s = params["search"]
    return {"enabled": s["enabled"], "evaluate_baseline": params["baseline"]["enabled"],
            "steps": s["steps"], "initial_points": s["initial_points"],
            "iterations_per_step": s["iterations_per_step"], "shrink": s["shrink"],
            "min_step": s["min_step"], "seed": params["seed"], "design": s["design"],
            "acquisition": s["acquisition"],
            "start_points": [baseline_hyperparameters(params)] if s["start_from_baseline"]
            else None,
            "finalists": s["finalists"], "finalist_budget": s["finalist_budget"],
            "finalist_repeats": s["finalist_repeats"], "workers": s["workers"],
            # a trial stops itself at the first batch past max_trial_seconds; one with no
            # result well after that is hung, and is cancelled (trials on Ray)
            "trial_timeout": None if s["max_trial_seconds"] is None
            else 1.5 * s["max_trial_seconds"] + 120}


def executor_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``distributed.trial_executor``: where the search's trials run."""
    return {"workers": params["search"]["workers"], "address": params["search"]["ray_address"]}


def search_fingerprint(params: dict[str, Any], **data: Any) -> dict[str, Any]:
    """What gives a search trial its meaning and decides which trial comes next.

    A history whose fingerprint differs is refused (``search.fingerprint`` digests these).

    Trial settings, data share, PCA, preprocessing, the task, the search plan (design,
    points, iterations, shrink, acquisition, start points, finalists) and the literature
    values; ``data`` adds the arrays the trials read (``images=``, ``labels=``, ``split=``).
    The space is added by the search itself.
    """
    plan = {k: v for k, v in search_settings(params).items()
            if k not in ("enabled", "evaluate_baseline", "workers")}
    return {"trial": train_settings(params, final=False),
            "data_share": search_data_settings(params),
            "pca": params["pca"], "preprocess": {k: v for k, v in params["preprocess"].items()
                                                  if k not in ("overwrite", "workers")},
            "task": params["task"], "plan": plan,
            "literature": baseline_hyperparameters(params),
            **{k: v for k, v in data.items() if v is not None}}


def search_data_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``analysis.search_inputs``: the subsample and the PCA switch."""
    s = params["search"]
    return {"max_images": s["max_train_images"], "use_pca": s["use_pca_images"],
            "seed": params["seed"]}


def data_selection(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``data.select_files``: the list, the per-class cap, the seed."""
    d = params["data"]
    return {"file_list": d["file_list"], "max_per_class": d["max_per_class"],
            "seed": params["seed"]}


def baseline_hyperparameters(params: dict[str, Any]) -> dict[str, Any]:
    """The literature values (METHOD.md) for the names the search explores."""
    hp = {k: v for k, v in params["baseline"].items() if k != "enabled"}
    if "epochs" in params["search"]["space"]:
        hp["epochs"] = params["search"]["epochs"]
    return hp
