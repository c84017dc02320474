"""Images as arrays: loading a processed folder, in memory or as one file on disk, by rows."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import mmap
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earth_lib.data.folders import DatasetIndex, index_folder
from earth_lib.errors import (
    DEFAULT_BAD_FILE_POLICY,
    BadImageError,
    DatasetNotFoundError,
    skip_or_raise,
)
from earth_lib.images import read_image
from earth_lib.io import atomic_write_json, temporary_file
from earth_lib.progress import progress_bar

#: Where ``load_images(in_memory=False)`` keeps its uint8 array file, inside the processed folder.
CACHE_DIR = ".arrays"
#: Images per chunk when an array is walked piece by piece (memory stays bounded).
CHUNK = 1024


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
def atomic_npy(path: Path, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
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
        with atomic_npy(data, (len(index.files), *first[0].shape)) as out:
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


