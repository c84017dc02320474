"""The search loop: design points and GP suggestions in tightening steps, resumable."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from earth_lib.search.gp import suggest_next
from earth_lib.search.history import (
    KILLED_TWICE,
    SearchHistory,
    Trial,
    history_fingerprint,
    point_key,
    scored_before,
    trial_from,
)
from earth_lib.search.plan import SearchPlan
from earth_lib.search.space import DESIGNS, SearchSpace


@dataclass
class SearchResult:
    """All trials, the space used at each step, and the chosen point."""

    trials: list[Trial]
    spaces: list[SearchSpace]
    stop_reasons: list[str] = field(default_factory=list)
    #: training seconds of the trials taken from the history (run before this search
    #: resumed), so that a resumed search's cost counts them too
    resumed_seconds: float = 0.0

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
                groups.setdefault(point_key(t.hp), []).append(t)
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


class SearchLoop:
    """One search: its plan, its history on disk, where its trials run; :meth:`run` runs it.

    Minimises ``objective(hp)["val_loss"]`` over ``space`` as the ``plan``
    (:class:`~earth_lib.params.settings.SearchPlan`) says, in ``steps`` tightening steps.
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
    the process, e.g. out of memory) is recorded as failed and not started again. Trials
    already in ``history_path`` are reused, not re-run: the search resumes, if its
    ``fingerprint`` matches. A point already scored at the same budget and repeat (the best
    point so far, added to a later step) is not trained again: ``objective`` is taken to
    depend on ``(hp, budget, repeat)`` alone, as a seeded training does; it is recorded as
    ``reused``.
    """

    def __init__(
        self,
        objective: Callable[..., dict[str, float]],
        space: SearchSpace,
        history_path: str | Path,
        plan: SearchPlan,
        *,
        executor: Executor | None = None,
        fingerprint: dict[str, str] | None = None,
        log: Callable[[str], None] = print,
    ):
        if plan.design not in DESIGNS:
            raise ValueError(f"design must be one of {', '.join(DESIGNS)}. Got {plan.design!r}.")
        if plan.workers < 1:
            raise ValueError(f"workers must be at least 1. Got {plan.workers}.")
        self.objective, self.space, self.history_path = objective, space, history_path
        self.plan, self.executor, self.log = plan, executor, log
        self.history = SearchHistory(history_path, space.names,
                                     history_fingerprint(space, fingerprint))
        self.started, self.resumed = time.perf_counter(), len(self.history.trials)
        self.resumed_seconds = float(sum(t.seconds for t in self.history.trials))

    def run(self) -> SearchResult:
        """Every step, then the finalists; the trials, each step's space and why it stopped."""
        if self.history.trials:
            self.log(f"Resuming: {len(self.history.trials)} trial(s) already in "
                     f"{self.history_path}.")
        spaces, reasons, current = [], [], self.space
        for step in range(1, self.plan.steps + 1):
            spaces.append(current)
            self._design(step, current)
            reasons.append(self._suggestions(step, current))
            best = self._best_so_far()
            if best is None:
                raise ValueError("Every trial of the search failed (non-finite validation "
                                 f"loss); see the error column of {self.history_path}.")
            self.log(f"step {step} done ({reasons[-1]}); best so far val_loss="
                     f"{best.val_loss:.4f}")
            if step < self.plan.steps:
                current = current.tighten(best.hp, self.plan.shrink,
                                          _settled(current, self._searched(), best.hp))
        if self.plan.finalists:
            self._finalists()
        return SearchResult(self._searched(), spaces, reasons, self.resumed_seconds)

    # Steps ---------------------------------------------------------------------------------
    def _design(self, step: int, current: SearchSpace) -> None:
        """A step's design points, with the start points (step 1) or the best so far."""
        plan, seed = self.plan, self.plan.seed + step
        points = (current.latin_hypercube(plan.initial_points, seed=seed)
                  if plan.design == "lhs" else current.random_points(plan.initial_points, seed))
        if self.plan.start_points is not None:
            best = self._best_so_far()
            extra = self.plan.start_points if step == 1 else ([best.hp] if best else [])
            points += [p for p in extra if current.contains(p)]
        self._evaluate_all([(step, i, "initial", hp, 1.0, 0) for i, hp in enumerate(points)])

    def _suggestions(self, step: int, current: SearchSpace) -> str:
        """A step's GP suggestions, in rounds of ``workers``; returns why the step stopped."""
        previous, it = None, 0
        while it < self.plan.iterations_per_step:
            batch, pending = [], []
            for j in range(it, min(it + self.plan.workers, self.plan.iterations_per_step)):
                done = self.history.find(step, "bo", j)
                hp = done.hp if done is not None else self._suggest(step, j, current, pending)
                x = current.encode(hp)
                if done is None and previous is not None \
                        and np.linalg.norm(x - previous) < self.plan.min_step:
                    self._evaluate_all(batch)
                    return (f"consecutive points closer than {self.plan.min_step:g} after {j} "
                            "iterations")
                previous = x
                pending.append(hp)
                batch.append((step, j, "bo", hp, 1.0, 0))
            self._evaluate_all(batch)
            it += len(batch)
        return f"{self.plan.iterations_per_step} iterations"

    def _suggest(self, step: int, j: int, current: SearchSpace, pending: list[dict]) -> dict:
        """GPyOpt's next point inside ``current``; each pending point counts as the mean loss."""
        inside = [t for t in self._searched() if current.contains(t.hp) and t.budget == 1.0]
        finite = [t.val_loss for t in inside if math.isfinite(t.val_loss)]
        worst = max(finite) + 1.0 if finite else 10.0
        ys = [t.val_loss if math.isfinite(t.val_loss) else worst for t in inside]
        lie = float(np.mean(finite)) if finite else worst
        return suggest_next(current, [t.hp for t in inside] + pending, ys + [lie] * len(pending),
                            seed=self.plan.seed * 1000 + step * 100 + j,
                            acquisition=self.plan.acquisition, ard=self.plan.ard)

    def _finalists(self) -> None:
        """The best distinct points, trained again longer (and repeated)."""
        ranked, seen = [], set()
        for t in sorted((t for t in self._searched() if math.isfinite(t.val_loss)
                         and t.budget == 1.0), key=lambda t: t.val_loss):
            if point_key(t.hp) not in seen:
                seen.add(point_key(t.hp))
                ranked.append(t.hp)
        # at the trial length itself, repeat 0 would be the same training again
        r_n, first = self.plan.finalist_repeats, int(self.plan.finalist_budget == 1.0)
        self._evaluate_all([(self.plan.steps + 1, rank * r_n + r, "finalist", hp,
                             self.plan.finalist_budget, r + first)
                            for rank, hp in enumerate(ranked[:self.plan.finalists])
                            for r in range(r_n)])

    # Trials --------------------------------------------------------------------------------
    def _searched(self) -> list[Trial]:
        """The search's own trials (not the literature one)."""
        return [t for t in self.history.trials if t.source != "literature"]

    def _best_so_far(self) -> Trial | None:
        return min((t for t in self._searched() if math.isfinite(t.val_loss)
                    and t.budget == 1.0), key=lambda t: t.val_loss, default=None)

    def _evaluate_all(self, jobs: list[tuple]) -> None:
        """Run the jobs ``(step, index, source, hp, budget, repeat)`` not yet in the history.

        On the executor all at once, else one by one; recorded in job order.
        """
        history = self.history
        todo = [j for j in jobs if history.find(j[0], j[2], j[1]) is None]
        submitted = {}
        if self.executor is not None:
            for j in todo:
                if scored_before(history.trials, *j[3:]) is None and history.starts(j) < 2:
                    history.begin(j)
                    submitted[j[:3]] = (time.perf_counter(), len(submitted),
                                        self.executor.submit(timed_call, self.objective, *j[3:]))
        for j in todo:
            earlier = scored_before(history.trials, *j[3:])
            if earlier is not None and j[:3] not in submitted:
                self._record(j, {"val_loss": earlier.val_loss,
                                 "val_accuracy": earlier.val_accuracy}, 0.0, "reused", "")
            elif j[:3] not in submitted and history.starts(j) >= 2:
                self._record(j, {"val_loss": float("nan")}, 0.0, "failed", KILLED_TWICE)
            else:
                self._record(j, *self._outcome(j, *submitted.get(j[:3], (None, 0, None))))

    def _outcome(self, job: tuple, t0: float | None, rank: int,
                 future) -> tuple[dict, float, str, str]:
        """Run (or wait for) one job: its result, seconds, status and error."""
        if future is None:
            self.history.begin(job)
            return guarded_call(self.objective, *job[3:])
        limit = self.plan.trial_timeout
        timeout = None if limit is None else max(
            0.0, t0 + limit * (rank // self.plan.workers + 1) - time.perf_counter())
        try:
            result, seconds = future.result(timeout=timeout)
            return result, seconds, str(result.get("status", "ok")), ""
        except TimeoutError:
            getattr(self.executor, "cancel", lambda f: f.cancel())(future)
            return ({"val_loss": float("nan")}, time.perf_counter() - t0, "time_limit",
                    f"no result within {self.plan.trial_timeout:g} s of its start: hung, cancelled")
        except Exception as err:  # a failed trial (or a dead worker) is a result
            return ({"val_loss": float("nan")}, time.perf_counter() - t0, "failed",
                    f"{type(err).__name__}: {err}".replace("\n", " ")[:500])

    def _record(self, job: tuple, result: dict, seconds: float, status: str,
                error: str) -> None:
        """Append one trial to the history and say so, with the time so far and left."""
        trial = trial_from(job, result, seconds, status, error)
        step, index, source, hp, budget, _ = job
        self.history.append(trial)
        done = len(self.history.trials)
        elapsed = time.perf_counter() - self.started
        left = elapsed / max(1, done - self.resumed) * max(0, self.plan.planned_trials - done)
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in hp.items())
        self.log(f"trial {done} of ~{self.plan.planned_trials} (step {step} {source} {index + 1}"
                 f"{f', budget x{budget:g}' if budget != 1 else ''}): "
                 f"val_loss={trial.val_loss:.4f} val_acc={trial.val_accuracy:.3f} "
                 f"{trial.status}{f' [{trial.error}]' if trial.error else ''}; "
                 f"{trial.seconds:.0f}s, {elapsed / 60:.1f} min so far, ~{left / 60:.1f} min "
                 f"left | {shown}")


def guarded_call(objective: Callable[..., dict[str, float]], hp: dict, budget: float = 1.0,
                 repeat: int = 0) -> tuple[dict, float, str, str]:
    """``objective`` in this process: its result, seconds, status and error.

    An exception is a failed trial, not the end of the search.
    """
    t0 = time.perf_counter()
    try:
        result, seconds = timed_call(objective, hp, budget, repeat)
        return result, seconds, str(result.get("status", "ok")), ""
    except Exception as err:
        return ({"val_loss": float("nan")}, time.perf_counter() - t0, "failed",
                f"{type(err).__name__}: {err}".replace("\n", " ")[:500])


def run_search(objective: Callable[..., dict[str, float]], space: SearchSpace,
               history_path: str | Path, plan: SearchPlan, **options: Any) -> SearchResult:
    """Run one search (:class:`SearchLoop`; ``options``: executor, fingerprint, log)."""
    return SearchLoop(objective, space, history_path, plan, **options).run()
