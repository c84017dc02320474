"""Class folders (``root/<class>/<file>``): what they hold, file lists and selections."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from earth_lib.errors import (
    DatasetNotFoundError,
)
from earth_lib.images import IMAGE_EXTENSIONS

#: Files the project writes at the root of a data folder (never images, never skipped):
#: what generated a synthetic set, a processed folder's settings, and its selection.
DATASET_FILE, PREPROCESSING_FILE, SELECTION_FILE = \
    "dataset.json", "preprocessing.json", "selection.json"
METADATA_FILES = (DATASET_FILE, PREPROCESSING_FILE, SELECTION_FILE)


@dataclass
class DatasetIndex:
    """What a class-folder data set holds: usable image files and what was skipped, and why."""

    root: Path
    classes: list[str]
    files: list[tuple[Path, str]]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        c = Counter(label for _, label in self.files)
        return {name: c.get(name, 0) for name in self.classes}


def index_folder(root: str | Path, min_classes: int = 2) -> DatasetIndex:
    """List the image files of ``root/<class>/``, skipping (and recording) non-image files.

    Hidden files, ``Thumbs.db`` and other non-image files are skipped and listed; an
    empty class folder is skipped and listed. Raises when fewer than ``min_classes``
    classes hold images, or when the folder does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"Data folder not found: {root}. Put one sub-folder of images per class there "
            "(e.g. data/raw/mydata/forest/*.png), or set data.raw_dir."
        )
    classes, files, skipped = [], [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            if entry.name not in METADATA_FILES:
                skipped.append((str(entry), "not inside a class folder"))
            continue
        found = []
        for f in sorted(entry.rglob("*")):
            if f.is_dir():
                continue
            if f.name.startswith(".") or f.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append((str(f), "not an image file (by extension)"))
            else:
                found.append((f, entry.name))
        if found:
            classes.append(entry.name)
            files.extend(found)
        else:
            skipped.append((str(entry), "empty class folder (no image files)"))
    if len(classes) < min_classes:
        loose = sum(1 for f, why in skipped if why == "not inside a class folder"
                    and Path(f).suffix.lower() in IMAGE_EXTENSIONS)
        raise DatasetNotFoundError(
            f"{root}: found {len(classes)} class folder(s) with images "
            f"({', '.join(classes) or 'none'}); a classifier needs at least {min_classes}. "
            + (f"{loose} image(s) lie directly in {root}; " if loose else "")
            + f"the layout expected is one sub-folder per class, named after it: "
            f"{root}/<class>/<image> (e.g. {root}/forest/0001.png, {root}/river/0001.png)."
        )
    return DatasetIndex(root, classes, files, skipped)


def read_file_list(path: str | Path) -> list[tuple[str, str | None]]:
    """A list of images: ``<sha256>  <class>/<file>`` lines (SHA256SUMS) or bare paths.

    Returns ``(relative path, sha256 or None)``; blank lines and ``#`` comments are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"data.file_list: {path} not found.")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        digest, rel = (parts[0].lower(), parts[1]) if len(parts) == 2 and len(parts[0]) == 64 \
            else (None, line)
        rel = rel.lstrip("*").removeprefix("./")
        if rel.startswith("/") or ".." in Path(rel).parts or len(Path(rel).parts) < 2:
            raise ValueError(f"{path}:{n}: {rel!r} is not a <class>/<file> path inside the "
                             "data folder.")
        out.append((rel, digest))
    if not out:
        raise ValueError(f"{path}: the list holds no image.")
    return out


def select_files(index: DatasetIndex, file_list: str | Path | None = None,
                 max_per_class: int | None = None, seed: int = 0) -> DatasetIndex:
    """The images a run uses: those of ``file_list`` (checked), then at most ``max_per_class``.

    A listed file that is missing, or whose SHA-256 differs from the list's, is an error
    naming it: the run would otherwise not be on the images it claims. The per-class cap
    takes a seeded random choice, the same for the same seed and folder. Classes left
    without images drop out.
    """
    files = index.files
    if file_list is not None:
        by_rel = {f.relative_to(index.root).as_posix(): (f, label) for f, label in files}
        wanted = read_file_list(file_list)
        missing = [rel for rel, _ in wanted if rel not in by_rel]
        if missing:
            raise DatasetNotFoundError(
                f"{index.root}: {len(missing)} of the {len(wanted)} images of {file_list} are "
                f"not there (first: {', '.join(missing[:3])}). Is data.raw_dir the data set "
                "the list was made for?")
        changed = [rel for rel, digest in wanted
                   if digest and hashlib.sha256(by_rel[rel][0].read_bytes()).hexdigest() != digest]
        if changed:
            raise ValueError(
                f"{index.root}: {len(changed)} image(s) differ from the checksums in "
                f"{file_list} (first: {', '.join(changed[:3])}): not the same images.")
        files = [by_rel[rel] for rel, _ in wanted]
    if max_per_class is not None:
        rng = np.random.default_rng(seed)
        kept = []
        for name in index.classes:
            mine = sorted((f for f in files if f[1] == name), key=lambda f: f[0].as_posix())
            if len(mine) > max_per_class:
                pick = np.sort(rng.choice(len(mine), max_per_class, replace=False))
                mine = [mine[i] for i in pick]
            kept += mine
        files = kept
    files = sorted(files, key=lambda f: (index.classes.index(f[1]), f[0].as_posix()))
    classes = [c for c in index.classes if any(label == c for _, label in files)]
    return DatasetIndex(index.root, classes, files, list(index.skipped))


def describe_skipped(skipped: list[tuple[str, str]], limit: int = 20) -> str:
    """The first ``limit`` skipped files with their reasons, one line each, for display."""
    lines = [f" - {reason if path in reason else f'{path}: {reason}'}"
             for path, reason in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f" ... and {len(skipped) - limit} more")
    return "\n".join(lines)


