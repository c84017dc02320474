"""Data: class folders -> arrays -> splits, one module each, in the order data flows.

``folders`` (what a folder of class sub-folders holds, file lists, selections), ``arrays``
(a processed folder as images in memory or one file on disk, read by rows) and ``splits``
(train/validation/test assignments, split arrays, split files, leak checks); this package
exports those three. Beside them: ``synthetic`` (the embedded data set, generated from the
seed), ``datasets`` (public data sets: download, checksum, extraction) and ``multilabel``
(labels from a CSV, mosaics of single-label tiles).
"""

from earth_lib.data.arrays import (
    CACHE_DIR,
    CHUNK,
    ImageSet,
    Rows,
    atomic_npy,
    chunks,
    is_on_disk,
    load_images,
    read_rows,
    same_pixels_as_64px,
)
from earth_lib.data.folders import (
    METADATA_FILES,
    DatasetIndex,
    describe_skipped,
    index_folder,
    read_file_list,
    select_files,
)
from earth_lib.data.splits import (
    SPLITS,
    Split,
    cross_split_duplicates,
    file_hashes,
    iterative_split,
    label_text,
    make_split,
    read_split_file,
    save_split,
    split_arrays,
    split_sizes,
    stratified_order,
    stratified_split,
    subsample,
)

__all__ = [
    "CACHE_DIR",
    "CHUNK",
    "DatasetIndex",
    "ImageSet",
    "METADATA_FILES",
    "Rows",
    "SPLITS",
    "Split",
    "atomic_npy",
    "chunks",
    "cross_split_duplicates",
    "describe_skipped",
    "file_hashes",
    "index_folder",
    "is_on_disk",
    "iterative_split",
    "label_text",
    "load_images",
    "make_split",
    "read_file_list",
    "read_rows",
    "read_split_file",
    "same_pixels_as_64px",
    "save_split",
    "select_files",
    "split_arrays",
    "split_sizes",
    "stratified_order",
    "stratified_split",
    "subsample",
]
