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
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import qmc

from earth_lib.errors import SearchHistoryError
from earth_lib.io import atomic_write_text

RESULT_COLUMNS = ("val_loss", "val_accuracy", "seconds")


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
        u = qmc.LatinHypercube(d=len(self.dims), seed=seed).random(n)
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

    def tighten(self, best: dict[str, float], shrink: float) -> SearchSpace:
        """A smaller space around ``best`` by the rule in the module docstring."""
        dims = []
        for d in self.dims:
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
    """One evaluated point: step, index within the step, how it was chosen, and its results."""

    step: int
    trial: int
    source: str
    hp: dict[str, float | int]
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class SearchResult:
    """All trials, the space used at each step, and the best trial."""

    trials: list[Trial]
    spaces: list[SearchSpace]
    stop_reasons: list[str] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        """The trial with the lowest finite validation loss."""
        ok = [t for t in self.trials if math.isfinite(t.val_loss)]
        if not ok:
            raise ValueError("No trial finished with a finite validation loss.")
        return min(ok, key=lambda t: t.val_loss)

    def table(self) -> list[dict[str, Any]]:
        """One row per trial (step, trial, source, hyperparameters, results), in run order."""
        return [{"step": t.step, "trial": t.trial, "source": t.source, **t.hp,
                 "val_loss": t.val_loss, "val_accuracy": t.val_accuracy, "seconds": t.seconds}
                for t in self.trials]


class SearchHistory:
    """The history CSV: one row per finished trial, rewritten atomically after each trial."""

    def __init__(self, path: str | Path, names: list[str]):
        self.path = Path(path)
        self.columns = ["step", "trial", "source", *names, *RESULT_COLUMNS]
        self.names = names
        self.trials: list[Trial] = []
        if self.path.is_file():
            self._read()

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
                self.trials.append(Trial(int(row["step"]), int(row["trial"]), row["source"], hp,
                                         float(row["val_loss"]), float(row["val_accuracy"]),
                                         float(row["seconds"])))

    def append(self, trial: Trial) -> None:
        """Record a finished trial (the whole file is rewritten atomically)."""
        self.trials.append(trial)
        lines = [",".join(self.columns)]
        for t in self.trials:
            vals = [t.step, t.trial, t.source, *(t.hp[n] for n in self.names),
                    t.val_loss, t.val_accuracy, t.seconds]
            lines.append(",".join(repr(v) if isinstance(v, float) else str(v) for v in vals))
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def done(self, step: int, source: str) -> list[Trial]:
        """Trials already recorded for a step and source (``initial`` or ``bo``)."""
        return [t for t in self.trials if t.step == step and t.source == source]


def suggest_next(space: SearchSpace, xs: list[dict], ys: list[float], seed: int) -> dict:
    """One GP-EI suggestion from GPyOpt given the evaluated points (inside ``space``)."""
    gpyopt = _import_gpyopt()
    X = np.array([space.encode(x) for x in xs], dtype=float)
    Y = np.array(ys, dtype=float).reshape(-1, 1)
    np.random.seed(seed)  # GPyOpt draws from the global generator
    bo = gpyopt.methods.BayesianOptimization(
        f=None, domain=space.gpyopt_domain(), X=X, Y=Y, model_type="GP",
        acquisition_type="EI", normalize_Y=True, exact_feval=False, de_duplication=True)
    return space.decode(bo.suggest_next_locations()[0])


def run_search(
    objective: Callable[[dict], dict[str, float]],
    space: SearchSpace,
    history_path: str | Path,
    *,
    steps: int = 3,
    initial_points: int = 5,
    iterations_per_step: int = 5,
    shrink: float = 0.5,
    min_step: float = 1e-8,
    seed: int = 42,
    log: Callable[[str], None] = print,
) -> SearchResult:
    """Minimise ``objective(hp)["val_loss"]`` over ``space`` in ``steps`` tightening steps.

    Trials already in ``history_path`` are reused, not re-run: the search resumes.
    """
    history = SearchHistory(history_path, space.names)
    if history.trials:
        log(f"Resuming: {len(history.trials)} trial(s) already in {history_path}.")
    spaces, reasons = [], []
    current = space

    def evaluate(step: int, index: int, source: str, hp: dict) -> Trial:
        for t in history.done(step, source):
            if t.trial == index:
                return t
        t0 = time.perf_counter()
        result = objective(hp)
        trial = Trial(step, index, source, hp, float(result["val_loss"]),
                      float(result.get("val_accuracy", float("nan"))),
                      round(time.perf_counter() - t0, 2))
        history.append(trial)
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in hp.items())
        log(f"step {step} {source} {index + 1}: val_loss={trial.val_loss:.4f} "
            f"val_acc={trial.val_accuracy:.3f} ({trial.seconds:.0f}s) {shown}")
        return trial

    for step in range(1, steps + 1):
        spaces.append(current)
        for i, hp in enumerate(current.latin_hypercube(initial_points, seed=seed + step)):
            evaluate(step, i, "initial", hp)
        previous = None
        reason = f"{iterations_per_step} iterations"
        for it in range(iterations_per_step):
            done = [t for t in history.done(step, "bo") if t.trial == it]
            if done:
                previous = current.encode(done[0].hp)
                continue
            inside = [t for t in history.trials if current.contains(t.hp)]
            finite = [t.val_loss for t in inside if math.isfinite(t.val_loss)]
            worst = max(finite) + 1.0 if finite else 10.0
            ys = [t.val_loss if math.isfinite(t.val_loss) else worst for t in inside]
            hp = suggest_next(current, [t.hp for t in inside], ys, seed=seed * 1000 + step * 100
                              + it)
            x = current.encode(hp)
            if previous is not None and np.linalg.norm(x - previous) < min_step:
                reason = f"consecutive points closer than {min_step:g} after {it} iterations"
                break
            evaluate(step, it, "bo", hp)
            previous = x
        reasons.append(reason)
        best = min((t for t in history.trials if math.isfinite(t.val_loss)),
                   key=lambda t: t.val_loss, default=None)
        if best is None:
            raise ValueError("Every trial of the search failed (non-finite validation loss).")
        log(f"step {step} done ({reason}); best so far val_loss={best.val_loss:.4f}")
        if step < steps:
            current = current.tighten(best.hp, shrink)
    return SearchResult(list(history.trials), spaces, reasons)


#: How the final training's values were chosen.
CHOSEN_BY = ("search", "baseline")


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

    def summary(self) -> dict[str, dict[str, float]]:
        """Best search trial and literature values side by side: validation loss and accuracy."""
        rows = {}
        if self.search:
            best = self.search.best
            rows["search best"] = {"val_loss": best.val_loss, "val_accuracy": best.val_accuracy}
        if self.baseline:
            rows["literature baseline"] = dict(self.baseline)
        return rows

    def record(self) -> dict[str, dict[str, Any]]:
        """The ``search`` and ``literature_baseline`` entries of a run's metrics."""
        return {
            "search": {"best_hyperparameters": self.hyperparameters, "chosen_by": self.chosen_by,
                       "trials": len(self.search.trials) if self.search else 0,
                       "best_val_loss": self.search.best.val_loss if self.search else None,
                       "stop_reasons": self.search.stop_reasons if self.search else []},
            "literature_baseline": {"hyperparameters": self.baseline_hyperparameters,
                                    **(self.baseline or {})},
        }


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

    With ``evaluate_baseline`` the literature values are scored by the same objective, so
    the search's best has a yardstick. ``search_kwargs`` go to :func:`run_search`.
    """
    result = (run_search(objective, space, history_path, seed=seed, log=log, **search_kwargs)
              if enabled else None)
    scored = None
    if evaluate_baseline:
        r = objective(dict(baseline))
        scored = {"val_loss": float(r["val_loss"]),
                  "val_accuracy": float(r.get("val_accuracy", float("nan")))}
        log(f"literature baseline: val_loss={scored['val_loss']:.4f} "
            f"val_acc={scored['val_accuracy']:.3f}")
    if result is None:
        return Selection(dict(baseline), "baseline", dict(baseline), scored)
    return Selection(dict(result.best.hp), "search", dict(baseline), scored, result)
