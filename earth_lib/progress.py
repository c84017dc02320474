"""Progress on long work that reads well in a notebook, a terminal and a log file.

Interactive (a terminal, or Jupyter with a person at it): tqdm's own bar, a widget in
notebooks. Headless (``make all`` runs notebooks through papermill, which shows a widget as
a frozen "0%"; or output redirected to a file): one plain line every few seconds, with the
count, elapsed time, time left and rate, formatted by tqdm. ``EARTH_RESNET_PROGRESS``
(``lines`` or ``bar``) overrides the choice; ``earth_lib.cli run-notebook`` sets ``lines``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm as tqdm_std
from tqdm.auto import tqdm as tqdm_auto

#: Environment variable choosing the display: ``lines`` or ``bar`` (unset: decided here).
ENV = "EARTH_RESNET_PROGRESS"
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {elapsed} so far, ~{remaining} " \
              "left, {rate_fmt}"


def headless() -> bool:
    """True when no person watches a live bar: papermill, a log file, CI."""
    choice = os.environ.get(ENV, "").lower()
    if choice in ("lines", "bar"):
        return choice == "lines"
    if "ipykernel" in sys.modules:
        return False  # a notebook with a frontend: the widget works
    return not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


class LineProgress:
    """A tqdm stand-in that prints a plain line every ``interval`` seconds and at the end."""

    def __init__(self, iterable: Iterable | None = None, total: float | None = None,
                 desc: str = "", interval: float = 10.0, initial: float = 0, unit: str = "it",
                 unit_scale: bool = False, disable: bool = False, **_: Any):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.interval = iterable, total, desc, interval
        self.n, self.initial, self.unit, self.unit_scale = initial, initial, unit, unit_scale
        self.disable, self.start, self.shown = disable, time.monotonic(), None

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        fmt = LINE_FORMAT if self.total else "{desc}: {n_fmt}, {elapsed} so far, {rate_fmt}"
        return tqdm_std.format_meter(self.n, self.total, elapsed, prefix=self.desc,
                                     unit=self.unit, unit_scale=self.unit_scale,
                                     initial=self.initial, bar_format=fmt)

    def update(self, n: float = 1) -> None:
        """Count ``n`` more; print a line when ``interval`` seconds have passed."""
        self.n += n
        now = time.monotonic()
        if not self.disable and (self.shown is None and now - self.start >= self.interval
                                 or self.shown is not None and now - self.shown >= self.interval):
            print(self._line(), flush=True)
            self.shown = now

    def close(self) -> None:
        """Print the final line (once)."""
        if not self.disable and self.shown != -1:
            print(self._line(), flush=True)
        self.shown = -1

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """A progress display over ``iterable`` (or ``total=``): a bar, or lines when headless.

    Takes tqdm's usual keywords (``total``, ``desc``, ``disable``, ``unit``, ...).
    """
    if headless():
        kwargs.pop("mininterval", None)
        return LineProgress(iterable, **kwargs)
    return tqdm_auto(iterable, **kwargs)
