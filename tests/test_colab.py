"""The Colab set-up cell, run outside Colab with a fake ``google.colab`` and a local clone."""

import json
import os
import re
import subprocess
import sys
import types

import pytest

NOTEBOOKS = ["01_preprocessing.ipynb", "02_earth_classifier.ipynb", "03_does_the_search_pay.ipynb"]


def _cell(root):
    cells = ["".join(json.loads((root / "notebooks" / n).read_text())["cells"][1]["source"])
             for n in NOTEBOOKS]
    assert len(set(cells)) == 1, "the Colab cell differs between notebooks"
    return cells[0]


def _run_cell(root, capsys, url, target):
    src = _cell(root)
    src = re.sub(r'^REPO_URL = .*$', f"REPO_URL = {str(url)!r}", src, flags=re.M)
    src = re.sub(r'^COLAB_DIR = .*$', f"COLAB_DIR = {str(target)!r}", src, flags=re.M)
    assert f"COLAB_DIR = {str(target)!r}" in src
    exec(compile(src, "colab-cell", "exec"), {})
    return capsys.readouterr().out.strip()


@pytest.fixture
def in_colab(monkeypatch):
    """A fake google.colab, pip calls recorded instead of run, the working folder restored."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls, real = [], subprocess.run

    def fake_run(cmd, *a, **kw):
        if cmd[1:4] == ["-m", "pip", "install"]:
            pins = open(cmd[-1]).read().splitlines() if cmd[-2] == "-c" else None
            calls.append((cmd, pins))
            return subprocess.CompletedProcess(cmd, 0)
        return real(cmd, *a, **kw)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "path", list(sys.path))
    here = os.getcwd()
    yield calls
    os.chdir(here)


@pytest.fixture
def origin(tmp_path):
    repo = tmp_path / "origin"
    repo.mkdir()
    (repo / "README.md").write_text("x\n")
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (repo / "requirements").mkdir()
    (repo / "requirements" / "cpu.lock").write_text(
        "# a lock\nnumpy==2.0.1 ; python_version >= '3.11' \\\n    --hash=sha256:ab\n"
        "    # via x\ngpy==1.13.2\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(git + cmd, check=True, capture_output=True)
    return repo


def test_outside_colab_the_cell_does_nothing(root, capsys, tmp_path):
    here = os.getcwd()
    assert _run_cell(root, capsys, "unused", tmp_path / "t") == "not in Colab: nothing to install"
    assert os.getcwd() == here and not (tmp_path / "t").exists()


def test_in_colab_it_clones_once_and_installs_the_bare_package(root, capsys, tmp_path, origin,
                                                                in_colab):
    target = tmp_path / "earth-resnet"
    out = _run_cell(root, capsys, origin, target)
    assert out.splitlines()[0] == "installed: earth-resnet is ready"
    assert (target / "README.md").is_file() and os.getcwd() == str(target)
    (cmd, constraints), = in_colab
    assert cmd[:-2] == [sys.executable, "-m", "pip", "install", "-q", "-e", str(target)]
    assert cmd[-2] == "-c" and constraints == ["numpy==2.0.1 ; python_version >= '3.11'",
                                               "gpy==1.13.2"]
    # after a runtime restart: the clone is kept, not cloned again
    (target / "kept").write_text("")
    assert _run_cell(root, capsys, origin, target).startswith("installed: earth-resnet is ready")
    assert (target / "kept").exists()


def test_an_uploaded_copy_is_used_without_cloning(root, capsys, tmp_path, in_colab):
    target = tmp_path / "earth-resnet"
    target.mkdir()
    (target / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    out = _run_cell(root, capsys, tmp_path / "nowhere", target)
    assert out.startswith("installed") and not (target / ".git").exists()
    assert in_colab[0][0][-1] == str(target)  # no lock in the copy: no constraints


def test_a_runtime_without_gpu_is_told_how_to_get_one(root, capsys, tmp_path, origin, in_colab,
                                                      monkeypatch):
    import earth_lib.colab

    monkeypatch.setattr(earth_lib.colab, "_has_gpu", lambda: False)
    out = _run_cell(root, capsys, origin, tmp_path / "t")
    assert "Runtime > Change runtime type > a GPU" in out
    monkeypatch.setattr(earth_lib.colab, "_has_gpu", lambda: True)
    assert "GPU" not in _run_cell(root, capsys, origin, tmp_path / "t")


def test_badges_and_cells_follow_the_url_in_pyproject(root, tmp_path):
    import shutil

    from earth_lib.colab import repository_url, setup_cell, sync_colab

    assert sync_colab(root) == [], "out of step with pyproject.toml: run make readme"
    copy = tmp_path / "copy"
    shutil.copytree(root / "notebooks", copy / "notebooks")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, copy / name)
    meta = (copy / "pyproject.toml").read_text()
    (copy / "pyproject.toml").write_text(meta.replace(repository_url(root),
                                                      "https://github.com/someone/fork"))
    assert sorted(sync_colab(copy)) == ["README.md", *[f"notebooks/{n}" for n in NOTEBOOKS]]
    text = (copy / "README.md").read_text()
    assert "colab.research.google.com/github/someone/fork/blob/main/notebooks/01_" in text
    assert repository_url(root) + "/" not in text
    for n in NOTEBOOKS:
        nb = json.loads((copy / "notebooks" / n).read_text())
        assert "".join(nb["cells"][1]["source"]) == setup_cell("https://github.com/someone/fork")
        assert f"someone/fork/blob/main/notebooks/{n}" in "".join(nb["cells"][0]["source"])
    assert sync_colab(copy) == []


def test_a_failed_clone_says_which_url_and_what_to_do(root, capsys, tmp_path, in_colab):
    with pytest.raises(RuntimeError,
                       match=r"(?s)Could not clone .*nowhere.*Set REPO_URL to a.*upload"):
        _run_cell(root, capsys, tmp_path / "nowhere", tmp_path / "t")
    assert not in_colab


def test_a_changed_numpy_asks_for_a_restart(root, capsys, tmp_path, origin, in_colab,
                                             monkeypatch):
    import importlib.metadata

    real, seen = importlib.metadata.version, []

    def version(name):
        seen.append(name)
        return real(name) + (".new" if in_colab and name == "numpy" else "")

    monkeypatch.setattr(importlib.metadata, "version", version)
    out = _run_cell(root, capsys, origin, tmp_path / "t")
    assert "numpy changed version: Runtime > Restart session" in out
