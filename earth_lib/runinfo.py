"""Run records: where a run writes, and what produced it (parameters, versions, commit, machine)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from earth_lib.io import atomic_write_json

PACKAGES = ("earth-resnet", "numpy", "scipy", "scikit-learn", "scikit-image", "tensorflow",
            "tensorflow-cpu", "keras", "GPy", "GPyOpt", "papermill", "matplotlib", "pillow",
            "tifffile")


def project_root(start: str | Path | None = None) -> Path:
    """The folder holding ``pyproject.toml`` and ``earth_lib`` (searched upwards)."""
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "earth_lib").is_dir():
            return p
    raise FileNotFoundError(f"No earth-resnet project folder above {here}.")


def enter_project_root() -> Path:
    """Make the project root the working directory, so relative paths in params files work."""
    root = project_root()
    os.chdir(root)
    return root


def run_dir_for(params_file: str | Path, outputs: str | Path = "outputs") -> Path:
    """``outputs/<params file stem>``: one folder per parameter set."""
    return Path(outputs) / Path(params_file).stem


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results."""
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(root: str | Path = ".") -> str | None:
    """The commit of the working tree, with ``-dirty`` when it has uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_stage(run_dir: str | Path, stage: str, params: dict[str, Any],
                 params_file: str | None, finished: bool = False,
                 extra: dict[str, Any] | None = None) -> Path:
    """Add or update one stage (notebook) in ``run_dir/run.json``; atomic, keeps other stages."""
    path = Path(run_dir) / "run.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    record.update({"params_file": params_file, "params": params,
                   "packages": package_versions(), "git_commit": git_commit(),
                   "machine": {"platform": platform.platform(), "processor": platform.machine(),
                               "cpus": os.cpu_count()}})
    stage_rec = record.setdefault("stages", {}).setdefault(stage, {})
    if finished:
        stage_rec["finished"] = _now()
    else:
        stage_rec.clear()
        stage_rec["started"] = _now()
    stage_rec.update(extra or {})
    atomic_write_json(path, record)
    return path


def prepare_run_dir(params_file: str | Path, run_dir: str | Path | None = None) -> Path:
    """The run folder (given, or ``outputs/<params stem>``) with its ``figures/`` sub-folder."""
    path = Path(run_dir) if run_dir else run_dir_for(params_file)
    (path / "figures").mkdir(parents=True, exist_ok=True)
    return path


def save_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write ``run_dir/metrics.json`` atomically."""
    path = Path(run_dir) / "metrics.json"
    atomic_write_json(path, metrics)
    return path
