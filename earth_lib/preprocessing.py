"""Image enhancement (notebook 1): optional grayscale, resize, CLAHE, 8-bit; written per class.

Images of more than 8 bits are scaled to [0, 1] explicitly: ``percentile`` stretches
each band between its 1st and 99th percentiles (robust to hot pixels, but per image),
``fixed`` divides by ``fixed_max`` (e.g. 10000 for Sentinel-2 reflectance; keeps
radiometry comparable between images). CLAHE runs on the Lab luminance of RGB images
(colour kept) or on each band separately (any band count).

Two engines compute the resize and CLAHE: ``skimage`` (the original's functions:
anti-aliased bilinear resize, 14-bit CLAHE) and ``opencv`` (area resize when shrinking,
8-bit CLAHE with the same tiles and clip limit): 13 to 17 times faster per image
(measured at 256 -> 224 px), with slightly different pixels (a few levels of 255 on
average), so the engine is one of the settings a processed folder records.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage import color, exposure, transform

from earth_lib.data import index_folder, select_files
from earth_lib.data.folders import PREPROCESSING_FILE, SELECTION_FILE
from earth_lib.errors import DEFAULT_BAD_FILE_POLICY, BadImageError, skip_or_raise
from earth_lib.images import atomic_write_image, image_suffix, read_image
from earth_lib.io import atomic_write_json, pid_alive, sweep_temporary_files
from earth_lib.params import section_defaults
from earth_lib.paths import mark
from earth_lib.progress import progress_bar

ENHANCE_KEYS = ("image_size", "grayscale", "clahe", "clahe_mode", "clahe_clip_limit",
                "clahe_tiles", "scale_16bit", "fixed_max", "engine")
#: Defaults of the enhancement, taken from the parameter table (declared there only).
DEFAULTS = {k: v for k, v in section_defaults("preprocess").items() if k in ENHANCE_KEYS}


def to_unit_range(image: np.ndarray, scale_16bit: str = DEFAULTS["scale_16bit"],
                  fixed_max: float = DEFAULTS["fixed_max"]) -> np.ndarray:
    """Scale an image of any dtype to float32 in [0, 1] (8-bit: /255; deeper: see module doc)."""
    img = image.astype(np.float32)
    if image.dtype == np.uint8:
        return img / 255.0
    if np.issubdtype(image.dtype, np.floating) and img.min() >= 0 and img.max() <= 1:
        return img
    if scale_16bit == "fixed":
        return np.clip(img / fixed_max, 0, 1)
    lo = np.percentile(img, 1, axis=(0, 1), keepdims=True)
    hi = np.percentile(img, 99, axis=(0, 1), keepdims=True)
    return np.clip((img - lo) / np.maximum(hi - lo, 1e-6), 0, 1)


def apply_clahe(image: np.ndarray, mode: str = DEFAULTS["clahe_mode"],
                clip_limit: float = DEFAULTS["clahe_clip_limit"],
                tiles: int = DEFAULTS["clahe_tiles"]) -> np.ndarray:
    """CLAHE on a float (H, W, C) image in [0, 1]; RGB keeps its colour in ``luminance`` mode."""
    kernel = max(2, min(image.shape[:2]) // tiles)
    if image.shape[-1] == 3 and mode == "luminance":
        lab = color.rgb2lab(image)
        lab[..., 0] = 100 * exposure.equalize_adapthist(lab[..., 0] / 100, kernel_size=kernel,
                                                        clip_limit=clip_limit)
        with warnings.catch_warnings():  # out-of-gamut colours are clipped, as intended
            warnings.simplefilter("ignore", UserWarning)
            rgb = color.lab2rgb(lab)
        return np.clip(rgb, 0, 1).astype(np.float32)
    bands = [exposure.equalize_adapthist(image[..., b], kernel_size=kernel,
                                         clip_limit=clip_limit) for b in range(image.shape[-1])]
    return np.stack(bands, axis=-1).astype(np.float32)


def apply_clahe_opencv(image: np.ndarray, mode: str = DEFAULTS["clahe_mode"],
                       clip_limit: float = DEFAULTS["clahe_clip_limit"],
                       tiles: int = DEFAULTS["clahe_tiles"]) -> np.ndarray:
    """:func:`apply_clahe` with OpenCV, on 8-bit values (float (H, W, C) in [0, 1] in and out).

    As skimage does, each band is stretched to its full range before and after. skimage
    clips each tile's 256-bin histogram at ``clip_limit`` x the tile's pixels, OpenCV at
    ``clipLimit`` x the pixels / 256: hence ``clipLimit = 256 x clip_limit``.
    """
    clahe = cv2.createCLAHE(clipLimit=256 * clip_limit, tileGridSize=(tiles, tiles))

    def equalise(band: np.ndarray) -> np.ndarray:
        return _stretch(clahe.apply(np.round(_stretch(band) * 255).astype(np.uint8)))

    if image.shape[-1] == 3 and mode == "luminance":
        lab = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2Lab)
        lab[..., 0] = 100 * equalise(lab[..., 0])  # L is 0-100
        return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)
    return np.stack([equalise(image[..., b]) for b in range(image.shape[-1])], axis=-1)


def _stretch(band: np.ndarray) -> np.ndarray:
    """A band linearly stretched to [0, 1] between its minimum and maximum (float32)."""
    band = band.astype(np.float32)
    lo, hi = band.min(), band.max()
    return (band - lo) / (hi - lo) if hi > lo else np.zeros_like(band)


def resize_opencv(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a float (H, W, C) image: pixel-area averaging when shrinking, else bilinear.

    OpenCV resizes at most 4 bands at a time, so wider images go 4 bands at a time.
    """
    shrink = size < image.shape[0] and size < image.shape[1]
    flags = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    parts = [cv2.resize(np.ascontiguousarray(image[..., b:b + 4], dtype=np.float32),
                        (size, size), interpolation=flags).reshape(size, size, -1)
             for b in range(0, image.shape[-1], 4)]
    return np.concatenate(parts, axis=-1)


def enhance(image: np.ndarray, image_size: int = DEFAULTS["image_size"],
            grayscale: bool = DEFAULTS["grayscale"], clahe: bool = DEFAULTS["clahe"],
            clahe_mode: str = DEFAULTS["clahe_mode"],
            clahe_clip_limit: float = DEFAULTS["clahe_clip_limit"],
            clahe_tiles: int = DEFAULTS["clahe_tiles"],
            scale_16bit: str = DEFAULTS["scale_16bit"], fixed_max: float = DEFAULTS["fixed_max"],
            engine: str = DEFAULTS["engine"], bands: int | None = None) -> np.ndarray:
    """Enhance one (H, W, C) image of any dtype into a uint8 (size, size, C') image.

    With ``bands``, a one-band image in a colour or multi-band set is repeated to that
    many bands; any other band count that differs is a ``ValueError``.
    """
    img = to_unit_range(image, scale_16bit, fixed_max)
    if grayscale and img.shape[-1] > 1:
        img = (color.rgb2gray(img) if img.shape[-1] == 3 else img.mean(-1))[..., None]
    if bands is not None and img.shape[-1] != bands:
        if img.shape[-1] != 1:
            raise ValueError(f"image has {img.shape[-1]} bands but the data set has {bands}")
        img = np.repeat(img, bands, axis=-1)
    fast = engine == "opencv"
    if img.shape[:2] != (image_size, image_size):
        img = resize_opencv(img, image_size) if fast else transform.resize(
            img, (image_size, image_size, img.shape[-1]), order=1, anti_aliasing=True,
            preserve_range=True).astype(np.float32)
    if clahe:
        img = (apply_clahe_opencv if fast else apply_clahe)(
            np.clip(img, 0, 1), clahe_mode, clahe_clip_limit, clahe_tiles)
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


@dataclass
class PreprocessResult:
    """Per-class counts of a preprocessing run and the files that were skipped."""

    written: Counter = field(default_factory=Counter)
    already_done: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """One row per class: written, already done, failed."""
        return [{"class": c, "written": self.written[c], "already_done": self.already_done[c],
                 "failed": self.failed[c],
                 "total": self.written[c] + self.already_done[c]} for c in self.classes]

    def summary(self) -> dict[str, int]:
        """Totals for the run record: written, already done, skipped."""
        return {"written": sum(self.written.values()),
                "already_done": sum(self.already_done.values()), "skipped": len(self.skipped)}


def _process_one(job: tuple[str, str, dict, int, str]) -> tuple[str, str | None]:
    src, dst, settings, max_pixels, inflight = job
    if inflight:  # which file this worker holds, should it die on it
        Path(inflight, str(os.getpid())).write_text(src, encoding="utf-8")
    try:
        out = enhance(read_image(src, max_pixels), **settings)
        atomic_write_image(Path(dst).with_suffix(image_suffix(out.shape[-1])), out)
        return src, None
    except BadImageError as err:
        return src, str(err)
    except Exception as err:  # an image that reads but cannot be processed
        return src, f"{src}: cannot process ({type(err).__name__}: {err})"


def dataset_bands(files: list[tuple[Path, str]], max_pixels: int | None = None,
                  sample: int = 25) -> int:
    """The band count of a data set: the most common among its first readable images."""
    counts: Counter = Counter()
    for src, _ in files:
        try:
            counts[read_image(src, max_pixels).shape[-1]] += 1
        except BadImageError:
            continue
        if sum(counts.values()) >= sample:
            break
    return counts.most_common(1)[0][0] if counts else 3


def read_settings(processed_dir: str | Path) -> dict[str, Any]:
    """The enhancement settings a processed folder was made with (for evaluate/predict)."""
    path = Path(processed_dir) / PREPROCESSING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run preprocessing (notebook 1) first.")
    settings = json.loads(path.read_text())
    settings.pop("state", None)
    return settings


def _dead_workers_files(inflight: Path) -> list[str]:
    """The files that workers no longer alive were processing (their notes in ``inflight``)."""
    return sorted(note.read_text(encoding="utf-8") for note in inflight.iterdir()
                  if note.name.isdigit() and not pid_alive(int(note.name)))


def output_path(src: Path, raw_root: Path, out_root: Path, bands: int) -> Path:
    """Where a raw image goes: same class and relative path, PNG or TIFF by band count."""
    rel = src.relative_to(raw_root)
    return (out_root / rel).with_suffix(image_suffix(bands))


def _check_recorded_settings(stamp: Path, settings: dict[str, Any],
                             overwrite: bool) -> dict[str, Any]:
    """The state of the folder's last pass; other settings than its own are an error."""
    if not stamp.is_file():
        return {}
    recorded = json.loads(stamp.read_text())
    state = recorded.pop("state", {})
    # a key the folder's record lacks (made before it existed) had its default then
    old = {**DEFAULTS, **{k: v for k, v in recorded.items() if k != "bands"}}
    if old != settings and not overwrite:
        diff = [k for k in settings if old.get(k) != settings[k]]
        raise ValueError(
            f"{stamp.parent} was made with other settings ({', '.join(diff)}: "
            f"{[old.get(k) for k in diff]} vs {[settings[k] for k in diff]}). Set "
            "preprocess.overwrite: true or use another preprocess.processed_dir."
        )
    return state


def _record_selection(processed_dir: Path, raw_dir: Path, files: list[tuple[Path, str]],
                      every: int, selection: dict[str, Any], processed_before: bool) -> None:
    """Write ``selection.json``; a folder holding another selection of images is an error."""
    record: dict[str, Any] = {"images": "all"}  # a selection of every image is the folder
    if len(files) < every:
        record = {**{k: v for k, v in selection.items() if v is not None},
                  "images": len(files), "sha256": hashlib.sha256(
                      "\n".join(f.relative_to(raw_dir).as_posix() for f, _ in files)
                      .encode()).hexdigest()}
    picked = processed_dir / SELECTION_FILE
    before = json.loads(picked.read_text()) if picked.is_file() else \
        {"images": "all"} if processed_before else None  # made before selections existed
    if before is not None and before.get("sha256") != record.get("sha256"):
        raise ValueError(
            f"{processed_dir} holds another selection of images ({before.get('images')} vs "
            f"{record['images']}); its extra images would be loaded too. Delete that folder "
            "or set another preprocess.processed_dir.")
    atomic_write_json(picked, record)


def _jobs(files: list[tuple[Path, str]], raw_dir: Path, processed_dir: Path, grayscale: bool,
          since: float | None, overwrite: bool,
          result: PreprocessResult) -> list[tuple[str, str, str]]:
    """``(source, destination, class)`` of each image still to do; counts those done."""
    jobs, taken = [], set()
    for src, label in files:
        # Band count is only known after reading; PNG for gray/RGB covers most folders.
        dst = output_path(src, raw_dir, processed_dir, 1 if grayscale else 3)
        alt = dst.with_suffix(".tif")
        if dst in taken or alt in taken:  # a.jpg and a.png in one class: keep both
            dst = dst.with_name(src.name + dst.suffix)
        taken.add(dst)
        done = [p for p in (dst, alt) if p.exists()]
        # done: written after the source last changed (a regenerated or replaced image is
        # redone) and, for an overwrite cut short, after that overwrite began
        newest = max(src.stat().st_mtime, since or 0.0) if done else 0.0
        if not overwrite and done and done[0].stat().st_mtime >= newest:
            result.already_done[label] += 1
        else:
            jobs.append((str(src), str(dst), label))
    return jobs


def preprocess_folder(raw_dir: str | Path, processed_dir: str | Path, settings: dict[str, Any],
                      overwrite: bool = False, workers: int = 1,
                      on_bad_file: str = DEFAULT_BAD_FILE_POLICY,
                      progress: bool = True,
                      selection: dict[str, Any] | None = None,
                      max_pixels: int | None = None) -> PreprocessResult:
    """Enhance every image of ``raw_dir/<class>/`` into ``processed_dir/<class>/``.

    ``selection`` (``data.select_files`` arguments) restricts the images; the folder
    records it in ``selection.json``, and reusing it with another selection is an error.

    Already-processed files are skipped unless ``overwrite``; each output is written
    atomically, so an interrupted run leaves no half-written image and a rerun completes
    it. Unreadable files (also: over ``max_pixels``, or killing their worker) are recorded
    (``skip``) or raise :class:`BadImageError` (``error``). The settings are stored in
    ``processed_dir/preprocessing.json`` with the state of the pass; reusing the folder with
    other settings is an error unless ``overwrite``, and an interrupted overwrite is
    finished by the next run, never taken as done.
    """
    raw_dir, processed_dir = Path(raw_dir), Path(processed_dir)
    settings = {k: settings[k] for k in ENHANCE_KEYS}
    stamp = processed_dir / PREPROCESSING_FILE
    state = _check_recorded_settings(stamp, settings, overwrite)
    # An overwriting pass records when it began: until it completes, a file older than
    # that is from the earlier settings and is redone, on this run or the next.
    since = time.time() if overwrite else (
        None if state.get("complete", True) else state.get("overwrite_started"))
    mark(processed_dir, "processed")
    sweep_temporary_files(processed_dir)  # left by runs killed mid-write; a live run's stay
    index = index_folder(raw_dir, min_classes=1)
    every = len(index.files)
    index = select_files(index, **(selection or {}))
    _record_selection(processed_dir, raw_dir, index.files, every, selection or {},
                      stamp.is_file())
    settings["bands"] = 1 if settings["grayscale"] else dataset_bands(index.files, max_pixels)
    result = PreprocessResult(classes=index.classes, skipped=list(index.skipped))
    jobs = _jobs(index.files, raw_dir, processed_dir, settings["grayscale"], since, overwrite,
                 result)
    atomic_write_json(stamp, {**settings, "state": {"complete": False,
                                                    "overwrite_started": since}})
    labels = {src: label for src, _, label in jobs}
    bar = progress_bar(total=len(jobs), desc="preprocessing", disable=not progress,
                       mininterval=2)
    try:
        if workers > 1 and len(jobs) > 1:
            _process_in_workers(jobs, settings, max_pixels, workers, processed_dir, labels,
                                result, on_bad_file, bar)
        else:
            work = [(src, dst, settings, max_pixels, "") for src, dst, _ in jobs]
            _collect(map(_process_one, work), labels, result, on_bad_file, bar)
    finally:
        bar.close()
    atomic_write_json(stamp, {**settings, "state": {"complete": True}})
    return result


def _process_in_workers(jobs: list[tuple[str, str, str]], settings: dict[str, Any],
                        max_pixels: int | None, workers: int, processed_dir: Path,
                        labels: dict[str, str], result: PreprocessResult, on_bad_file: str,
                        bar) -> None:
    """The jobs in ``workers`` processes; a worker that dies costs its image alone.

    That image is recorded with the reason (out of memory?), the others go on in a new pool.
    """
    inflight = Path(tempfile.mkdtemp(prefix=".inflight.", dir=processed_dir))
    # fork is safe and needs no __main__ guard, unless TensorFlow's threads exist
    context = get_context("spawn" if "tensorflow" in sys.modules else "fork")
    pending = [(src, dst, settings, max_pixels, str(inflight)) for src, dst, _ in jobs]
    try:
        while pending:
            count = [0]
            try:
                with ProcessPoolExecutor(workers, mp_context=context) as pool:
                    _collect(pool.map(_process_one, pending, chunksize=16), labels, result,
                             on_bad_file, bar, count)
                return
            except BrokenProcessPool:
                # the pool stops every worker when one dies: each file held then is tried
                # alone, and the one that kills its worker again is the culprit
                suspects = _dead_workers_files(inflight)
                if not suspects:
                    raise
                for note in inflight.iterdir():
                    note.unlink()
                pending = pending[count[0]:]  # the jobs without a result yet
                for job in (j for j in pending if j[0] in suspects):
                    try:
                        with ProcessPoolExecutor(1, mp_context=context) as pool:
                            _collect(pool.map(_process_one, [job]), labels, result,
                                     on_bad_file, bar)
                    except BrokenProcessPool:
                        error = BadImageError(f"{job[0]}: the worker process reading it died "
                                              "(out of memory? lower data.max_image_pixels)")
                        skip_or_raise(on_bad_file, error, job[0], result.skipped)
                        result.failed[labels[job[0]]] += 1
                        bar.update()
                pending = [j for j in pending if j[0] not in suspects]
    finally:
        shutil.rmtree(inflight, ignore_errors=True)


def _collect(outcomes, labels, result: PreprocessResult, on_bad_file: str, bar,
             count: list[int] | None = None) -> None:
    for src, error in outcomes:
        bar.update()
        if count is not None:
            count[0] += 1
        if error is None:
            result.written[labels[src]] += 1
            continue
        skip_or_raise(on_bad_file, BadImageError(error), src, result.skipped)
        result.failed[labels[src]] += 1


def example_pairs(raw_dir: str | Path, processed_dir: str | Path,
                  files: list[tuple[Path, str]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(class, raw image, processed image) for the first processed file of each class."""
    pairs, seen = [], set()
    for src, label in files:
        if label in seen:
            continue
        for suffix in (".png", ".tif"):
            dst = output_path(src, Path(raw_dir), Path(processed_dir), 3).with_suffix(suffix)
            if dst.exists():
                pairs.append((label, read_image(src), read_image(dst)))
                seen.add(label)
                break
    return pairs
