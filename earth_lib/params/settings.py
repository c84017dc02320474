"""Checked parameters -> typed settings of each stage; the table stays the one source of values.

``TrainSettings`` (how a network trains) and :func:`search_plan` (how the search runs, a
``search.SearchPlan``) come from a checked parameter file, or from the table's defaults with
a few values changed (``TrainSettings.of(preset="tiny")``, ``search_plan(steps=1)``); the
stage functions have no defaults of their own for these values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from earth_lib.params.schema import AUGMENT_KEYS
from earth_lib.params.validation import validate
from earth_lib.search.plan import SearchPlan

#: What a trial's record leaves out (it runs every epoch and is scored on its best one),
#: and what a final training's leaves out (it has no time limit).
_NOT_RECORDED = {"trial": ("patience", "early_stopping", "distribute"),
                 "final": ("time_limit",)}


def default_params() -> dict[str, Any]:
    """Every parameter at its table default (as a file with nothing in it)."""
    return validate({})


@dataclass(frozen=True)
class TrainSettings:
    """How one network trains: a search trial (``trial``) or the final training (``final``)."""

    role: Literal["trial", "final"]
    preset: str
    epochs: int
    patience: int
    early_stopping: bool
    warmup_epochs: int
    weight_decay: float
    label_smoothing: float
    dropout: float
    optimizer: str
    schedule: str
    micro_batch: int | None
    precision: str
    distribute: str
    time_limit: float | None
    refresh_bn: bool = False

    @classmethod
    def final(cls, params: dict[str, Any]) -> TrainSettings:
        """The final training of a checked parameter file."""
        t = params["train"]
        return cls(role="final", epochs=t["epochs"], patience=t["patience"],
                   early_stopping=t["early_stopping"], time_limit=None, **_common(params))

    @classmethod
    def trial(cls, params: dict[str, Any]) -> TrainSettings:
        """A search trial: ``search.epochs`` epochs, all of them, within ``max_trial_seconds``."""
        s = params["search"]
        return cls(role="trial", epochs=s["epochs"], patience=s["epochs"], early_stopping=False,
                   time_limit=s["max_trial_seconds"], refresh_bn=s["refresh_bn"],
                   **_common(params))

    @classmethod
    def of(cls, role: Literal["trial", "final"] = "final", **changes: Any) -> TrainSettings:
        """The table's defaults for ``role`` with ``changes`` (scripts, tests, benchmarks)."""
        base = cls.final(default_params()) if role == "final" else cls.trial(default_params())
        return dataclasses.replace(base, **changes)

    def replace(self, **changes: Any) -> TrainSettings:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def warmup_steps(self, steps_per_epoch: int, epochs: int) -> int:
        """The learning rate's warm-up: ``warmup_epochs``, but never more than half the steps.

        Half at most, so that a short training (a one-epoch trial) still decays its rate
        and does not end at its peak.
        """
        return min(steps_per_epoch * self.warmup_epochs, steps_per_epoch * epochs // 2)

    def warmup_capped(self, steps_per_epoch: int, epochs: int) -> bool:
        """Whether :meth:`warmup_steps` is shorter than ``warmup_epochs`` here."""
        return self.warmup_steps(steps_per_epoch, epochs) < steps_per_epoch * self.warmup_epochs

    def record(self) -> dict[str, Any]:
        """The values that shape this kind of training (fingerprints and records).

        ``refresh_bn`` only when on, so records made before it existed keep their meaning.
        """
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k != "role" and k not in _NOT_RECORDED[self.role]
                and not (k == "refresh_bn" and not v)}


def _common(params: dict[str, Any]) -> dict[str, Any]:
    m, t = params["model"], params["train"]
    return {"preset": m["preset"], "weight_decay": m["weight_decay"],
            "label_smoothing": m["label_smoothing"], "dropout": m["dropout"],
            "warmup_epochs": t["warmup_epochs"], "optimizer": t["optimizer"],
            "schedule": t["schedule"], "micro_batch": t["micro_batch"],
            "precision": t["precision"], "distribute": t["distribute"]}


def search_plan(params: dict[str, Any] | None = None, **changes: Any) -> SearchPlan:
    """The search of a checked parameter file (default: the table's), with ``changes``."""
    params = params if params is not None else default_params()
    s = params["search"]
    plan = SearchPlan(
        steps=s["steps"], initial_points=s["initial_points"],
        iterations_per_step=s["iterations_per_step"], shrink=s["shrink"],
        min_step=s["min_step"], seed=params["seed"], design=s["design"],
        acquisition=s["acquisition"], finalists=s["finalists"],
        finalist_budget=s["finalist_budget"], finalist_repeats=s["finalist_repeats"],
        workers=s["workers"],
        # a trial stops itself at the first batch past max_trial_seconds; one with no
        # result well after that is hung, and is cancelled (trials on Ray)
        trial_timeout=None if s["max_trial_seconds"] is None
        else 1.5 * s["max_trial_seconds"] + 120,
        start_points=(baseline_hyperparameters(params),) if s["start_from_baseline"] else None)
    return plan.replace(**changes)


def executor_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``distributed.trial_executor``: where the search's trials run."""
    return {"workers": params["search"]["workers"], "address": params["search"]["ray_address"]}


def search_fingerprint(params: dict[str, Any], **data: Any) -> dict[str, Any]:
    """What gives a search trial its meaning and decides which trial comes next.

    A history whose fingerprint differs is refused (``search.fingerprint`` digests these).

    Trial settings, data share, PCA, preprocessing, the task, the search plan and the
    literature values; ``data`` adds the arrays the trials read (``images=``, ``labels=``,
    ``split=``). The space is added by the search itself.
    """
    return {"trial": TrainSettings.trial(params).record(),
            "data_share": search_data_settings(params),
            "pca": params["pca"], "preprocess": {k: v for k, v in params["preprocess"].items()
                                                  if k not in ("overwrite", "workers")},
            "task": params["task"], "plan": search_plan(params).record(),
            "literature": baseline_hyperparameters(params),
            **{k: v for k, v in data.items() if v is not None}}


def search_data_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``analysis.search_inputs``: the subsample and the PCA switch."""
    s = params["search"]
    return {"max_images": s["max_train_images"], "use_pca": s["use_pca_images"],
            "seed": params["seed"]}


def data_selection(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``data.select_files``: the list, the per-class cap, the seed."""
    d = params["data"]
    return {"file_list": d["file_list"], "max_per_class": d["max_per_class"],
            "seed": params["seed"]}


def baseline_hyperparameters(params: dict[str, Any]) -> dict[str, Any]:
    """The literature values (docs/method.md) for the names the search explores.

    With ``baseline.policy`` set, its policy-free augmentation replaces the six values.
    """
    hp = {k: v for k, v in params["baseline"].items() if k not in ("enabled", "policy")}
    if params["baseline"]["policy"] != "none":
        hp.update({**dict.fromkeys(AUGMENT_KEYS, 0), "policy": params["baseline"]["policy"]})
    if "epochs" in params["search"]["space"]:
        hp["epochs"] = params["search"]["epochs"]
    return hp
