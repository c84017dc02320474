"""Generic three-step Bayesian optimisation with GPyOpt (no network or training code here).

``run_search`` receives an objective ``f(hyperparameters: dict) -> {"val_loss": ..., ...}``
and a declared space. Each step evaluates a Latin-hypercube design, then asks GPyOpt
(Gaussian process, Expected Improvement) for one point at a time; every finished trial
is appended to the history CSV at once, so an interrupted search resumes where it
stopped. Between steps the space is tightened around the best point so far:

* continuous: the range keeps ``shrink`` of its width (in log10 for log dimensions),
  centred on the best value and moved back inside the previous range if needed;
* discrete: the best value and its neighbours in the sorted list are kept.

GPyOpt is imported here only, behind :func:`suggest_next`, so that a swap to another
optimiser (e.g. emukit) touches this module alone.

:func:`search_or_baseline` is the one call a run makes: it searches (or not, by the
``enabled`` switch), scores the literature values with the same objective, and returns
a :class:`Selection` saying which values the final training gets and why.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import qmc

from earth_lib.errors import SearchHistoryError
from earth_lib.io import atomic_write_text

RESULT_COLUMNS = ("budget", "repeat", "val_loss", "val_accuracy", "seconds", "status", "error")
DESIGNS = ("lhs", "random")
ACQUISITIONS = ("EI", "MPI", "LCB")


def _import_gpyopt():
    """Import GPyOpt 1.2.6 on numpy 2, keeping the process's warning filters intact."""
    if not hasattr(np.linalg, "linalg"):
        np.linalg.linalg = np.linalg  # numpy 2.4 removed the alias GPyOpt catches errors with
    saved = warnings.filters[:]
    try:
        import GPyOpt  # noqa: F401
        import GPyOpt.methods  # calls warnings.filterwarnings("ignore") at import
    finally:
        warnings.filters[:] = saved
    return GPyOpt


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter: continuous (bounds, maybe log scale) or discrete (values)."""

    name: str
    type: str
    bounds: tuple[float, float] | None = None
    values: tuple[float, ...] | None = None
    log: bool = False

    def internal_bounds(self) -> tuple[float, float]:
        """Bounds in the coordinates the optimiser sees (log10 for log dimensions)."""
        lo, hi = self.bounds
        return (math.log10(lo), math.log10(hi)) if self.log else (lo, hi)


@dataclass(frozen=True)
class SearchSpace:
    """An ordered list of dimensions with encode/decode between dicts and optimiser vectors."""

    dims: tuple[Dimension, ...]

    @classmethod
    def from_dict(cls, space: dict[str, dict]) -> SearchSpace:
        """Build from the params-file form ``{name: {type, bounds | values, log}}``."""
        dims = []
        for name, s in space.items():
            if s["type"] == "continuous":
                lo, hi = (float(v) for v in s["bounds"])
                if not lo < hi:
                    raise ValueError(f"search space '{name}': bounds must have low < high, "
                                     f"got [{lo}, {hi}].")
                dims.append(Dimension(name, "continuous", (lo, hi), log=bool(s.get("log"))))
            else:
                vals = tuple(sorted({float(v) for v in s["values"]}))
                if not vals:
                    raise ValueError(f"search space '{name}': values must not be empty.")
                dims.append(Dimension(name, "discrete", values=vals))
        return cls(tuple(dims))

    def to_dict(self) -> dict[str, dict]:
        """The params-file form of this space (for display and records)."""
        out = {}
        for d in self.dims:
            if d.type == "continuous":
                out[d.name] = {"type": "continuous", "bounds": list(d.bounds), "log": d.log}
            else:
                out[d.name] = {"type": "discrete", "values": list(d.values)}
        return out

    @property
    def names(self) -> list[str]:
        """Dimension names in order."""
        return [d.name for d in self.dims]

    def gpyopt_domain(self) -> list[dict[str, Any]]:
        """The domain in GPyOpt's format (continuous ranges in internal coordinates)."""
        return [{"name": d.name, "type": "continuous", "domain": d.internal_bounds()}
                if d.type == "continuous" else
                {"name": d.name, "type": "discrete", "domain": d.values} for d in self.dims]

    def encode(self, hp: dict[str, float]) -> np.ndarray:
        """Vector in internal coordinates for a hyperparameter dict."""
        return np.array([math.log10(hp[d.name]) if d.log else float(hp[d.name])
                         for d in self.dims])

    def decode(self, x: np.ndarray) -> dict[str, float | int]:
        """Hyperparameter dict for an internal vector (whole discrete values become ints)."""
        out: dict[str, float | int] = {}
        for d, v in zip(self.dims, np.ravel(x), strict=True):
            if d.type == "discrete":
                v = min(d.values, key=lambda c: abs(c - v))
                out[d.name] = int(v) if float(v).is_integer() else float(v)
            else:
                out[d.name] = float(10 ** v) if d.log else float(v)
        return out

    def contains(self, hp: dict[str, float]) -> bool:
        """Whether a point lies inside this space (with a small tolerance)."""
        for d in self.dims:
            v = float(hp[d.name])
            if d.type == "discrete":
                if not any(abs(v - c) <= 1e-9 * max(1.0, abs(c)) for c in d.values):
                    return False
            elif not d.bounds[0] * (1 - 1e-9) - 1e-12 <= v <= d.bounds[1] * (1 + 1e-9) + 1e-12:
                return False
        return True

    def latin_hypercube(self, n: int, seed: int) -> list[dict[str, float | int]]:
        """A seeded Latin-hypercube design of n points (discrete dims: LHS over value indices)."""
        return self._from_unit(qmc.LatinHypercube(d=len(self.dims), seed=seed).random(n))

    def random_points(self, n: int, seed: int) -> list[dict[str, float | int]]:
        """Draw n points uniformly and independently (plain random search), seeded."""
        return self._from_unit(np.random.default_rng(seed).random((n, len(self.dims))))

    def _from_unit(self, u: np.ndarray) -> list[dict[str, float | int]]:
        """Points for rows of the unit cube (discrete dims: equal shares of the cube)."""
        points = []
        for row in u:
            x = []
            for d, ui in zip(self.dims, row, strict=True):
                if d.type == "discrete":
                    x.append(d.values[min(int(ui * len(d.values)), len(d.values) - 1)])
                else:
                    lo, hi = d.internal_bounds()
                    x.append(lo + ui * (hi - lo))
            points.append(self.decode(np.array(x)))
        return points

    def tighten(self, best: dict[str, float], shrink: float,
                settled: set[str] | frozenset[str] = frozenset()) -> SearchSpace:
        """A smaller space around ``best`` by the rule in the module docstring.

        Discrete dimensions named in ``settled`` are fixed to the best value.
        """
        dims = []
        for d in self.dims:
            if d.name in settled and d.type == "discrete":
                dims.append(replace(d, values=(float(best[d.name]),)))
                continue
            if d.type == "discrete":
                i = min(range(len(d.values)), key=lambda j: abs(d.values[j] - best[d.name]))
                dims.append(replace(d, values=d.values[max(0, i - 1): i + 2]))
                continue
            lo, hi = d.internal_bounds()
            c = math.log10(best[d.name]) if d.log else float(best[d.name])
            half = (hi - lo) * shrink / 2
            new_lo, new_hi = c - half, c + half
            if new_lo < lo:
                new_lo, new_hi = lo, lo + 2 * half
            if new_hi > hi:
                new_lo, new_hi = hi - 2 * half, hi
            b = (10 ** new_lo, 10 ** new_hi) if d.log else (new_lo, new_hi)
            dims.append(replace(d, bounds=(float(b[0]), float(b[1]))))
        return SearchSpace(tuple(dims))


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


def _key(hp: dict[str, float | int]) -> tuple:
    """A hashable identity of a point (values rounded, so encode/decode noise is ignored)."""
    return tuple(sorted((k, round(float(v), 10)) for k, v in hp.items()))


def scored_before(trials: list[Trial], hp: dict[str, float | int], budget: float = 1.0,
                  repeat: int = 0) -> Trial | None:
    """The first ``ok`` trial of this point at this budget and repeat, if any.

    A seeded objective gives it again digit for digit (on a CPU), so it need not be re-run.
    """
    key = _key(hp)
    return next((t for t in trials if t.status == "ok" and t.budget == budget
                 and t.repeat == repeat and _key(t.hp) == key), None)


@dataclass
class SearchResult:
    """All trials, the space used at each step, and the chosen point."""

    trials: list[Trial]
    spaces: list[SearchSpace]
    stop_reasons: list[str] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        """The chosen point: lowest mean finite validation loss at the largest budget tried.

        Without promoted trials every trial has budget 1 and this is the best trial; with
        them, the finalists' longer (and repeated) trials decide, not their short ones.
        """
        ok = [t for t in self.trials if math.isfinite(t.val_loss)]
        if not ok:
            raise ValueError("No trial finished with a finite validation loss.")
        top = max(t.budget for t in ok)
        groups: dict[tuple, list[Trial]] = {}
        for t in ok:
            if t.budget == top:
                groups.setdefault(_key(t.hp), []).append(t)
        runs = min(groups.values(), key=lambda g: float(np.mean([t.val_loss for t in g])))
        return replace(runs[0], val_loss=float(np.mean([t.val_loss for t in runs])),
                       val_accuracy=float(np.mean([t.val_accuracy for t in runs])))

    @property
    def trial_budget(self) -> float:
        """Trials trained, in units of one ordinary trial (a budget-3 trial counts 3)."""
        return float(sum(t.budget for t in self.trials if t.status != "reused"))

    def table(self) -> list[dict[str, Any]]:
        """One row per trial (step, trial, source, hyperparameters, results), in run order."""
        return [{"step": t.step, "trial": t.trial, "source": t.source, **t.hp,
                 "budget": t.budget, "repeat": t.repeat, "val_loss": t.val_loss,
                 "val_accuracy": t.val_accuracy, "seconds": t.seconds, "status": t.status,
                 "error": t.error} for t in self.trials]

    def step_bounds(self) -> list[dict[str, Any]]:
        """Each step's space, in the params-file form (what the step was allowed to try)."""
        return [{"step": i + 1, **s.to_dict()} for i, s in enumerate(self.spaces)]


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
        if self.started.pop(f"{trial.step}/{trial.source}/{trial.trial}", None) is not None:
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


def history_fingerprint(space: SearchSpace, fingerprint: dict[str, str] | None) -> dict[str, str]:
    """The digests a history is stamped with: the space, and what the caller gives."""
    return {"space": json.dumps(space.to_dict(), sort_keys=True), **(fingerprint or {})}


def _cell(v: float | int) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


def suggest_next(space: SearchSpace, xs: list[dict], ys: list[float], seed: int,
                 acquisition: str = "EI") -> dict:
    """One GP suggestion from GPyOpt given the evaluated points (inside ``space``).

    ``acquisition``: ``EI`` (expected improvement), ``MPI`` (probability of improvement)
    or ``LCB`` (lower confidence bound). The GP has a noise term (``exact_feval=False``):
    two trainings of one point do not give the same loss.
    """
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}. "
                         f"Got {acquisition!r} instead.")
    gpyopt = _import_gpyopt()
    X = np.array([space.encode(x) for x in xs], dtype=float)
    Y = np.array(ys, dtype=float).reshape(-1, 1)
    np.random.seed(seed % 2**32)  # GPyOpt draws from the global generator (32-bit seeds)
    bo = gpyopt.methods.BayesianOptimization(
        f=None, domain=space.gpyopt_domain(), X=X, Y=Y, model_type="GP",
        acquisition_type=acquisition, normalize_Y=True, exact_feval=False,
        de_duplication=True)
    return space.decode(bo.suggest_next_locations()[0])


def _settled(space: SearchSpace, trials: list[Trial], best: dict, top: int = 3) -> set[str]:
    """Two-valued discrete dimensions on which the ``top`` best trials agree with the best."""
    ranked = sorted((t for t in trials if math.isfinite(t.val_loss) and space.contains(t.hp)),
                    key=lambda t: t.val_loss)[:top]
    if len(ranked) < top:
        return set()
    return {d.name for d in space.dims if d.type == "discrete" and len(d.values) == 2
            and all(abs(float(t.hp[d.name]) - float(best[d.name])) < 1e-9 for t in ranked)}


def timed_call(objective: Callable[..., dict[str, float]], hp: dict, budget: float = 1.0,
               repeat: int = 0) -> tuple[dict[str, float], float]:
    """``objective(hp)`` (with ``budget``/``repeat`` when not the defaults) and its seconds.

    Module-level, so that an executor in other processes (Ray) can run it.
    """
    t0 = time.perf_counter()
    result = (objective(hp) if budget == 1.0 and repeat == 0
              else objective(hp, budget=budget, repeat=repeat))
    return result, time.perf_counter() - t0


def run_search(
    objective: Callable[..., dict[str, float]],
    space: SearchSpace,
    history_path: str | Path,
    *,
    steps: int = 3,
    initial_points: int = 5,
    iterations_per_step: int = 5,
    shrink: float = 0.5,
    min_step: float = 1e-8,
    seed: int = 42,
    design: str = "lhs",
    acquisition: str = "EI",
    start_points: list[dict] | None = None,
    finalists: int = 0,
    finalist_budget: float = 1.0,
    finalist_repeats: int = 1,
    workers: int = 1,
    executor: Executor | None = None,
    trial_timeout: float | None = None,
    fingerprint: dict[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> SearchResult:
    """Minimise ``objective(hp)["val_loss"]`` over ``space`` in ``steps`` tightening steps.

    Each step: ``initial_points`` design points (``lhs``: Latin hypercube; ``random``:
    uniform), plus ``start_points`` (step 1) or the best point so far (later steps) when
    ``start_points`` is given; then ``iterations_per_step`` GP suggestions. After the
    steps, the ``finalists`` best distinct points are trained again ``finalist_repeats``
    times at ``finalist_budget`` times the trial length (``objective(hp, budget=b,
    repeat=r)``), and the choice is made on those longer trials.

    With an ``executor`` (``concurrent.futures.Executor``-like, e.g. Ray's in
    ``earth_lib.distributed``), a step's design points and its finalists run at once, and
    GP suggestions come in rounds of ``workers`` (constant liar: each pending point counts
    as the mean loss so far until it is scored). Results are recorded in a fixed order
    (as the trials were planned), each as soon as it and those before it are done.

    A trial that raises (on a worker: also a worker that dies) is recorded as failed, with
    its error, and scored with a penalty; the search goes on. On an executor, a trial with
    no result ``trial_timeout`` seconds after it could start (hung) is recorded as
    ``time_limit`` and cancelled. A trial started twice without being recorded (it killed
    the process, e.g. out of memory) is recorded as failed and not started again. Trials already in
    ``history_path`` are reused, not re-run: the search resumes, if its ``fingerprint``
    matches. A point already scored at the same budget and repeat (the best point so far,
    added to a later step) is not trained again: ``objective`` is taken to depend on
    ``(hp, budget, repeat)`` alone, as a seeded training does; it is recorded as ``reused``.
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}. Got {design!r}.")
    if workers < 1:
        raise ValueError(f"workers must be at least 1. Got {workers}.")
    history = SearchHistory(history_path, space.names, history_fingerprint(space, fingerprint))
    if history.trials:
        log(f"Resuming: {len(history.trials)} trial(s) already in {history_path}.")
    spaces, reasons = [], []
    current = space
    planned = steps * (initial_points + iterations_per_step) + finalists * finalist_repeats \
        + (len(start_points) + steps - 1 if start_points is not None else 0)
    started, resumed = time.perf_counter(), len(history.trials)

    def record(job: tuple, result: dict, seconds: float, status: str, error: str) -> None:
        step, index, source, hp, budget, repeat = job
        loss = float(result["val_loss"])
        if not math.isfinite(loss) and status == "ok":
            status, error = "failed", "no finite validation loss"
        trial = Trial(step, index, source, hp, loss,
                      float(result.get("val_accuracy", float("nan"))), round(seconds, 2),
                      float(budget), repeat, status, error)
        history.append(trial)
        elapsed = time.perf_counter() - started
        left = elapsed / (len(history.trials) - resumed) * max(0, planned - len(history.trials))
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in hp.items())
        log(f"trial {len(history.trials)} of ~{planned} (step {step} {source} {index + 1}"
            f"{f', budget x{budget:g}' if budget != 1 else ''}): val_loss={loss:.4f} "
            f"val_acc={trial.val_accuracy:.3f} {status}{f' [{error}]' if error else ''}; "
            f"{trial.seconds:.0f}s, {elapsed / 60:.1f} min so far, ~{left / 60:.1f} min left"
            f" | {shown}")

    def evaluate_all(jobs: list[tuple]) -> None:
        """Run the jobs ``(step, index, source, hp, budget, repeat)`` not yet in the history.

        On the executor all at once, else one by one; recorded in job order.
        """
        todo = [j for j in jobs if history.find(j[0], j[2], j[1]) is None]
        submitted = {}
        if executor is not None:
            for j in todo:
                if scored_before(history.trials, *j[3:]) is None and history.starts(j) < 2:
                    history.begin(j)
                    submitted[j[:3]] = (time.perf_counter(), len(submitted),
                                        executor.submit(timed_call, objective, *j[3:]))
        for j in todo:
            earlier = scored_before(history.trials, *j[3:])
            if earlier is not None and j[:3] not in submitted:
                record(j, {"val_loss": earlier.val_loss, "val_accuracy": earlier.val_accuracy},
                       0.0, "reused", "")
                continue
            if j[:3] not in submitted and history.starts(j) >= 2:
                record(j, {"val_loss": float("nan")}, 0.0, "failed", KILLED_TWICE)
                continue
            t0, rank, future = submitted.get(j[:3], (time.perf_counter(), 0, None))
            try:
                if future is None:
                    history.begin(j)
                    result, seconds = timed_call(objective, *j[3:])
                else:
                    result, seconds = future.result(timeout=None if trial_timeout is None else max(
                        0.0, t0 + trial_timeout * (rank // workers + 1) - time.perf_counter()))
                status, error = str(result.get("status", "ok")), ""
            except TimeoutError as err:
                result, seconds = {"val_loss": float("nan")}, time.perf_counter() - t0
                if future is None:  # the objective's own: a failed trial like any error
                    status, error = "failed", f"TimeoutError: {err}"[:500]
                else:
                    getattr(executor, "cancel", lambda f: f.cancel())(future)
                    status = "time_limit"
                    error = f"no result within {trial_timeout:g} s of its start: hung, cancelled"
            except Exception as err:  # a failed trial is a result, not the end of the search
                result, status = {"val_loss": float("nan")}, "failed"
                seconds = time.perf_counter() - t0
                error = f"{type(err).__name__}: {err}".replace("\n", " ")[:500]
            record(j, result, seconds, status, error)

    def searched() -> list[Trial]:  # the search's own trials (not the literature one)
        return [t for t in history.trials if t.source != "literature"]

    def best_so_far() -> Trial | None:
        return min((t for t in searched() if math.isfinite(t.val_loss) and t.budget == 1.0),
                   key=lambda t: t.val_loss, default=None)

    for step in range(1, steps + 1):
        spaces.append(current)
        design_points = (current.latin_hypercube(initial_points, seed=seed + step)
                         if design == "lhs" else current.random_points(initial_points,
                                                                       seed=seed + step))
        if start_points is not None:
            best = best_so_far()
            extra = start_points if step == 1 else ([best.hp] if best else [])
            design_points += [p for p in extra if current.contains(p)]
        evaluate_all([(step, i, "initial", hp, 1.0, 0) for i, hp in enumerate(design_points)])
        previous, it, stopped = None, 0, False
        reason = f"{iterations_per_step} iterations"
        while it < iterations_per_step and not stopped:
            batch, pending = [], []
            for j in range(it, min(it + workers, iterations_per_step)):
                done = history.find(step, "bo", j)
                if done is not None:
                    hp = done.hp
                else:
                    inside = [t for t in searched()
                              if current.contains(t.hp) and t.budget == 1.0]
                    finite = [t.val_loss for t in inside if math.isfinite(t.val_loss)]
                    worst = max(finite) + 1.0 if finite else 10.0
                    ys = [t.val_loss if math.isfinite(t.val_loss) else worst for t in inside]
                    lie = float(np.mean(finite)) if finite else worst
                    hp = suggest_next(current, [t.hp for t in inside] + pending,
                                      ys + [lie] * len(pending),
                                      seed=seed * 1000 + step * 100 + j, acquisition=acquisition)
                    x = current.encode(hp)
                    if previous is not None and np.linalg.norm(x - previous) < min_step:
                        reason = f"consecutive points closer than {min_step:g} after {j} iterations"
                        stopped = True
                        break
                previous = current.encode(hp)
                pending.append(hp)
                batch.append((step, j, "bo", hp, 1.0, 0))
            evaluate_all(batch)
            it += len(batch)
        reasons.append(reason)
        best = best_so_far()
        if best is None:
            raise ValueError("Every trial of the search failed (non-finite validation loss); "
                             f"see the error column of {history_path}.")
        log(f"step {step} done ({reason}); best so far val_loss={best.val_loss:.4f}")
        if step < steps:
            current = current.tighten(best.hp, shrink, _settled(current, searched(), best.hp))
    if finalists:
        ranked, seen = [], set()
        for t in sorted((t for t in searched() if math.isfinite(t.val_loss)
                         and t.budget == 1.0), key=lambda t: t.val_loss):
            if _key(t.hp) not in seen:
                seen.add(_key(t.hp))
                ranked.append(t.hp)
        evaluate_all([(steps + 1, rank * finalist_repeats + r, "finalist", hp, finalist_budget, r)
                      for rank, hp in enumerate(ranked[:finalists])
                      for r in range(finalist_repeats)])
    return SearchResult(searched(), spaces, reasons)


@dataclass
class Selection:
    """The values the final training gets, how they were chosen, and the evidence for them."""

    hyperparameters: dict[str, float | int]
    chosen_by: str
    baseline_hyperparameters: dict[str, float | int]
    baseline: dict[str, float] | None = None
    search: SearchResult | None = None

    @property
    def baseline_loss(self) -> float | None:
        """The literature values' validation loss (None when they were not scored)."""
        return self.baseline["val_loss"] if self.baseline else None

    @property
    def history(self) -> list[dict[str, Any]]:
        """The search's trials as rows (empty when the search was off)."""
        return self.search.table() if self.search else []

    def bounds_table(self) -> list[dict[str, Any]]:
        """Each step's bounds as readable rows: ``low - high`` or the values left to try.

        With the search off, one row saying so (the notebook indexes the rows by step).
        """
        def show(spec: dict) -> str:
            if spec["type"] == "discrete":
                return ", ".join(f"{v:g}" for v in spec["values"])
            return " - ".join(f"{v:.4g}" for v in spec["bounds"])

        if not self.search:
            return [{"step": "none (search off)"}]
        return [{"step": row["step"], **{k: show(v) for k, v in row.items() if k != "step"}}
                for row in self.search.step_bounds()]

    def summary(self) -> dict[str, dict[str, float]]:
        """Best search trial and literature values side by side: validation loss and accuracy."""
        rows = {}
        if self.search:
            best = self.search.best
            rows["search best"] = {"val_loss": best.val_loss, "val_accuracy": best.val_accuracy}
        if self.baseline:
            rows["literature baseline"] = {k: self.baseline[k]
                                           for k in ("val_loss", "val_accuracy")}
        return rows

    def record(self) -> dict[str, dict[str, Any]]:
        """The ``search`` and ``literature_baseline`` entries of a run's metrics."""
        return {
            "search": {"best_hyperparameters": self.hyperparameters, "chosen_by": self.chosen_by,
                       "trials": len(self.search.trials) if self.search else 0,
                       "failed_trials": sum(t.status == "failed" for t in self.search.trials)
                       if self.search else 0,
                       "trial_budget": self.search.trial_budget if self.search else 0.0,
                       "best_val_loss": self.search.best.val_loss if self.search else None,
                       "stop_reasons": self.search.stop_reasons if self.search else [],
                       "step_bounds": self.search.step_bounds() if self.search else []},
            "literature_baseline": {"hyperparameters": self.baseline_hyperparameters,
                                    **(self.baseline or {})},
        }


def literature_trial(objective: Callable[..., dict[str, float]], space: SearchSpace,
                     history_path: str | Path, baseline: dict[str, float | int],
                     fingerprint: dict[str, str] | None = None) -> Trial:
    """Score the literature values once, as a trial of the history (step 0, ``literature``).

    Recorded like any trial: a rerun reads it back, and an error (or a kill, twice) is a
    failed trial, not the end of the run.
    """
    history = SearchHistory(history_path, space.names, history_fingerprint(space, fingerprint))
    done = history.find(0, "literature", 0)
    if done is not None:
        return done
    job = (0, 0, "literature", {n: baseline[n] for n in space.names if n in baseline}, 1.0, 0)
    t0, status, error = time.perf_counter(), "failed", KILLED_TWICE
    result: dict[str, Any] = {"val_loss": float("nan")}
    if history.starts(job) < 2:
        history.begin(job)
        try:
            result, _ = timed_call(objective, dict(baseline))
            status, error = str(result.get("status", "ok")), ""
        except Exception as err:  # recorded, so that no rerun repeats it
            error = f"{type(err).__name__}: {err}".replace("\n", " ")[:500]
    loss = float(result["val_loss"])
    if not math.isfinite(loss) and status == "ok":
        status, error = "failed", "no finite validation loss"
    trial = Trial(0, 0, "literature", job[3], loss,
                  float(result.get("val_accuracy", float("nan"))),
                  round(time.perf_counter() - t0, 2), 1.0, 0, status, error)
    history.append(trial)
    return trial


def search_or_baseline(
    objective: Callable[[dict], dict[str, float]],
    space: SearchSpace,
    history_path: str | Path,
    baseline: dict[str, float | int],
    *,
    enabled: bool = True,
    evaluate_baseline: bool = True,
    seed: int = 42,
    log: Callable[[str], None] = print,
    **search_kwargs,
) -> Selection:
    """Choose the final training's values: the search's best, or ``baseline`` when it is off.

    With ``evaluate_baseline`` the literature values are scored by the same objective (or
    taken from the search's trial of them, when it had one), so the search's best has a
    yardstick. ``search_kwargs`` go to :func:`run_search`.
    """
    result = (run_search(objective, space, history_path, seed=seed, log=log, **search_kwargs)
              if enabled else None)
    scored = None
    if evaluate_baseline:
        earlier = scored_before(result.trials, baseline) if result else None
        trial = earlier or literature_trial(objective, space, history_path, baseline,
                                            search_kwargs.get("fingerprint"))
        scored = {"val_loss": trial.val_loss, "val_accuracy": trial.val_accuracy,
                  "status": "ok" if earlier else trial.status}
        log(f"literature baseline: val_loss={scored['val_loss']:.4f} "
            f"val_acc={scored['val_accuracy']:.3f} {scored['status']}"
            f"{f' [{trial.error}]' if trial.error else ''}")
    if result is None:
        return Selection(dict(baseline), "baseline", dict(baseline), scored)
    return Selection(dict(result.best.hp), "search", dict(baseline), scored, result)
