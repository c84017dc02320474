import numpy as np
import pytest
import tifffile

from earth_lib.errors import BadImageError
from earth_lib.images import atomic_write_image, read_image
from earth_lib.io import atomic_write_json
from tests.conftest import write_png


def test_reads_rgb_png_as_hwc(tmp_path):
    arr = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    img = read_image(write_png(tmp_path / "a.png", arr))
    assert img.shape == (10, 12, 3) and np.array_equal(img, arr)


def test_gray_gets_a_band_axis(tmp_path):
    img = read_image(write_png(tmp_path / "g.png", np.zeros((8, 8), np.uint8)))
    assert img.shape == (8, 8, 1)


def test_rgba_alpha_is_dropped(tmp_path):
    img = read_image(write_png(tmp_path / "a.png", np.zeros((8, 8, 4), np.uint8)))
    assert img.shape == (8, 8, 3)


def test_multiband_uint16_tiff_band_first_or_last(tmp_path):
    arr = np.random.default_rng(0).integers(0, 4000, (16, 16, 13), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "last.tif", arr, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "first.tif", np.moveaxis(arr, -1, 0), photometric="minisblack")
    for name in ("last.tif", "first.tif"):
        img = read_image(tmp_path / name)
        assert img.shape == (16, 16, 13) and img.dtype == np.uint16
        assert np.array_equal(img, arr)


@pytest.mark.parametrize("name, content, match", [
    ("empty.png", b"", "empty file"),
    ("fake.jpg", b"this is not a jpeg", "cannot read image"),
    ("fake.tif", b"II*\x00garbage", "cannot read image"),
], ids=["zero-byte", "not-jpeg", "bad-tiff"])
def test_bad_files_raise_naming_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadImageError, match=match) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_truncated_jpeg_is_an_error(tmp_path):
    from PIL import Image

    arr = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "ok.jpg", quality=95)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_truncated_tiff_is_an_error(tmp_path):
    arr = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "ok.tif", arr)
    data = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 3])
    with pytest.raises(BadImageError, match="cut.tif"):
        read_image(tmp_path / "cut.tif")


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    atomic_write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    atomic_write_image(tmp_path / "y.tif", np.zeros((4, 4, 5), np.uint8))
    atomic_write_json(tmp_path / "m.json", {"a": np.float32(1.5)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "x.png", "y.tif"]
    assert read_image(tmp_path / "y.tif").shape == (4, 4, 5)


def test_non_ascii_file_names(tmp_path):
    path = write_png(tmp_path / "forêt_été_森林.png", np.zeros((4, 4, 3), np.uint8))
    assert read_image(path).shape == (4, 4, 3)


def test_written_files_get_the_mode_the_umask_gives(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "m.json", {"a": 1})
        assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_write_json(tmp_path / "p.json", {"a": 1})
        assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
