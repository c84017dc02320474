"""Use a trained run: evaluate it on any labelled folder, predict any folder, export it.

The images go through the same enhancement the run's training data had (stored in the
run's model card), in memory: the user's folder is never written to.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from earth_lib.analysis import BandPCA
from earth_lib.data import index_folder
from earth_lib.errors import (
    DEFAULT_BAD_FILE_POLICY,
    BadImageError,
    DatasetNotFoundError,
    skip_or_raise,
)
from earth_lib.images import list_images, read_image
from earth_lib.io import atomic_write_csv, atomic_write_json, new_mode
from earth_lib.metrics import evaluate_predictions
from earth_lib.preprocessing import enhance
from earth_lib.progress import progress_bar
from earth_lib.run import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    SERVING_FILE,
    UNREADABLE_FILE,
    ModelCard,
    load_run,
)


def prepare_images(paths: list[Path], card: ModelCard, band_pca: BandPCA | None = None,
                   on_bad_file: str = DEFAULT_BAD_FILE_POLICY, progress: bool = True
                   ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Enhance images as the run's training data was; returns (images, kept indices, skipped)."""
    settings = card.preprocess
    images, kept, skipped = [], [], []
    shape = (settings["image_size"], settings["image_size"], settings["bands"])
    for i, p in enumerate(progress_bar(paths, desc="preparing images", disable=not progress,
                                       mininterval=2)):
        try:
            img = enhance(read_image(p), **settings)
            if img.shape != shape:
                raise BadImageError(f"{p}: gives shape {img.shape}, the model takes {shape}")
        except (BadImageError, ValueError) as err:
            skip_or_raise(on_bad_file, err, p, skipped)
            continue
        images.append(img)
        kept.append(i)
    out = np.stack(images) if images else np.zeros((0, *shape), np.uint8)
    if band_pca is not None:
        out = band_pca.transform(out)
    return out, kept, skipped


def _name(folder: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.resolve().name) or "data"


def output_name(folder: str | Path) -> str:
    """``<folder name>-<8 hex of its full path>``: a folder's evaluation or predictions.

    Two data folders with one name (``/a/test``, ``/b/test``) never collide.
    """
    path = Path(folder).resolve()
    return f"{_name(path)}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def _labelled_images(data_dir: str | Path, names: list[str], labels_csv: str | Path | None,
                     multilabel: bool) -> tuple[list[Path], np.ndarray, list[tuple[str, str]]]:
    """The images to evaluate, their labels in the model's order, and files skipped.

    One class per image: class folders matched by name. Multi-label: every image of
    ``data_dir`` listed in ``labels_csv``. A class or label the model does not know is an
    error naming it.
    """
    if multilabel:
        from earth_lib.data.multilabel import read_labels_csv

        if not labels_csv:
            raise ValueError("this run is multi-label: give the labels CSV of the folder "
                             "(make evaluate ... LABELS=<csv>, or --labels).")
        table = read_labels_csv(labels_csv, data_dir)
        unknown = [n for n in table.names if n not in names]
        if unknown:
            raise ValueError(f"{labels_csv}: label {unknown[0]!r} is not one the model knows "
                             f"({', '.join(names)}).")
        y = np.zeros((len(table.paths), len(names)), dtype=np.uint8)
        y[:, [names.index(n) for n in table.names]] = table.y
        return [Path(p) for p in table.paths], y, []
    index = index_folder(data_dir, min_classes=1)
    unknown = [c for c in index.classes if c not in names]
    if unknown:
        raise ValueError(f"{data_dir}: class {unknown[0]!r} is not one the model knows "
                         f"({', '.join(names)}); rename or remove that folder.")
    return ([p for p, _ in index.files], np.array([names.index(c) for _, c in index.files]),
            index.skipped)


def evaluate_folder(run_dir: str | Path, data_dir: str | Path, name: str | None = None,
                    progress: bool = True, labels_csv: str | Path | None = None
                    ) -> dict[str, Any]:
    """Evaluate a run's model on a labelled set; writes ``evaluation/<name>/``.

    One class per image: class folders matched to the model's classes by name.
    Multi-label runs: the images of ``data_dir`` with their labels from ``labels_csv``,
    scored at the run's validation-tuned thresholds. Writes metrics.json, the confusion
    matrix (or per-label scores), a grid of the worst mistakes, and report.md / report.html
    (the run's kind of report: headline with its interval, errors, Grad-CAM).
    """
    from earth_lib.nn.explain import cam_examples
    from earth_lib.nn.training import predict_proba
    from earth_lib.report import plotting
    from earth_lib.report.run_report import evaluation_report, write_report

    run = load_run(run_dir)
    model, card = run.load_model()
    names = card.class_names
    paths, labels, unreadable = _labelled_images(data_dir, names, labels_csv,
                                                 card.thresholds is not None)
    images, kept, skipped = prepare_images(paths, card, run.load_band_pca(card),
                                           progress=progress)
    if not len(images):
        raise ValueError(f"{data_dir}: no readable images to evaluate.")
    y = labels[kept]
    proba = predict_proba(model, images, tta=card.tta)
    thresholds = None if card.thresholds is None else np.asarray(card.thresholds)
    metrics = evaluate_predictions(y, proba, names, thresholds)
    metrics.update({"data": str(data_dir), "skipped": skipped + unreadable})
    out = run.output_dir("evaluation", name or output_name(data_dir))
    atomic_write_json(out / METRICS_FILE, metrics)
    plotting.save_figure(plotting.plot_test_summary(metrics, names, _name(Path(data_dir))),
                         out / "figures" / f"{plotting.test_summary_name(metrics)}.png")
    record = run.read_record() if run.record_path.is_file() else {}
    seed = int(record.get("params", {}).get("seed", 0))  # the run's seed picks the examples
    cams = cam_examples(model, images, y, proba, seed=seed)
    write_report(evaluation_report(out, metrics, names, images, y, proba, cams, thresholds), out)
    return metrics


def predict_folder(run_dir: str | Path, data_dir: str | Path, name: str | None = None,
                   progress: bool = True) -> Path:
    """Predict every image under ``data_dir``; writes ``predictions/<name>/predictions.csv``.

    Columns: path, predicted class, then the probability of every class. Multi-label
    runs: path, the predicted labels (each label at or above its threshold, joined by
    ``;``), then every label's probability. Unreadable files are listed in
    ``unreadable.csv`` beside it; they do not stop the run.
    """
    from earth_lib.nn.training import predict_proba

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Folder not found: {data_dir}")
    paths = list_images(data_dir)
    if not paths:
        raise DatasetNotFoundError(f"{data_dir}: no image files in it (or its sub-folders); "
                                   "nothing to predict.")
    run = load_run(run_dir)
    model, card = run.load_model()
    names = card.class_names
    images, kept, skipped = prepare_images(paths, card, run.load_band_pca(card),
                                           progress=progress)
    proba = (predict_proba(model, images, tta=card.tta) if len(images)
             else np.zeros((0, len(names))))
    out = run.output_dir("predictions", name or output_name(data_dir))
    if card.thresholds is None:
        header, chosen = ["path", "predicted_class"], [names[int(p.argmax())] for p in proba]
    else:
        header = ["path", "predicted_labels"]
        chosen = [";".join(n for n, v, t in zip(names, p, card.thresholds, strict=True) if v >= t)
                  for p in proba]
    atomic_write_csv(out / PREDICTIONS_FILE, [*header, *[f"p_{c}" for c in names]],
                     ([str(paths[i]), c, *[f"{v:.6f}" for v in p]]
                      for i, c, p in zip(kept, chosen, proba, strict=True)))
    run.write_skipped(skipped, out / UNREADABLE_FILE)
    return out / PREDICTIONS_FILE


def export_for_serving(run_path: str | Path) -> Path:
    """Write ``<run>/export/``: a TensorFlow SavedModel and what to feed it, without this package.

    For TF Serving, ``tf.saved_model.load`` or TFLite converters.

    ``export/saved_model`` has the Keras 3 ``serve`` endpoint (float32 images in, class
    probabilities out); ``export/serving.json`` says how the images must be prepared
    (the run's enhancement settings, band PCA, class order). Written to a temporary folder
    and renamed, so an interrupted export never leaves a half folder as ``export/``.
    """
    run = load_run(run_path)
    model, card = run.load_model()
    out = run.path / "export"
    tmp = Path(tempfile.mkdtemp(prefix=".export.", dir=run.path))
    os.chmod(tmp, new_mode(directory=True))  # export/ readable as a folder made by mkdir
    try:
        model.export(str(tmp / "saved_model"), format="tf_saved_model", verbose=False)
        p = card.preprocess
        steps = [f"read the image ({p.get('bands', '?')} band(s); 16-bit data scaled by "
                 f"{p.get('scale_16bit', 'percentile')})",
                 *(["convert to grayscale"] if p.get("grayscale") else []),
                 f"resize to {p.get('image_size')} x {p.get('image_size')} (anti-aliased)",
                 *([f"CLAHE ({p.get('clahe_mode')}, clip {p.get('clahe_clip_limit')}, "
                    f"{p.get('clahe_tiles')} tiles)"] if p.get("clahe") else []),
                 "8-bit (0-255)",
                 *(["project the bands on band_pca.npz (subtract mean, multiply by components.T)"]
                   if card.band_pca else []),
                 "cast to float32, shape (batch, height, width, channels): the model rescales"]
        if card.band_pca:
            shutil.copy2(run.path / card.band_pca, tmp / card.band_pca)
        atomic_write_json(tmp / SERVING_FILE, {
            "signature": "serve", "input_shape": card.input_shape, "input_dtype": "float32",
            "input_range": [0, 255], "output": "softmax probabilities, in class_names order",
            "class_names": card.class_names, "steps": steps, "preprocess": p,
            "test_time_augmentation": "average over the 8 flips/rotations" if card.tta else None,
            "band_pca": card.band_pca, "hyperparameters": card.hyperparameters,
            "source_run": str(run.path)})
        shutil.rmtree(out, ignore_errors=True)
        tmp.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
