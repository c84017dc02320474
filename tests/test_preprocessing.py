import json
import os

import numpy as np
import pytest
import tifffile

from earth_lib.errors import BadImageError
from earth_lib.images import read_image
from earth_lib.params import validate
from earth_lib.preprocessing import (
    PREPROCESSING_FILE,
    apply_clahe,
    apply_clahe_opencv,
    enhance,
    preprocess_folder,
    to_unit_range,
)
from tests.conftest import write_png

SETTINGS = validate({"preprocess": {"image_size": 16, "clahe_tiles": 2}})["preprocess"]


def test_enhance_rgb_gives_uint8_square():
    img = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    out = enhance(img, image_size=16, clahe_tiles=2)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_grayscale_option_gives_one_band():
    img = np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    assert enhance(img, image_size=8, grayscale=True, clahe_tiles=2).shape == (8, 8, 1)


@pytest.mark.parametrize("apply_clahe", [apply_clahe, apply_clahe_opencv])
def test_clahe_on_colour_keeps_colour(apply_clahe):
    rng = np.random.default_rng(0)
    img = np.zeros((32, 32, 3), np.float32)
    img[..., 0] = 0.3 + 0.2 * rng.random((32, 32))  # a reddish, low-contrast scene
    img[..., 1] = img[..., 0] * 0.4
    img[..., 2] = img[..., 0] * 0.3
    out = apply_clahe(img, "luminance", 0.02, 4)
    assert out.shape == img.shape
    assert np.all(out[..., 0].mean() > out[..., 1:].mean(axis=(0, 1)))  # still red
    assert out[..., 0].std() > img[..., 0].std()  # more contrast


@pytest.mark.parametrize("apply_clahe", [apply_clahe, apply_clahe_opencv])
def test_clahe_on_gray_and_multiband_is_per_band(apply_clahe):
    rng = np.random.default_rng(0)
    gray = 0.4 + 0.1 * rng.random((32, 32, 1)).astype(np.float32)
    assert apply_clahe(gray, "luminance", 0.02, 4).std() > gray.std()
    ms = 0.4 + 0.1 * rng.random((32, 32, 5)).astype(np.float32)
    out = apply_clahe(ms, "per_band", 0.02, 4)
    assert out.shape == (32, 32, 5) and np.all(out.std(axis=(0, 1)) > ms.std(axis=(0, 1)))


@pytest.mark.parametrize(("bands", "mode", "grayscale", "size"), [
    (3, "luminance", False, 48), (3, "luminance", True, 128), (5, "per_band", False, 48),
    (6, "per_band", False, 128)])
def test_the_opencv_engine_makes_nearly_the_skimage_images(bands, mode, grayscale, size):
    # the same steps by other implementations: close, not identical (measured: mean
    # difference 3-15 levels of 255, the most where CLAHE tiles are small)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96] / 96
    scene = 0.3 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
    img = np.stack([scene * (0.6 + 0.1 * b) + 0.05 * rng.random((96, 96))
                    for b in range(bands)], axis=-1)
    img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    a, b = (enhance(img, size, grayscale, True, mode, 0.01, 4, engine=e).astype(float)
            for e in ("skimage", "opencv"))
    assert a.shape == b.shape == (size, size, 1 if grayscale else bands)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.93
    assert np.abs(a - b).mean() < 20
    assert np.abs(a.mean() - b.mean()) < 8


def test_a_folder_made_before_the_engine_setting_is_reused(synthetic_raw, tmp_path):
    preprocess_folder(synthetic_raw, tmp_path / "p", SETTINGS, progress=False)
    stamp = tmp_path / "p" / PREPROCESSING_FILE
    old = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({k: v for k, v in old.items() if k != "engine"}))
    res = preprocess_folder(synthetic_raw, tmp_path / "p", SETTINGS, progress=False)
    assert sum(res.already_done.values()) == 18  # skimage: what made it
    with pytest.raises(ValueError, match=r"other settings \(engine"):
        preprocess_folder(synthetic_raw, tmp_path / "p", dict(SETTINGS, engine="opencv"),
                          progress=False)


def test_16bit_scaling_is_explicit():
    img = np.full((8, 8, 2), 5000, np.uint16)
    img[0, 0] = 1000
    assert to_unit_range(img, "fixed", 10000).max() == pytest.approx(0.5)
    stretched = to_unit_range(np.arange(64, dtype=np.uint16).reshape(8, 8, 1) * 100, "percentile")
    assert stretched.min() == 0 and stretched.max() == 1


def test_multiband_uint16_tiff_is_processed_to_tiff(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(2):
            (tmp_path / "raw" / c).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(tmp_path / "raw" / c / f"{i}.tif",
                             rng.integers(0, 3000, (20, 20, 13), dtype=np.uint16),
                             photometric="minisblack", planarconfig="contig")
    res = preprocess_folder(tmp_path / "raw", tmp_path / "out", SETTINGS, progress=False)
    assert sum(res.written.values()) == 4
    out = read_image(tmp_path / "out" / "a" / "0.tif")
    assert out.shape == (16, 16, 13) and out.dtype == np.uint8


def test_writes_per_class_and_skips_done_files(synthetic_raw, tmp_path):
    out = tmp_path / "proc"
    res = preprocess_folder(synthetic_raw, out, SETTINGS, progress=False)
    assert res.table()[0]["written"] == 6
    assert len(list(out.rglob("*.png"))) == 18
    again = preprocess_folder(synthetic_raw, out, SETTINGS, progress=False)
    assert sum(again.written.values()) == 0 and sum(again.already_done.values()) == 18
    assert json.loads((out / "preprocessing.json").read_text())["image_size"] == 16


def test_a_source_changed_after_processing_is_redone(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(2):
            write_png(tmp_path / "raw" / c / f"{i}.png", rng.integers(0, 255, (20, 20, 3),
                                                                       dtype=np.uint8))
    out = tmp_path / "proc"
    preprocess_folder(tmp_path / "raw", out, SETTINGS, progress=False)
    before = (out / "a" / "0.png").read_bytes()
    changed = tmp_path / "raw" / "a" / "0.png"
    write_png(changed, np.zeros((20, 20, 3), np.uint8))  # the set was regenerated
    later = (out / "a" / "0.png").stat().st_mtime + 5
    os.utime(changed, (later, later))
    again = preprocess_folder(tmp_path / "raw", out, SETTINGS, progress=False)
    assert sum(again.written.values()) == 1 and sum(again.already_done.values()) == 3
    assert (out / "a" / "0.png").read_bytes() != before


def test_interrupted_run_is_completed(synthetic_raw, tmp_path):
    out = tmp_path / "proc"
    preprocess_folder(synthetic_raw, out, SETTINGS, progress=False)
    missing = sorted(out.rglob("*.png"))[:5]
    for p in missing:
        p.unlink()
    (out / "water" / ".water_0001.png.abc.tmp").write_bytes(b"half")  # a killed write
    res = preprocess_folder(synthetic_raw, out, SETTINGS, progress=False)
    assert sum(res.written.values()) == 5
    assert all(p.exists() for p in missing)


def test_other_settings_on_same_folder_is_refused(synthetic_raw, tmp_path):
    preprocess_folder(synthetic_raw, tmp_path / "p", SETTINGS, progress=False)
    other = dict(SETTINGS, image_size=12)
    with pytest.raises(ValueError, match=r"other settings \(image_size"):
        preprocess_folder(synthetic_raw, tmp_path / "p", other, progress=False)
    res = preprocess_folder(synthetic_raw, tmp_path / "p", other, overwrite=True, progress=False)
    assert sum(res.written.values()) == 18


def test_bad_files_are_listed_or_raise(synthetic_raw, tmp_path):
    (synthetic_raw / "water" / "zero.png").write_bytes(b"")
    (synthetic_raw / "water" / "readme.txt").write_text("notes")
    res = preprocess_folder(synthetic_raw, tmp_path / "p", SETTINGS, progress=False)
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in res.skipped}
    assert "empty file" in reasons["zero.png"] and "not an image" in reasons["readme.txt"]
    assert res.failed["water"] == 1 and res.written["water"] == 6
    with pytest.raises(BadImageError, match="zero.png"):
        preprocess_folder(synthetic_raw, tmp_path / "q", SETTINGS, on_bad_file="error",
                          progress=False)


def test_mixed_gray_rgb_large_and_non_ascii_inputs(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    write_png(raw / "a" / "gray.png", rng.integers(0, 255, (30, 30), dtype=np.uint8))
    write_png(raw / "a" / "été.png", rng.integers(0, 255, (30, 30, 3), dtype=np.uint8))
    write_png(raw / "b" / "huge.png", rng.integers(0, 255, (1200, 900, 3), dtype=np.uint8))
    write_png(raw / "b" / "small.png", rng.integers(0, 255, (30, 30, 3), dtype=np.uint8))
    res = preprocess_folder(raw, tmp_path / "p", dict(SETTINGS, grayscale=True), progress=False)
    assert sum(res.written.values()) == 4 and not res.skipped
    shapes = {read_image(p).shape for p in (tmp_path / "p").rglob("*.png")}
    assert shapes == {(16, 16, 1)}


def test_parallel_workers_give_the_same_images(synthetic_raw, tmp_path):
    preprocess_folder(synthetic_raw, tmp_path / "one", SETTINGS, workers=1, progress=False)
    preprocess_folder(synthetic_raw, tmp_path / "two", SETTINGS, workers=2, progress=False)
    for p in (tmp_path / "one").rglob("*.png"):
        assert p.read_bytes() == (tmp_path / "two" / p.relative_to(tmp_path / "one")).read_bytes()


def test_killed_run_leaves_no_half_image_and_rerun_completes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from earth_lib.data.synthetic import generate_synthetic_dataset

    raw = tmp_path / "raw"
    generate_synthetic_dataset(raw, 150, 96, 2, seed=0, progress=False)
    code = ("import sys; from earth_lib.params import validate; "
            "from earth_lib.preprocessing import preprocess_folder; "
            "s = validate({'preprocess': {'image_size': 64}})['preprocess']; "
            "preprocess_folder(sys.argv[1], sys.argv[2], s, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(raw), str(tmp_path / "p")])
    deadline = time.time() + 60
    while time.time() < deadline and len(list((tmp_path / "p").rglob("*.png"))) < 20:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list((tmp_path / "p").rglob("*.png"))
    assert 0 < len(done) < 300, "the run should have been killed mid-way"
    for p in done:
        assert read_image(p).shape == (64, 64, 3)  # every visible image is whole
    settings = validate({"preprocess": {"image_size": 64}})["preprocess"]
    res = preprocess_folder(raw, tmp_path / "p", settings, progress=False)
    assert sum(res.already_done.values()) == len(done)
    assert len(list((tmp_path / "p").rglob("*.png"))) == 300
    assert not list((tmp_path / "p").rglob(".*.tmp"))


def test_gray_in_colour_set_is_repeated_and_foreign_band_count_listed(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    for i in range(3):
        write_png(raw / "a" / f"rgb{i}.png", rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    write_png(raw / "a" / "gray.png", rng.integers(0, 255, (20, 20), dtype=np.uint8))
    tifffile.imwrite(raw / "a" / "five.tif", rng.integers(0, 255, (20, 20, 5), dtype=np.uint8),
                     photometric="minisblack", planarconfig="contig")
    res = preprocess_folder(raw, tmp_path / "p", SETTINGS, progress=False)
    assert res.written["a"] == 4
    assert read_image(tmp_path / "p" / "a" / "gray.png").shape == (16, 16, 3)
    [(path, reason)] = res.skipped
    assert path.endswith("five.tif") and "5 bands but the data set has 3" in reason


def test_a_selection_is_processed_alone_and_its_folder_kept_for_it(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(5):
            write_png(tmp_path / "raw" / c / f"{c}{i}.png",
                      rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    settings = validate({"preprocess": {"image_size": 8, "clahe_tiles": 2}})["preprocess"]
    pick = {"file_list": None, "max_per_class": 2, "seed": 3}
    res = preprocess_folder(tmp_path / "raw", tmp_path / "p", settings, progress=False,
                            selection=pick)
    assert dict(res.written) == {"a": 2, "b": 2}
    assert len(list((tmp_path / "p").rglob("*.png"))) == 4
    record = json.loads((tmp_path / "p" / "selection.json").read_text())
    assert record["images"] == 4 and record["max_per_class"] == 2
    again = preprocess_folder(tmp_path / "raw", tmp_path / "p", settings, progress=False,
                              selection=pick)
    assert sum(again.already_done.values()) == 4 and not again.skipped
    with pytest.raises(ValueError, match=r"holds another selection of images \(4 vs 6\).*"
                                         r"Delete that folder"):
        preprocess_folder(tmp_path / "raw", tmp_path / "p", settings, progress=False,
                          selection={**pick, "max_per_class": 3})
    with pytest.raises(ValueError, match=r"another selection of images \(4 vs all\)"):
        preprocess_folder(tmp_path / "raw", tmp_path / "p", settings, progress=False)
