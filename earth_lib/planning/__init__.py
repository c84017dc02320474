"""A run that plans itself from the data and a time budget (``budget_minutes``).

``plan`` (pure: the choices, why, each stage's expected time; applying a plan; keeping a
run to its budget), ``evidence`` (the learning curve's advice: the augmentation that won
without a search near the data's size, and whether a search paid there) and ``measure``
(the folder and this machine's speed; making a plan, imported by name: it loads
TensorFlow). The plan is printed before the work starts and kept in the run folder's
``plan.json``; a value the parameter file sets by hand always wins over the plan's.
"""

from earth_lib.planning import evidence
from earth_lib.planning.plan import (
    DataSummary,
    RunPlan,
    Speed,
    budget_line,
    final_epochs,
    fit_final,
    needs_new_plan,
    plan_is_current,
    plan_run,
    read_plan,
    set_by_hand,
    with_plan,
)

__all__ = ["evidence", "DataSummary", "RunPlan", "Speed", "budget_line", "final_epochs",
           "fit_final", "needs_new_plan", "plan_is_current", "plan_run", "read_plan", "set_by_hand",
           "with_plan"]
