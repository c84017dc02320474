import os

import numpy as np
import pytest

from earth_lib.data import (
    SPLITS,
    Split,
    cross_split_duplicates,
    describe_skipped,
    index_folder,
    is_on_disk,
    load_images,
    read_split_file,
    split_arrays,
    split_sizes,
    stratified_split,
    subsample,
)
from earth_lib.errors import DatasetNotFoundError
from tests.conftest import write_png


def _folder(tmp_path, classes=("a", "b"), n=4, size=8, bands=3):
    rng = np.random.default_rng(0)
    for c in classes:
        for i in range(n):
            shape = (size, size, bands) if bands > 1 else (size, size)
            write_png(tmp_path / c / f"{c}{i}.png", rng.integers(0, 255, shape, dtype=np.uint8))
    return tmp_path


def test_index_lists_classes_and_skips_non_images(tmp_path):
    root = _folder(tmp_path)
    (root / "a" / "notes.txt").write_text("x")
    (root / "a" / ".DS_Store").write_bytes(b"\0")
    (root / "b" / "Thumbs.db").write_bytes(b"\0")
    (root / "empty").mkdir()
    idx = index_folder(root)
    assert idx.classes == ["a", "b"]
    assert idx.counts() == {"a": 4, "b": 4}
    reasons = {p.split("/")[-1]: r for p, r in idx.skipped}
    assert set(reasons) == {"notes.txt", ".DS_Store", "Thumbs.db", "empty"}
    assert "empty class folder" in reasons["empty"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="Data folder not found"):
        index_folder(tmp_path / "nope")


def test_one_class_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="at least 2"):
        index_folder(_folder(tmp_path, classes=("only",)))


def test_images_without_class_folders_are_told_the_layout(tmp_path):
    flat = _folder(tmp_path / "x", classes=("forest",))
    for f in (flat / "forest").iterdir():
        f.rename(flat / f.name)
    (flat / "forest").rmdir()
    with pytest.raises(DatasetNotFoundError, match=r"(?s)0 class folder.*4 image\(s\) lie "
                       r"directly in .*x; the layout expected is one sub-folder per class.*"
                       r"x/<class>/<image>"):
        index_folder(flat)


def test_load_images_stacks_uint8(tmp_path):
    ds = load_images(_folder(tmp_path), progress=False)
    assert ds.images.shape == (8, 8, 8, 3) and ds.images.dtype == np.uint8
    assert ds.class_names == ["a", "b"] and list(np.bincount(ds.labels)) == [4, 4]


def test_processed_folder_of_another_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"image is 8x8 px but preprocess.image_size is 16"):
        load_images(_folder(tmp_path), expected_size=16, progress=False)


def test_mixed_band_counts_are_refused_naming_the_file(tmp_path):
    root = _folder(tmp_path)
    write_png(root / "b" / "gray.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"gray.png: band count differs"):
        load_images(root, progress=False)


def test_bad_file_skipped_or_error(tmp_path):
    root = _folder(tmp_path)
    (root / "a" / "broken.png").write_bytes(b"")
    ds = load_images(root, progress=False)
    assert len(ds.labels) == 8 and any("broken.png" in p for p, _ in ds.skipped)
    with pytest.raises(ValueError, match="broken.png"):
        load_images(root, on_bad_file="error", progress=False)


def test_unknown_class_is_named(tmp_path):
    with pytest.raises(ValueError, match="class folder 'b' is not one of"):
        load_images(_folder(tmp_path), class_names=["a", "c"], progress=False)


def test_split_is_stratified_seeded_and_complete():
    labels = np.repeat(np.arange(4), 50)
    s1 = stratified_split(labels, 0.7, 0.15, 0.15, seed=3)
    s2 = stratified_split(labels, 0.7, 0.15, 0.15, seed=3)
    s3 = stratified_split(labels, 0.7, 0.15, 0.15, seed=4)
    assert np.array_equal(s1, s2) and not np.array_equal(s1, s3)
    for name, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        per_class = np.bincount(labels[s1 == name], minlength=4)
        assert np.all(np.abs(per_class - frac * 50) <= 1), (name, per_class)


def test_split_needs_three_per_class_and_names_each_short_one():
    with pytest.raises(ValueError, match=r"at least 3 images .*: class index 1 \(2\)\."):
        stratified_split(np.array([0, 0, 0, 1, 1]), 0.7, 0.15, 0.15, seed=0)
    with pytest.raises(ValueError, match=r": River \(2\), Lake \(1\)\. Add images"):
        stratified_split(np.array([0, 0, 0, 1, 1, 2]), 0.7, 0.15, 0.15, seed=0,
                         class_names=["Forest", "River", "Lake"])


def test_user_split_file_is_honoured(tmp_path):
    paths = [str(tmp_path / "a" / "x1.png"), str(tmp_path / "b" / "x2.png")]
    f = tmp_path / "split.csv"
    f.write_text("path,split\nraw/a/x1.jpg,test\nraw/b/x2.jpg,train\n")
    assert list(read_split_file(f, paths)) == ["test", "train"]
    f.write_text("path,split\nraw/a/x1.jpg,test\n")
    with pytest.raises(ValueError, match="x2.png is not listed"):
        read_split_file(f, paths)


def test_duplicates_across_splits_are_found(tmp_path):
    root = _folder(tmp_path)
    (root / "b" / "copy.png").write_bytes((root / "a" / "a0.png").read_bytes())
    ds = load_images(root, progress=False)
    split = np.array(["train"] * len(ds.paths))
    split[[i for i, p in enumerate(ds.paths) if p.endswith("copy.png")]] = "test"
    groups = cross_split_duplicates(ds.paths, split)
    assert len(groups) == 1 and len(groups[0]) == 2
    assert cross_split_duplicates(ds.paths, np.array(["train"] * len(ds.paths))) == []


def test_project_metadata_files_are_not_reported_as_skipped(tmp_path):
    root = _folder(tmp_path)
    (root / "preprocessing.json").write_text("{}")
    (root / "dataset.json").write_text("{}")
    (root / "readme.txt").write_text("x")
    assert [p.rsplit("/", 1)[-1] for p, _ in index_folder(root).skipped] == ["readme.txt"]


def test_describe_skipped_shows_the_first_and_counts_the_rest():
    skipped = [(f"/d/{i}.png", f"/d/{i}.png: empty file") for i in range(5)] + [("x.jpg", "bad")]
    text = describe_skipped(skipped, limit=3)
    assert text.splitlines() == [" - /d/0.png: empty file", " - /d/1.png: empty file",
                                 " - /d/2.png: empty file", " ... and 3 more"]
    assert describe_skipped(skipped[-1:]) == " - x.jpg: bad"


def test_split_arrays_sizes_and_subsample():
    x, y = np.arange(20).reshape(20, 1), np.arange(20) % 2
    split = np.array(["train"] * 12 + ["val"] * 4 + ["test"] * 4)
    s = split_arrays(x, y, split)
    assert split_sizes(s) == {"train": 12, "val": 4, "test": 4}
    sub = subsample(s["train"], 5, seed=0)
    assert len(sub.y) == 5 and set(sub.x[:, 0]) <= set(range(12))
    assert list(sub.x[:, 0]) == sorted(sub.x[:, 0])  # order kept
    assert subsample(s["train"], 5, seed=0).x.tolist() == sub.x.tolist()
    assert subsample(s["train"], None, seed=0) is s["train"]
    assert isinstance(sub, Split)


def test_in_memory_splits_share_the_images_and_read_like_arrays():
    import pickle

    from earth_lib.data import Rows

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (30, 4, 4, 3), dtype=np.uint8), np.arange(30) % 3
    split = rng.permutation(np.array(["train"] * 18 + ["val"] * 6 + ["test"] * 6))
    s = split_arrays(x, y, split)
    for name in SPLITS:
        v, want = s[name].x, x[split == name]
        assert isinstance(v, Rows) and v.base is x  # a view: the images are not copied
        assert v.shape == want.shape and v.dtype == np.uint8 and v.ndim == 4 and len(v) == len(want)
        np.testing.assert_array_equal(np.asarray(v), want)
        np.testing.assert_array_equal(v[2:5], want[2:5])
        np.testing.assert_array_equal(v[[4, 0]], want[[4, 0]])
        np.testing.assert_array_equal(v[-1], want[-1])
        np.testing.assert_array_equal(v[1:3, :, 0, 2], want[1:3, :, 0, 2])
        np.testing.assert_array_equal(v[..., 1], want[..., 1])
        np.testing.assert_array_equal(v[len(v) - 1, 0], want[-1, 0])
        np.testing.assert_array_equal(v[np.arange(len(v)) % 2 == 0], want[::2])
        assert np.asarray(v, dtype=np.float32).dtype == np.float32
        # sent to a worker process as the plain array
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(v)), want)


# --- Selections: a committed list of files, or a seeded per-class cap -------------------

def _sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_list_selects_and_checks_the_listed_images(tmp_path):
    from earth_lib.data import select_files

    root = _folder(tmp_path / "raw", n=4)
    listed = tmp_path / "list.txt"
    listed.write_text("# two of a, one of b\n"
                      f"{_sha(root / 'a' / 'a2.png')}  ./a/a2.png\n"
                      f"{_sha(root / 'a' / 'a0.png')} *a/a0.png\n\n"
                      "b/b3.png\n")
    sel = select_files(index_folder(root), file_list=listed)
    assert [f.relative_to(root).as_posix() for f, _ in sel.files] == ["a/a0.png", "a/a2.png",
                                                                        "b/b3.png"]
    assert sel.counts() == {"a": 2, "b": 1}
    listed.write_text("b/b3.png\nb/b9.png\n")
    with pytest.raises(DatasetNotFoundError, match=r"1 of the 2 images of .*list.txt are not "
                                                   r"there \(first: b/b9.png\)"):
        select_files(index_folder(root), file_list=listed)
    listed.write_text(f"{'0' * 64}  a/a1.png\n")
    with pytest.raises(ValueError, match=r"1 image\(s\) differ from the checksums .*a/a1.png"):
        select_files(index_folder(root), file_list=listed)
    listed.write_text("../outside/x.png\n")
    with pytest.raises(ValueError, match=r"list.txt:1: '../outside/x.png' is not a <class>/<file>"):
        select_files(index_folder(root), file_list=listed)


def test_a_per_class_cap_is_a_seeded_choice(tmp_path):
    from earth_lib.data import select_files

    root = _folder(tmp_path, classes=("a", "b", "c"), n=6)
    index = index_folder(root)
    one = select_files(index, max_per_class=3, seed=1)
    assert one.counts() == {"a": 3, "b": 3, "c": 3}
    assert one.files == select_files(index, max_per_class=3, seed=1).files
    assert any(select_files(index, max_per_class=3, seed=s).files != one.files
               for s in range(2, 6))
    assert select_files(index, max_per_class=10).files == index.files


def test_images_read_from_disk_equal_the_loaded_ones_and_are_reused(tmp_path):
    """in_memory=False: one uint8 file, memory-mapped; the same arrays and the same splits."""
    root = _folder(tmp_path, n=6)
    (root / "a" / "broken.png").write_bytes(b"")
    ram = load_images(root, progress=False)
    disk = load_images(root, progress=False, in_memory=False)
    assert is_on_disk(disk.images) and not is_on_disk(ram.images)
    np.testing.assert_array_equal(disk.images, ram.images)
    assert disk.paths == ram.paths and list(disk.labels) == list(ram.labels)
    assert [p for p, _ in disk.skipped] == [p for p, _ in ram.skipped]
    files = sorted((root / ".arrays").glob("images-*"))
    again = load_images(root, progress=False, in_memory=False)
    assert sorted((root / ".arrays").glob("images-*")) == files  # reused, not rewritten
    np.testing.assert_array_equal(again.images, ram.images)
    split = stratified_split(ram.labels, 0.5, 0.25, 0.25, seed=0)
    on_disk, in_ram = split_arrays(disk.images, disk.labels, split), \
        split_arrays(ram.images, ram.labels, split)
    for name in ("train", "val", "test"):
        assert is_on_disk(on_disk[name].x)
        np.testing.assert_array_equal(on_disk[name].x, in_ram[name].x)
        np.testing.assert_array_equal(on_disk[name].y, in_ram[name].y)
    assert not is_on_disk(subsample(on_disk["train"], 2, seed=0).x)  # a copy, in memory


def _resident_mb(path) -> float:
    """This process's resident memory in the mappings of one file (Linux: /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        first = line.split()[0]
        if "-" in first and not first.endswith(":"):  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and first == "Rss:":
            total += int(line.split()[1])
    return total / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux's smaps")
def test_rows_read_from_disk_do_not_stay_resident(tmp_path):
    from earth_lib.data import read_rows

    path = tmp_path / "images.npy"
    out = np.lib.format.open_memmap(path, "w+", np.uint8, (64, 256, 256, 3))  # 12 MB
    out[:] = np.arange(64, dtype=np.uint8)[:, None, None, None]
    out.flush()
    del out
    images = np.load(path, mmap_mode="r")
    rows = [read_rows(images, slice(i, i + 8)) for i in range(0, 64, 8)]
    assert _resident_mb(path) < 1  # read whole, 8 rows at a time: none of it resident
    assert [int(r[0, 0, 0, 0]) for r in rows] == list(range(0, 64, 8))  # the rows themselves
    np.testing.assert_array_equal(read_rows(images, [5, 2])[:, 0, 0, 0], [5, 2])
    _ = np.asarray(images[:32]).sum()  # read directly, the pages stay: the check can fail
    assert _resident_mb(path) > 5


def test_images_on_disk_follow_the_folder_and_fail_cleanly(tmp_path):
    """A changed folder gets a new array file (the old one removed); a bad file with
    on_bad_file=error raises, naming it, and leaves no partial array file behind."""
    root = _folder(tmp_path, n=3)
    load_images(root, progress=False, in_memory=False)
    before = {p.name for p in (root / ".arrays").iterdir()}
    write_png(root / "b" / "b9.png", np.full((8, 8, 3), 7, np.uint8))
    ds = load_images(root, progress=False, in_memory=False)
    assert len(ds.labels) == 7 and not before & {p.name for p in (root / ".arrays").iterdir()}
    np.testing.assert_array_equal(ds.images[ds.paths.index(str(root / "b" / "b9.png"))], 7)
    (root / "a" / "broken.png").write_bytes(b"")
    with pytest.raises(ValueError, match="broken.png"):
        load_images(root, on_bad_file="error", progress=False, in_memory=False)
    assert not list((root / ".arrays").glob(".*.tmp"))
