"""Writing files safely: a reader sees the old file or the new one, never half of it.

Also the sweep of temporary files left by dead processes, and the lock a folder's one
writer holds. Images: :mod:`earth_lib.images`.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from earth_lib.errors import RunInUseError

_TEMP = re.compile(r"\.pid(\d+)\.[^/]*\.tmp$")


def new_mode(directory: bool = False) -> int:
    """The mode the user's umask gives a new file or folder.

    ``mkstemp`` and ``mkdtemp`` alone would make them private to the user.
    """
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def temporary_file(path: Path) -> Path:
    """A new, empty, uniquely named hidden file beside ``path``.

    Tagged with this process's id, so :func:`sweep_temporary_files` leaves it alone while
    this process lives.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp",
                                dir=path.parent)
    os.close(fd)
    return Path(name)


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """A file's hex digest (``hashlib`` algorithm name), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes via a temporary file in the same folder and an atomic rename.

    The file gets the mode a normal file would (umask), so colleagues can read results.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file(path)
    try:
        tmp.write_bytes(data)
        os.chmod(tmp, new_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (another user's counts)."""
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
        if match and not pid_alive(int(match[1])):
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


@contextmanager
def run_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder/.lock`` while a run writes the folder; a second writer is refused.

    The lock is the operating system's (``flock``): it goes with the process that holds it,
    so a killed run never leaves the folder locked.

    Raises:
        RunInUseError: another process holds the folder; the message names its PID.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115  (held for the whole block)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise RunInUseError(f"{folder} is being written by another run (process {holder}); "
                                "wait for it to finish, or stop it.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield folder
    finally:
        fh.close()
