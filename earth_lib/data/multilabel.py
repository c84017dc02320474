"""Multi-label scenes (one image, several land covers): labels, splits and mosaics.

Labels come from a CSV, in either of two layouts: ``path,labels`` (labels separated by
``;``, ``|`` or spaces; other columns, such as ``split``, are ignored), or one 0/1 column
per label after the image column, as in UC Merced's multi-label file (tab-separated,
images named by stem: ``airplane00``). Images are matched by their path
relative to the image folder; a bare name without a folder matches the one image of that
file name or stem (two such images: an error naming both). :func:`earth_lib.data.iterative_split`
keeps every label represented in every split; :func:`build_mosaics` makes real
multi-label scenes from a single-label class-folder set, with tiles of one split never
used in another.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earth_lib.data import CACHE_DIR, SPLITS, ImageSet, index_folder
from earth_lib.errors import ParameterError
from earth_lib.images import atomic_write_image, image_suffix, list_images, read_image
from earth_lib.io import atomic_write_csv
from earth_lib.paths import MOSAIC_LABELS
from earth_lib.progress import progress_bar

#: Column names taken as the image column of a labels CSV (case-insensitive).
IMAGE_COLUMNS = ("path", "image", "file", "filename", "image\\label", "name")
LABEL_SEPARATORS = re.compile(r"[;|,\s]+")


@dataclass
class MultiLabels:
    """Images and their labels: ``y[i, j]`` is 1 when image ``paths[i]`` shows ``names[j]``."""

    paths: list[str]
    y: np.ndarray  # (N, L) uint8
    names: list[str]

    def frequencies(self) -> dict[str, int]:
        """Images per label."""
        return dict(zip(self.names, self.y.sum(axis=0).tolist(), strict=True))

    def cooccurrence(self) -> np.ndarray:
        """(L, L) images showing both labels; the diagonal holds each label's count."""
        y = self.y.astype(np.int64)
        return y.T @ y


def _one_hot(value: str, where: str) -> int:
    """A one-hot cell: exactly 0 or 1 (``1.0`` too); anything else is an error naming it."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number not in (0.0, 1.0):
        raise ParameterError(f"{where}: expected one 0/1 value per label; got "
                             f"{value.strip()!r}.")
    return int(number)


def _match(key: str, by_path: dict[str, list[Path]], by_name: dict[str, list[Path]],
           root: Path, where: str) -> Path:
    """The image a CSV row names, or an error naming the row.

    Its path relative to ``root`` (the suffix may be left out), or, for a bare name
    without a folder (UC Merced's ``airplane00``), the one image of that file name or stem.
    """
    if len(by_path.get(key, [])) == 1:
        return by_path[key][0]
    if "/" in key or "\\" in key:
        if by_path.get(key):
            shown = ", ".join(f.relative_to(root).as_posix() for f in by_path[key])
            raise ParameterError(f"{where}: image {key!r} is ambiguous: it names {shown}.")
        raise ParameterError(f"{where}: image {key!r} not found under {root} (paths are "
                             "relative to that folder).")
    found = by_name.get(key, []) or by_name.get(Path(key).stem, [])
    if len(found) != 1:
        shown = ", ".join(f.relative_to(root).as_posix() for f in found[:5])
        raise ParameterError(
            f"{where}: image {key!r} " + (f"is ambiguous: it names {shown}; give the path "
                                          "relative to the folder." if found else
                                          f"not found under {root}."))
    return found[0]


def read_labels_csv(csv_path: str | Path, image_root: str | Path) -> MultiLabels:
    """Labels of the images under ``image_root`` from a CSV (either layout, see module doc).

    Raises a ``ParameterError`` naming the file, the line and the rows for: an empty file or
    a header without label columns, an image not found or named ambiguously, an image
    listed twice, a one-hot value other than 0/1, an image listed without any label, an
    image found but not listed.
    """
    csv_path, root = Path(csv_path), Path(image_root)
    if not csv_path.is_file():
        raise ParameterError(f"labels CSV {csv_path} not found.")
    text = csv_path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ParameterError(f"{csv_path}: the file is empty; expected a header (path,labels "
                             "or path,<label>,<label>...) and one row per image.")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    rows = [(n, r) for n, r in enumerate(csv.reader(lines, dialect), 1)
            if any(c.strip() for c in r)]
    header, body = [c.strip() for c in rows[0][1]], rows[1:]
    if header[0].lower() not in IMAGE_COLUMNS:
        raise ParameterError(f"{csv_path}:{rows[0][0]}: the first column must name the image "
                             f"({', '.join(IMAGE_COLUMNS)}); got {header[0]!r}.")
    if len(header) < 2:
        raise ParameterError(f"{csv_path}:{rows[0][0]}: the header has no label column; "
                             "expected path,labels or one 0/1 column per label.")
    lower = [h.lower() for h in header]
    # a "labels" column: path,labels[,other columns such as split]; else one 0/1 column per label
    col = next((lower.index(n) for n in ("labels", "label") if n in lower[1:]), None)
    one_hot = col is None
    files = _image_files(root)
    by_path: dict[str, list[Path]] = {}
    by_name: dict[str, list[Path]] = {}
    for f in files:
        rel = f.relative_to(root)
        by_path[rel.as_posix()] = [f]
        for name in {f.name, f.stem}:
            by_name.setdefault(name, []).append(f)
    for f in files:  # a path without its suffix, where no file has that exact name
        bare = f.relative_to(root).with_suffix("").as_posix()
        if bare not in by_path or by_path[bare][0].with_suffix("") == f.with_suffix(""):
            by_path.setdefault(bare, [])
            if f not in by_path[bare]:
                by_path[bare].append(f)
    listed: dict[Path, list[str]] = {}
    line_of: dict[Path, int] = {}
    for n, row in body:
        where = f"{csv_path}:{n}"
        key = row[0].strip()
        if one_hot:
            if len(row) != len(header):
                raise ParameterError(f"{where}: expected one 0/1 value per label "
                                     f"({len(header) - 1}); got {row[1:]!r}.")
            labels = [h for h, v in zip(header[1:], row[1:], strict=True)
                      if _one_hot(v, where)]
        else:
            labels = [t for t in LABEL_SEPARATORS.split(row[col] if len(row) > col else "")
                      if t]
        image = _match(key, by_path, by_name, root, where)
        if image in listed:
            raise ParameterError(f"{where}: image {image.relative_to(root).as_posix()} is "
                                 f"listed twice (also on line {line_of[image]}).")
        listed[image], line_of[image] = labels, n
    unlabelled = [f"line {line_of[k]} ({k.relative_to(root).as_posix()})"
                  for k, v in listed.items() if not v]
    if unlabelled:
        raise ParameterError(f"{csv_path}: {len(unlabelled)} image(s) without any label, e.g. "
                             f"{unlabelled[:3]}.")
    unlisted = sorted(set(files) - set(listed))
    if unlisted:
        raise ParameterError(f"{root}: {len(unlisted)} image(s) have no row in {csv_path}, "
                             f"e.g. {[str(u) for u in unlisted[:3]]}.")
    names = header[1:] if one_hot else sorted({t for v in listed.values() for t in v})
    y = np.zeros((len(listed), len(names)), dtype=np.uint8)
    for i, labels in enumerate(listed.values()):
        y[i, [names.index(t) for t in labels]] = 1
    return MultiLabels([str(k) for k in listed], y, list(names))


def attach_labels(images: ImageSet, labels_csv: str | Path | None, task: str,
                  root: str | Path) -> ImageSet:
    """The image set with its task's labels (``multiclass``: unchanged, class folders).

    ``multilabel``: (N, L) 0/1 labels read from ``labels_csv`` for the images under
    ``root``, the label names as class names.

    Raises a ``ParameterError`` naming the CSV and the images when a label is missing.
    """
    if task != "multilabel":
        return images
    table = read_labels_csv(labels_csv, root)
    row = {Path(p).resolve(): i for i, p in enumerate(table.paths)}
    missing = [p for p in images.paths if Path(p).resolve() not in row]
    if missing:
        raise ParameterError(f"{labels_csv}: no labels for {len(missing)} loaded image(s), "
                             f"e.g. {missing[:3]}.")
    y = table.y[[row[Path(p).resolve()] for p in images.paths]]
    return ImageSet(images.images, y, table.names, images.paths, images.skipped)


def _image_files(root: Path) -> list[Path]:
    """Every image under ``root`` (class folders or not), hidden files left out."""
    if not root.is_dir():
        raise ParameterError(f"image folder {root} not found.")
    return [f for f in list_images(root) if CACHE_DIR not in f.parts]


def missing_labels(y: np.ndarray, split: np.ndarray, names: list[str]) -> dict[str, list[str]]:
    """Labels with no image in a split, per split (empty dict: every label everywhere)."""
    out = {}
    for s in SPLITS:
        absent = [n for n, c in zip(names, y[split == s].sum(axis=0), strict=True) if c == 0]
        if absent and (split == s).any():
            out[s] = absent
    return out


def build_mosaics(
    source: str | Path,
    out_dir: str | Path,
    *,
    counts: dict[str, int],
    grid: int = 2,
    labels_per_mosaic: tuple[int, int] = (1, 3),
    fractions: dict[str, float] | None = None,
    seed: int,
    progress: bool = True,
) -> MultiLabels:
    """Multi-label scenes from a single-label class-folder set: ``grid`` x ``grid`` mosaics.

    Each mosaic draws between ``labels_per_mosaic`` distinct classes (each used at least
    once) and tiles them; its labels are the classes present. The tiles are split first
    (``fractions`` of each class), and the ``counts[split]`` mosaics of a split use only
    that split's tiles: no test tile is ever seen in training. Writes
    ``out_dir/<split>/<split>_<n>.png`` and ``out_dir/labels.csv`` (path, labels, split)
    and returns the labels. Deterministic for a seed.
    """
    lo, hi = labels_per_mosaic
    if not 1 <= lo <= hi or hi > grid * grid:
        raise ParameterError(f"labels_per_mosaic {labels_per_mosaic}: need 1 <= low <= high <= "
                             f"{grid * grid} (tiles per mosaic).")
    index = index_folder(source)
    classes = index.classes
    if hi > len(classes):
        raise ParameterError(f"labels_per_mosaic high {hi} exceeds the {len(classes)} classes "
                             f"of {source}.")
    fractions = fractions or {"train": 0.7, "val": 0.15, "test": 0.15}
    rng = np.random.default_rng(seed)
    pools: dict[str, dict[str, list[Path]]] = {s: {c: [] for c in classes} for s in SPLITS}
    for c in classes:
        files = [f for f, label in index.files if label == c]
        files = [files[i] for i in rng.permutation(len(files))]
        edges = np.cumsum([0] + [round(fractions.get(s, 0) * len(files)) for s in SPLITS])
        edges[-1] = len(files)
        for k, s in enumerate(SPLITS):
            pools[s][c] = files[edges[k]:edges[k + 1]]
    out_dir = Path(out_dir)
    rows, y = [], []
    bar = progress_bar(total=sum(counts.values()), desc="mosaics", disable=not progress)
    for s in SPLITS:
        usable = [c for c in classes if pools[s][c]]
        if counts.get(s, 0) and len(usable) < hi:
            raise ParameterError(f"{source}: split {s!r} has tiles of {len(usable)} classes; "
                                 f"mosaics need {hi}. Use more images per class.")
        for n in range(counts.get(s, 0)):
            k = int(rng.integers(lo, hi + 1))
            chosen = list(rng.choice(usable, k, replace=False))
            cells = chosen + list(rng.choice(chosen, grid * grid - k))
            cells = [cells[i] for i in rng.permutation(len(cells))]
            picked = [pools[s][c][int(rng.integers(len(pools[s][c])))] for c in cells]
            tiles = [read_image(f) for f in picked]
            odd = [f for f, t in zip(picked, tiles, strict=True) if t.shape != tiles[0].shape]
            if odd:
                raise ParameterError(f"{odd[0]}: tile of shape {tiles[picked.index(odd[0])].shape}"
                                     f", others {tiles[0].shape}; mosaics need one tile shape "
                                     "(preprocess the source first).")
            image = np.concatenate([np.concatenate(tiles[r * grid:(r + 1) * grid], axis=1)
                                    for r in range(grid)], axis=0)
            path = out_dir / s / f"{s}_{n:05d}{image_suffix(image.shape[-1])}"
            atomic_write_image(path, image)
            rows.append({"path": path.relative_to(out_dir).as_posix(),
                         "labels": ";".join(sorted(set(chosen))), "split": s})
            y.append([int(c in chosen) for c in classes])
            bar.update()
    bar.close()
    atomic_write_csv(out_dir / MOSAIC_LABELS, ["path", "labels", "split"],
                     [[r["path"], r["labels"], r["split"]] for r in rows])
    return MultiLabels([str(out_dir / r["path"]) for r in rows],
                       np.array(y, dtype=np.uint8).reshape(-1, len(classes)), classes)
