"""What the final training gets: the search's best or the literature values, and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earth_lib.search.history import (
    KILLED_TWICE,
    SearchHistory,
    Trial,
    history_fingerprint,
    scored_before,
    trial_from,
)
from earth_lib.search.loop import SearchResult, guarded_call, run_search
from earth_lib.search.plan import SearchPlan
from earth_lib.search.space import SearchSpace


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

    def summary(self) -> dict[str, dict[str, Any]]:
        """The search's best and the baseline side by side: validation scores, then values.

        With the search off and the baseline unscored, the one row the final training takes.
        """
        rows: dict[str, dict[str, Any]] = {}
        if self.search:
            best = self.search.best
            rows["search best"] = {"val_loss": best.val_loss, "val_accuracy": best.val_accuracy,
                                   **best.hp}
        if self.baseline:
            name = baseline_name({"hyperparameters": self.baseline_hyperparameters})
            rows[f"baseline ({name})"] = {**{k: self.baseline[k]
                                             for k in ("val_loss", "val_accuracy")},
                                          **self.baseline_hyperparameters}
        return rows or {"final training (search off)": dict(self.hyperparameters)}

    @property
    def trained_with(self) -> str:
        """What the final training takes, in words ("search values", "dihedral augmentation")."""
        return trained_with(self.record())

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


def baseline_name(literature_baseline: dict[str, Any] | None) -> str:
    """What the baseline trained, in words: the literature values, or a policy's augmentation.

    ``baseline.policy`` replaces the six augmentation values where it is set.
    """
    policy = ((literature_baseline or {}).get("hyperparameters") or {}).get("policy")
    return "literature values" if policy in (None, "none") else f"{policy} augmentation"


def trained_with(metrics: dict[str, Any]) -> str:
    """What a run's final training took, in words: the search's values or the baseline's."""
    chosen = (metrics.get("search") or {}).get("chosen_by", "baseline")
    return baseline_name(metrics.get("literature_baseline")) if chosen == "baseline" \
        else f"{chosen} values"


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
    outcome = ({"val_loss": float("nan")}, 0.0, "failed", KILLED_TWICE)
    if history.starts(job) < 2:
        history.begin(job)
        outcome = guarded_call(objective, dict(baseline))  # recorded: no rerun repeats it
    trial = trial_from(job, *outcome)
    history.append(trial)
    return trial


def search_or_baseline(
    objective: Callable[[dict], dict[str, float]],
    space: SearchSpace,
    history_path: str | Path,
    baseline: dict[str, float | int],
    plan: SearchPlan,
    *,
    enabled: bool,
    evaluate_baseline: bool,
    log: Callable[[str], None] = print,
    **options: Any,
) -> Selection:
    """Choose the final training's values: the search's best, or ``baseline`` when it is off.

    With ``evaluate_baseline`` and the search on, ``baseline`` is scored by the same
    objective (or taken from the search's trial of it, when it had one), so the search's
    best has a yardstick; with the search off nothing is scored (there is nothing to
    compare, and the trial would cost a tenth of a short run). ``options`` (executor,
    fingerprint) go to :func:`run_search`.
    """
    if not isinstance(enabled, bool):  # "auto" is settled before (Run.follow_evidence)
        raise TypeError(f"search_or_baseline: enabled must be True or False, not {enabled!r}.")
    result = (run_search(objective, space, history_path, plan, log=log, **options)
              if enabled else None)
    scored = None
    if evaluate_baseline and result is not None:
        earlier = scored_before(result.trials, baseline)
        trial = earlier or literature_trial(objective, space, history_path, baseline,
                                            options.get("fingerprint"))
        scored = {"val_loss": trial.val_loss, "val_accuracy": trial.val_accuracy,
                  "status": "ok" if earlier else trial.status}
        name = baseline_name({"hyperparameters": baseline})
        log(f"baseline ({name}): val_loss={scored['val_loss']:.4f} "
            f"val_acc={scored['val_accuracy']:.3f} {scored['status']}"
            f"{f' [{trial.error}]' if trial.error else ''}")
    if result is None:
        return Selection(dict(baseline), "baseline", dict(baseline), scored)
    return Selection(dict(result.best.hp), "search", dict(baseline), scored, result)
