"""The learning curve (``make curve``): where does the search pay, against training-set size?

From one pool of labelled images (a processed folder), a fixed stratified test set is set
apart and used by nothing else. Each replicate orders the rest by a seeded stratified
order (:func:`earth_lib.data.stratified_order`): a size-n training subset is its first n
images, so a replicate's smaller subsets lie inside its larger ones, and its validation
images (``curve.val_fraction`` of n) are the last ones, apart from every subset. The
search's objective is then as noisy as a user with that much data would have it.

A *cell* is one (size, replicate, arm). Every arm's values get the same final training:
``curve.final_steps`` optimiser steps for the size (cosine schedule, all steps, last
weights) with the replicate's training seed, then the test set. The arms:

* ``none``: the literature learning rate, batch and kernel, no augmentation;
* ``literature``: the literature values (the method's baseline);
* ``dihedral``, ``trivialaugment``, ``randaugment``: policy-free augmentation
  (:mod:`earth_lib.nn.policies`) instead of the six values;
* ``literature_dihedral`` (only when ``curve.arms`` names it): the literature values, then
  the dihedral group on top (quarter turns besides their rotation, shifts and flips);
* ``lr_wd``: learning rate and weight decay searched (the method's steps), the literature
  augmentation kept: which half of the nine pays?
* ``random``: uniform random search over the method's space;
* ``method``: GPyOpt in the method's tightening steps;
* ``noisy_gp``: a search built for noise: one step, an ARD Matérn kernel, the best three
  points re-scored with a fresh seed, the choice by the GP's posterior mean.

Every search arm spends ``curve.trials`` trials of ``curve.trial_fraction`` of the final
training. The *fidelity check* (cells ``fidelity-*``, run first) trains
``curve.fidelity_points`` Latin-hypercube points of the method's space on
``curve.fidelity_seeds`` seeds, as a trial and fully: does a trial's score rank the fully
trained results? Longer trials, and trials scored after a BatchNorm refresh
(``search.refresh_bn``), are measured on the same configurations as trials only. The
*length check* (cells ``n<size>-r<k>-<arm>-x<factor>``) trains every arm's values
``curve.length_check[size]`` times longer on the first ``curve.length_check_replicates``
replicates, a search arm the values its cell at the curve's length chose (no new search):
do the verdicts, taken at ``curve.final_steps``, depend on training length?

Each finished cell writes a small JSON record (``curve.results_dir``): what was chosen, its
trials, the test scores, times, provenance, the data it measured on (``data``) and a
fingerprint of what shaped it. A record whose fingerprint matches is never rerun; one that
does not is rerun and replaced, never mixed. The cell's model stays in
``<run>/cells/<cell>/`` for ``make evaluate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earth_lib import data as data_mod
from earth_lib import params as params_mod
from earth_lib.errors import ParameterError
from earth_lib.params import AUGMENT_KEYS, CURVE_ARMS, POLICIES
from earth_lib.paths import CURVE_PARAMS, CURVE_RECORDS
from earth_lib.planning.evidence import MIN_REPLICATES
from earth_lib.search import SearchPlan, SearchSpace
from earth_lib.search import fingerprint as digest

#: The arms, in the order tables show them (the plan's: curve.arms in the parameter table).
ARMS = CURVE_ARMS
#: Arms that choose without a trial; of them, the policy-free augmentations.
NO_SEARCH = ("none", "literature", "dihedral", "literature_dihedral", "trivialaugment",
             "randaugment")
POLICY_FREE = POLICIES[1:]
SEARCH_ARMS = tuple(a for a in ARMS if a not in NO_SEARCH)
FIDELITY = "fidelity"
#: A fidelity configuration trained as a longer trial only (``curve.fidelity_trial_fractions``).
FIDELITY_TRIAL = "fidelity_trial"
#: Raised when a cell's meaning changes in a way its settings do not show (records rerun).
PROTOCOL = 1
#: Tags of the seeds derived from ``seed`` (:func:`derive_seed`).
SUBSET, SEARCH, TRAIN, POINTS, TEST = range(1, 6)


def derive_seed(seed: int, *keys: int) -> int:
    """An independent 32-bit seed for ``(seed, *keys)`` (numpy's ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(seed) % 2**32, *keys]).generate_state(1)[0])


@dataclass(frozen=True)
class Cell:
    """One unit of the curve: an arm at a size on a replicate, or one fidelity training."""

    size: int
    replicate: int
    arm: str
    point: int = 0  # fidelity: the configuration
    seed_index: int = 0  # fidelity: the seed
    fraction: float = 0.0  # a longer fidelity trial: its share of the final training
    factor: int = 1  # the length check: times curve.final_steps of its final training
    refresh: bool = False  # a fidelity trial scored after a BatchNorm refresh

    @property
    def name(self) -> str:
        """The cell's file and folder name (sorted names run size by size)."""
        if self.arm in (FIDELITY, FIDELITY_TRIAL):
            name = f"{FIDELITY}-n{self.size:05d}-p{self.point}-s{self.seed_index}"
            return (name + (f"-t{round(100 * self.fraction):03d}" if self.fraction else "")
                    + ("-bn" if self.refresh else ""))
        return f"n{self.size:05d}-r{self.replicate}-{self.arm}" + (
            f"-x{self.factor}" if self.factor > 1 else "")


def plan_cells(c: dict[str, Any]) -> list[Cell]:
    """Every cell, in the order they run: the fidelity check, then the curve in two passes.

    The fidelity check's cells, then its longer trials (``curve.fidelity_trial_fractions``),
    then its trials scored after a BatchNorm refresh (``curve.fidelity_refreshed``).

    The first pass runs, size by size from small to large, the replicates a verdict needs
    (:data:`~earth_lib.planning.evidence.MIN_REPLICATES`), so each size gets its verdict as
    early as it can, then that size's length check on replicate 0 (``curve.length_check``:
    every arm trained longer); the second adds, replicate by replicate, the length check's
    other replicates (``curve.length_check_replicates``) and the remaining replicates.
    A search arm's length-check cell comes after the cell whose values it trains.
    """
    cells = [Cell(size, 0, FIDELITY, k, s) for size in c["fidelity_sizes"]
             for k in range(c["fidelity_points"]) for s in range(c["fidelity_seeds"])]
    cells += [Cell(size, 0, FIDELITY_TRIAL, k, s, f, refresh=refresh)
              for key, refresh in (("fidelity_trial_fractions", False),
                                   ("fidelity_refreshed", True))
              for size in c["fidelity_sizes"] for f in c[key].get(size, [])
              for k in range(c["fidelity_points"]) for s in range(c["fidelity_seeds"])]
    first = {size: min(MIN_REPLICATES, c["replicates"][size]) for size in c["sizes"]}

    def longer(size: int, r: int) -> list[Cell]:
        factor = c["length_check"].get(size, 1)
        runs = factor > 1 and r < min(c["length_check_replicates"][size], c["replicates"][size])
        return [Cell(size, r, arm, factor=factor) for arm in c["arms"]] if runs else []

    for size in c["sizes"]:
        cells += [Cell(size, r, arm) for r in range(first[size]) for arm in c["arms"]]
        cells += longer(size, 0)
    for r in range(max(c["replicates"].values())):
        cells += [Cell(size, r, arm) for size in c["sizes"]
                  if first[size] <= r < c["replicates"][size] for arm in c["arms"]]
        cells += [cell for size in c["sizes"] if r > 0 for cell in longer(size, r)]
    return cells


def values_cell(cell: Cell) -> Cell | None:
    """The cell whose chosen values a search arm's length-check cell trains (else None)."""
    if cell.factor > 1 and cell.arm in SEARCH_ARMS:
        return Cell(cell.size, cell.replicate, cell.arm)
    return None


@dataclass
class CurveData:
    """The pool of images, the fixed test set (indices), the rest, and a digest of them.

    ``about``: what the images are, in a record's words
    (:func:`earth_lib.planning.evidence.describe_data`).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    test: np.ndarray
    pool: np.ndarray
    digest: str
    about: dict[str, Any] = field(default_factory=dict)

    def subset(self, size: int, replicate: int, val_fraction: float,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The training and validation indices of a size on a replicate (nested in size)."""
        order = self.pool[data_mod.stratified_order(self.labels[self.pool],
                                                    derive_seed(seed, SUBSET, replicate))]
        n_val = max(len(self.class_names), round(size * val_fraction))
        if size + n_val > len(order):
            raise ParameterError(
                f"curve: size {size} and its {n_val} validation images need {size + n_val} "
                f"images besides the test set; the pool holds {len(order)}. Lower "
                "curve.sizes or curve.test_images.")
        return order[:size], order[-n_val:]

    def split(self, index: np.ndarray) -> data_mod.Split:
        """The images and labels at ``index`` (in memory)."""
        return data_mod.Split(data_mod.read_rows(self.images, index), self.labels[index])


def load_curve_data(P: dict[str, Any]) -> CurveData:
    """The processed images of ``P`` with the curve's fixed stratified test set set apart."""
    pp, d, c = P["preprocess"], P["data"], P["curve"]
    ds = data_mod.load_images(pp["processed_dir"], expected_size=pp["image_size"],
                              on_bad_file=d["on_bad_file"], in_memory=d["in_memory"])
    labels = np.asarray(ds.labels)
    if labels.ndim != 1:
        raise ParameterError("curve: multi-label sets are not supported (the curve counts "
                             "images right or wrong).")
    if len(labels) <= c["test_images"]:
        raise ParameterError(f"curve: {pp['processed_dir']} holds {len(labels)} images, not "
                             f"more than curve.test_images ({c['test_images']}).")
    order = data_mod.stratified_order(labels, derive_seed(P["seed"], TEST))
    names = [f"{ds.class_names[y]}/{Path(p).name}" for p, y in zip(ds.paths, labels,
                                                                     strict=True)]
    return CurveData(ds.images, labels, list(ds.class_names), np.sort(order[:c["test_images"]]),
                     np.sort(order[c["test_images"]:]), digest({"files": names})["files"],
                     {"dataset": d["dataset"], "images": len(labels),
                      "classes": len(ds.class_names), "bands": int(ds.images.shape[-1]),
                      "image_size": pp["image_size"]})


def epochs_for(steps: int, size: int, batch_size: int) -> int:
    """Epochs that make about ``steps`` optimiser steps over ``size`` images in batches."""
    return max(1, round(steps / math.ceil(size / int(batch_size))))


def literature_values(P: dict[str, Any]) -> dict[str, Any]:
    """The literature values of the method's nine hyperparameters."""
    return {k: v for k, v in params_mod.baseline_hyperparameters(P).items() if k != "epochs"}


def fixed_values(arm: str, P: dict[str, Any]) -> dict[str, Any]:
    """The values of an arm that does not search."""
    lit = literature_values(P)
    quiet = {**lit, **dict.fromkeys(AUGMENT_KEYS, 0)}
    if arm == "none":
        return quiet
    if arm == "literature":
        return lit
    if arm == "literature_dihedral":
        return {**lit, "policy": "dihedral"}
    if arm in POLICY_FREE:
        return {**quiet, "policy": arm}
    raise ValueError(f"arm {arm!r} searches; it has no fixed values.")


def check_trial_budget(P: dict[str, Any]) -> None:
    """Refuse a trial count the method's steps cannot share evenly (it would get fewer)."""
    trials, steps = P["curve"]["trials"], P["search"]["steps"]
    if {"method", "lr_wd"} & set(P["curve"]["arms"]) and trials % min(steps, trials):
        raise ParameterError(
            f"curve.trials: {trials} trials do not split over the method's {steps} steps "
            f"(search.steps): it would spend {trials - trials % steps} against {trials} for "
            f"the other searches. Use a multiple of {steps}, e.g. "
            f"{trials + steps - trials % steps}.")


def search_plan(arm: str, P: dict[str, Any]) -> tuple[dict[str, dict], dict[str, Any], dict]:
    """A search arm's space, the values it keeps fixed, and the keyword arguments of its loop.

    Every plan spends ``curve.trials`` trials (the method's steps: the largest multiple of
    ``search.steps`` within them).
    """
    c, s = P["curve"], P["search"]
    trials, space = c["trials"], {k: dict(v) for k, v in s["space"].items()}
    common = {"shrink": s["shrink"], "min_step": s["min_step"], "acquisition": s["acquisition"]}
    fixed: dict[str, Any] = {}
    if arm == "lr_wd":
        space = {"learning_rate": {**space["learning_rate"], "log": True},
                 "weight_decay": {"type": "continuous", "bounds": list(c["weight_decay_bounds"]),
                                  "log": True}}
        fixed = literature_values(P)
    if arm == "random":
        return space, fixed, {**common, "steps": 1, "initial_points": trials,
                              "iterations_per_step": 0, "design": "random"}
    if arm in ("method", "lr_wd"):
        steps = min(s["steps"], trials)
        per = trials // steps
        initial = max(1, math.ceil(per / 2))
        return space, fixed, {**common, "steps": steps, "initial_points": initial,
                              "iterations_per_step": per - initial}
    if arm == "noisy_gp":
        if "learning_rate" in space and space["learning_rate"]["type"] == "continuous":
            space["learning_rate"]["log"] = True
        rescored = min(3, trials - 2)
        first = trials - rescored
        initial = math.ceil(first / 2)
        return space, fixed, {**common, "steps": 1, "initial_points": initial,
                              "iterations_per_step": first - initial, "ard": True,
                              "finalists": rescored, "finalist_budget": 1.0,
                              "finalist_repeats": 1}
    raise ValueError(f"arm {arm!r} does not search.")


def cell_settings(cell: Cell, P: dict[str, Any]) -> dict[str, Any]:
    """Everything besides the data that gives a cell's result its meaning (its fingerprint)."""
    c = P["curve"]
    steps = final_steps(cell, c)
    out = {"protocol": PROTOCOL, "seed": P["seed"], "test_images": c["test_images"],
           "val_fraction": c["val_fraction"], "final_steps": steps,
           "final": final_settings(P).record(),
           "trial": trial_settings(cell, P).record(),
           "trial_steps": trial_steps(cell, c), "tta": P["train"]["tta"],
           "preprocess": {k: v for k, v in P["preprocess"].items()
                          if k not in ("overwrite", "workers")}}
    if cell.arm in (FIDELITY, FIDELITY_TRIAL):
        out["fidelity"] = {"space": P["search"]["space"], "points": c["fidelity_points"]}
        out |= _capped_warmups(cell, P, fidelity_point(cell, P)["batch_size"], trial=True)
    elif cell.arm in NO_SEARCH:
        out["values"] = fixed_values(cell.arm, P)
        out |= _capped_warmups(cell, P, out["values"]["batch_size"], trial=False)
    else:
        out["search"] = search_plan(cell.arm, P)
        out["trials"] = c["trials"]
        out["warmup"] = "at most half of each training"  # batch sizes vary from trial to trial
        base = values_cell(cell)
        if base:
            out["values_from"] = {"cell": base.name, "final_steps": final_steps(base, c)}
    return out


def _capped_warmups(cell: Cell, P: dict[str, Any], batch_size: int,
                    trial: bool) -> dict[str, int]:
    """The warm-up steps of the cell's trainings that the half-training cap shortens.

    Only those: a cell whose trainings the cap leaves alone keeps its fingerprint.
    """
    c, out = P["curve"], {}
    per_epoch = math.ceil(cell.size / int(batch_size))
    roles = [("final", final_settings(P), final_steps(cell, c))]
    if trial:
        roles.append(("trial", trial_settings(cell, P), trial_steps(cell, c)))
    for role, settings, steps in roles:
        epochs = epochs_for(steps, cell.size, batch_size)
        if settings.warmup_capped(per_epoch, epochs):
            out[f"{role}_warmup_steps"] = settings.warmup_steps(per_epoch, epochs)
    return out


def fidelity_point(cell: Cell, P: dict[str, Any]) -> dict[str, Any]:
    """The configuration a fidelity cell trains (a Latin-hypercube point of the space)."""
    space = SearchSpace.from_dict(P["search"]["space"])
    return space.latin_hypercube(P["curve"]["fidelity_points"],
                                 seed=derive_seed(P["seed"], POINTS, cell.size))[cell.point]


def final_settings(P: dict[str, Any]) -> params_mod.TrainSettings:
    """The final training of every cell: the run's, all steps, the last weights."""
    return params_mod.TrainSettings.final(P).replace(early_stopping=False)


def loop_plan(arm: str, P: dict[str, Any], seed: int) -> SearchPlan:
    """A search arm's ``SearchPlan``: one process, no start point, finalists if it has them."""
    kwargs = search_plan(arm, P)[2]
    plain = params_mod.search_plan(P, seed=seed, design="lhs", start_points=None, finalists=0,
                                   finalist_budget=1.0, finalist_repeats=1, workers=1,
                                   trial_timeout=None, ard=False)
    return plain.replace(**kwargs)


def trial_settings(cell: Cell, P: dict[str, Any]) -> params_mod.TrainSettings:
    """How a cell's trials train: the run's trials; only a search arm follows its refresh.

    ``search.refresh_bn`` changes what a search arm's trials rank, so it reruns them; a
    fidelity trial's refresh is its cell's own, and an arm without a search runs no trial.
    """
    settings = params_mod.TrainSettings.trial(P)
    return settings if cell.arm in SEARCH_ARMS else settings.replace(refresh_bn=cell.refresh)


def trial_steps(cell: Cell, c: dict[str, Any]) -> int:
    """The optimiser steps of a trial in ``cell``: the arms', or a fidelity cell's own."""
    if cell.arm == FIDELITY_TRIAL:
        fraction = cell.fraction
    elif cell.arm == FIDELITY:
        fraction = c["fidelity_first_trial"]
    else:
        fraction = c["trial_fraction"][cell.size]
    return max(1, round(c["final_steps"][cell.size] * fraction))


def final_steps(cell: Cell, c: dict[str, Any]) -> int:
    """The optimiser steps of a cell's final training (the length check's are longer)."""
    return c["final_steps"][cell.size] * cell.factor


def planned_names(records_dir: str | Path) -> list[str] | None:
    """The cells the committed curve plans (``params/curve.yaml``), for its records folder.

    None for any other folder: its plan is not known from the records alone.
    """
    if Path(records_dir).resolve() != Path(CURVE_RECORDS).resolve():
        return None
    return [cell.name for cell in plan_cells(params_mod.load_params(CURVE_PARAMS)["curve"])]


def planned_steps(cell: Cell, c: dict[str, Any]) -> int:
    """The optimiser steps a cell takes: its trials' (if any) and its final training's."""
    if cell.arm == FIDELITY_TRIAL:
        return trial_steps(cell, c)
    trials = 1 if cell.arm == FIDELITY else 0 if cell.arm in NO_SEARCH or values_cell(cell) \
        else c["trials"]
    return final_steps(cell, c) + trials * trial_steps(cell, c)


def cell_fingerprint(cell: Cell, P: dict[str, Any], cd: CurveData) -> dict[str, str]:
    """Digests of the data and the settings of one cell."""
    return digest({"data": cd.digest, "cell": cell.name, "settings": cell_settings(cell, P)})
