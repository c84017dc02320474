"""Colab set-up, called by each notebook's first cell once the project is cloned.

Standard library only: it runs before the project's dependencies are installed.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys


def colab_setup(target: str, in_colab: bool) -> str:
    """Work in the clone, pip-install the bare package there; say if a restart is due.

    Colab already has TensorFlow, numpy, scikit-learn...: pip adds only what is missing
    (GPy, GPyOpt). A package already loaded that changes version needs a runtime restart.
    """
    if not in_colab:
        return "not in Colab: nothing to install"
    os.chdir(target)
    loaded = {m: importlib.metadata.version(m) for m in ("numpy", "scipy", "pandas")
              if m in sys.modules}
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", target], check=True)
    changed = [m for m, v in loaded.items() if importlib.metadata.version(m) != v]
    if changed:
        return (f"installed; {', '.join(changed)} changed version: Runtime > Restart session, "
                "then run this cell again")
    return "installed: earth-resnet is ready"
