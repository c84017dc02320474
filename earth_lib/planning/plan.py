"""The plan of a budgeted run: what it chooses and why, and how the run keeps to it (pure).

:func:`plan_run` chooses every value the file leaves open from a :class:`DataSummary` and
a :class:`Speed` (measured by :mod:`earth_lib.planning.measure`); :func:`with_plan` applies
a plan under the file's own values; :func:`budget_line` and :func:`final_epochs` keep the
run to its budget as it goes.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from earth_lib.errors import ParameterError
from earth_lib.params import (
    AUGMENT_KEYS,
    TrainSettings,
    apply_overrides,
    default_params,
    validate,
)
from earth_lib.planning.evidence import advice_for

#: The sides (px) a plan chooses from, and the sizes it measures training speed at.
CANDIDATE_SIZES = (32, 48, 64, 96, 128, 160, 192, 224)
MEASURED_SIZES = (32, 96)
#: Final training in images seen (epochs x training images: what a network needs, whatever
#: the data's size): fewer than MIN_SEEN is not worth training; the image size is the
#: largest that affords MIN_SEEN: pixels before epochs (on EuroSAT, 2 cores, 30 minutes
#: bought 18 epochs at 32 px, 76.5 %, where 64 px reached 88 % of validation images by its
#: 9th epoch); GOOD_SEEN is what a plan calls a good training; beyond ENOUGH_SEEN (about
#: the project's EuroSAT recipe, 36 epochs of 17,600 images) or MAX_EPOCHS epochs, the
#: time goes to a search.
MIN_SEEN, GOOD_SEEN, ENOUGH_SEEN, MAX_EPOCHS = 80_000, 200_000, 600_000, 200
#: A small set needs fewer: at most this many epochs of it count as minimal, and as good.
MIN_EPOCHS, GOOD_EPOCHS = 20, 60
#: Notebook kernels, imports, exploratory figures and PCA: seconds outside the stages.
OVERHEAD_SECONDS = 150.0
#: A run's stages in the order they run (a plan holds those it expects).
STAGES = ("planning", "start-up and figures", "preprocessing", "search", "final training",
          "test", "classical baseline")
#: The share of the budget a plan fills: the rest absorbs what measurements miss.
PLANNED_SHARE = 0.93
#: A search is planned only when it gets at least this many trials.
MIN_TRIALS = 6
#: In memory up to this many bytes of processed images; streamed from disk above it.
IN_MEMORY_BYTES = 1_000_000_000
#: The values a CPU plan trains with (the project's EuroSAT recipe: on a CPU, epochs
#: matter more than width), and the model presets a GPU plan may widen to.
CPU_RECIPE = {"model.preset": "cpu64", "model.weight_decay": 0.05,
              "model.label_smoothing": 0.1, "train.tta": True}
GPU_PRESET = "medium"


@dataclass
class DataSummary:
    """What a folder of class folders holds, read from its file list and a few images."""

    images: int
    classes: int
    native_size: int
    bands: int


@dataclass
class Speed:
    """Seconds per image on this machine, and whether a GPU trains.

    Training (``train_fixed + train_per_pixel * pixels``), preprocessing, and the classical
    baseline's features (per pixel).
    """

    train_fixed: float
    train_per_pixel: float
    preprocess: float
    features_per_pixel: float
    gpu: bool = False

    def train(self, size: int) -> float:
        """Seconds per training image at ``size`` px (one pass, validation apart)."""
        return self.train_fixed + self.train_per_pixel * size * size


@dataclass
class RunPlan:
    """What a budgeted run will do: each chosen value, why, and each stage's seconds."""

    budget_minutes: float
    data: DataSummary
    speed: Speed
    choices: dict[str, Any]
    reasons: dict[str, str]
    stages: dict[str, float]
    kept: dict[str, Any] = field(default_factory=dict)
    given: dict[str, Any] = field(default_factory=dict)  # what the file set (flat keys)
    created: str = ""
    started: float = 0.0

    @property
    def expected_minutes(self) -> float:
        """The planned minutes of every stage together."""
        return sum(self.stages.values()) / 60

    def overrides(self) -> list[tuple[str, Any]]:
        """The plan's values as ``(dotted key, value)`` pairs, applied under the file's."""
        return list(self.choices.items())

    def describe(self) -> str:
        """The plan as a person reads it: the data, each choice and why, the stages."""
        d = self.data
        lines = [f"plan for {self.budget_minutes:g} min: {d.images} images, {d.classes} "
                 f"classes, about {d.native_size} px, {d.bands} band(s); training on "
                 f"{'a GPU' if self.speed.gpu else f'{os.cpu_count()} CPU core(s)'}"]
        for key, value in self.choices.items():
            lines.append(f"  {key} = {value}: {self.reasons.get(key, '')}".rstrip(": "))
        for key, value in self.kept.items():
            lines.append(f"  {key} = {value}: set in the file, kept")
        lines.append("  expected: " + ", ".join(f"{k} {v / 60:.1f} min"
                                                for k, v in self.stages.items())
                     + f"; {self.expected_minutes:.1f} of {self.budget_minutes:g} min")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The plan as written to ``plan.json``."""
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> RunPlan:
        """A plan read back from ``plan.json``."""
        return cls(**{**record, "data": DataSummary(**record["data"]),
                      "speed": Speed(**record["speed"])})


def _flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in (mapping or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "search.space":
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def set_by_hand(given: Any) -> dict[str, Any]:
    """The flat values a person set (file and overrides); ``search.enabled: auto`` is unset."""
    return {k: v for k, v in _flat(given or {}).items()
            if not (k == "search.enabled" and v == "auto")}


def _augmentation_words(values: dict[str, Any]) -> str:
    """What a final training without a search augments with, from flat ``baseline.*`` values."""
    policy = values["baseline.policy"]
    if policy != "none":
        return f"{policy} augmentation (baseline.policy)"
    if not any(values[f"baseline.{k}"] for k in AUGMENT_KEYS):
        return "no augmentation"
    literature = default_params()["baseline"]
    same = all(values[f"baseline.{k}"] == literature[k] for k in AUGMENT_KEYS)
    return "the literature values" if same else "the file's baseline values"


def plan_run(params: dict[str, Any], given: dict[str, Any], speed: Speed,
             data: DataSummary, evidence: dict[str, Any] | None = None) -> RunPlan:
    """Choose what the file leaves open so that the run fits ``params['budget_minutes']``.

    ``given``: the file's own mapping with its overrides (what a person set by hand wins).
    ``evidence``: the learning curve's (:mod:`earth_lib.planning.evidence`); near a size it
    measured, the plan augments like the best arm without a search there, and searches
    only where the search paid. Pure: the measurements come in ``speed`` and ``data``.
    Long on purpose: it reads as the printed plan does, one choice after another, each with
    its reason.
    """
    budget = params["budget_minutes"]
    hand = set_by_hand(given)
    choices: dict[str, Any] = {}
    reasons: dict[str, str] = {}

    def choose(key: str, value: Any, why: str) -> Any:
        if key in hand:
            return hand[key]
        choices[key], reasons[key] = value, why
        return value

    sp = params["split"]
    n_train = max(1, round(data.images * sp["train"]))
    n_eval = data.images - n_train
    recipe = {**CPU_RECIPE, **({"model.preset": GPU_PRESET} if speed.gpu else {})}
    for key, value in recipe.items():
        choose(key, value, "a GPU affords a wider network" if speed.gpu
               and key == "model.preset" else "the project's recipe for a CPU (there, "
               "epochs matter more than width)" if key == "model.preset" else "the recipe")
    advice = advice_for(n_train, evidence or {}, params["task"], {"bands": data.bands})
    for key, value in advice.overrides().items():
        choose(key, value, advice.augmentation_reason())
    workers = choose("preprocess.workers", os.cpu_count() or 1, "every core")
    tta = hand.get("train.tta", True)
    preprocessing = data.images * speed.preprocess / workers

    def cost(size: int, epochs: int) -> dict[str, float]:
        per = speed.train(size)
        evaluation = n_eval * per / 3 * (8 if tta else 1)
        return {"start-up and figures": OVERHEAD_SECONDS, "preprocessing": preprocessing,
                "final training": epochs * (n_train * per + sp["val"] * data.images * per / 3),
                "test": evaluation,
                "classical baseline": data.images * speed.features_per_pixel * size * size
                + 2e-4 * n_train * math.log2(max(2, n_train))}

    seconds = budget * 60 * PLANNED_SHARE
    native = data.native_size
    sizes = [s for s in CANDIDATE_SIZES if s <= native] or [native]
    if "preprocess.image_size" in hand:
        sizes = [hand["preprocess.image_size"]]

    def epochs_at(size: int) -> int:
        per_epoch = cost(size, 1)["final training"]
        return int((seconds - sum(cost(size, 0).values())) // per_epoch)

    def seen_at(size: int) -> int:
        return epochs_at(size) * n_train

    least, enough = min(MIN_SEEN, MIN_EPOCHS * n_train), min(GOOD_SEEN, GOOD_EPOCHS * n_train)
    fits = [s for s in sizes if seen_at(s) >= least]
    if not fits:
        smallest = min(sizes)
        need = sum(cost(smallest, math.ceil(least / n_train)).values()) / 60
        raise ParameterError(
            f"budget_minutes: {budget:g} min cannot train a useful network on {data.images} "
            f"images here ({least:,} training images seen at {smallest} px need about "
            f"{need:.0f} min). Set budget_minutes to at least "
            f"{math.ceil(need / PLANNED_SHARE)}, or use fewer images (data.max_per_class).")
    # pixels, then images seen, then a search (at full size the search ties the literature)
    size = choose("preprocess.image_size", max(fits),
                  f"the largest side (native {native} px) that affords {least:,} training "
                  f"images seen ({seen_at(max(fits)):,} fit"
                  + ("" if seen_at(max(fits)) >= enough else
                     f"; fewer than the {enough:,} of a good training: more budget buys them")
                  + ")")
    raw = Path(params["data"]["raw_dir"])
    choose("preprocess.processed_dir", f"data/processed/{raw.name}-{size}px",
           "from data.raw_dir and the image size")
    available = epochs_at(size)
    epochs = max(1, min(available, math.ceil(ENOUGH_SEEN / n_train), MAX_EPOCHS))
    surplus = (available - epochs) * cost(size, 1)["final training"]
    trial_epochs = max(2, epochs // 6)
    trial_images = min(n_train, 2500)
    trial = trial_epochs * (trial_images * speed.train(size)
                            + sp["val"] * data.images * speed.train(size) / 3)
    trials = int(surplus // trial) if trial > 0 else 0
    pays = advice.search_pays()
    search = trials >= MIN_TRIALS and pays is not False
    choose("search.enabled", search,
           f"{trials} trials of {trial_epochs} epochs fit beside {epochs} final epochs"
           + (f"; {advice.search_reason()}" if pays else "") if search
           else f"no search: {advice.search_reason()}; the run ends early rather than "
           "search" if pays is False and trials >= MIN_TRIALS
           else f"the budget leaves {trials} trial(s) (fewer than {MIN_TRIALS}) after the "
           f"final training: {_augmentation_words({**_flat(params), **choices})}")
    choose("baseline.enabled", search, "the literature values scored as the search's "
           "yardstick" if search else "no search: no yardstick to score")
    search_seconds = _plan_search(choose, trials, trial_epochs, trial_images, trial) \
        if search and "search.enabled" not in hand else 0.0
    choose("train.epochs", epochs, f"{epochs} epochs of {n_train} images fit in the budget"
           + (f" ({available} would; beyond that the time goes to the search)"
              if available > epochs and search else ""))
    choose("train.patience", epochs, "the cosine schedule runs to its end")
    in_memory = data.images * size * size * data.bands < IN_MEMORY_BYTES
    choose("data.in_memory", in_memory, "the images fit in memory" if in_memory
           else "streamed from disk: the images would take more than 1 GB")
    stages = cost(size, epochs)
    if search_seconds:
        stages = {k: stages.pop(k) for k in ("start-up and figures", "preprocessing")} \
            | {"search": search_seconds, **stages}
    kept = {k: hand[k] for k in ("preprocess.image_size", "train.epochs", "search.enabled",
                                 "model.preset") if k in hand}
    return RunPlan(budget, data, speed, choices, reasons,
                   {k: round(v, 1) for k, v in stages.items()}, kept, hand,
                   datetime.now(UTC).isoformat(timespec="seconds"), time.time())


def _plan_search(choose: Callable[[str, Any, str], Any], trials: int, trial_epochs: int,
                 trial_images: int, trial_seconds: float) -> float:
    """The search's steps and points for ``trials`` trials (at most 12); its seconds."""
    trials = min(trials, 12)
    steps = 3 if trials >= 9 else 1
    per_step = trials // steps
    initial = max(1, math.ceil(per_step / 2))
    choose("search.steps", steps, "three tightening steps when 9 trials or more fit")
    choose("search.initial_points", initial, "half of each step's trials")
    choose("search.iterations_per_step", per_step - initial, f"{trials} trials in all")
    choose("search.epochs", trial_epochs, "a sixth of the final training's epochs")
    choose("search.max_train_images", trial_images, "trials on a share of the images")
    choose("search.refresh_bn", True, "a short trial's BatchNorm statistics trail its "
           "weights: scored as trained, the learning curve's trials at 250 images ranked "
           "the full trainings backwards (docs/curve.md, fidelity)")
    return steps * per_step * trial_seconds


def read_plan(path: str | Path) -> RunPlan | None:
    """The plan written at ``path``, or None when there is none."""
    path = Path(path)
    return RunPlan.from_json(json.loads(path.read_text())) if path.is_file() else None


def plan_is_current(plan: RunPlan | None, params: dict[str, Any], given: Any) -> bool:
    """Whether ``plan`` was made for this budget and these hand-set values."""
    return plan is not None and plan.budget_minutes == params["budget_minutes"] \
        and plan.given == set_by_hand(given)


def needs_new_plan(plan: RunPlan | None, params: dict[str, Any], given: Any,
                   executed: Path) -> bool:
    """Whether a budgeted run must plan again before the notebook ``executed`` is made.

    A plan serves one pass through the notebooks: when this notebook already finished
    under it, this is a new pass (a rerun) that gets a new clock and this code's choices;
    so does a changed budget or hand-set value.
    """
    if params["budget_minutes"] is None:
        return False
    rerun = plan is not None and executed.is_file() and executed.stat().st_mtime >= plan.started
    return rerun or not plan_is_current(plan, params, given)


def with_plan(given: Any, source: str, plan: RunPlan | None) -> dict[str, Any]:
    """The checked parameters: the file's values, the plan's under them."""
    if plan is None:
        return validate(given, source)
    hand = set_by_hand(given)
    items = [(k, v) for k, v in plan.overrides() if k not in hand]
    return validate(apply_overrides(given, items, source), f"{source} and its plan")


def budget_line(plan: RunPlan, stage: str) -> str:
    """Where the run stands against its budget, for a progress line at a stage boundary."""
    used = (time.time() - plan.started) / 60
    upto = STAGES[:STAGES.index(stage)]
    planned = sum(plan.stages.get(s, 0.0) for s in upto) / 60
    drift = used - planned
    return (f"budget: {used:.1f} of {plan.budget_minutes:g} min used, "
            f"{plan.budget_minutes - used:.1f} left, before {stage} "
            f"({'+' if drift >= 0 else ''}{drift:.1f} min against the plan)")


def final_epochs(plan: RunPlan, epochs: int, n_train: int, n_val: int, size: int,
                 log: Callable[[str], None] = print) -> int:
    """The final training's epochs that fit the time left.

    Fewer when earlier stages ran over; more when they ran ahead, up to what a plan would
    ever give (:data:`ENOUGH_SEEN`, :data:`MAX_EPOCHS`), unless the file set the epochs.
    """
    left = plan.budget_minutes * 60 * PLANNED_SHARE - (time.time() - plan.started)
    after = plan.stages.get("test", 0.0) + plan.stages.get("classical baseline", 0.0)
    per_epoch = n_train * plan.speed.train(size) + n_val * plan.speed.train(size) / 3
    fit = max(1, int((left - after) // per_epoch))
    most = epochs if "train.epochs" in plan.given \
        else max(epochs, min(math.ceil(ENOUGH_SEEN / max(1, n_train)), MAX_EPOCHS))
    chosen = min(fit, most)
    if chosen != epochs:
        log(f"budget: {left / 60:.1f} min left; the final training "
            f"{'is cut' if chosen < epochs else 'gets more'}: {chosen} epochs instead of "
            f"{epochs}, so that the test and the baseline still fit")
    return chosen


def fit_final(plan: RunPlan | None, settings: TrainSettings, n_train: int, n_val: int,
              size: int, log: Callable[[str], None] = print) -> TrainSettings:
    """The final training's settings, its epochs fitted to the time left (no plan: as is)."""
    if plan is None:
        return settings
    log(budget_line(plan, "final training"))
    epochs = final_epochs(plan, settings.epochs, n_train, n_val, size, log)
    patience = settings.patience if settings.patience < settings.epochs else epochs
    return settings.replace(epochs=epochs, patience=min(patience, epochs))
