"""The package's errors: each is a built-in error too, and the bad-file rule is one function."""

import inspect

import pytest

from earth_lib import errors


def test_every_error_subclasses_a_builtin_and_the_package_base():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if c.__module__ == errors.__name__ and c is not errors.EarthResnetError]
    assert len(classes) >= 8
    for c in classes:
        assert issubclass(c, errors.EarthResnetError), c
        assert any(issubclass(c, b) for b in (ValueError, FileNotFoundError, RuntimeError)), c


def test_checksum_mismatch_is_not_dataset_not_found():
    assert not issubclass(errors.ChecksumMismatchError, FileNotFoundError)
    assert issubclass(errors.ChecksumMismatchError, errors.ArchiveError)


def test_skip_or_raise():
    skipped = []
    err = errors.BadImageError("a.png: empty file")
    errors.skip_or_raise("skip", err, "a.png", skipped)
    assert skipped == [("a.png", "a.png: empty file")]
    with pytest.raises(errors.BadImageError, match="a.png"):
        errors.skip_or_raise("error", err, "a.png", skipped)
    with pytest.raises(errors.ParameterError, match="on_bad_file"):
        errors.skip_or_raise("ignore", err, "a.png", skipped)
    assert len(skipped) == 1
