"""A search's plan: what a :class:`~earth_lib.search.SearchLoop` runs (no defaults here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SearchPlan:
    """How one search runs: its steps, points, acquisition, finalists and workers.

    See :class:`SearchLoop` for what each value does; ``params.search_plan`` builds one
    from a parameter file (the table owns every default).
    """

    steps: int
    initial_points: int
    iterations_per_step: int
    shrink: float
    min_step: float
    seed: int
    design: str
    acquisition: str
    finalists: int
    finalist_budget: float
    finalist_repeats: int
    workers: int
    trial_timeout: float | None
    start_points: tuple[dict[str, Any], ...] | None = None
    ard: bool = False  # per-dimension length scales (the learning curve's noisy_gp arm)

    def replace(self, **changes: Any) -> SearchPlan:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    @property
    def planned_trials(self) -> int:
        """Trials this plan runs when none fails or is reused."""
        start = len(self.start_points) + self.steps - 1 if self.start_points is not None else 0
        return (self.steps * (self.initial_points + self.iterations_per_step)
                + self.finalists * self.finalist_repeats + start)

    def record(self) -> dict[str, Any]:
        """What decides which trial comes next (a search's fingerprint); not where trials run."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "workers"}
        out["start_points"] = list(self.start_points) if self.start_points is not None else None
        if not self.ard:
            del out["ard"]
        return out
