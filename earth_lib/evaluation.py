"""Evaluate a trained run on any labelled folder, or predict any folder of images.

The images go through the same enhancement the run's training data had (stored in the
run's ``model_card.json``), in memory: the user's folder is never written to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from earth_lib.analysis import BandPCA
from earth_lib.data import index_folder, write_skipped
from earth_lib.io import (
    IMAGE_EXTENSIONS,
    BadImageError,
    atomic_write_csv,
    atomic_write_json,
    read_image,
)
from earth_lib.preprocessing import enhance


def load_run(run_dir: str | Path):
    """The trained model and its card (class names, preprocessing) from a run folder."""
    import json

    import keras

    run_dir = Path(run_dir)
    model_path, card_path = run_dir / "model.keras", run_dir / "model_card.json"
    for p in (model_path, card_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: is {run_dir} a finished run folder "
                                    "(make all PARAMS=...)?")
    card = json.loads(card_path.read_text())
    card["run_dir"] = str(run_dir)
    return keras.models.load_model(model_path), card


def prepare_images(paths: list[Path], card: dict[str, Any], on_bad_file: str = "skip",
                   progress: bool = True) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Enhance images as the run's training data was; returns (images, kept indices, skipped)."""
    settings = card["preprocess"]
    images, kept, skipped = [], [], []
    shape = (settings["image_size"], settings["image_size"], settings["bands"])
    for i, p in enumerate(tqdm(paths, desc="preparing images", disable=not progress,
                               mininterval=2)):
        try:
            img = enhance(read_image(p), **settings)
            if img.shape != shape:
                raise BadImageError(f"{p}: gives shape {img.shape}, the model takes {shape}")
        except (BadImageError, ValueError) as err:
            if on_bad_file == "error":
                raise
            skipped.append((str(p), str(err)))
            continue
        images.append(img)
        kept.append(i)
    out = np.stack(images) if images else np.zeros((0, *shape), np.uint8)
    if card.get("band_pca"):
        out = BandPCA.load(Path(card["run_dir"]) / card["band_pca"]).transform(out)
    return out, kept, skipped


def _name(folder: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.resolve().name) or "data"


def evaluate_folder(run_dir: str | Path, data_dir: str | Path, name: str | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Evaluate a run's model on a labelled class-folder set; writes ``evaluation/<name>/``.

    Class folders are matched to the model's classes by name; a class the model does
    not know is an error naming it. Writes metrics.json, a confusion matrix and a grid
    of the most confident mistakes.
    """
    from earth_lib import plotting
    from earth_lib.training import evaluate_predictions, predict_proba

    model, card = load_run(run_dir)
    names = card["class_names"]
    index = index_folder(data_dir, min_classes=1)
    unknown = [c for c in index.classes if c not in names]
    if unknown:
        raise ValueError(f"{data_dir}: class {unknown[0]!r} is not one the model knows "
                         f"({', '.join(names)}); rename or remove that folder.")
    paths = [p for p, _ in index.files]
    images, kept, skipped = prepare_images(paths, card, progress=progress)
    if not len(images):
        raise ValueError(f"{data_dir}: no readable images to evaluate.")
    y = np.array([names.index(index.files[i][1]) for i in kept])
    proba = predict_proba(model, images, tta=card.get("tta", False))
    metrics = evaluate_predictions(y, proba, names)
    metrics.update({"data": str(data_dir), "skipped": skipped + index.skipped})
    out = Path(run_dir) / "evaluation" / (name or _name(Path(data_dir)))
    (out / "figures").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    plotting.save_figure(plotting.plot_confusion_matrix(metrics["confusion_matrix"], names,
                                                        f"{_name(Path(data_dir))}"),
                         out / "figures" / "confusion_matrix.png")
    plotting.save_figure(plotting.plot_mistakes(images, y, proba, names),
                         out / "figures" / "mistakes.png")
    return metrics


def predict_folder(run_dir: str | Path, data_dir: str | Path, name: str | None = None,
                   progress: bool = True) -> Path:
    """Predict every image under ``data_dir``; writes ``predictions/<name>/predictions.csv``.

    Columns: path, predicted class, then the probability of every class. Unreadable
    files are listed in ``unreadable.csv`` beside it; they do not stop the run.
    """
    from earth_lib.training import predict_proba

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Folder not found: {data_dir}")
    model, card = load_run(run_dir)
    names = card["class_names"]
    paths = sorted(p for p in data_dir.rglob("*") if p.is_file()
                   and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    images, kept, skipped = prepare_images(paths, card, progress=progress)
    proba = (predict_proba(model, images, tta=card.get("tta", False)) if len(images)
             else np.zeros((0, len(names))))
    out = Path(run_dir) / "predictions" / (name or _name(data_dir))
    header = ["path", "predicted_class", *[f"p_{c}" for c in names]]
    atomic_write_csv(out / "predictions.csv", header,
                     ([str(paths[i]), names[int(p.argmax())], *[f"{v:.6f}" for v in p]]
                      for i, p in zip(kept, proba, strict=True)))
    write_skipped(out / "unreadable.csv", skipped)
    return out / "predictions.csv"
