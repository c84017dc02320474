"""Every error earth-resnet raises on purpose, and the one rule for files that cannot be read.

Each class subclasses a built-in (so ``except ValueError`` keeps working) and
:class:`EarthResnetError`, so the command line can tell a clear, expected error (one
line, exit status 2) from a bug (a traceback).
"""

from __future__ import annotations

#: What ``data.on_bad_file`` may say: list an unreadable file and go on, or stop on it.
BAD_FILE_POLICIES = ("skip", "error")
DEFAULT_BAD_FILE_POLICY = "skip"
#: The most pixels (height x width) an image may have, in every format: Pillow's own
#: decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``), as ``data.max_image_pixels``.
DEFAULT_MAX_PIXELS = 89_478_485


class EarthResnetError(Exception):
    """Base of the errors below: an expected failure whose message says what to do."""


class ParameterError(EarthResnetError, ValueError):
    """A parameter file holds an unknown key, a wrong type or an impossible value."""


class BadImageError(EarthResnetError, ValueError):
    """An image file cannot be read (empty, truncated, corrupt or of an unknown layout)."""


class DatasetNotFoundError(EarthResnetError, FileNotFoundError):
    """The data folder is missing or holds no usable class folders."""


class ArchiveError(EarthResnetError, ValueError):
    """A data-set archive is present but unusable (not a zip, or without the expected folder)."""


class ChecksumMismatchError(ArchiveError):
    """A downloaded or hand-placed archive does not have the published checksum."""


class RunNotFoundError(EarthResnetError, FileNotFoundError):
    """A run folder is missing, or lacks what the command needs (a trained model, metrics)."""


class RunFormatError(EarthResnetError, ValueError):
    """A run file was written in a format this version cannot read (too new or damaged)."""


class RunInUseError(EarthResnetError, RuntimeError):
    """Another process is writing the run folder (it holds the folder's lock)."""


class SearchHistoryError(EarthResnetError, ValueError):
    """A search history on disk belongs to another search (other space or columns)."""


def skip_or_raise(policy: str, error: Exception, path: str | object,
                  skipped: list[tuple[str, str]]) -> None:
    """Apply ``data.on_bad_file``: raise ``error`` (``error``) or list the file (``skip``)."""
    if policy not in BAD_FILE_POLICIES:
        raise ParameterError(f"on_bad_file must be one of {', '.join(BAD_FILE_POLICIES)}. "
                             f"Got {policy!r} instead.")
    if policy == "error":
        raise error
    skipped.append((str(path), str(error)))
