"""The whole smoke pipeline through the Makefile and papermill, as `make all` runs it."""

import json
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow
#: one worker under pytest-xdist for the runs that make and read the same folders under the
#: repository's data/, with nbval's notebooks (tests/conftest.py, NOTEBOOK_GROUPS)
smoke_data = pytest.mark.xdist_group("smoke-data")
mosaic_data = pytest.mark.xdist_group("mosaic-data")


def make_target(root, target: str, params: str, outputs, overrides: str = ""
                ) -> subprocess.CompletedProcess:
    """``make <target> PARAMS=<params> OUTPUTS=<outputs> [SET=...]`` as a user runs it; must
    succeed."""
    if not shutil.which("make"):
        pytest.skip("make not installed")
    res = subprocess.run(["make", target, f"PARAMS={params}", f"OUTPUTS={outputs}",
                          f"SET={overrides}"], cwd=root,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def smoke_run(root, tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    return outputs / "smoke", make_target(root, "all", "params/smoke.yaml", outputs)


@smoke_data
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
    pages = {name: (run / f"{name}.html").read_text() for name in ("01_preprocessing",
                                                                  "02_earth_classifier")}
    for name, page in pages.items():  # every figure says what it is, as alternative text
        shown = [tag for tag in re.findall(r"<img [^>]*>", page) if "data:image/png" in tag]
        assert shown and all('alt="figure: ' in tag for tag in shown), name
    assert 'alt="figure: convergence"' in pages["02_earth_classifier"]


@smoke_data
def test_headless_progress_is_plain_lines_not_a_frozen_widget(smoke_run):
    run, res = smoke_run
    outputs = [o for name in ("01_preprocessing.ipynb", "02_earth_classifier.ipynb")
               for c in json.loads((run / name).read_text())["cells"]
               for o in c.get("outputs", [])]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "application/vnd.jupyter.widget-view+json" not in json.dumps(outputs)
    assert "preprocessing: " in text
    assert "loading smoke_16: 96/96 (100%)" in text


@smoke_data
def test_metrics_and_history_are_complete(smoke_run):
    run, _ = smoke_run
    m = json.loads((run / "metrics.json").read_text())
    assert m["split_sizes"] == {"train": 68, "val": 14, "test": 14}
    assert 0 <= m["test"]["accuracy"] <= 1 and len(m["test"]["per_class"]) == 6
    assert m["classical_baseline"]["accuracy"] > 1 / 6
    assert m["search"]["trials"] == 9  # 3 steps x (2 initial + 1 iteration)
    assert "val_loss" in m["literature_baseline"]
    rows = (run / "search_history.csv").read_text().strip().splitlines()
    assert len(rows) == 11 and rows[0].startswith("step,trial,source,rotation")
    assert rows[-1].startswith("0,0,literature,")  # the literature values: a recorded trial


@smoke_data
def test_run_record_says_what_produced_it(smoke_run):
    run, _ = smoke_run
    rec = json.loads((run / "run.json").read_text())
    assert rec["params_file"] == "params/smoke.yaml"
    assert rec["params"]["seed"] == 7
    assert "tensorflow" in " ".join(rec["packages"]) and rec["packages"]["GPyOpt"] == "1.2.6"
    assert set(rec["stages"]) == {"preprocessing", "classifier"}
    assert all("finished" in s for s in rec["stages"].values())


@smoke_data
def test_rerun_is_up_to_date(smoke_run, root):
    run, _ = smoke_run
    # `make -n all` would run no notebook (`make -q all` exits 1 only because `all` and
    # `env` are phony); the executed notebooks themselves are current
    res = subprocess.run(["make", "-n", "all", "PARAMS=params/smoke.yaml",
                          f"OUTPUTS={run.parent}"], cwd=root, capture_output=True, text=True)
    assert res.returncode == 0 and "run-notebook" not in res.stdout, res.stdout
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
        pca={"band_components": 4},  # the bands are the point here
        search={"steps": 1, "enabled": "auto"})  # a user's folder: the curve decides
    run = tmp_path / "run"
    run_notebook(root / "notebooks" / "01_preprocessing.ipynb", params, run)
    run_notebook(root / "notebooks" / "02_earth_classifier.ipynb", params, run)
    m = json.loads((run / "metrics.json").read_text())
    assert m["class_names"] == ["Forest", "River", "SeaLake"]
    card = json.loads((run / "model_card.json").read_text())
    assert card["preprocess"]["bands"] == 13 and card["input_shape"] == [16, 16, 4]
    assert (run / "band_pca.npz").is_file()
    settled = json.loads((run / "run.json").read_text())  # 22 training images: far from
    assert settled["evidence"]["choices"] == {"search.enabled": True}  # what the curve measured
    assert "has not measured the search near 22 training" in \
        settled["evidence"]["reasons"]["search.enabled"]
    assert settled["params"]["search"]["enabled"] is True and m["search"]["trials"] > 0
    from earth_lib.evaluation import evaluate_folder

    assert evaluate_folder(run, raw, progress=False)["n"] == 30


@smoke_data
def test_compare_smoke_runs_its_arms_and_resumes(root, tmp_path):
    """`make compare` on the smoke file: each arm chosen, trained, tested and saved.

    Two of the five arms here (the literature values and the improved arm, which has the
    most machinery: short trials, a start point, finalists); nbval runs notebook 3 on the
    same file with all five.
    """
    arms = ["literature", "improved"]
    overrides = f"compare.arms=[{','.join(arms)}]"
    make_target(root, "compare", "params/compare_smoke.yaml", tmp_path, overrides)
    run = next(tmp_path.glob("compare_smoke.set-*"))
    c = json.loads((run / "comparison.json").read_text())
    assert [r["arm"] for r in c["table"]] == arms
    assert c["budget_trial_epochs"] == 6.0 and "Best search arm" in c["verdict"]
    assert {(r["arm"], r["against"]) for r in c["paired"]} == {("improved", "literature")}
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
    # each arm's final training shows its progress, a line per epoch
    nb = json.loads((run / "03_does_the_search_pay.ipynb").read_text())
    shown = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    for a in arms:
        assert f"{a}/1: final training, 2 epochs at most" in shown, a
    assert shown.count("  epoch 2 of 2: loss=") == len(arms)
    # rerun the notebook: every (arm, seed) is read back, nothing trained again
    (run / "03_does_the_search_pay.ipynb").unlink()
    res = make_target(root, "compare", "params/compare_smoke.yaml", tmp_path, overrides)
    assert (res.stdout + res.stderr).count("done before") == len(arms)


@mosaic_data
def test_multilabel_smoke_runs_both_notebooks_then_evaluate_and_predict(root, tmp_path):
    """`make all` on the multi-label smoke file: mosaics, sigmoid head, tuned thresholds, the
    one-vs-rest baseline; then `make evaluate` with the test mosaics' labels and `make predict`."""
    # the search is off here: nbval runs both notebooks on this file with the search on
    make_target(root, "all", "params/multilabel_smoke.yaml", tmp_path, "search.enabled=false")
    run = next(tmp_path.glob("multilabel_smoke.set-*"))
    m = json.loads((run / "metrics.json").read_text())
    names = m["class_names"]
    assert names == ["cropland", "forest", "urban", "water"]
    for result in (m["test"], m["classical_baseline"]):
        assert 0 <= result["micro_f1"] <= 1 and 0 <= result["mean_average_precision"] <= 1
        assert set(result["per_label"]) == set(names) and result["n"] == m["split_sizes"]["test"]
    card = json.loads((run / "model_card.json").read_text())
    assert len(card["thresholds"]) == 4 and all(0 <= t <= 1 for t in card["thresholds"])
    assert m["test"]["thresholds"] == dict(zip(names, card["thresholds"], strict=True))
    figures = {p.name for p in (run / "figures").glob("*.png")}
    assert {"label_cooccurrence.png", "per_label_scores.png", "mistakes.png"} <= figures
    from earth_lib.report.tables import multilabel_markdown, results_markdown

    row = multilabel_markdown(tmp_path, [run.name]).splitlines()[2]
    test = m["test"]
    assert row.startswith(f"| {run.name} | {test['n']} | 4 | {test['micro_f1']:.3f}")
    assert len(results_markdown(tmp_path).splitlines()) == 2  # single-label table: not listed
    split = (run / "split.csv").read_text().splitlines()
    assert split[0] == "path,class,split" and any(";" in line for line in split[1:])
    # the split is the mosaics' own (tile-disjoint): every test mosaic in the test split
    assert all(line.endswith(",test") for line in split[1:] if "/test/test_" in line)

    raw = root / "data" / "raw" / "mosaic_smoke"
    from earth_lib.errors import ParameterError
    from earth_lib.evaluation import evaluate_folder

    # labels.csv lists every mosaic; the folder holds the test ones only: refused, naming them
    with pytest.raises(ParameterError, match="not found under"):
        evaluate_folder(run, raw / "test", labels_csv=raw / "labels.csv", progress=False)
    assert not (run / "evaluation").exists()
    make = ["make", "-s", "evaluate", f"RUN={run}", f"DATA={raw / 'test'}"]
    test_csv = tmp_path / "test_labels.csv"
    rows = [r for r in (raw / "labels.csv").read_text().splitlines() if r.startswith("test/")]
    test_csv.write_text("path,labels\n" + "\n".join(
        r.split(",")[0].removeprefix("test/") + "," + r.split(",")[1] for r in rows) + "\n")
    ev = subprocess.run(make + [f"LABELS={test_csv}"], cwd=root, capture_output=True,
                        text=True, timeout=300)
    assert ev.returncode == 0, ev.stdout[-2000:] + ev.stderr[-2000:]
    from earth_lib.evaluation import output_name

    saved = json.loads((run / "evaluation" / output_name(raw / "test") / "metrics.json")
                       .read_text())
    assert saved["n"] == len(rows) and "micro_f1" in saved
    pr = subprocess.run(["make", "-s", "predict", f"RUN={run}", f"DATA={raw / 'test'}"],
                        cwd=root, capture_output=True, text=True, timeout=300)
    assert pr.returncode == 0, pr.stdout[-2000:] + pr.stderr[-2000:]
    lines = (run / "predictions" / output_name(raw / "test") / "predictions.csv").read_text() \
        .splitlines()
    assert lines[0] == "path,predicted_labels," + ",".join(f"p_{n}" for n in names)
    assert len(lines) == 1 + len(rows)
    for line in lines[1:]:
        cells = line.split(",")
        chosen = {n for n, p, t in zip(names, map(float, cells[2:]), card["thresholds"],
                                       strict=True) if p >= t}
        assert set(filter(None, cells[1].split(";"))) == chosen
