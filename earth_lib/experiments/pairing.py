"""Two classifiers on the same test images, image by image (``make pair`` and the comparison).

:func:`paired_stats` scores A against B from their per-image answers; :func:`pair_runs`
gets those answers from two trained runs, on the test images of the first.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from earth_lib.errors import ParameterError
from earth_lib.images import read_image
from earth_lib.io import atomic_write_json
from earth_lib.nn.training import predict_proba
from earth_lib.progress import progress_bar
from earth_lib.run import Run, load_run, read_json


def paired_stats(pairs: list[tuple[np.ndarray, np.ndarray]], resamples: int = 2000,
                 rng: np.random.Generator | None = None) -> dict[str, float | int]:
    """A against B, image by image: one pair of 0/1 "right" arrays per seed, same images.

    The accuracy difference in points, a 95 % interval from resampling the images within
    each seed (both answers together), how many images only one of them got right, and
    McNemar's exact p-value on those (which treats image x seed as independent).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    d = np.concatenate([a - b for a, b in pairs])
    boot = np.zeros(resamples)
    for a, b in pairs:
        idx = rng.integers(0, len(a), size=(resamples, len(a)))
        boot += (a[idx] - b[idx]).sum(axis=1)
    boot /= len(d)
    only_a, only_b = int((d > 0).sum()), int((d < 0).sum())
    p = binomtest(min(only_a, only_b), only_a + only_b).pvalue if only_a + only_b else 1.0
    return {"seeds": len(pairs), "images": len(d), "diff_points": 100 * d.mean(),
            "ci_low": 100 * np.quantile(boot, 0.025), "ci_high": 100 * np.quantile(boot, 0.975),
            "only_arm_right": only_a, "only_ref_right": only_b, "mcnemar_p": float(p)}


def _test_rows(split_csv: Path) -> list[tuple[str, str]]:
    """(path, class) of each test image of a run's split.csv, in the file's order."""
    with open(split_csv, newline="") as f:
        return [(r["path"], r["class"]) for r in csv.DictReader(f) if r["split"] == "test"]


def _recorded_correct(run: Run) -> tuple[float | None, list[int] | None]:
    """The test accuracy a run recorded, and its per-image answers where it kept them."""
    for path in (run.result_path, run.metrics_path):  # a compare arm, a make all run
        if path.is_file():
            rec = read_json(path)
            return rec.get("test", {}).get("accuracy"), rec.get("test_correct")
    return None, None


def pair_runs(run_a: str | Path, run_b: str | Path, resamples: int = 2000, seed: int = 0,
              progress: bool = True) -> dict[str, Any]:
    """Two trained runs on the same test images, image by image; written beside run A.

    The images are the test rows of run A's ``split.csv`` (the processed files its model
    took); run B's own split, where it has one, must list the same. Both models must take
    the same preprocessing and classes. Each model's answers are checked against the test
    accuracy its run recorded, so a different split or image set shows. Writes
    ``<run A>/paired/<run B>.json``: :func:`paired_stats` plus both accuracies.
    """
    runs = [load_run(run_a), load_run(run_b)]
    cards = [r.load_card() for r in runs]
    if any(c.thresholds is not None for c in cards):
        raise ParameterError("pair: multi-label runs are not supported (the pairing counts "
                             "images right or wrong).")
    if cards[0].class_names != cards[1].class_names:
        raise ParameterError(f"pair: {runs[1].path} has other classes ({cards[1].class_names}) "
                             f"than {runs[0].path} ({cards[0].class_names}).")
    pre_a, pre_b = cards[0].preprocess, cards[1].preprocess
    differ = sorted(k for k in set(pre_a) | set(pre_b) if pre_a.get(k) != pre_b.get(k))
    if differ:
        what = ", ".join(f"{k}: {pre_a.get(k)} vs {pre_b.get(k)}" for k in differ)
        raise ParameterError(f"pair: the two models took images preprocessed differently "
                             f"({what}); the same test files cannot serve both.")
    if not runs[0].split_csv.is_file():
        raise FileNotFoundError(f"{runs[0].split_csv} not found: run A must be a run of "
                                "make all, whose split gives the test images.")
    rows = _test_rows(runs[0].split_csv)
    if runs[1].split_csv.is_file() and _test_rows(runs[1].split_csv) != rows:
        raise ValueError(f"pair: {runs[1].split_csv} lists other test images than "
                         f"{runs[0].split_csv}; the two runs were not tested on the same "
                         "images.")
    names = cards[0].class_names
    unknown = sorted({c for _, c in rows} - set(names))
    if unknown:
        raise ValueError(f"{runs[0].split_csv}: class {unknown[0]!r} is not one the model knows.")
    size, bands = pre_a["image_size"], pre_a["bands"]
    images = []
    for path, _ in progress_bar(rows, desc="reading the test images", disable=not progress,
                                mininterval=2):
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"{path} (a test image of {runs[0].split_csv}) not found; its paths are the "
                "processed files, relative to the project folder of that run: run make pair "
                "there, with its preprocess.processed_dir present.")
        img = read_image(path)  # an unreadable file is an error naming it
        if img.shape != (size, size, bands):
            raise ValueError(f"{path}: shape {img.shape}, the models take "
                             f"{(size, size, bands)} (the processed folder changed?).")
        images.append(img)
    x, y = np.stack(images), np.array([names.index(c) for _, c in rows])
    right, out = [], {"run_a": str(runs[0].path), "run_b": str(runs[1].path)}
    for key, run, card in zip("ab", runs, cards, strict=True):
        model = run.load_model()[0]
        band_pca = run.load_band_pca(card)
        inputs = band_pca.transform(x) if band_pca is not None else x
        right.append((predict_proba(model, inputs, tta=card.tta).argmax(axis=1) == y)
                     .astype(int))
        accuracy, correct = _recorded_correct(run)
        out[f"accuracy_{key}"] = float(right[-1].mean())
        out[f"recorded_accuracy_{key}"] = accuracy
        out[f"matches_record_{key}"] = None if accuracy is None else bool(
            right[-1].tolist() == correct if correct else abs(accuracy - right[-1].mean()) < 1e-6)
    stats = paired_stats([(right[0], right[1])], resamples, np.random.default_rng(seed))
    out.update({k: v for k, v in stats.items() if k != "seeds"})
    out["only_a_right"], out["only_b_right"] = out.pop("only_arm_right"), out.pop("only_ref_right")
    out["written_to"] = str(runs[0].path / "paired" / f"{_run_label(runs[1].path)}.json")
    atomic_write_json(out["written_to"], out)
    return out


def _run_label(path: Path) -> str:
    """A file name for a run folder: its path below outputs/ (else its name), joined by _."""
    parts = path.resolve().parts
    below = parts[len(parts) - parts[::-1].index("outputs"):] if "outputs" in parts else ()
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(below or parts[-1:]))
