"""Notebooks 1 and 2 with other parameters injected, for nbval (`make nbval-variants`).

nbval runs a notebook with the parameters its own cell holds (the single-label smoke set)
and cannot inject others. The multi-label path runs through the same notebooks, so each
variant here is the notebook itself plus papermill's injected-parameters cell, executed
once to store the outputs of the checked cells (``NBVAL_CHECK_OUTPUT``) that nbval then
compares. ``tests/test_project.py`` fails when a variant's code no longer matches its
notebook: rerun this script after editing a notebook.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "tests" / "notebooks"
#: variant name -> (parameter file, notebooks run in this order)
VARIANTS = {
    "multilabel": ("params/multilabel_smoke.yaml",
                   ("01_preprocessing.ipynb", "02_earth_classifier.ipynb")),
}


def variant_path(notebook: str, variant: str) -> Path:
    """Where the variant of ``notebook`` is kept: tests/notebooks/<stem>.<variant>.ipynb."""
    return FOLDER / f"{Path(notebook).stem}.{variant}.ipynb"


def write_variants(variant: str = "multilabel") -> list[Path]:
    """Execute each notebook of ``variant`` with its parameter file; keep the checked outputs."""
    import papermill as pm

    from earth_lib.cli import store_checked_outputs

    params_file, notebooks = VARIANTS[variant]
    os.environ.setdefault("EARTH_RESNET_PROGRESS", "lines")  # as make test runs nbval
    FOLDER.mkdir(exist_ok=True)
    written = []
    for name in notebooks:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            pm.execute_notebook(str(ROOT / "notebooks" / name), str(out), kernel_name="python3",
                                cwd=str(ROOT), progress_bar=False,
                                parameters={"params_file": params_file, "run_dir": "",
                                            "overrides": ""})
            store_checked_outputs(out, out)  # the injected cell kept, unchecked outputs cleared
            path = variant_path(name, variant)
            shutil.copyfile(out, path)
        written.append(path)
        print(f"wrote {path.relative_to(ROOT)}")
    return written


if __name__ == "__main__":
    write_variants(*sys.argv[1:])
