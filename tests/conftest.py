"""Shared fixtures: tiny seeded data sets made on the fly, and the real subsets when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import earth_lib  # noqa: F401  (silences TensorFlow's start-up chatter before any test imports it)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def shared_data() -> Path:
    """The real Earth-observation subsets (../shared/data); tests using it skip elsewhere."""
    if not (SHARED_DATA / "eurosat_rgb").is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


@pytest.fixture
def synthetic_raw(tmp_path) -> Path:
    """A tiny embedded-style data set: 3 classes x 6 images of 24 px."""
    from earth_lib.synthetic import generate_synthetic_dataset

    root = tmp_path / "raw"
    generate_synthetic_dataset(root, images_per_class=6, image_size=24, n_classes=3, seed=1,
                               progress=False)
    return root


def write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def smoke_params_for_folder(root: Path, raw: Path, tmp_path: Path, name: str,
                            preprocess: dict | None = None, pca: dict | None = None,
                            search: dict | None = None) -> Path:
    """A copy of params/smoke.yaml that reads a class folder, written under tmp_path."""
    import yaml

    smoke = yaml.safe_load((root / "params" / "smoke.yaml").read_text())
    smoke["data"] = {"dataset": "folder", "raw_dir": str(raw)}
    smoke["preprocess"].update(processed_dir=str(tmp_path / "proc"), **(preprocess or {}))
    smoke["pca"].update(pca or {})
    smoke["search"].update(search or {})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(smoke))
    return path
