"""Shared fixtures: tiny seeded data sets made on the fly, and the real subsets when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import earth_lib  # noqa: F401  (silences TensorFlow's start-up chatter before any test imports it)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


#: pytest-xdist groups (``make test`` runs ``--dist loadgroup``): the tests and notebooks that
#: make or read the same folders under the repository's data/ run on one worker, in order.
#: smoke-data: params/smoke.yaml and compare_smoke.yaml (data/raw/smoke, data/processed/smoke_16);
#: mosaic-data: params/multilabel_smoke.yaml (data/raw/mosaic_smoke).
NOTEBOOK_GROUPS = {"": "smoke-data", "multilabel": "mosaic-data"}


UNGROUPED = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)  # marks before pytest-xdist turns them into groups, check after
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Give each notebook nbval checks the group of the data its parameter file uses.

    nbval runs a notebook's cells in one kernel, and notebooks 2 and 3 read what notebook 1
    wrote, so a chain of notebooks must stay on one worker, in the order given:
    ``notebooks/*.ipynb``, and each variant ``tests/notebooks/<stem>.<variant>.ipynb``.
    Where the groups do not take (pytest 9.2: pytest-dev/pytest-xdist#1386), the grouped
    tests fail at once saying so, instead of failing in confusing ways on the wrong worker.
    """
    for item in items:
        if item.path.suffix == ".ipynb":
            variant = item.path.stem.partition(".")[2]
            group = NOTEBOOK_GROUPS.get(variant, f"notebooks-{variant}")
            item.add_marker(pytest.mark.xdist_group(group))
    yield
    if getattr(config.option, "loadgroup", False):
        for item in items:
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
                item.stash[UNGROUPED] = (
                    f"pytest-xdist did not group {item.nodeid} (pytest {pytest.__version__}; "
                    "pytest-dev/pytest-xdist#1386): install the pinned packages (make env) or "
                    "run the tests in one process (make test TEST_WORKERS=0).")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a grouped test that pytest-xdist did not group (see above)."""
    if UNGROUPED in item.stash:
        pytest.fail(item.stash[UNGROUPED], pytrace=False)


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
    from earth_lib.data.synthetic import generate_synthetic_dataset

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
