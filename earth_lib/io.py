"""Writing files safely: a reader sees the old file or the new one, never half of it.

Also the sweep of temporary files left by dead processes. Images: :mod:`earth_lib.images`.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_TEMP = re.compile(r"\.pid(\d+)\.[^/]*\.tmp$")


def _file_mode() -> int:
    """The mode the user's umask gives a new file (mkstemp alone would make it 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes via a temporary file in the same folder and an atomic rename.

    The file gets the mode a normal file would (umask), so colleagues can read results.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def sweep_temporary_files(folder: str | Path) -> int:
    """Remove the temporary files of :func:`atomic_write_bytes` left by dead processes.

    Another live run's files stay. Returns how many were removed.
    """
    removed = 0
    for stale in Path(folder).rglob(".*.tmp"):
        match = _TEMP.search(stale.name)
        if match and not _alive(int(match[1])):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text so that a reader sees the old file or the new one, never half of it."""
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (indented, numpy scalars converted)."""
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"cannot serialise {type(o).__name__}")

    atomic_write_text(path, json.dumps(obj, indent=2, default=default) + "\n")


def atomic_write_csv(path: str | Path, header: list[str], rows) -> None:
    """Write CSV rows atomically, quoted by the csv module (paths may hold commas or quotes)."""
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
