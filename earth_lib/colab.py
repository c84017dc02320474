"""Colab: the set-up each notebook's first cell runs, and that cell generated from one URL.

Standard library only: ``colab_setup`` runs before the project's dependencies are installed.
The repository's address lives once, in ``pyproject.toml`` (``[project.urls] Repository``);
``sync_colab`` writes it into the README's badges and every notebook's first cells.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

# the lock whose versions Colab installs as constraints (the runtime set, no test packages)
COLAB_LOCK = "requirements/cpu.lock"
CELL_MARK = "# Colab set-up"
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/"
                   r"[^/\s)]+/(?P<path>[^\s)]+\.ipynb)")
NOTEBOOK_GLOBS = ("notebooks/*.ipynb", "tests/notebooks/*.ipynb")


def repository_url(root: str | Path = ".") -> str:
    """The project's repository address, as ``pyproject.toml`` declares it."""
    meta = tomllib.loads((Path(root) / "pyproject.toml").read_text(encoding="utf-8"))
    try:
        return meta["project"]["urls"]["Repository"].rstrip("/")
    except KeyError as err:
        raise KeyError("pyproject.toml: [project.urls] has no Repository") from err


def badge_url(repository: str, notebook: str, branch: str = "main") -> str:
    """Colab's address for a notebook of a GitHub repository."""
    slug = re.sub(r"^https://github\.com/|\.git$", "", repository)
    return f"https://colab.research.google.com/github/{slug}/blob/{branch}/{notebook}"


def setup_cell(repository: str) -> str:
    """The source of every notebook's first code cell (it can only use the standard library)."""
    return f'''{CELL_MARK} (generated from pyproject.toml by `make readme`): in Google Colab,
# find or clone the project and install what Colab lacks, at the tested versions;
# elsewhere, nothing.
# Not published yet, or no network? Upload the project (unzipped) to /content/earth-resnet,
# or keep it in Google Drive and set COLAB_DIR to "/content/drive/MyDrive/earth-resnet".
REPO_URL = "{repository}.git"  # or your fork or mirror
import os, subprocess, sys  # noqa: E401
IN_COLAB = "google.colab" in sys.modules
COLAB_DIR = "/content/earth-resnet"
if IN_COLAB and COLAB_DIR.startswith("/content/drive/"):
    from google.colab import drive
    drive.mount("/content/drive")
if IN_COLAB and not os.path.isfile(f"{{COLAB_DIR}}/pyproject.toml") and subprocess.run(
        ["git", "clone", "-q", "--depth", "1", REPO_URL, COLAB_DIR]).returncode:
    raise RuntimeError(f"Could not clone {{REPO_URL}}. Set REPO_URL to a repository you can "
                       f"reach, or upload the project to {{COLAB_DIR}}; run the cell again.")
sys.path.insert(0, COLAB_DIR)
from earth_lib.colab import colab_setup  # noqa: E402
print(colab_setup(COLAB_DIR, IN_COLAB))'''


def sync_colab(root: str | Path = ".") -> list[str]:
    """Rewrite the README's and the notebooks' badges and Colab cells from pyproject.toml.

    Returns the files it changed (none when all are in step). Outputs are left alone.
    """
    root = Path(root)
    repository, changed = repository_url(root), []

    def badges(text: str) -> str:
        return BADGE.sub(lambda m: badge_url(repository, m["path"]), text)

    readme = root / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if badges(text) != text:
            readme.write_text(badges(text), encoding="utf-8")
            changed.append("README.md")
    for path in sorted(p for g in NOTEBOOK_GLOBS for p in root.glob(g)):
        nb = json.loads(path.read_text(encoding="utf-8"))
        before = json.dumps(nb)
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                cell["source"] = badges(src).splitlines(keepends=True)
            elif src.startswith(CELL_MARK):
                cell["source"] = setup_cell(repository).splitlines(keepends=True)
        if json.dumps(nb) != before:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n",
                            encoding="utf-8")
            changed.append(path.relative_to(root).as_posix())
    return changed


def _constraints(lock: Path) -> str | None:
    """The lock's pins without hashes or comments (pip refuses hashes in constraints)."""
    if not lock.is_file():
        return None
    pins = [line.split(" \\")[0].strip() for line in lock.read_text().splitlines()
            if line and not line[0].isspace() and not line.startswith(("#", "-", "--"))]
    handle, name = tempfile.mkstemp(suffix=".txt", prefix="earth-resnet-constraints-")
    with os.fdopen(handle, "w") as f:
        f.write("\n".join(pins) + "\n")
    return name


def _has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi], capture_output=True).returncode == 0


def colab_setup(target: str, in_colab: bool) -> str:
    """Work in the project's folder, pip-install the bare package there; say what is due.

    Colab already has TensorFlow, numpy, scikit-learn...: pip adds what is missing (GPy,
    GPyOpt), at the versions of the project's lock. A package already loaded that changes
    version needs a runtime restart; a runtime without a GPU is told how to get one.
    """
    if not in_colab:
        return "not in Colab: nothing to install"
    os.chdir(target)
    loaded = {m: importlib.metadata.version(m) for m in ("numpy", "scipy", "pandas")
              if m in sys.modules}
    pip = [sys.executable, "-m", "pip", "install", "-q", "-e", target]
    constraints = _constraints(Path(target) / COLAB_LOCK)
    subprocess.run(pip + (["-c", constraints] if constraints else []), check=True)
    changed = [m for m, v in loaded.items() if importlib.metadata.version(m) != v]
    lines = [f"installed; {', '.join(changed)} changed version: Runtime > Restart session, "
             "then run this cell again" if changed else "installed: earth-resnet is ready"]
    if not _has_gpu():
        lines.append("no GPU in this runtime (training is 10-50x slower): Runtime > Change "
                     "runtime type > a GPU, then run the notebook again from the top")
    return "\n".join(lines)
