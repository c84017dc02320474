"""TensorFlow's start-up chatter kept from the user, before any module imports TensorFlow.

``TF_CPP_MIN_LOG_LEVEL`` silences most of it. Where TensorFlow turns oneDNN on (CPUs with
AVX512-VNNI, AVX512-BF16 or AMX) it logs through Abseil before Abseil's logging is set
up, which ignores that variable: two INFO lines and a warning about them, at import. The
first ``import tensorflow`` therefore runs with the process's standard error passing
through a filter that drops those log lines (as many as the level asks) and passes
everything else on at once, so a real error still shows.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Iterator

#: Abseil's warning that logging is not set up yet, and its log lines (severity, date)
_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"
_LOG_LINE = re.compile(rb"^([IWE])\d{4} ")
_LEVELS = {b"I": 1, b"W": 2, b"E": 3}  # the TF_CPP_MIN_LOG_LEVEL that silences each


def is_chatter(line: bytes, level: int) -> bool:
    """Whether a line TensorFlow wrote at start-up is log output that ``level`` silences."""
    if line.startswith(_PREAMBLE):
        return level >= 1
    m = _LOG_LINE.match(line)
    return bool(m) and level >= _LEVELS[m.group(1)]


@contextlib.contextmanager
def filtered_stderr(level: int) -> Iterator[None]:
    """Pass file descriptor 2 through :func:`is_chatter` while the block runs."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read, write = os.pipe()
    except (OSError, ValueError, AttributeError):  # no descriptor 2: nothing to filter
        yield
        return
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:
        rest = b""
        # OSError: a child process that inherited the pipe outlived the block (then closed)
        with os.fdopen(read, "rb", buffering=0) as pipe, contextlib.suppress(OSError):
            while chunk := pipe.read(65536):
                *lines, rest = (rest + chunk).split(b"\n")
                os.write(saved, b"".join(x + b"\n" for x in lines if not is_chatter(x, level)))
            if rest and not is_chatter(rest, level):
                os.write(saved, rest)

    thread = threading.Thread(target=pump, name="earth_lib-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, AttributeError, OSError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump drains and stops
        thread.join(timeout=10)
        os.close(saved)


class _QuietImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``tensorflow`` once through :func:`filtered_stderr`, then steps aside."""

    def __init__(self, level: int):
        self.level = level

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the import below, and every later one, are plain
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            self.inner, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        try:
            with filtered_stderr(self.level):
                self.inner.exec_module(module)
        finally:  # the module keeps TensorFlow's own loader (its resources are read through it)
            module.__spec__.loader = module.__loader__ = self.inner


def quiet_tensorflow() -> None:
    """Silence TensorFlow's start-up log lines (unless ``TF_CPP_MIN_LOG_LEVEL`` asks for them)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = 0
    if level >= 1 and "tensorflow" not in sys.modules and \
            not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport(level))
