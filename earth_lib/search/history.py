"""The search history: trials on disk, one row each, stamped with what they mean."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earth_lib.errors import SearchHistoryError
from earth_lib.io import atomic_write_text
from earth_lib.search.space import SearchSpace

RESULT_COLUMNS = ("budget", "repeat", "val_loss", "val_accuracy", "seconds", "status", "error")


@dataclass
class Trial:
    """One evaluated point: step, index within the step, how it was chosen, and its results.

    ``budget`` multiplies the trial's training length (1: an ordinary trial); ``repeat``
    numbers re-evaluations of one point with another training seed; ``status`` is ``ok``,
    ``failed`` (it raised, or gave no finite loss; ``error`` says why), ``time_limit``, or
    ``reused`` (the point was scored before at this budget and repeat: that result, copied).
    """

    step: int
    trial: int
    source: str
    hp: dict[str, float | int]
    val_loss: float
    val_accuracy: float
    seconds: float
    budget: float = 1.0
    repeat: int = 0
    status: str = "ok"
    error: str = ""


def point_key(hp: dict[str, float | int]) -> tuple:
    """A hashable identity of a point (values rounded, so encode/decode noise is ignored)."""
    return tuple(sorted((k, round(float(v), 10)) for k, v in hp.items()))


def scored_before(trials: list[Trial], hp: dict[str, float | int], budget: float = 1.0,
                  repeat: int = 0) -> Trial | None:
    """The first ``ok`` trial of this point at this budget and repeat, if any.

    A seeded objective gives it again digit for digit (on a CPU), so it need not be re-run.
    """
    key = point_key(hp)
    return next((t for t in trials if t.status == "ok" and t.budget == budget
                 and t.repeat == repeat and point_key(t.hp) == key), None)


def fingerprint(parts: dict[str, Any]) -> dict[str, str]:
    """A short digest of each part of what gives a trial its meaning (arrays or JSON values)."""
    out = {}
    for name, value in parts.items():
        h = hashlib.sha256()
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype}{value.shape}".encode())
            rows = value.reshape(1) if value.ndim == 0 else value
            for start in range(0, len(rows), 1024):  # by chunks: same digest, bounded memory
                h.update(np.ascontiguousarray(rows[start:start + 1024]).tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode())
        out[name] = h.hexdigest()[:16]
    return out


class SearchHistory:
    """The history CSV: one row per finished trial, rewritten atomically after each trial.

    Beside it, ``<name>.fingerprint.json`` holds the digests of what the trials mean (the
    space, the trial settings, the data, the split...); a rerun with other digests is
    refused, naming the part that changed, rather than mixing trials of two searches.
    """

    def __init__(self, path: str | Path, names: list[str],
                 fingerprint: dict[str, str] | None = None):
        self.path = Path(path)
        self.stamp = self.path.with_name(self.path.stem + ".fingerprint.json")
        self.columns = ["step", "trial", "source", *names, *RESULT_COLUMNS]
        self.names = names
        self.trials: list[Trial] = []
        # trials started and not yet recorded: a trial that kills the process (out of
        # memory) is started again once on resume, then recorded as failed and skipped
        self.started_path = self.path.with_name(self.path.stem + ".started.json")
        self.fingerprint = fingerprint or {}
        self.started: dict[str, int] = {}
        if self.path.is_file():
            self._check(fingerprint or {})
            self._read()
        elif fingerprint:
            atomic_write_text(self.stamp, json.dumps(fingerprint, indent=2) + "\n")
        if self.started_path.is_file():
            saved = json.loads(self.started_path.read_text(encoding="utf-8"))
            if saved.get("fingerprint") == self.fingerprint:
                self.started = {k: int(v) for k, v in saved.get("started", {}).items()}

    @staticmethod
    def _job_key(job: tuple) -> str:
        """``step/source/index`` of a job ``(step, index, source, ...)`` or of a trial."""
        return f"{job[0]}/{job[2]}/{job[1]}"

    def starts(self, job: tuple) -> int:
        """How often the job ``(step, index, source, ...)`` was started without being recorded."""
        return self.started.get(self._job_key(job), 0)

    def begin(self, job: tuple) -> None:
        """Note that a job starts, before it runs (atomic), so a kill mid-trial is known."""
        self.started[self._job_key(job)] = self.starts(job) + 1
        self._save_started()

    def _save_started(self) -> None:
        atomic_write_text(self.started_path, json.dumps(
            {"fingerprint": self.fingerprint, "started": self.started}, indent=2) + "\n")

    def _check(self, fingerprint: dict[str, str]) -> None:
        if not fingerprint:
            return
        if not self.stamp.is_file():
            raise SearchHistoryError(
                f"{self.path} has no fingerprint ({self.stamp.name}): it was written by an "
                "earlier version, so its trials cannot be checked against this search. Delete "
                f"{self.path} to start the search again.")
        old = json.loads(self.stamp.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        if changed:
            raise SearchHistoryError(
                f"{self.path} was written for another search: {', '.join(changed)} changed "
                "since its trials ran. Restore the earlier settings to resume it, or delete "
                f"{self.path} (and {self.stamp.name}) to start the search again.")

    def _read(self) -> None:
        with open(self.path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != self.columns:
                raise SearchHistoryError(
                    f"{self.path} was written for another search space (columns "
                    f"{reader.fieldnames}, expected {self.columns}); delete it to start again."
                )
            for row in reader:
                hp = {n: float(row[n]) for n in self.names}
                hp = {n: int(v) if v.is_integer() else v for n, v in hp.items()}
                loss = float(row["val_loss"])
                self.trials.append(Trial(
                    int(row["step"]), int(row["trial"]), row["source"], hp, loss,
                    float(row["val_accuracy"]), float(row["seconds"]), float(row["budget"]),
                    int(row["repeat"]), row["status"], row["error"]))

    def append(self, trial: Trial) -> None:
        """Record a finished trial (the whole file is rewritten atomically)."""
        self.trials.append(trial)
        if self.started.pop(self._job_key((trial.step, trial.trial, trial.source)),
                            None) is not None:
            self._save_started()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for t in self.trials:
            writer.writerow([t.step, t.trial, t.source, *(_cell(t.hp[n]) for n in self.names),
                             _cell(t.budget), t.repeat, _cell(t.val_loss),
                             _cell(t.val_accuracy), _cell(t.seconds), t.status, t.error])
        atomic_write_text(self.path, buf.getvalue())

    def find(self, step: int, source: str, index: int) -> Trial | None:
        """The recorded trial at this place of the search, if it already ran."""
        for t in self.trials:
            if (t.step, t.source, t.trial) == (step, source, index):
                return t
        return None


#: The error of a trial that was started twice and never finished: the process died in it.
KILLED_TWICE = ("started twice and never finished: the process was killed in it (out of "
                "memory?); skipped")


def trial_from(job: tuple, result: dict[str, Any], seconds: float, status: str,
               error: str) -> Trial:
    """The trial a job ``(step, index, source, hp, budget, repeat)`` gave.

    A run that reported ``ok`` without a finite loss is a failure.
    """
    step, index, source, hp, budget, repeat = job
    loss = float(result["val_loss"])
    if not math.isfinite(loss) and status == "ok":
        status, error = "failed", "no finite validation loss"
    return Trial(step, index, source, hp, loss, float(result.get("val_accuracy", float("nan"))),
                 round(seconds, 2), float(budget), repeat, status, error)


def history_fingerprint(space: SearchSpace, fingerprint: dict[str, str] | None) -> dict[str, str]:
    """The digests a history is stamped with: the space, and what the caller gives."""
    return {"space": json.dumps(space.to_dict(), sort_keys=True), **(fingerprint or {})}


def _cell(v: float | int) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)
