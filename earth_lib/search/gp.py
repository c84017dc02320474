"""The Gaussian-process backend: GPyOpt, imported here only.

A swap to another optimiser (e.g. emukit) touches this module alone.
"""

from __future__ import annotations

import warnings

import numpy as np

from earth_lib.search.space import SearchSpace

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


def _optimizer(space: SearchSpace, xs: list[dict], ys: list[float], seed: int,
               acquisition: str, ard: bool):
    """GPyOpt's optimiser over the evaluated points, its GP not fitted yet."""
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}. "
                         f"Got {acquisition!r} instead.")
    gpyopt = _import_gpyopt()
    X = np.array([space.encode(x) for x in xs], dtype=float)
    Y = np.array(ys, dtype=float).reshape(-1, 1)
    np.random.seed(seed % 2**32)  # GPyOpt draws from the global generator (32-bit seeds)
    return gpyopt.methods.BayesianOptimization(
        f=None, domain=space.gpyopt_domain(), X=X, Y=Y, model_type="GP",
        acquisition_type=acquisition, normalize_Y=True, exact_feval=False,
        de_duplication=True, ARD=ard), X


def suggest_next(space: SearchSpace, xs: list[dict], ys: list[float], seed: int,
                 acquisition: str = "EI", ard: bool = False) -> dict:
    """One GP suggestion from GPyOpt given the evaluated points (inside ``space``).

    ``acquisition``: ``EI`` (expected improvement), ``MPI`` (probability of improvement)
    or ``LCB`` (lower confidence bound). The GP (Matérn 5/2) has a noise term
    (``exact_feval=False``): two trainings of one point do not give the same loss.
    ``ard``: one length scale per dimension instead of one for all.
    """
    bo, _ = _optimizer(space, xs, ys, seed, acquisition, ard)
    return space.decode(bo.suggest_next_locations()[0])


def posterior_means(space: SearchSpace, xs: list[dict], ys: list[float], seed: int,
                    ard: bool = False) -> np.ndarray:
    """The GP's posterior mean at each evaluated point (same order; lower is better).

    Choosing by it rather than by the lowest single loss discounts a lucky trial: the GP
    pools the losses of nearby points and of repeats, and its noise term absorbs the rest.
    """
    bo, X = _optimizer(space, xs, ys, seed, "EI", ard)
    bo.suggest_next_locations()  # fits the GP's hyperparameters
    mean, _ = bo.model.predict(bo.space.unzip_inputs(X))  # in the GP's normalised units
    return np.asarray(mean, dtype=float).ravel()
