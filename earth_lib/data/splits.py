"""Splits: train/validation/test assignments, split arrays, split files and leak checks."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from earth_lib.data.arrays import ImageSet, Rows, atomic_npy, chunks, is_on_disk, read_rows
from earth_lib.io import atomic_write_csv

SPLITS = ("train", "val", "test")


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
            with atomic_npy(path, (len(idx), *images.shape[1:])) as arr:
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
    labels: np.ndarray, train: float, val: float, test: float, seed: int,
    class_names: list[str] | None = None,
) -> np.ndarray:
    """Assign each sample to train/val/test, stratified by class and fixed by the seed.

    A class of fewer than 3 images cannot be in all three splits: an error names it
    (``class_names``: the names to use; else its index).
    """
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    small = [i for i in np.flatnonzero(counts) if counts[i] < 3]
    if small:
        named = ", ".join(f"{class_names[i] if class_names else f'class index {i}'} "
                          f"({counts[i]})" for i in small)
        raise ValueError(f"Each class needs at least 3 images for a train/val/test split: "
                         f"{named}. Add images to it, or move it out of the folder.")
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


def iterative_split(y: np.ndarray, fractions: dict[str, float], seed: int) -> np.ndarray:
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
                                fractions["test"], seed, list(images.class_names))
    if images.labels.ndim == 2:
        unseen = [n for n, c in zip(images.class_names,
                                    images.labels[split == "train"].sum(axis=0), strict=True)
                  if c == 0]
        if unseen:
            raise ValueError(f"label(s) {', '.join(unseen)} never seen in training: no training "
                             "image shows them. Add images with these labels or drop them from "
                             "the labels CSV.")
    return split
