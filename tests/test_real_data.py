"""Real Earth-observation subsets from ../shared/data (skipped where that folder is absent)."""

import hashlib
import shutil

import numpy as np
import pytest

from earth_lib.data import index_folder, load_images
from earth_lib.errors import DatasetNotFoundError
from earth_lib.params import validate
from earth_lib.preprocessing import preprocess_folder
from tests.conftest import smoke_params_for_folder

EUROSAT_CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                   "Pasture", "PermanentCrop", "Residential", "River", "SeaLake"]


def test_shared_files_match_their_checksums(shared_data):
    lines = (shared_data / "SHA256SUMS").read_text().splitlines()[::97]
    assert lines
    for line in lines:
        digest, name = line.split(maxsplit=1)
        path = shared_data / name.lstrip("*")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name


def test_eurosat_rgb_is_indexed_with_its_classes(shared_data):
    idx = index_folder(shared_data / "eurosat_rgb")
    assert idx.classes == EUROSAT_CLASSES
    assert set(idx.counts().values()) == {200}


def test_eurosat_rgb_preprocesses_and_loads(shared_data, tmp_path):
    settings = validate({"preprocess": {"image_size": 32, "clahe_tiles": 4}})["preprocess"]
    res = preprocess_folder(shared_data / "eurosat_rgb", tmp_path / "p", settings, workers=2,
                            progress=False)
    assert sum(res.written.values()) == 2000 and not res.skipped
    ds = load_images(tmp_path / "p", expected_size=32, progress=False)
    assert ds.images.shape == (2000, 32, 32, 3) and ds.class_names == EUROSAT_CLASSES
    assert np.all(np.bincount(ds.labels) == 200)


def test_ucmerced_tiffs_preprocess_and_one_class_is_refused_for_training(shared_data, tmp_path):
    settings = validate({"preprocess": {"image_size": 64}})["preprocess"]
    res = preprocess_folder(shared_data / "ucmerced_sample", tmp_path / "p", settings,
                            progress=False)
    assert res.written["airplane"] == 12 and not res.skipped
    ds = load_images(tmp_path / "p", class_names=["airplane"], progress=False)
    assert ds.images.shape == (12, 64, 64, 3)
    with pytest.raises(DatasetNotFoundError, match="at least 2"):
        load_images(tmp_path / "p", progress=False)


@pytest.mark.slow
def test_classifier_smoke_run_on_real_eurosat(shared_data, tmp_path, root):
    from earth_lib.cli import run_notebook

    raw = tmp_path / "raw"
    for c in EUROSAT_CLASSES:
        (raw / c).mkdir(parents=True)
        for f in sorted((shared_data / "eurosat_rgb" / c).glob("*.jpg"))[:12]:
            shutil.copy(f, raw / c / f.name)
    params = smoke_params_for_folder(root, raw, tmp_path, "eurosat_smoke")
    run = tmp_path / "run"
    run_notebook(root / "notebooks" / "01_preprocessing.ipynb", params, run)
    run_notebook(root / "notebooks" / "02_earth_classifier.ipynb", params, run)
    import json

    m = json.loads((run / "metrics.json").read_text())
    assert m["class_names"] == EUROSAT_CLASSES
    assert sum(m["split_sizes"].values()) == 120

    # evaluate and predict with that run, on real images it never saw
    from earth_lib.evaluation import evaluate_folder, predict_folder

    unseen, flat = tmp_path / "unseen", tmp_path / "flat"
    flat.mkdir()
    for c in EUROSAT_CLASSES[:3]:
        (unseen / c).mkdir(parents=True)
        for f in sorted((shared_data / "eurosat_rgb" / c).glob("*.jpg"))[150:155]:
            shutil.copy(f, unseen / c / f.name)
            shutil.copy(f, flat / f.name)
    ev = evaluate_folder(run, unseen, progress=False)
    assert ev["n"] == 15 and len(ev["confusion_matrix"]) == 10
    rows = predict_folder(run, flat, progress=False).read_text().strip().splitlines()
    assert len(rows) == 16 and rows[0].startswith("path,predicted_class,p_AnnualCrop")


def test_the_committed_eurosat_list_is_the_shared_copy(shared_data, root):
    """params/lists/eurosat_rgb_2000.txt names (and checksums) exactly the shared 2,000 images,
    so a user's download with that list trains on the same images."""
    from earth_lib.data import index_folder, select_files

    index = index_folder(shared_data / "eurosat_rgb")
    sel = select_files(index, file_list=root / "params" / "lists" / "eurosat_rgb_2000.txt")
    assert len(sel.files) == 2000 and sorted(sel.files) == sorted(index.files)
    assert sel.counts() == {c: 200 for c in EUROSAT_CLASSES}
