"""The parameter table: every parameter's default, type and range, the one place defaults live."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from earth_lib.errors import (
    BAD_FILE_POLICIES,
    DEFAULT_BAD_FILE_POLICY,
    DEFAULT_MAX_PIXELS,
)
from earth_lib.nn.model import DEFAULT_PRESET, PRESETS
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
#: The six augmentation values among them (what ``augmentation.RandomAffine`` applies).
AUGMENT_KEYS = HYPERPARAMETERS[:6]
#: Policy-free augmentations (earth_lib.nn.policies), by name; ``none`` adds none.
POLICIES = ("none", "dihedral", "trivialaugment", "randaugment")
#: The learning curve's arms, in the order its tables show them (earth_lib/experiments/curve.py).
CURVE_ARMS = ("none", "literature", "dihedral", "literature_dihedral", "trivialaugment",
              "randaugment", "lr_wd", "random", "method", "noisy_gp")
#: Arms a curve runs only when ``curve.arms`` names them (one-off questions, not the plan).
CURVE_EXTRA_ARMS = ("literature_dihedral",)

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
    "budget_minutes": _p(None, float, "plan the run to finish within this many minutes on "
                         "this machine: image size, model, search and epochs chosen from the "
                         "data and measured speed, under every value the file sets (null: no "
                         "plan)", nullable=True, low=1),
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
        "processed_dir": _p(None, str, "where enhanced images go (null: data/processed/<the "
                            "name of data.raw_dir>)", nullable=True),
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
        "preset": _p(DEFAULT_PRESET, str, "ResNet preset (see earth_lib.nn.model.PRESETS)",
                     choices=tuple(PRESETS)),
        "dropout": _p(0.0, float, "dropout before the classifier", low=0.0, high=0.9),
        "weight_decay": _p(1e-4, float, "L2 weight decay of AdamW", low=0.0, high=1.0),
        "label_smoothing": _p(0.0, float, "label smoothing of the loss", low=0.0, high=0.5),
    },
    "search": {
        "enabled": _p("auto", (bool, str), "run the Bayesian search (false: train with the "
                      "baseline values); auto: follow the learning curve (docs/curve.md) near "
                      "the run's training-set size, or beyond its largest size: no search, "
                      "and its best arm without one, where the search did not pay; else the "
                      "search",
                      choices=(True, False, "auto")),
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
        "refresh_bn": _p(False, bool, "score each trial after recomputing its BatchNorm "
                         "statistics on clean training images: a short trial's moving "
                         "statistics trail its weights (see docs/curve.md)"),
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
        "enabled": _p(True, bool, "score the baseline values beside the search "
                                     "(with the search off: nothing scored)"),
        "rotation": _p(45.0, float, "rotation range in degrees", low=0, high=360),
        "zoom": _p(0.2, float, "zoom range", low=-1, high=1),
        "width_shift": _p(0.2, float, "horizontal shift fraction", low=-1, high=1),
        "height_shift": _p(0.2, float, "vertical shift fraction", low=-1, high=1),
        "horizontal_flip": _p(1, int, "random horizontal flips (0/1)", choices=(0, 1)),
        "vertical_flip": _p(1, int, "random vertical flips (0/1)", choices=(0, 1)),
        "learning_rate": _p(1e-3, float, "Adam learning rate", low=1e-8, high=1.0),
        "batch_size": _p(32, int, "batch size", low=1),
        "kernel_size": _p(3, int, "convolution kernel size", low=1, high=15),
        "policy": _p("none", str, "a policy-free augmentation instead of the six values "
                     "above (which it sets to 0): dihedral (flips, quarter turns), "
                     "trivialaugment or randaugment; none: the six values", choices=POLICIES),
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
        "arms": _p([a for a in CURVE_ARMS if a not in CURVE_EXTRA_ARMS], list,
                   "arms of the curve (see earth_lib/experiments/curve.py); "
                   f"also known: {', '.join(CURVE_EXTRA_ARMS)}"),
        "final_steps": _p({250: 250, 500: 300, 1000: 400, 2000: 500, 5000: 600}, dict,
                          "optimiser steps of every arm's final training, {size: steps} for "
                          "every size"),
        "trials": _p(9, int, "trials of each search arm (the same budget for all)", low=3),
        "trial_fraction": _p(0.15, (dict, float), "a trial's optimiser steps as a share of "
                             "the final training's ({size: share}, or one share for every "
                             "size), each in (0, 1]"),
        "weight_decay_bounds": _p([1e-4, 0.3], list, "the lr_wd arm's weight-decay range "
                                  "(log scale)"),
        "fidelity_sizes": _p([1000, 5000], list, "sizes of the fidelity check: does a trial's "
                             "score rank fully trained results? ([]: none)"),
        "fidelity_points": _p(8, int, "configurations of the fidelity check", low=2),
        "fidelity_seeds": _p(2, int, "seeds per configuration of the fidelity check", low=1),
        "fidelity_first_trial": _p(0.1, float, "share of the final training of the trial that "
                                   "scores each fidelity training (longer ones: "
                                   "curve.fidelity_trial_fractions)", low=0.01, high=1.0),
        "fidelity_trial_fractions": _p({}, dict, "longer trials to measure too, {size: "
                                       "[share of the final training, ...]}: each trains "
                                       "every fidelity configuration and seed as a trial "
                                       "only, ranked against the full trainings (at the sizes of "
                                       "curve.fidelity_sizes)"),
        "fidelity_refreshed": _p({}, dict, "trials scored after a BatchNorm refresh "
                                 "(search.refresh_bn) to measure too, {size: [share of the "
                                 "final training, ...]}: as curve.fidelity_trial_fractions"),
        "length_check": _p({}, dict, "longer final trainings to measure too, {size: factor}: "
                           "each arm's values trained factor times curve.final_steps (a "
                           "search arm's as its cell chose them); do the verdicts depend on "
                           "training length?"),
        "length_check_replicates": _p(1, (dict, int), "replicates of the length check, the "
                                      "first ones ({size: n}, or one n for every size; a "
                                      "verdict needs 3)"),
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


def section_defaults(section: str) -> dict[str, Any]:
    """The declared default of every key of one section (the one place defaults live)."""
    return {key: copy.deepcopy(p.default) for key, p in SCHEMA[section].items()}
