"""Data discovery, loading and splits for folders of class sub-folders (``root/<class>/<file>``)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import itertools
import json
import mmap
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from earth_lib.errors import (
    DEFAULT_BAD_FILE_POLICY,
    BadImageError,
    DatasetNotFoundError,
    skip_or_raise,
)
from earth_lib.images import IMAGE_EXTENSIONS, read_image
from earth_lib.io import atomic_write_csv, atomic_write_json, temporary_file
from earth_lib.progress import progress_bar

SPLITS = ("train", "val", "test")
#: Where ``load_images(in_memory=False)`` keeps its uint8 array file, inside the processed folder.
CACHE_DIR = ".arrays"
#: Images per chunk when an array is walked piece by piece (memory stays bounded).
CHUNK = 1024
#: Files the project writes at the root of a data folder (never images, never skipped).
METADATA_FILES = ("dataset.json", "preprocessing.json", "selection.json")


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
        raise DatasetNotFoundError(
            f"{root}: found {len(classes)} class folder(s) with images "
            f"({', '.join(classes) or 'none'}); a classifier needs at least {min_classes}."
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


@dataclass
class ImageSet:
    """Images as a uint8 array (N, H, W, C), labels, class names and source paths.

    Labels are class indices, or (N, L) 0/1 rows for a multi-label set.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    paths: list[str]
    skipped: list[tuple[str, str]]


def chunks(n: int, size: int | None = None) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` (default :data:`CHUNK`) items over ``range(n)``."""
    size = size or CHUNK
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def same_pixels_as_64px(n: int, image_shape: tuple[int, ...]) -> int:
    """How many images of ``image_shape`` hold the pixels of ``n`` 64 x 64 images (at least 1).

    Batches and chunks sized this way take the same memory at any image size.
    """
    return max(1, n * 64 * 64 // (int(image_shape[0]) * int(image_shape[1])))


def is_on_disk(images: np.ndarray) -> bool:
    """True for an array read from a file page by page (``np.memmap``), not held in memory."""
    return isinstance(images, np.memmap) and images.filename is not None  # copies have none


def read_rows(images: np.ndarray | Rows, index, dtype=None) -> np.ndarray:
    """Rows of an image array as an array in memory, read from disk if the array lies there.

    The pages of an on-disk array are then dropped from this process's resident memory
    (the OS's file cache keeps them): streaming a set from disk never makes it resident.
    """
    if not is_on_disk(images):
        return np.asarray(images[index], dtype=dtype)
    rows = np.array(images[index], dtype=dtype)  # a copy: the pages are dropped below
    mapped = getattr(images, "_mmap", None)  # np.memmap's mapping of the file
    if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)
    return rows


def load_images(
    root: str | Path,
    class_names: list[str] | None = None,
    expected_size: int | None = None,
    on_bad_file: str = DEFAULT_BAD_FILE_POLICY,
    progress: bool = True,
    in_memory: bool = True,
) -> ImageSet:
    """Load a processed class-folder set, checking that all images agree in shape.

    Args:
        root: folder of class sub-folders.
        class_names: fix the class order (and reject unknown classes); default: sorted folders.
        expected_size: side every image must have (catches a folder processed at another size).
        on_bad_file: ``skip`` records unreadable files; ``error`` raises on the first.
        in_memory: False for data larger than memory: the images are written once to one
            uint8 file in ``root/.arrays/`` and returned as a read-only ``np.memmap``, read
            from disk as they are used (reused while the folder's files are unchanged).

    Raises:
        ValueError: an image of another size or band count, or an unknown class.
    """
    index = index_folder(root, min_classes=1 if class_names else 2)
    names = list(class_names) if class_names else index.classes
    unknown = [c for c in index.classes if c not in names]
    if unknown:
        raise ValueError(
            f"{root}: class folder {unknown[0]!r} is not one of the model's classes "
            f"({', '.join(names)})."
        )
    if not in_memory:
        return _load_to_disk(Path(root), index, names, expected_size, on_bad_file, progress)
    images, labels, paths, skipped = [], [], [], list(index.skipped)
    for img, label, path in _read_checked(index, names, expected_size, on_bad_file, skipped,
                                          progress, Path(root).name):
        images.append(img)
        labels.append(label)
        paths.append(path)
    if not images:
        raise DatasetNotFoundError(f"{root}: no readable images.")
    return ImageSet(np.stack(images), np.array(labels, dtype=np.int64), names, paths, skipped)


def _read_checked(index: DatasetIndex, names: list[str], expected_size: int | None,
                  on_bad_file: str, skipped: list, progress: bool,
                  desc: str) -> Iterator[tuple[np.ndarray, int, str]]:
    """(image, label index, path) of each readable image, every image checked for shape."""
    shape = None
    for path, label in progress_bar(index.files, desc=f"loading {desc}",
                                    disable=not progress, mininterval=2):
        try:
            img = read_image(path)
        except BadImageError as err:
            skip_or_raise(on_bad_file, err, path, skipped)
            continue
        if img.dtype != np.uint8:
            raise ValueError(f"{path}: processed images must be 8-bit, got {img.dtype}; "
                             "run preprocessing on this folder first.")
        if expected_size is not None and img.shape[:2] != (expected_size, expected_size):
            raise ValueError(
                f"{path}: image is {img.shape[1]}x{img.shape[0]} px but preprocess.image_size "
                f"is {expected_size}; the processed folder was made with another size. "
                "Rerun preprocessing with preprocess.overwrite: true or use a new processed_dir."
            )
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            what = "band count" if img.shape[2] != shape[2] else "size"
            raise ValueError(f"{path}: {what} differs from the other images "
                             f"({img.shape} vs {shape}).")
        yield img, names.index(label), str(path)


@contextlib.contextmanager
def _atomic_npy(path: Path, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    """A uint8 ``.npy`` of ``shape`` to fill in place; it appears at ``path`` only when filled.

    Written as a hidden temporary file beside ``path`` (removed if filling fails).
    """
    tmp = temporary_file(path)  # unique: two runs filling one cache never write one file
    try:
        out = np.lib.format.open_memmap(tmp, "w+", np.uint8, shape)
        yield out
        out.flush()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _listing_digest(index: DatasetIndex, names: list[str], expected_size: int | None) -> str:
    """What the array file depends on: each file's path, size and modification time."""
    h = hashlib.sha256(json.dumps([names, expected_size]).encode())
    for path, label in index.files:
        st = path.stat()
        h.update(f"{label}/{path.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _load_to_disk(root: Path, index: DatasetIndex, names: list[str], expected_size: int | None,
                  on_bad_file: str, progress: bool) -> ImageSet:
    """``load_images(in_memory=False)``: one uint8 ``.npy`` file, written once, memory-mapped."""
    folder = root / CACHE_DIR
    digest = _listing_digest(index, names, expected_size)
    data, meta = folder / f"images-{digest}.npy", folder / f"images-{digest}.json"
    if not (data.is_file() and meta.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("images-*"):  # an older listing's files: never read again
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
        labels, paths, skipped = [], [], list(index.skipped)
        reader = _read_checked(index, names, expected_size, on_bad_file, skipped, progress,
                               root.name)
        first = next(reader, None)  # its shape sizes the file
        if first is None:
            raise DatasetNotFoundError(f"{root}: no readable images.")
        with _atomic_npy(data, (len(index.files), *first[0].shape)) as out:
            for img, label, path in itertools.chain([first], reader):
                out[len(labels)] = img
                labels.append(label)
                paths.append(path)
        atomic_write_json(meta, {"count": len(labels), "labels": labels, "paths": paths,
                                 "skipped": skipped})
    record = json.loads(meta.read_text())
    images = np.load(data, mmap_mode="r")[: record["count"]]
    return ImageSet(images, np.array(record["labels"], dtype=np.int64), names, record["paths"],
                    [tuple(s) for s in record["skipped"]])


class Rows:
    """Some rows of an array, read from it on access: a split sharing the loaded images.

    Indexing the first axis returns those rows of the base array (a copy, as NumPy's
    indexing by a list gives) and ``np.asarray`` reads them all, so code written for
    arrays runs unchanged. Splits of images held in memory are such views: the images sit
    in memory once, not once loaded and once more split (27,000 images of 64 px: 332 MB).
    """

    def __init__(self, base: np.ndarray, index: np.ndarray):
        self.base, self.index = base, np.asarray(index, dtype=np.intp)

    @property
    def shape(self) -> tuple[int, ...]:
        """(rows, *the base's other axes)."""
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        """The base array's dtype."""
        return self.base.dtype

    @property
    def ndim(self) -> int:
        """The base array's dimensions."""
        return self.base.ndim

    @property
    def size(self) -> int:
        """Items in these rows."""
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if first is Ellipsis or first is None:  # not a key of the first axis: read them all
            return np.asarray(self)[key]
        rows = self.index[first]
        if np.ndim(rows) == 0:  # one row: the base's own indexing does the rest
            return self.base[(int(rows), *rest)]
        return self.base[rows][(slice(None), *rest)] if rest else self.base[rows]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.base[self.index]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __reduce__(self):  # sent to another process (a Ray worker) as the plain array
        return np.asarray, (np.asarray(self),)

    def __repr__(self) -> str:
        return f"Rows({len(self)} of {len(self.base)} rows, {self.shape[1:]}, {self.dtype})"


@dataclass
class Split:
    """Arrays of one split: images (or PCA scores, or :class:`Rows` of images) and labels."""

    x: np.ndarray | Rows
    y: np.ndarray


def split_arrays(images: np.ndarray, labels: np.ndarray, split: np.ndarray) -> dict[str, Split]:
    """The train/val/test arrays for a split assignment.

    Images in memory are shared: each split is a :class:`Rows` view of them (no copy).
    Images read from disk (:func:`load_images` with ``in_memory=False``) stay on disk: each
    split is copied, chunk by chunk, to its own array file beside the images' file.
    """
    if not is_on_disk(images):
        return {name: Split(Rows(images, np.flatnonzero(split == name)), labels[split == name])
                for name in SPLITS}
    source = Path(images.filename)
    digest = hashlib.sha256(np.asarray(split).astype(str).tobytes()).hexdigest()[:16]
    folder = source.parent / f"{source.stem}-split-{digest}"
    folder.mkdir(exist_ok=True)
    out = {}
    for name in SPLITS:
        path, idx = folder / f"{name}.npy", np.flatnonzero(split == name)
        if not path.is_file():
            with _atomic_npy(path, (len(idx), *images.shape[1:])) as arr:
                for part in chunks(len(idx)):
                    arr[part] = read_rows(images, idx[part])
        out[name] = Split(np.load(path, mmap_mode="r"), labels[idx])
    return out


def split_sizes(splits: dict[str, Split]) -> dict[str, int]:
    """Images per split, for the record."""
    return {name: int(len(s.y)) for name, s in splits.items()}


def subsample(split: Split, limit: int | None, seed: int) -> Split:
    """A seeded subsample of at most ``limit`` items (order kept); the split itself if smaller."""
    if not limit or limit >= len(split.y):
        return split
    idx = np.sort(np.random.default_rng(seed).choice(len(split.y), limit, replace=False))
    return Split(read_rows(split.x, idx), split.y[idx])


def stratified_split(
    labels: np.ndarray, train: float = 0.7, val: float = 0.15, test: float = 0.15, seed: int = 42
) -> np.ndarray:
    """Assign each sample to train/val/test, stratified by class and fixed by the seed."""
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    if counts[counts > 0].min() < 3:
        raise ValueError(
            f"Each class needs at least 3 images for a train/val/test split; "
            f"class index {int(np.argmin(np.where(counts > 0, counts, 1 << 30)))} has "
            f"{counts[counts > 0].min()}."
        )
    n = len(labels)
    n_classes = int((counts > 0).sum())
    n_test = max(n_classes, round(test * n))
    n_val = max(n_classes, round(val * n))
    rest, test_idx = train_test_split(idx, test_size=n_test, stratify=labels, random_state=seed)
    train_idx, val_idx = train_test_split(rest, test_size=n_val, stratify=labels[rest],
                                          random_state=seed + 1)
    split = np.empty(n, dtype=object)
    split[train_idx], split[val_idx], split[test_idx] = "train", "val", "test"
    return split.astype(str)


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order of the items in which every prefix holds the classes in proportion.

    Each class's items are shuffled and spread evenly over [0, 1) (the k-th of m at
    ``(k + u) / m``, u uniform); sorting by that position interleaves the classes, so the
    first n items are a stratified sample of n, and a shorter prefix lies in a longer one.
    """
    rng = np.random.default_rng(seed)
    key = np.empty(len(labels))
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        key[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return np.argsort(key, kind="stable")


def label_text(y: np.ndarray, class_names: list[str]) -> str:
    """One image's label(s) as text: the class, or the labels present joined by ``;``."""
    if np.ndim(y) == 0:
        return class_names[int(y)]
    return ";".join(n for n, v in zip(class_names, y, strict=True) if v)


def save_split(path: str | Path, paths: list[str], labels: np.ndarray, class_names: list[str],
               split: np.ndarray) -> None:
    """Write the split as CSV (path, class, split) so that it can be reused or audited.

    Multi-label sets write every label of an image, joined by ``;``, in the class column.
    """
    atomic_write_csv(path, ["path", "class", "split"],
                     ([p, label_text(y, class_names), s]
                      for p, y, s in zip(paths, labels, split, strict=True)))


def read_split_file(path: str | Path, paths: list[str]) -> np.ndarray:
    """Read a user split file (CSV with columns ``path`` and ``split``) for the given images.

    Paths are matched by their last two components (``class/file``), so a split file
    written for the raw folder applies to the processed one. Every image must be listed.
    """
    def key(p: str) -> str:
        parts = Path(p).parts
        return "/".join(parts[-2:])

    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "split"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: a split file needs the columns 'path' and 'split'.")
        table = {}
        for row in reader:
            if row["split"] not in SPLITS:
                raise ValueError(f"{path}: split {row['split']!r} for {row['path']} is not one "
                                 f"of {', '.join(SPLITS)}.")
            table[key(Path(row["path"]).with_suffix("").as_posix())] = row["split"]
    out = []
    for p in paths:
        k = key(Path(p).with_suffix("").as_posix())
        if k not in table:
            raise ValueError(f"{path}: image {p} is not listed in the split file.")
        out.append(table[k])
    return np.array(out)


def file_hashes(paths: list[str]) -> list[str]:
    """SHA-256 of each file's bytes (exact-duplicate detection)."""
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def cross_split_duplicates(paths: list[str], split: np.ndarray,
                           hashes: list[str] | None = None) -> list[list[str]]:
    """Groups of identical files that fall in more than one split (leakage), by content hash."""
    hashes = file_hashes(paths) if hashes is None else hashes
    groups: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        groups.setdefault(h, []).append(i)
    return [[f"{paths[i]} ({split[i]})" for i in g] for g in groups.values()
            if len(g) > 1 and len({split[i] for i in g}) > 1]


def iterative_split(y: np.ndarray, fractions: dict[str, float], seed: int = 42) -> np.ndarray:
    """Assign each image to a split so that every label keeps its share in every split.

    Iterative stratification (Sechidis et al., ECML 2011): the rarest label's images are
    placed first, each where that label is most wanted, a split still without the label
    first. Returns split names (N,).
    """
    y = np.asarray(y, dtype=bool)
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    share = np.array([fractions[s] for s in names], dtype=float)
    share /= share.sum()
    rng = np.random.default_rng(seed)
    want_n = share * len(y)
    want_label = share[:, None] * y.sum(axis=0)[None, :].astype(float)
    out = np.full(len(y), "", dtype=object)
    left = np.ones(len(y), dtype=bool)
    have = np.zeros((len(names), y.shape[1]), dtype=np.int64)
    while left.any():
        counts = y[left].sum(axis=0)
        if not counts.any():  # images without labels: where most images are still wanted
            for i in rng.permutation(np.flatnonzero(left)):
                s = int(np.argmax(want_n + rng.random(len(names)) * 1e-9))
                out[i], want_n[s] = names[s], want_n[s] - 1
            break
        label = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        for i in rng.permutation(np.flatnonzero(left & y[:, label])):
            # a split still without this label comes first: every label in every split
            # whenever it has as many images as there are splits
            open_ = have[:, label] == 0
            wanted = np.where(open_, want_label[:, label], -np.inf) if open_.any() \
                else want_label[:, label]
            best = np.flatnonzero(wanted == wanted.max())
            if len(best) > 1:
                best = best[want_n[best] == want_n[best].max()]
            s = int(rng.choice(best))
            out[i], left[i] = names[s], False
            want_n[s] -= 1
            want_label[s, y[i]] -= 1
            have[s, y[i]] += 1
    return out.astype(str)


def make_split(images: ImageSet, fractions: dict, seed: int) -> np.ndarray:
    """The split of a run: from ``split_file`` when given, else stratified and seeded.

    Multi-label sets (labels (N, L)) are split by iterative stratification, so that every
    label keeps its share in every split; a label with no training image is an error.
    """
    if fractions.get("split_file"):
        split = read_split_file(fractions["split_file"], images.paths)
    elif images.labels.ndim == 2:
        split = iterative_split(images.labels, fractions, seed)
    else:
        return stratified_split(images.labels, fractions["train"], fractions["val"],
                                fractions["test"], seed)
    if images.labels.ndim == 2:
        unseen = [n for n, c in zip(images.class_names,
                                    images.labels[split == "train"].sum(axis=0), strict=True)
                  if c == 0]
        if unseen:
            raise ValueError(f"label(s) {', '.join(unseen)} never seen in training: no training "
                             "image shows them. Add images with these labels or drop them from "
                             "the labels CSV.")
    return split
