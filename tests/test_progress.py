"""Progress shown as lines where no person watches a bar (papermill, log files)."""

import pytest

from earth_lib import progress
from earth_lib.progress import LineProgress, headless, progress_bar


@pytest.mark.parametrize("value, expected", [("lines", True), ("bar", False), ("LINES", True)])
def test_the_environment_chooses_the_display(monkeypatch, value, expected):
    monkeypatch.setenv(progress.ENV, value)
    assert headless() is expected
    assert isinstance(progress_bar(range(3)), LineProgress) is expected


def test_lines_count_time_and_finish_once(capsys):
    items = list(LineProgress(range(5), desc="loading", interval=0))
    assert items == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().out.strip().splitlines()
    assert "\r" not in "".join(lines)
    assert lines[0].startswith("loading: 1/5 (20%)") and "so far" in lines[0]
    assert lines[-1].startswith("loading: 5/5 (100%)")
    assert len(lines) == 6  # one per item, and the closing line


def test_lines_are_rate_limited_and_silent_when_disabled(capsys):
    bar = LineProgress(total=1000, desc="preprocessing", interval=3600)
    for _ in range(1000):
        bar.update()
    bar.close()
    bar.close()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("preprocessing: 1000/1000 (100%)")
    with LineProgress(total=10, desc="x", interval=0, disable=True) as quiet:
        quiet.update(10)
    assert capsys.readouterr().out == ""


def test_byte_counts_and_unknown_totals(capsys):
    with LineProgress(total=3 * 2**20, initial=2**20, unit="B", unit_scale=True,
                      desc="EuroSAT.zip", interval=0) as bar:
        bar.update(2**20)
    with LineProgress(desc="stream", interval=0) as bar:
        bar.update(7)
    out = capsys.readouterr().out
    assert "EuroSAT.zip: 2.10M/3.15M (67%)" in out and "stream: 7," in out
