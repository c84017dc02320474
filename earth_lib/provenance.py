"""What produced a result: package versions, the git commit, the machine and TensorFlow's setup.

Recorded beside every run (``run.json``) and every learning-curve record.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions shape results (recorded in run.json).
PACKAGES = ("earth-resnet", "numpy", "scipy", "scikit-learn", "scikit-image", "tensorflow",
            "tensorflow-cpu", "keras", "GPy", "GPyOpt", "papermill", "matplotlib", "pillow",
            "tifffile")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results."""
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version (the whole environment, for the record)."""
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out[name] = dist.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


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


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compute_record() -> dict[str, Any] | None:
    """The devices, precision policy and thread settings TensorFlow ran with in this process.

    ``None`` when TensorFlow was not loaded (a stage that trains nothing): importing it
    only to describe it would cost seconds and say nothing about the stage.
    """
    if "tensorflow" not in sys.modules:
        return None
    import keras
    import tensorflow as tf

    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    threads = tf.config.threading
    return {"device": gpus[0] if gpus else f"CPU: {cpu_model()}", "gpus": gpus,
            "mixed_precision": keras.mixed_precision.global_policy().name.startswith("mixed"),
            "precision_policy": keras.mixed_precision.global_policy().name,
            "intra_op_threads": threads.get_intra_op_parallelism_threads() or "auto",
            "inter_op_threads": threads.get_inter_op_parallelism_threads() or "auto",
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                              "TF_NUM_INTEROP_THREADS", "CUDA_VISIBLE_DEVICES")
                    if k in os.environ}}
