"""Where a run goes and what the project may delete: run names, its marker file, ``make clean``.

Standard library only: the Makefile calls it with the system Python, before any environment
exists (``python -m earth_lib.paths name PARAMS SET``, ``... clean OUTPUTS``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

#: The file that marks a folder as made by earth-resnet (a run, generated or processed data);
#: ``make clean`` removes only folders that carry it.
MARKER = ".earth-resnet"
#: The labels CSV written beside generated mosaics (and read by default for them).
MOSAIC_LABELS = "labels.csv"
#: The folder of the project's own parameter files: their runs are named by the stem alone.
PARAMS_DIR = Path(__file__).resolve().parents[1] / "params"
#: The committed learning curve's records (``make curve``), relative to the project root.
CURVE_RECORDS = "results/curve"
#: The parameter file whose plan those records fill (the reports' "N of M planned cells").
CURVE_PARAMS = PARAMS_DIR / "curve.yaml"


def overrides_tag(overrides: str) -> str:
    """``.set-<8 hex>`` naming a run with overrides (empty without); whitespace collapsed."""
    text = " ".join(overrides.split())
    return f".set-{hashlib.sha1(text.encode()).hexdigest()[:8]}" if text else ""


def run_name(params_file: str | Path, overrides: str = "") -> str:
    """The run folder's name: the parameter file's stem and its overrides' tag.

    A file outside the project's ``params/`` adds a digest of its full path, so two
    ``smoke.yaml`` files in two folders never share a run.
    """
    path = Path(params_file).expanduser().resolve()
    name = path.stem
    if path.parent != PARAMS_DIR:
        name += "." + hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return name + overrides_tag(overrides)


def mark(folder: str | Path, kind: str) -> Path:
    """Mark ``folder`` (made if needed) as made by earth-resnet; ``kind`` says what it is."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    if not marker.is_file():
        marker.write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")
    return marker


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


def run_dir_for(params_file: str | Path, outputs: str | Path = "outputs",
                overrides: str = "") -> Path:
    """``outputs/<run name>``: one folder per parameter file and set of overrides."""
    return Path(outputs) / run_name(params_file, overrides)


def _refuse(outputs: str) -> str | None:
    """Why ``outputs`` must not be cleaned (empty, a root, home, the project or above), or None."""
    if not outputs.strip():
        return "it is empty"
    path = Path(outputs.strip()).expanduser().resolve()
    project = PARAMS_DIR.parent
    if len(path.parts) <= 2:
        return f"{path} is a top-level folder"
    if path == Path.home() or path in (project, *project.parents):
        return f"{path} is the home, project or a parent folder"
    return None


def clean_outputs(outputs: str | Path, data: str | Path | None = None,
                  log=print) -> list[Path]:
    """Remove the folders earth-resnet made under ``outputs`` (and ``data``); keep the rest.

    Only folders that carry the project's marker go. Returns what was removed.

    Raises:
        ValueError (a ``ParameterError`` when the package is importable): ``outputs`` is
            empty or root-like, so that ``make clean OUTPUTS=`` can never reach ``/``.
    """
    reason = _refuse(str(outputs))
    if reason is not None:
        raise _parameter_error(f"OUTPUTS={str(outputs)!r} refused: {reason}. Give the folder "
                               "of run folders, e.g. make clean OUTPUTS=outputs.")
    removed, kept = [], []
    roots = [Path(outputs)] + ([Path(data) / "raw", Path(data) / "processed"] if data else [])
    for root in roots:
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if not child.is_dir() or child.is_symlink():
                continue
            if (child / MARKER).is_file():
                shutil.rmtree(child)
                removed.append(child)
            else:
                kept.append(child)
    log(f"removed {len(removed)} folder(s) made by earth-resnet"
        + (f"; kept {len(kept)} without its marker ({MARKER}): "
           + ", ".join(str(k) for k in kept[:5]) if kept else ""))
    return removed


def _parameter_error(message: str) -> Exception:
    try:
        from earth_lib.errors import ParameterError
    except ImportError:  # pragma: no cover  (errors.py is standard library too)
        return ValueError(message)
    return ParameterError(message)


def main(argv: list[str]) -> int:
    """``name PARAMS [SET]`` prints the run name; ``clean OUTPUTS [DATA]`` cleans."""
    try:
        if argv[:1] == ["name"] and len(argv) in (2, 3):
            print(run_name(argv[1], argv[2] if len(argv) == 3 else ""))
        elif argv[:1] == ["clean"] and len(argv) in (2, 3):
            clean_outputs(argv[1], argv[2] if len(argv) == 3 else None)
        else:
            print("usage: python -m earth_lib.paths name PARAMS [SET] | clean OUTPUTS [DATA]",
                  file=sys.stderr)
            return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
