import json

import numpy as np
import pytest

from earth_lib.data.synthetic import CLASSES, generate_synthetic_dataset, make_scene


def test_scene_is_rgb_uint8_of_requested_size():
    img = make_scene("cropland", 40, np.random.default_rng(0))
    assert img.shape == (40, 40, 3) and img.dtype == np.uint8
    assert img.std() > 5  # not a flat colour


def test_generation_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate_synthetic_dataset(a, 3, 24, 6, seed=5, progress=False)
    generate_synthetic_dataset(b, 3, 24, 6, seed=5, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 18
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_other_seed_gives_other_images(tmp_path):
    generate_synthetic_dataset(tmp_path / "a", 2, 24, 2, seed=1, progress=False)
    generate_synthetic_dataset(tmp_path / "b", 2, 24, 2, seed=2, progress=False)
    f = "water/water_0000.png"
    assert (tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes()


def test_class_folders_and_manifest(tmp_path):
    counts = generate_synthetic_dataset(tmp_path, 4, 24, 6, seed=0, progress=False)
    assert counts == {c: 4 for c in CLASSES}
    assert json.loads((tmp_path / "dataset.json").read_text())["seed"] == 0


def test_rerun_completes_a_partial_set(tmp_path):
    generate_synthetic_dataset(tmp_path, 3, 24, 2, seed=0, progress=False)
    victim = tmp_path / "forest" / "forest_0001.png"
    original = victim.read_bytes()
    victim.unlink()
    generate_synthetic_dataset(tmp_path, 3, 24, 2, seed=0, progress=False)
    assert victim.read_bytes() == original


def test_folder_made_with_other_settings_is_refused(tmp_path):
    generate_synthetic_dataset(tmp_path, 2, 24, 2, seed=0, progress=False)
    with pytest.raises(FileExistsError, match="other settings"):
        generate_synthetic_dataset(tmp_path, 3, 24, 2, seed=0, progress=False)
