"""Generic three-step Bayesian optimisation with GPyOpt (no network or training code here).

``run_search`` receives an objective ``f(hyperparameters: dict) -> {"val_loss": ..., ...}``
and a declared space. Each step evaluates a Latin-hypercube design, then asks GPyOpt
(Gaussian process, Expected Improvement) for one point at a time; every finished trial
is appended to the history CSV at once, so an interrupted search resumes where it
stopped. Between steps the space is tightened around the best point so far:

* continuous: the range keeps ``shrink`` of its width (in log10 for log dimensions),
  centred on the best value and moved back inside the previous range if needed;
* discrete: the best value and its neighbours in the sorted list are kept.

The package: ``space`` (the declared space), ``history`` (trials on disk and their
fingerprint), ``gp`` (GPyOpt, behind :func:`suggest_next`: a swap to another optimiser
touches that module alone), ``loop`` (:func:`run_search`) and ``selection``.

:func:`search_or_baseline` is the one call a run makes: it searches (or not, by the
``enabled`` switch), scores the literature values with the same objective, and returns
a :class:`Selection` saying which values the final training gets and why.
"""

from earth_lib.search.gp import ACQUISITIONS, posterior_means, suggest_next
from earth_lib.search.history import (
    KILLED_TWICE,
    RESULT_COLUMNS,
    SearchHistory,
    Trial,
    fingerprint,
    history_fingerprint,
    scored_before,
)
from earth_lib.search.loop import SearchLoop, SearchResult, run_search, timed_call
from earth_lib.search.plan import SearchPlan
from earth_lib.search.selection import Selection, literature_trial, search_or_baseline
from earth_lib.search.space import DESIGNS, Dimension, SearchSpace

__all__ = ["ACQUISITIONS", "DESIGNS", "KILLED_TWICE", "RESULT_COLUMNS", "Dimension",
           "SearchHistory", "SearchLoop", "SearchPlan", "SearchResult", "SearchSpace",
           "Selection", "Trial",
           "fingerprint", "history_fingerprint", "literature_trial", "posterior_means",
           "run_search", "scored_before", "search_or_baseline", "suggest_next", "timed_call"]
