"""The project's guarantees at its edges: nothing deleted or run that should not be, old and
new never mixed, no endless loop, bad input named. README's "What is guaranteed" lists them.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from earth_lib import images as eimg
from earth_lib import io as eio
from earth_lib.errors import BadImageError, ParameterError, RunFormatError
from earth_lib.params import search_plan as plan
from tests.conftest import write_png

ROOT = Path(__file__).resolve().parents[1]


def make(*args: str, cwd: Path = ROOT, timeout_ok: bool = False) -> subprocess.CompletedProcess:
    """``make ARGS`` in the project; a notebook run (``timeout_ok``) may take minutes."""
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600 if timeout_ok else 120)


# --- Can delete or run what it should not ------------------------------------------------

@pytest.mark.parametrize("outputs", ["", "/", "//", ".", "~", "..", "/usr"])
def test_clean_refuses_an_empty_or_root_like_outputs(outputs):
    from earth_lib.paths import clean_outputs

    with pytest.raises(ParameterError, match="OUTPUTS"):
        clean_outputs(outputs)
    dry = make("-n", "clean", f"OUTPUTS={outputs}")
    assert "rm -rf" not in dry.stdout, dry.stdout


def test_clean_removes_only_run_folders_the_project_made(tmp_path):
    from earth_lib.paths import mark
    from earth_lib.run import Run

    outputs = tmp_path / "my outputs ü"
    ours = Run(outputs / "smoke")
    ours.mark()
    (ours.path / "metrics.json").write_text("{}")
    theirs = outputs / "thesis"
    theirs.mkdir()
    (theirs / "chapter.tex").write_text("keep me")
    generated = tmp_path / "data" / "raw" / "synthetic"
    mark(generated, "synthetic")
    downloaded = tmp_path / "data" / "raw" / "eurosat"
    downloaded.mkdir()
    res = make("clean", f"OUTPUTS={outputs}", f"DATA_ROOT={tmp_path / 'data'}")
    assert res.returncode == 0, res.stderr
    assert not ours.path.exists() and (theirs / "chapter.tex").read_text() == "keep me"
    assert not generated.exists() and downloaded.is_dir()


def test_a_quote_in_set_runs_nothing(tmp_path):
    flag = tmp_path / "pwned"
    res = make("help", f"SET=x=1' ; touch {flag} ; echo '")
    assert not flag.exists(), res.stdout + res.stderr


def test_user_paths_reach_python_as_one_argument(tmp_path):
    flag = tmp_path / "pwned"
    run = tmp_path / "a run ü"
    res = make("evaluate", f"RUN={run}", f"DATA=x; touch {flag}")
    assert not flag.exists()
    assert res.returncode != 0 and str(run) in res.stdout + res.stderr


def test_params_path_with_spaces_and_accents_runs_where_it_says(tmp_path):
    folder = tmp_path / "my params ü"
    folder.mkdir()
    params = folder / "smoke's run.yaml"
    params.write_text((ROOT / "params" / "smoke.yaml").read_text())
    res = make("-n", "preprocess", f"PARAMS={params}", "VENV=.venv")
    assert res.returncode == 0, res.stderr
    from earth_lib.paths import run_dir_for

    out = run_dir_for(params)
    assert f"--params '{params}'".replace("'s", "'\\''s") in res.stdout, res.stdout
    assert str(out).replace("'", "'\\''") in res.stdout


def test_usage_comes_before_the_environment(tmp_path):
    venv = tmp_path / "venv"
    for target in ("evaluate", "predict", "pair", "export"):
        res = make(target, f"VENV={venv}")
        assert res.returncode != 0 and "usage: make" in res.stdout + res.stderr, target
    assert not venv.exists()


def test_missing_files_and_an_old_python_stop_make_before_the_environment(tmp_path):
    venv = tmp_path / "venv"
    for args, said in [(("all", "PARAMS=params/nope.yaml"), "PARAMS=params/nope.yaml: no such"),
                       (("evaluate", f"RUN={tmp_path}/gone", f"DATA={tmp_path}"),
                        f"RUN={tmp_path}/gone: no such"),
                       (("predict", f"RUN={tmp_path}", f"DATA={tmp_path}/gone"),
                        f"DATA={tmp_path}/gone: no such")]:
        res = make(*args, f"VENV={venv}")
        assert res.returncode != 0 and said in res.stdout + res.stderr, args
    old = tmp_path / "python3.10"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo Python 3.10.12 && exit 0\nexit 1\n")
    old.chmod(0o755)
    res = make("env", f"VENV={venv}", f"PYTHON={old}")
    assert res.returncode != 0 and "needs Python 3.11 or newer" in res.stderr
    assert "Python 3.10.12" in res.stderr
    assert not venv.exists()


def test_runs_from_two_params_files_with_one_stem_do_not_share_a_folder(tmp_path):
    from earth_lib.paths import run_dir_for

    other = tmp_path / "exp" / "smoke.yaml"
    assert run_dir_for("params/smoke.yaml") == Path("outputs/smoke")
    assert run_dir_for(other) != run_dir_for("params/smoke.yaml")
    assert run_dir_for(other).name.startswith("smoke.")


def _zip_with(tmp_path: Path, base: str) -> tuple[Path, str]:
    archive = tmp_path / "archives" / "set.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for c in ("A", "B"):
            zf.writestr(f"{base}/{c}/1.png", b"x")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_fetching_a_data_set_keeps_what_else_is_in_its_folder(tmp_path):
    from earth_lib.data.datasets import RemoteDataset, fetch_dataset

    archive, md5 = _zip_with(tmp_path, "inner/images")
    raw = tmp_path / "raw"
    (raw / "ucmerced").mkdir(parents=True)
    (raw / "ucmerced" / "keep.tif").write_bytes(b"mine")
    remote = RemoteDataset("http://127.0.0.1:9/none", "set.zip", md5, "inner/images", "1 KB")
    classes = fetch_dataset("x", raw, archive.parent, remote=remote)
    assert sorted(p.name for p in classes.iterdir()) == ["A", "B"]
    assert (raw / "ucmerced" / "keep.tif").read_bytes() == b"mine"
    assert not [p for p in raw.iterdir() if p.name.startswith(".") and p.is_dir()]


@pytest.mark.parametrize("processed", ["{raw}", "{raw}/processed", "{parent}"])
def test_processed_dir_overlapping_raw_dir_is_refused(tmp_path, processed):
    from earth_lib.params import load_params

    raw = tmp_path / "data" / "raw"
    target = processed.format(raw=raw, parent=raw.parent)
    with pytest.raises(ParameterError, match="processed_dir"):
        load_params(ROOT / "params" / "smoke.yaml",
                    f"data.dataset=folder data.raw_dir={raw} preprocess.processed_dir={target}")


# --- Can mix old and new -----------------------------------------------------------------

@pytest.mark.parametrize("override", [
    "search.initial_points=3", "search.iterations_per_step=2", "search.shrink=0.3",
    "search.design=random", "search.acquisition=LCB", "search.start_from_baseline=true",
    "search.finalists=2", "search.finalist_budget=2", "search.finalist_repeats=2",
    "search.steps=2", "search.min_step=0.1"])
def test_search_fingerprint_covers_the_plan(override):
    from earth_lib import params, search

    p0 = params.load_params(ROOT / "params" / "smoke.yaml")
    p1 = params.load_params(ROOT / "params" / "smoke.yaml", override)
    f0 = search.fingerprint(params.search_fingerprint(p0))
    f1 = search.fingerprint(params.search_fingerprint(p1))
    assert f0 != f1, override


def test_search_fingerprint_covers_the_labels():
    from earth_lib import params, search

    p = params.load_params(ROOT / "params" / "multilabel_smoke.yaml")
    images, split = np.zeros((4, 2, 2, 3), np.uint8), np.array(["train"] * 4)
    y = np.eye(4, 3, dtype=np.uint8)
    f0 = search.fingerprint(params.search_fingerprint(p, images=images, labels=y, split=split))
    y[0, 1] = 1
    f1 = search.fingerprint(params.search_fingerprint(p, images=images, labels=y, split=split))
    assert f0["labels"] != f1["labels"] and f0["images"] == f1["images"]


def _run_with_stages(path: Path, stages: dict, metrics: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"params": {"data": {"dataset": "synthetic"}},
                                               "stages": stages}))
    if metrics:
        (path / "metrics.json").write_text("{}")
    return path


def test_a_run_that_did_not_finish_is_never_reported(tmp_path):
    from earth_lib.report.tables import regenerate_readme, results_markdown
    from earth_lib.run import Run

    run = _run_with_stages(tmp_path / "half", {
        "preprocessing": {"started": "2026-01-01T00:00:00+00:00",
                          "finished": "2026-01-01T00:01:00+00:00"},
        "classifier": {"started": "2026-01-01T00:02:00+00:00"}})
    assert Run(run).state() == "running"
    assert "| half |" not in results_markdown(tmp_path)
    readme = tmp_path / "README.md"
    block = "<!-- generated: results half -->\nold\n<!-- /generated -->\n"
    readme.write_text(block)
    report = regenerate_readme(readme, tmp_path)
    assert readme.read_text() == block and "not finished" in " ".join(report)


def test_a_failed_notebook_marks_its_run_failed(tmp_path):
    from earth_lib.run import Run, mark_failed

    run = Run.begin("classifier", ROOT / "params" / "smoke.yaml", tmp_path / "r")
    run.finish("classifier")
    assert run.state() == "finished"
    Run.begin("classifier", ROOT / "params" / "smoke.yaml", tmp_path / "r")
    mark_failed(tmp_path / "r", "02_earth_classifier", "ValueError: boom")
    assert Run(tmp_path / "r").state() == "failed"


def test_a_model_and_its_card_are_one_unit(tmp_path):
    import keras

    from earth_lib.run import Run

    run = Run(tmp_path / "r")
    small = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    run.save_model(small, ["a", "b"], {"image_size": 4}, {"lr": 0.1})
    run.load_model()
    card = run.card_path.read_text()
    other = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    other.save(run.model_path)  # a kill between the model and its card
    run.card_path.write_text(card)
    with pytest.raises(RunFormatError, match="model_card"):
        run.load_model()


def test_a_run_folder_is_locked_while_a_run_writes_it(tmp_path):
    from earth_lib.errors import RunInUseError
    from earth_lib.io import run_lock

    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from earth_lib.io import run_lock\n"
         f"with run_lock({str(folder)!r}):\n  print('held', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUseError, match=str(holder.pid)), run_lock(folder):
            pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(folder):  # the holder died: the lock went with it
        pass


def test_evaluation_folders_of_two_data_folders_do_not_collide(tmp_path):
    from earth_lib.evaluation import output_name

    a, b = tmp_path / "a" / "test", tmp_path / "b" / "test"
    assert output_name(a) != output_name(b) and output_name(a).startswith("test")
    assert output_name(a) == output_name(tmp_path / "a" / ".." / "a" / "test")


def test_preprocessing_sweeps_only_its_own_temporary_files(tmp_path, synthetic_raw):
    from earth_lib.preprocessing import DEFAULTS, preprocess_folder

    out = tmp_path / "proc"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = out / f".x.png.pid{sleeper.pid}.abc.tmp"
        dead = out / ".y.png.pid999999999.abc.tmp"
        alive.write_bytes(b"another run's")
        dead.write_bytes(b"left by a dead run")
        preprocess_folder(synthetic_raw, out, {**DEFAULTS, "image_size": 16}, progress=False)
        assert alive.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_interrupted_overwrite_is_finished_on_rerun(tmp_path, synthetic_raw, monkeypatch):
    from earth_lib import preprocessing as pp

    out = tmp_path / "proc"
    a = {**pp.DEFAULTS, "image_size": 16, "clahe": False}
    b = {**a, "image_size": 12}
    pp.preprocess_folder(synthetic_raw, out, a, progress=False)
    calls = {"n": 0}
    real = pp._process_one

    def dies_midway(job):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(pp, "_process_one", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        pp.preprocess_folder(synthetic_raw, out, b, overwrite=True, progress=False)
    monkeypatch.setattr(pp, "_process_one", real)
    pp.preprocess_folder(synthetic_raw, out, b, progress=False)
    shapes = {eimg.read_image(p).shape[0] for p in out.rglob("*.png")}
    assert shapes == {12}


# --- Can stop for good or loop -----------------------------------------------------------

def _space():
    from earth_lib.search import SearchSpace

    return SearchSpace.from_dict({"x": {"type": "continuous", "bounds": [0.0, 1.0]},
                                  "y": {"type": "continuous", "bounds": [0.0, 1.0]}})


def _quadratic(hp):
    return {"val_loss": (hp["x"] - 0.3) ** 2 + (hp["y"] - 0.6) ** 2, "val_accuracy": 0.5}


def test_a_failing_literature_trial_is_recorded_not_fatal(tmp_path):
    from earth_lib.search import search_or_baseline

    calls = []

    def objective(hp):
        calls.append(dict(hp))
        if hp == {"x": 0.5, "y": 0.5}:
            raise MemoryError("out of memory")
        return _quadratic(hp)

    kwargs = {"enabled": True, "evaluate_baseline": True, "log": lambda m: None}
    history, lit = tmp_path / "h.csv", {"x": 0.5, "y": 0.5}
    one = plan(steps=1, initial_points=2, iterations_per_step=0)
    sel = search_or_baseline(objective, _space(), history, lit, one, **kwargs)
    assert sel.chosen_by == "search" and sel.baseline["status"] == "failed"
    assert "out of memory" in history.read_text()
    n = len(calls)
    search_or_baseline(objective, _space(), history, lit, one, **kwargs)
    assert len(calls) == n  # every trial, the literature one too, came from the history


KILLER = """
import os, sys
from earth_lib.params import search_plan
from earth_lib.search import SearchSpace, run_search
space = SearchSpace.from_dict({"x": {"type": "continuous", "bounds": [0.0, 1.0]}})
def objective(hp):
    if hp["x"] < 1 / 3:  # one point of a 3-point Latin hypercube
        os._exit(137)  # as the kernel's out-of-memory killer would
    return {"val_loss": hp["x"], "val_accuracy": 0.5}
r = run_search(objective, space, sys.argv[1],
               search_plan(steps=1, initial_points=3, iterations_per_step=0, seed=1),
               log=lambda m: None)
print(sorted(t.status for t in r.trials))
"""


def test_a_trial_that_kills_the_process_twice_is_skipped(tmp_path):
    history = tmp_path / "h.csv"
    codes = [subprocess.run([sys.executable, "-c", KILLER, str(history)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120) for _ in range(3)]
    assert [c.returncode for c in codes] == [137, 137, 0], codes[-1].stderr
    assert codes[-1].stdout.strip() == "['failed', 'ok', 'ok']"
    assert "started twice" in history.read_text()


def test_a_hung_trial_on_an_executor_times_out(tmp_path):
    import time

    from earth_lib.search import run_search

    def objective(hp):
        if hp["x"] < 0.5:
            time.sleep(5)
        return _quadratic(hp)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        r = run_search(
            objective,
            _space(),
            tmp_path / "h.csv",
            plan(steps=1, initial_points=4, iterations_per_step=0, workers=4, trial_timeout=1.0),
            executor=pool,
            log=lambda m: None,
        )
        took = time.perf_counter() - t0
    assert {t.status for t in r.trials} == {"ok", "time_limit"} and took < 4.5


def test_every_valid_seed_works(tmp_path):
    from earth_lib.search import run_search

    r = run_search(_quadratic, _space(), tmp_path / "h.csv",
                   plan(steps=1, initial_points=3, iterations_per_step=1, seed=5_000_000_000),
                   log=lambda m: None)
    assert len(r.trials) == 4


def test_a_stray_ray_address_sends_no_trial_away(monkeypatch):
    from earth_lib.distributed import trial_executor

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert trial_executor(workers=1, address=None) is None


# --- Bad input that passes silently or crashes -------------------------------------------

@pytest.fixture
def labelled(tmp_path) -> Path:
    root = tmp_path / "imgs"
    for rel in ("forest/001.png", "river/002.png", "forest/003.png", "river/003.png"):
        write_png(root / rel, np.zeros((4, 4, 3), np.uint8))
    return root


REST = "river/002.png,river\nforest/003.png,forest\nriver/003.png,river\n"


@pytest.mark.parametrize("body, match", [
    ("path,labels\nriver/001.png,river\n" + REST, r":2.*river/001\.png"),
    ("path,labels\n../x/001.png,forest\n" + REST, r":2.*\.\./x/001\.png"),
    ("path,labels\n/other/forest/001.png,forest\n" + REST, r":2.*/other/forest/001\.png"),
    ("path,labels\nforest/001.png,forest\n003.png,river\nriver/002.png,river\n",
     r":3.*forest/003\.png.*river/003\.png"),
    ("path,labels\nforest/001.png,forest\n" + REST + "forest/001.png,river\n",
     r":6.*forest/001\.png.*line 2"),
    ("path,forest,river\nforest/001.png,1,0\nriver/002.png,0,2\n", r":3.*'2'"),
    ("path,forest,river\nforest/001.png,1,0\nriver/002.png,-1,1\n", r":3.*'-1'"),
    ("path,forest,river\nforest/001.png,1,0\nriver/002.png,inf,1\n", r":3.*'inf'"),
    ("", r"empty"),
    ("path\nforest/001.png\n", r"header|column"),
])
def test_a_bad_labels_csv_names_file_line_and_rows(tmp_path, labelled, body, match):
    from earth_lib.data.multilabel import read_labels_csv

    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(body)
    with pytest.raises(ParameterError, match=match) as err:
        read_labels_csv(csv_path, labelled)
    assert str(csv_path) in str(err.value)


def test_a_bare_file_name_still_matches_one_image(tmp_path, labelled):
    from earth_lib.data.multilabel import read_labels_csv

    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,labels\n001.png,forest\n002,river\n" + REST.split("\n", 1)[1])
    table = read_labels_csv(csv_path, labelled)
    assert [Path(p).relative_to(labelled).as_posix() for p in table.paths] == [
        "forest/001.png", "river/002.png", "forest/003.png", "river/003.png"]


def test_one_pixel_limit_for_every_format(tmp_path):
    import tifffile

    big = tmp_path / "bomb.tif"
    tifffile.imwrite(big, np.zeros((600, 600), np.uint8), compression="zlib")
    png = write_png(tmp_path / "big.png", np.zeros((600, 600), np.uint8))
    for path in (big, png):
        with pytest.raises(BadImageError, match=r"pixel.*limit|limit.*pixel"):
            eimg.read_image(path, max_pixels=100_000)
        assert eimg.read_image(path, max_pixels=1_000_000).shape[:2] == (600, 600)
    assert eimg.DEFAULT_MAX_PIXELS > 10_000_000


def test_a_one_row_png_keeps_its_layout(tmp_path):
    png = write_png(tmp_path / "row.png", np.zeros((1, 32, 3), np.uint8))
    assert eimg.read_image(png).shape == (1, 32, 3)


DEAD_WORKER = """
import os, sys
from pathlib import Path
from earth_lib import preprocessing as pp
raw, out = Path(sys.argv[1]), Path(sys.argv[2])
victim = sorted(raw.rglob("*.png"))[3]
real, parent = pp.read_image, os.getpid()
def dies_on_victim(path, *args, **kwargs):
    if Path(path) == victim and os.getpid() != parent:  # in a worker only (forked: inherited)
        os._exit(9)
    return real(path, *args, **kwargs)
pp.read_image = dies_on_victim
result = pp.preprocess_folder(raw, out, {**pp.DEFAULTS, "image_size": 16}, workers=2,
                              progress=False)
print(result.skipped == [(str(victim), result.skipped[0][1])], "worker" in result.skipped[0][1],
      sum(result.written.values()), len(list(raw.rglob("*.png"))) - 1)
"""


def test_a_dead_worker_is_reported_with_its_file(tmp_path, synthetic_raw):
    res = subprocess.run([sys.executable, "-c", DEAD_WORKER, str(synthetic_raw),
                          str(tmp_path / "proc")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    ok, named, written, expected = res.stdout.split()
    assert ok == named == "True" and written == expected


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one body and honours ``Range: bytes=N-`` as a real server does (206 / 416)."""

    body = bytes(range(256)) * 40

    def do_GET(self):
        start = int(self.headers.get("Range", "bytes=0-")[6:].rstrip("-") or 0)
        if start >= len(self.body) and "Range" in self.headers:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(self.body)}")
            self.end_headers()
            return
        self.send_response(206 if "Range" in self.headers else 200)
        if "Range" in self.headers:
            self.send_header("Content-Range",
                             f"bytes {start}-{len(self.body) - 1}/{len(self.body)}")
        self.send_header("Content-Length", str(len(self.body) - start))
        self.end_headers()
        self.wfile.write(self.body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.zip"
    httpd.shutdown()


@pytest.mark.parametrize("have", [0, 1000, len(RangeHandler.body)])
def test_download_resumes_over_http_ranges(tmp_path, server, have):
    from earth_lib.data.datasets import download

    dest = tmp_path / "file.zip"
    if have:
        dest.with_name("file.zip.part").write_bytes(RangeHandler.body[:have])
    download(server, dest, timeout=5)
    assert dest.read_bytes() == RangeHandler.body


def test_predict_on_an_empty_folder_fails_before_tensorflow(tmp_path):
    from earth_lib.run import Run

    run = Run(tmp_path / "run")
    run.mark()
    (tmp_path / "empty").mkdir()
    code = ("import sys; from earth_lib.cli import main\n"
            f"rc = main(['predict', {str(run.path)!r}, {str(tmp_path / 'empty')!r}])\n"
            "print(rc, 'tensorflow' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.stdout.split() == ["2", "False"], res.stderr
    code = code.replace("'predict'", "'evaluate'")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.stdout.split() == ["2", "False"], res.stderr
    (tmp_path / "empty" / "forest").mkdir()
    code = code.replace(f"{str(tmp_path / 'empty')!r}", f"{str(tmp_path / 'empty')!r}")
    res = subprocess.run([sys.executable, "-c", code.replace("'evaluate'", "'predict'")],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.stdout.split()[0] == "2" and "no image" in res.stderr.lower()


def test_a_model_with_code_in_it_is_refused(tmp_path):
    import keras

    from earth_lib.run import Run

    run = Run(tmp_path / "r")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    run.save_model(model, ["a", "b"], {}, {})
    with pytest.raises(ValueError, match="safe_mode|unsafe|Lambda"):
        run.load_model()


def test_keras_is_above_the_safe_mode_bypasses():
    from packaging.requirements import Requirement
    from packaging.version import Version

    deps = yaml.safe_load("[]")  # noqa: F841  (keeps yaml imported for the fixtures above)
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    keras_req = next(Requirement(r) for r in project["dependencies"]
                     if r.lower().startswith("keras"))
    assert not keras_req.specifier.contains(Version("3.11.3"))
    import keras

    assert Version(keras.__version__) >= Version("3.12.0")


def test_a_comparison_arm_whose_settings_changed_is_rerun(tmp_path, monkeypatch):
    from dataclasses import asdict

    from earth_lib import params
    from earth_lib.data import Split
    from earth_lib.experiments import compare
    from earth_lib.run import Run

    calls, lines = [], []

    def fake_arm(arm, seed, splits, search_splits, class_names, p, space, folder, preprocess,
                 fingerprint, *args, **kwargs):
        calls.append(p["train"]["epochs"])
        r = compare.ArmResult(arm, seed, {}, None, 0, 0.0, 0.0, 0.0, 0, {"accuracy": 0.5},
                              fingerprint=compare.arm_fingerprint(arm, seed, p, class_names,
                                                                  fingerprint))
        eio.atomic_write_json(folder.path / "result.json", asdict(r))
        return r

    monkeypatch.setattr(compare, "run_arm", fake_arm)
    split = Split(np.zeros((4, 2, 2, 3), np.uint8), np.array([0, 1, 0, 1]))
    splits = {"train": split, "val": split, "test": split}
    run = Run(tmp_path / "c")
    for epochs in (2, 2, 3):
        p = params.load_params(ROOT / "params" / "compare_smoke.yaml",
                               f"compare.arms=[literature] compare.seeds=[1] train.epochs={epochs}")
        compare.run_comparison(splits, (None, None, None), ["a", "b"], p, run, {},
                               {"images": "abc"}, log=lines.append)
    assert calls == [2, 3]
    assert any("rerun, its final changed" in line for line in lines), lines


def test_each_guarantee_in_the_readme_names_tests_that_exist():
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What is guaranteed", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(test_\w+)`", section)
    assert len(named) >= 20
    assert not [n for n in named if n not in globals()]


def test_make_runs_a_notebook_where_paths_have_spaces_quotes_and_accents(tmp_path):
    """Notebook 1 for real, every path awkward: the run lands where make and Python say."""
    home = tmp_path / "my data ü"
    params = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    params["data"].update(raw_dir=str(home / "raw set"), synthetic_images_per_class=4)
    params["preprocess"]["processed_dir"] = str(home / "proc'd")
    folder = tmp_path / "exp ü"
    folder.mkdir()
    path = folder / "it's smoke.yaml"
    path.write_text(yaml.safe_dump(params))
    outputs = tmp_path / "out puts"
    res = make("preprocess", f"PARAMS={path}", f"OUTPUTS={outputs}", timeout_ok=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    from earth_lib.paths import run_dir_for
    from earth_lib.run import Run

    run = Run(run_dir_for(path, outputs))
    assert (run.path / "01_preprocessing.ipynb").is_file()
    assert run.state() == "finished" and (home / "proc'd" / "preprocessing.json").is_file()
    again = make("-q", "preprocess", f"PARAMS={path}", f"OUTPUTS={outputs}")
    assert "01_preprocessing" not in make("-n", "preprocess", f"PARAMS={path}",
                                          f"OUTPUTS={outputs}").stdout, again.stdout
