"""The download ladder, on fake archives with the real layouts (no network)."""

import hashlib
import zipfile

import numpy as np
import pytest
import tifffile

from earth_lib.data import index_folder
from earth_lib.data.datasets import REMOTE, RemoteDataset, download, fetch_dataset, prepare_raw
from earth_lib.errors import ArchiveError, ChecksumMismatchError, DatasetNotFoundError
from earth_lib.params import validate
from tests.conftest import write_png


def _fake_eurosat_zip(tmp_path):
    """A tiny archive with EuroSAT RGB's layout: 2750/<Class>/<Class>_<n>.jpg."""
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for c in ("Forest", "SeaLake"):
        for i in range(1, 4):
            write_png(src / "2750" / c / f"{c}_{i}.png",
                      rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    archive = tmp_path / "EuroSAT.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in src.rglob("*.png"):
            zf.write(p, p.relative_to(src))
    return archive


def _zip_as_remote(src, archive, base):
    """Zip a folder tree and describe it as a remote data set served from a file:// URL."""
    with zipfile.ZipFile(archive, "w") as zf:
        for p in src.rglob("*.tif"):
            zf.write(p, p.relative_to(src))
    return RemoteDataset(archive.as_uri(), archive.name,
                         hashlib.md5(archive.read_bytes()).hexdigest(), base, "tiny")


def _remote(archive, base="2750"):
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    return RemoteDataset(archive.as_uri(), "EuroSAT.zip", md5, base, "tiny")


def test_known_datasets_are_declared_with_checksums():
    assert set(REMOTE) == {"eurosat", "eurosat_ms", "ucmerced"}
    assert all(len(r.md5) == 32 and all(u.startswith("https://") for u in r.urls)
               for r in REMOTE.values())
    assert len(REMOTE["eurosat"].urls) >= 2  # the original server and a maintained mirror


def test_offline_without_archive_says_where_to_put_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"place it at .*archives/EuroSAT.zip"):
        fetch_dataset("eurosat", tmp_path / "raw", tmp_path / "archives")


def test_archive_placed_by_hand_is_verified_and_extracted(tmp_path):
    archive = _fake_eurosat_zip(tmp_path)
    (tmp_path / "archives").mkdir()
    archive.rename(tmp_path / "archives" / "EuroSAT.zip")
    remote = _remote(tmp_path / "archives" / "EuroSAT.zip")
    classes = fetch_dataset("eurosat", tmp_path / "raw", tmp_path / "archives", remote=remote)
    assert index_folder(classes).counts() == {"Forest": 3, "SeaLake": 3}


def test_download_verify_extract_then_no_op(tmp_path):
    archive = _fake_eurosat_zip(tmp_path)
    remote = _remote(archive)
    out = fetch_dataset("eurosat", tmp_path / "raw", tmp_path / "arch", allow_download=True,
                        remote=remote)
    assert (tmp_path / "arch" / "EuroSAT.zip").is_file() and out.name == "2750"
    archive.unlink()  # the source is gone: a second call must not need it
    (tmp_path / "arch" / "EuroSAT.zip").unlink()
    assert fetch_dataset("eurosat", tmp_path / "raw", tmp_path / "arch", remote=remote) == out


def test_partial_download_is_resumed(tmp_path):
    archive = _fake_eurosat_zip(tmp_path)
    data = archive.read_bytes()
    dest = tmp_path / "dl" / "EuroSAT.zip"
    dest.parent.mkdir()
    (tmp_path / "dl" / "EuroSAT.zip.part").write_bytes(data[:100])
    download(archive.as_uri(), dest)  # file:// ignores ranges: starts again, still correct
    assert dest.read_bytes() == data
    assert not (tmp_path / "dl" / "EuroSAT.zip.part").exists()


def test_checksum_mismatch_is_an_error(tmp_path):
    archive = _fake_eurosat_zip(tmp_path)
    bad = RemoteDataset(archive.as_uri(), "EuroSAT.zip", "0" * 32, "2750", "tiny")
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch") as err:
        fetch_dataset("eurosat", tmp_path / "raw", tmp_path / "arch", True, remote=bad)
    assert not isinstance(err.value, DatasetNotFoundError)  # the file is there, but wrong
    assert not (tmp_path / "raw" / "2750").exists()


def test_corrupt_archive_is_an_error(tmp_path):
    bad = tmp_path / "EuroSAT.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ArchiveError, match="not a valid zip"):
        fetch_dataset("eurosat", tmp_path / "raw", tmp_path / "x", True, remote=_remote(bad))


def test_unreachable_url_keeps_message_helpful(tmp_path):
    remote = RemoteDataset((tmp_path / "missing.zip").as_uri(), "EuroSAT.zip", "0" * 32, "2750",
                           "tiny")
    with pytest.raises(DatasetNotFoundError, match="Offline: download it elsewhere"):
        fetch_dataset("eurosat", tmp_path / "raw", tmp_path / "arch", True, remote=remote)


def test_a_mirror_serves_when_the_first_address_fails(tmp_path, capsys):
    archive = _fake_eurosat_zip(tmp_path)
    good = _remote(archive)
    gone = (tmp_path / "gone.zip").as_uri()
    remote = RemoteDataset(gone, good.filename, good.md5, good.base_dir, "tiny",
                           mirrors=(good.url,))
    out = fetch_dataset("eurosat", tmp_path / "raw", tmp_path / "arch", True, remote=remote)
    assert index_folder(out).counts() == {"Forest": 3, "SeaLake": 3}
    assert f"{gone} failed" in capsys.readouterr().out
    both = RemoteDataset(gone, good.filename, good.md5, good.base_dir, "tiny",
                         mirrors=((tmp_path / "also-gone.zip").as_uri(),))
    with pytest.raises(DatasetNotFoundError, match=r"gone\.zip .*; nor from .*also-gone\.zip"):
        fetch_dataset("eurosat", tmp_path / "raw2", tmp_path / "arch2", True, remote=both)


def test_eurosat_ms_layout_with_13_band_tiffs(tmp_path):
    base = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for c in ("Forest", "River"):
        (src / base / c).mkdir(parents=True)
        for i in range(1, 3):
            tifffile.imwrite(src / base / c / f"{c}_{i}.tif",
                             rng.integers(0, 5000, (64, 64, 13), dtype=np.uint16),
                             photometric="minisblack", planarconfig="contig")
    remote = _zip_as_remote(src, tmp_path / "EuroSATallBands.zip", base)
    classes = fetch_dataset("eurosat_ms", tmp_path / "raw", tmp_path / "a", True, remote=remote)
    assert index_folder(classes).counts() == {"Forest": 2, "River": 2}


def test_prepare_raw_for_folder_and_synthetic(tmp_path):
    p = validate({"data": {"dataset": "folder", "raw_dir": str(tmp_path / "none")}})
    with pytest.raises(DatasetNotFoundError, match="data.raw_dir"):
        prepare_raw(p)
    p = validate({"data": {"raw_dir": str(tmp_path / "syn"), "synthetic_images_per_class": 2,
                           "synthetic_classes": 2}})
    assert index_folder(prepare_raw(p, progress=False)).counts() == {"water": 2, "forest": 2}


def test_ucmerced_layout_with_off_size_tiffs_fetches_and_preprocesses(tmp_path):
    """UC Merced's layout (UCMerced_LandUse/Images/<class>/<class>NN.tif), some not 256 px."""
    from earth_lib.preprocessing import preprocess_folder

    base = "UCMerced_LandUse/Images"
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for c in ("airplane", "beach"):
        (src / base / c).mkdir(parents=True)
        for i, side in enumerate((256, 256, 253)):
            tifffile.imwrite(src / base / c / f"{c}{i:02d}.tif",
                             rng.integers(0, 255, (side, 256, 3), dtype=np.uint8))
    remote = _zip_as_remote(src, tmp_path / "UCMerced_LandUse.zip", base)
    classes = fetch_dataset("ucmerced", tmp_path / "raw", tmp_path / "a", True, remote=remote)
    settings = validate({"preprocess": {"image_size": 32, "clahe_tiles": 4}})["preprocess"]
    res = preprocess_folder(classes, tmp_path / "p", settings, progress=False)
    assert res.written == {"airplane": 3, "beach": 3} and not res.skipped


def test_a_local_copy_wins_when_present(tmp_path):
    copy = tmp_path / "shared"
    (copy / "a").mkdir(parents=True)
    p = validate({"data": {"dataset": "eurosat", "raw_dir": str(tmp_path / "raw"),
                           "local_copy": str(copy)}})
    assert prepare_raw(p) == copy
    p = validate({"data": {"dataset": "eurosat", "raw_dir": str(tmp_path / "raw"),
                           "archive_dir": str(tmp_path / "arch"),
                           "local_copy": str(tmp_path / "absent")}})
    with pytest.raises(DatasetNotFoundError, match="eurosat not found"):
        prepare_raw(p)
