"""Repository conventions: notebooks, Makefile, declared dependencies, lint."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

NOTEBOOKS = ["01_preprocessing.ipynb", "02_earth_classifier.ipynb",
             "03_does_the_search_pay.ipynb"]


@pytest.fixture(params=NOTEBOOKS)
def notebook(request, root):
    return json.loads((root / "notebooks" / request.param).read_text())


def test_notebook_has_tagged_parameters_and_python3_kernel(notebook):
    tagged = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    assert "params_file" in "".join(tagged[0]["source"])
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def test_notebook_stores_no_stderr_and_has_colab_set_up(notebook):
    outputs = [o for c in notebook["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("name") == "stderr"]
    head = json.dumps(notebook["cells"][:2])
    assert "colab-badge.svg" in head and "google.colab" in head


def test_notebook_cells_are_thin(notebook):
    """No definitions, at most 15 lines; the Colab set-up cell too (it runs before earth_lib
    is found, so it finds the project and hands over; tests/test_colab.py runs it)."""
    for cell in notebook["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        assert not re.search(r"^\s*(def|class) ", src, re.M), src[:80]
        lines = [line for line in src.splitlines() if line.strip() and not line.startswith("#")]
        assert len(lines) <= 15, src[:80]


def test_notebooks_hold_no_control_flow(notebook):
    """Every code cell is calls, displays and figures; decisions live in earth_lib."""
    import ast

    for cell in notebook["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] != "code" or "google.colab" in src:  # Colab set-up: shell magics
            continue
        for node in ast.walk(ast.parse(src)):
            banned = (ast.If, ast.IfExp, ast.For, ast.While, ast.Try, ast.With, ast.BoolOp)
            assert not isinstance(node, banned), f"{type(node).__name__}: {src[:80]}"
            if isinstance(node, ast.comprehension):
                assert not node.ifs, src[:80]


def test_notebooks_reach_run_files_through_run(notebook):
    """Paths of the run folder come from earth_lib.run, never spelled in a cell."""
    code = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    for name in ("metrics.json", "run.json", "model.keras", "search_history.csv", ".png",
                 "model_card.json", "split.csv", "run_dir /"):
        assert name not in code, name
    assert "Run.begin(" in code and "run.finish(" in code


def test_papermill_sees_the_parameters(root):
    import papermill as pm

    for name in NOTEBOOKS:
        params = pm.inspect_notebook(str(root / "notebooks" / name))
        assert set(params) == {"params_file", "run_dir", "overrides"}


def test_checked_cells_exist(notebook):
    checked = [c for c in notebook["cells"] if "NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    assert checked and all(c.get("outputs") for c in checked)


def test_nbval_variants_are_their_notebooks_with_parameters_injected(root):
    """The multi-label variants nbval runs hold their notebook's cells, unchanged, plus the
    injected parameters; after editing a notebook, `make nbval-variants` regenerates them."""
    from tests.nbval_variants import VARIANTS, variant_path

    for variant, (params_file, names) in VARIANTS.items():
        for name in names:
            original = json.loads((root / "notebooks" / name).read_text())
            path = variant_path(name, variant)
            copy = json.loads(path.read_text())
            injected = [c for c in copy["cells"]
                        if "injected-parameters" in c["metadata"].get("tags", [])]
            assert len(injected) == 1 and params_file in "".join(injected[0]["source"])
            kept = [c for c in copy["cells"] if c is not injected[0]]
            assert [("".join(c["source"]), c["cell_type"]) for c in kept] == [
                ("".join(c["source"]), c["cell_type"]) for c in original["cells"]], (
                f"{path.name} differs from notebooks/{name}: run make nbval-variants")
            checked = [c for c in kept if "NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
            assert checked and all(c.get("outputs") for c in checked)
            outputs = [o for c in kept for o in c.get("outputs", [])]
            assert not [o for o in outputs if o.get("name") == "stderr"]


def _lock(path):
    """``{name: version}`` of a lock's pins whose markers hold on this machine."""
    from packaging.markers import Marker

    pins = {}
    for line in path.read_text().splitlines():
        if not line or line[0] in "# -":
            continue
        req, _, marker = line.removesuffix("\\").partition(";")
        name, _, version = req.strip().partition("==")
        if not marker.strip() or Marker(marker.strip()).evaluate():
            pins[name.lower().replace("_", "-")] = version
    return pins


@pytest.mark.parametrize("lock, extras", [("cpu", ("cpu", "notebooks")),
                                          ("gpu", ("gpu", "notebooks")),
                                          ("dev", ("dev", "distributed", "tensorboard"))])
def test_lock_pins_satisfy_what_pyproject_declares(root, lock, extras):
    """A stale lock (a requirement added or raised without `make lock`) fails here."""
    from packaging.requirements import Requirement

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = _lock(root / "requirements" / f"{lock}.lock")
    declared = [*project["dependencies"],
                *(r for e in extras for r in project["optional-dependencies"][e])]
    for text in declared:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{text} is not in requirements/{lock}.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"requirements/{lock}.lock pins {name}=={pins[name]}, outside {text}: run make lock"


def test_make_env_installs_the_lock(root, tmp_path):
    if not shutil.which("make"):
        pytest.skip("make not installed")
    for extras, lock in (("cpu,notebooks", "cpu"), ("gpu,notebooks", "gpu")):
        out = subprocess.run(["make", "-n", "env", f"VENV={tmp_path}/v", f"EXTRAS={extras}"],
                             cwd=root, capture_output=True, text=True).stdout
        assert f"pip install --quiet --require-hashes -r requirements/{lock}.lock" in out
        assert f"pip install --quiet --no-deps -e '.[{extras}]'" in out
        assert "dev.lock" not in out
    out = subprocess.run(["make", "-n", "test", f"VENV={tmp_path}/v"], cwd=root,
                         capture_output=True, text=True).stdout
    assert "pip install --quiet --require-hashes -r requirements/dev.lock" in out


def test_the_runtime_locks_bring_no_test_or_cluster_package_and_pin_hashes(root):
    """A plain install (make env, pip install -r cpu.lock) has neither pytest nor Ray."""
    for lock in ("cpu", "gpu"):
        text = (root / "requirements" / f"{lock}.lock").read_text()
        pins = re.findall(r"^([A-Za-z0-9_.-]+)==", text, re.M)
        assert pins and not {"pytest", "ray", "nbval", "ruff"} & {p.lower() for p in pins}
        assert text.count("--hash=sha256:") >= len(pins)
    dev = _lock(root / "requirements" / "dev.lock")
    cpu = _lock(root / "requirements" / "cpu.lock")
    assert {"pytest", "ray"} <= set(dev)
    assert not {k: (v, dev[k]) for k, v in cpu.items() if k in dev and dev[k] != v}


def test_environment_yml_installs_the_lock(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-r requirements/cpu.lock"]  # hashed: the project goes in afterwards
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    requires = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(requires).contains(python.split("=")[1] + ".0")


def test_the_package_imports_without_the_notebook_extra(root):
    """Colab installs the bare package: nothing in earth_lib may need papermill at import."""
    code = ("import sys, importlib, pkgutil, earth_lib\n"
            "sys.modules['papermill'] = None; sys.modules['nbconvert'] = None\n"
            "for m in pkgutil.iter_modules(earth_lib.__path__):\n"
            "    importlib.import_module('earth_lib.' + m.name)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def test_make_help_lists_every_target(root):
    if not shutil.which("make"):
        pytest.skip("make not installed")
    out = subprocess.run(["make", "-s", "help"], cwd=root, capture_output=True, text=True).stdout
    targets = re.findall(r"^## (\S+):", (root / "Makefile").read_text(), re.M)
    assert {"help", "env", "all", "preprocess", "classify", "compare", "test", "lab", "clean",
            "data", "bench"} <= set(targets)
    for t in targets:
        assert re.search(rf"^\s+{t}\s", out, re.M), t


def test_ruff_is_clean(root):
    ruff = shutil.which("ruff") or (root / ".venv" / "bin" / "ruff")
    if not ruff or not shutil.os.path.exists(ruff):
        pytest.skip("ruff not installed")
    res = subprocess.run([str(ruff), "check", "earth_lib", "tests", "benchmarks"], cwd=root,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_cli_rejects_a_bad_parameter_file(tmp_path, root):
    bad = tmp_path / "typo.yaml"
    bad.write_text("preprocess:\n  imagesize: 32\n")
    res = subprocess.run([sys.executable, "-m", "earth_lib.cli", "check-params", str(bad)],
                         cwd=root, capture_output=True, text=True)
    assert res.returncode == 2
    assert "typo.yaml: unknown parameter 'preprocess.imagesize'" in res.stderr


def test_check_params_prints_the_resolved_parameters(root, capsys):
    import yaml

    from earth_lib.cli import main
    from earth_lib.params import load_params

    assert main(["check-params", "params/smoke.yaml", "--set", "train.epochs=7", "--print"]) == 0
    out = capsys.readouterr().out
    head, body = out.split("\n", 1)
    assert head == "params/smoke.yaml with train.epochs=7: ok"
    resolved = yaml.safe_load(body)
    assert resolved == load_params("params/smoke.yaml", "train.epochs=7")
    assert resolved["train"]["epochs"] == 7 and "model" in resolved  # defaults filled in


def test_docs_document_every_parameter(root):
    from earth_lib.params import SCHEMA, Param

    table = (root / "docs" / "parameters.md").read_text()
    for section, spec in SCHEMA.items():
        keys = [section] if isinstance(spec, Param) else [f"{section}.{k}" for k in spec]
        for key in keys:
            assert f"`{key}`" in table, key
    readme = (root / "README.md").read_text()
    assert "make all" in readme and "make test" in readme


def test_readme_is_a_short_guide_whose_links_resolve(root):
    """At most 300 lines; every relative link points to a file of the repository."""
    import re

    readme = (root / "README.md").read_text()
    assert readme.count("\n") <= 300
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_no_file_of_the_package_is_ignored_by_git(root):
    """A clone gets every module: an ignore rule (e.g. ``data/``) must not hide one."""
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(root)) for p in (root / "earth_lib").rglob("*.py")
             if "__pycache__" not in p.parts]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=root,
                             capture_output=True, text=True).stdout.split()
    assert not ignored, f"git ignores {ignored}: fix .gitignore"


def test_readme_lists_every_module_of_the_package(root):
    """The README's module table and earth_lib/ hold the same modules (``name/``: a package)."""
    readme = (root / "docs" / "development.md").read_text()
    table = readme[readme.index("## The package"):readme.index("## Development")]
    listed = set(re.findall(r"^\| `(\w+/?)` \|", table, re.M))
    modules = {p.stem for p in (root / "earth_lib").glob("*.py") if p.stem != "__init__"}
    modules |= {f"{p.parent.name}/" for p in (root / "earth_lib").glob("*/__init__.py")}
    assert listed == modules, listed ^ modules


def test_make_evaluate_without_run_says_how(root, tmp_path):
    if not shutil.which("make"):
        pytest.skip("make not installed")
    res = subprocess.run(["make", "-s", "evaluate", f"DATA={tmp_path}", "VENV=.venv"], cwd=root,
                         capture_output=True, text=True)
    assert res.returncode != 0 and "usage: make evaluate RUN=" in res.stdout + res.stderr
    res = subprocess.run(["make", "-s", "export", "VENV=.venv"], cwd=root, capture_output=True,
                         text=True)
    assert res.returncode == 2 and "usage: make export RUN=" in res.stdout + res.stderr
    res = subprocess.run(["make", "-s", "pair", "RUN=outputs/x", "VENV=.venv"], cwd=root,
                         capture_output=True, text=True)
    out = res.stdout + res.stderr
    assert res.returncode == 2 and "usage: make pair RUN=outputs/<run> OTHER=" in out


def test_run_notebook_checks_the_data_folder_before_a_kernel_starts(tmp_path, root):
    params = tmp_path / "mine.yaml"
    params.write_text(f"data: {{dataset: folder, raw_dir: {tmp_path / 'nowhere'}}}\n")
    res = subprocess.run([sys.executable, "-m", "earth_lib.cli", "run-notebook",
                          "notebooks/01_preprocessing.ipynb", "--params", str(params),
                          "--run-dir", str(tmp_path / "run")], cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: {params}: data.raw_dir {tmp_path / 'nowhere'} is not a folder. Put one "
        "sub-folder of images per class there, or fix data.raw_dir."]
    assert not (tmp_path / "run").exists()


def test_a_failing_notebook_ends_with_one_clear_line(tmp_path, root):
    import numpy as np

    from tests.conftest import write_png

    write_png(tmp_path / "raw" / "forest" / "a.png", np.zeros((8, 8, 3), np.uint8))
    params = tmp_path / "one_class.yaml"
    params.write_text(f"data: {{dataset: folder, raw_dir: {tmp_path / 'raw'}}}\n"
                      f"preprocess: {{processed_dir: {tmp_path / 'proc'}}}\n")
    res = subprocess.run([sys.executable, "-m", "earth_lib.cli", "run-notebook",
                          "notebooks/01_preprocessing.ipynb", "--params", str(params),
                          "--run-dir", str(tmp_path / "run")], cwd=root, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 01_preprocessing.ipynb stopped in cell")
    assert "DatasetNotFoundError" in last and "at least 2" in last
    assert (tmp_path / "run" / "01_preprocessing.failed.ipynb").is_file()


def test_make_names_an_overridden_run_like_the_package(root):
    """SET goes to outputs/<params>.set-<hash>, the folder earth_lib.run computes too."""
    if not shutil.which("make"):
        pytest.skip("make not installed")
    from earth_lib.paths import run_dir_for

    cmd = ["make", "-n", "all", "PARAMS=params/smoke.yaml", "VENV=.venv", "OUTPUTS=outs"]
    plain = subprocess.run(cmd, cwd=root, capture_output=True, text=True).stdout
    over = subprocess.run(cmd + ["SET=train.epochs=2   seed=3"], cwd=root, capture_output=True,
                          text=True).stdout
    expected = run_dir_for("params/smoke.yaml", "outs", "train.epochs=2 seed=3")
    assert "--run-dir 'outs/smoke' --set ''" in plain
    assert f"--run-dir '{expected}' --set 'train.epochs=2 seed=3'" in over


@pytest.mark.xdist_group("smoke-data")  # makes data/raw/smoke, as test_pipeline.py does
def test_make_with_set_runs_the_overridden_parameters(root, tmp_path):
    if not shutil.which("make"):
        pytest.skip("make not installed")
    from earth_lib.paths import run_dir_for

    sets = f"preprocess.image_size=12 preprocess.processed_dir={tmp_path / 'proc'}"
    res = subprocess.run(["make", "-s", "preprocess", "PARAMS=params/smoke.yaml",
                          f"OUTPUTS={tmp_path}", f"SET={sets}"], cwd=root, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    run = run_dir_for("params/smoke.yaml", tmp_path, sets)
    rec = json.loads((run / "run.json").read_text())
    assert rec["overrides"] == sets and rec["params"]["preprocess"]["image_size"] == 12
    prep = json.loads((tmp_path / "proc" / "preprocessing.json").read_text())
    assert prep["image_size"] == 12
    assert not (tmp_path / "smoke").exists()
    bad = subprocess.run(["make", "-s", "preprocess", "PARAMS=params/smoke.yaml",
                          f"OUTPUTS={tmp_path}", "SET=train.epoch=2"], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "with overrides 'train.epoch=2': unknown parameter 'train.epoch'" in bad.stderr


def test_build_and_warning_settings(root):
    """SPDX licence string needs setuptools 77; no blanket warning filter hides a break."""
    from packaging.requirements import Requirement

    cfg = tomllib.loads((root / "pyproject.toml").read_text())
    setuptools = next(Requirement(r) for r in cfg["build-system"]["requires"]
                      if r.startswith("setuptools"))
    assert isinstance(cfg["project"]["license"], str) and not setuptools.specifier.contains("76")
    for f in cfg["tool"]["pytest"]["ini_options"]["filterwarnings"]:
        action, message, category, module = (f.split(":") + [""] * 4)[:4]
        assert action != "ignore" or (message and module), f"too broad: {f}"


def test_tensorflow_starts_quietly_under_earth_lib(root):
    """TensorFlow's start-up log lines (oneDNN, CUDA factories, absl) do not reach a user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    res = subprocess.run([sys.executable, "-c", "import earth_lib.cli\nimport tensorflow as tf\n"
                          "print(float(tf.reduce_sum(tf.ones((2, 2)))))"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "4.0"
    assert res.stderr.strip() == "", res.stderr


def test_the_guide_and_docs_carry_no_history(root):
    """History is the git log: no commit hashes or issue numbers in prose, code or params."""
    pattern = re.compile(r"\bcommits?\s+[0-9a-f]{7,40}\b|\b[Ii]ssues? \d+\b|[\w-]\.[0-9a-f]{7}/")
    files = [root / "README.md", *(root / "docs").glob("*.md"), *(root / "params").glob("*.yaml"),
             *(root / "earth_lib").rglob("*.py")]
    found = [f"{p.relative_to(root)}: {m.group(0)}" for p in files
             for m in pattern.finditer(p.read_text(encoding="utf-8"))]
    assert not found, found
