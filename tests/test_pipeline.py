"""The whole smoke pipeline through the Makefile and papermill, as `make all` runs it."""

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(root, tmp_path_factory):
    if not shutil.which("make"):
        pytest.skip("make not installed")
    outputs = tmp_path_factory.mktemp("outputs")
    res = subprocess.run(["make", "all", "PARAMS=params/smoke.yaml", f"OUTPUTS={outputs}"],
                         cwd=root, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return outputs / "smoke", res


def test_run_folder_holds_every_product(smoke_run):
    run, _ = smoke_run
    for name in ("01_preprocessing.ipynb", "02_earth_classifier.ipynb", "01_preprocessing.html",
                 "02_earth_classifier.html", "metrics.json", "search_history.csv", "model.keras",
                 "model_card.json", "run.json", "split.csv", "skipped_files.csv"):
        assert (run / name).is_file(), name
    figures = {p.name for p in (run / "figures").glob("*.png")}
    assert {"confusion_matrix.png", "convergence.png", "pca_variance.png", "samples.png",
            "training_curves.png", "preprocessing_examples.png"} <= figures
    assert not list(run.glob("*.running.ipynb")) and not list(run.glob("*.failed.ipynb"))


def test_headless_progress_is_plain_lines_not_a_frozen_widget(smoke_run):
    run, res = smoke_run
    outputs = [o for name in ("01_preprocessing.ipynb", "02_earth_classifier.ipynb")
               for c in json.loads((run / name).read_text())["cells"]
               for o in c.get("outputs", [])]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "application/vnd.jupyter.widget-view+json" not in json.dumps(outputs)
    assert "preprocessing: " in text
    assert "loading smoke_16: 96/96 (100%)" in text


def test_metrics_and_history_are_complete(smoke_run):
    run, _ = smoke_run
    m = json.loads((run / "metrics.json").read_text())
    assert m["split_sizes"] == {"train": 68, "val": 14, "test": 14}
    assert 0 <= m["test"]["accuracy"] <= 1 and len(m["test"]["per_class"]) == 6
    assert m["classical_baseline"]["accuracy"] > 1 / 6
    assert m["search"]["trials"] == 9  # 3 steps x (2 initial + 1 iteration)
    assert "val_loss" in m["literature_baseline"]
    rows = (run / "search_history.csv").read_text().strip().splitlines()
    assert len(rows) == 10 and rows[0].startswith("step,trial,source,rotation")


def test_run_record_says_what_produced_it(smoke_run):
    run, _ = smoke_run
    rec = json.loads((run / "run.json").read_text())
    assert rec["params_file"] == "params/smoke.yaml"
    assert rec["params"]["seed"] == 7
    assert "tensorflow" in " ".join(rec["packages"]) and rec["packages"]["GPyOpt"] == "1.2.6"
    assert set(rec["stages"]) == {"preprocessing", "classifier"}
    assert all("finished" in s for s in rec["stages"].values())


def test_rerun_is_up_to_date(smoke_run, root):
    run, _ = smoke_run
    res = subprocess.run(["make", "-q", "all", "PARAMS=params/smoke.yaml",
                          f"OUTPUTS={run.parent}"], cwd=root, capture_output=True, text=True)
    # `make -q` exits 1 because `all` and `env` are phony; the notebooks themselves are current
    nb = subprocess.run(["make", "-q", str(run / "02_earth_classifier.ipynb"),
                         "PARAMS=params/smoke.yaml", f"OUTPUTS={run.parent}"], cwd=root)
    assert nb.returncode == 0, res.stdout


def test_multiband_16bit_folder_through_both_notebooks(root, tmp_path):
    """13-band uint16 GeoTIFFs in EuroSAT MS's class layout, with spectral band PCA."""
    import numpy as np
    import tifffile

    from earth_lib.cli import run_notebook
    from tests.conftest import smoke_params_for_folder

    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    for k, c in enumerate(("Forest", "River", "SeaLake")):
        (raw / c).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(500, 1500, (24, 24, 13)) + 800 * k * (np.arange(13) % (k + 2))
            tifffile.imwrite(raw / c / f"{c}_{i}.tif", img.astype(np.uint16),
                             photometric="minisblack", planarconfig="contig")
    params = smoke_params_for_folder(
        root, raw, tmp_path, "ms_smoke",
        preprocess={"scale_16bit": "fixed", "fixed_max": 10000, "clahe_mode": "per_band"},
        pca={"band_components": 4})
    run = tmp_path / "run"
    run_notebook(root / "notebooks" / "01_preprocessing.ipynb", params, run)
    run_notebook(root / "notebooks" / "02_earth_classifier.ipynb", params, run)
    m = json.loads((run / "metrics.json").read_text())
    assert m["class_names"] == ["Forest", "River", "SeaLake"]
    card = json.loads((run / "model_card.json").read_text())
    assert card["preprocess"]["bands"] == 13 and card["input_shape"] == [16, 16, 4]
    assert (run / "band_pca.npz").is_file()
    from earth_lib.evaluation import evaluate_folder

    assert evaluate_folder(run, raw, progress=False)["n"] == 30


def test_compare_smoke_runs_every_arm_and_resumes(root, tmp_path):
    """`make compare` on the smoke file: every arm chosen, trained, tested and saved."""
    if not shutil.which("make"):
        pytest.skip("make not installed")
    cmd = ["make", "compare", "PARAMS=params/compare_smoke.yaml", f"OUTPUTS={tmp_path}"]
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = tmp_path / "compare_smoke"
    c = json.loads((run / "comparison.json").read_text())
    arms = ["literature", "random", "gp_one_step", "method", "improved"]
    assert [r["arm"] for r in c["table"]] == arms
    assert c["budget_trial_epochs"] == 6.0 and "Best search arm" in c["verdict"]
    assert {(r["arm"], r["against"]) for r in c["paired"]} >= {("method", "literature")}
    assert all(r["images"] == 14 * r["seeds"] for r in c["paired"])
    for r in c["results"]:
        assert r["trial_epochs"] <= c["budget_trial_epochs"] + 1e-9, r["arm"]
        assert 0 <= r["test"]["accuracy"] <= 1 and r["test"]["n"] == 14
    assert {f.name for f in (run / "figures").glob("compare_*.png")} == {
        "compare_test_accuracy.png", "compare_budget_curves.png", "compare_trial_values.png"}
    # data.in_memory: false: the images were read from one array file, each split from its own
    arrays = root / "data" / "processed" / "smoke_16" / ".arrays"
    assert len(list(arrays.glob("images-*.npy"))) == 1
    assert {f.name for f in arrays.glob("images-*-split-*/*.npy")} == {
        "train.npy", "val.npy", "test.npy"}
    from earth_lib.evaluation import evaluate_folder

    arm = run / "arms" / "improved" / "seed1"
    rows = (arm / "search_history.csv").read_text().splitlines()
    assert any(",finalist," in r for r in rows)
    m = evaluate_folder(arm, root / "data" / "raw" / "smoke", progress=False)
    assert m["n"] == 96
    # rerun the notebook: every (arm, seed) is read back, nothing trained again
    (run / "03_does_the_search_pay.ipynb").unlink()
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0 and (res.stdout + res.stderr).count("done before") == len(arms)
