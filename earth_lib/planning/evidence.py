"""The learning curve's advice to a run: what to augment with, and whether a search pays.

``make curve-report`` writes :data:`EVIDENCE_FILE` from the curve's records (under
``data``, what they measured on; per measured training-set size: each arm's mean accuracy,
the best arm without a search, the search's verdict against it; under ``longer``, the same
from the length check; under ``length_gain``, what training longer changed for each arm).
A run of ``n`` training images takes the advice of the nearest measured size (on a log
scale, within a factor :data:`REACH`) once that size has :data:`MIN_REPLICATES`
replicates. Beyond the largest measured size it takes that size's advice where the search
did not pay there: the method claims its gain for limited data, so none is expected with
more. Elsewhere (below the smallest, or beyond a size where the search paid), or before,
or for a task the curve did not measure (:data:`CURVE_TASK`), it is told nothing and does
what its parameters say. Where the length check has as many replicates, its advice wins: a
planned run on a few hundred images trains up to 200 epochs (1,600 optimiser steps on 250
images at batch 32), nearer the length check's length than the curve's (400 steps there).
Elsewhere, of arms the curve cannot tell apart, the one that gains more from longer
training is advised (:attr:`Advice.arm`). A run without a budget takes the same advice
where ``search.enabled`` is ``auto`` (the default; :func:`auto_choices`). The advice names
the curve's data, and where a run's bands or image size differ from them, says so: the
advice stands, but a run on other images hears what it rests on. Pure: reads one JSON
file, imports no training code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earth_lib.params import AUGMENT_KEYS, POLICIES

#: Written by ``make curve-report`` from ``results/curve`` (committed beside the code).
EVIDENCE_FILE = Path(__file__).with_name("curve_evidence.json")
#: A measured size advises data up to this factor smaller or larger.
REACH = 2.0
#: Fewer replicates than this at a size advise nothing (one replicate's winner is noise).
MIN_REPLICATES = 3
#: The task the curve measured (``earth_lib/experiments/curve.py`` classifies single-label
#: scenes); a run of another task is advised nothing.
CURVE_TASK = "multiclass"
#: Why a size above the largest measured takes its advice (where the search did not pay).
MORE_DATA = "the method claims its gain for limited data, so none is expected with more"
#: How :attr:`Advice.unlike` names a run's data, key by key.
UNITS = {"bands": "bands", "image_size": "px"}


@dataclass(frozen=True)
class Advice:
    """What the curve measured near one training-set size; empty when it measured nothing."""

    images: int
    size: int | None = None
    replicates: int = 0
    best_no_search: str | None = None
    accuracy: dict[str, float] = field(default_factory=dict)
    search: dict[str, Any] | None = None
    final_steps: int | None = None
    ties: dict[str, dict[str, Any]] = field(default_factory=dict)
    length_gain: dict[str, dict[str, Any]] = field(default_factory=dict)
    task: str = CURVE_TASK
    data: dict[str, Any] | None = None  # what the curve measured on (describe_data)
    run_data: dict[str, int] | None = None  # this run's bands and image_size, where known
    beyond: bool = False  # advised from the largest measured size, below ``images``

    @property
    def unmeasured(self) -> str:
        """Why the curve advises nothing here (when :attr:`size` is None), in words."""
        if self.task != CURVE_TASK:
            return ("the learning curve measured the search on single-label scenes only, "
                    f"not {self.task}")
        return f"the learning curve has not measured the search near {self.images:,} " \
            "training images"

    @property
    def where(self) -> str:
        """Which measurement the advice comes from, in words."""
        near = ("" if self.size == self.images else
                f" (the largest measured, below {self.images:,})" if self.beyond else
                f" (the nearest measured to {self.images:,})")
        steps = f", trained {self.final_steps:,} optimiser steps" if self.final_steps else ""
        data = f" ({describe_data(self.data)}{self.unlike})" if self.data else ""
        return f"the learning curve{data} at {self.size:,} training images{near}{steps}"

    @property
    def unlike(self) -> str:
        """``; this run: 13 bands, 64 px`` where the run's data differ from the curve's."""
        run, data = self.run_data or {}, self.data or {}
        keys = [k for k in UNITS if k in run and k in data]
        if all(run[k] == data[k] for k in keys):
            return ""
        return f"; this run: {', '.join(f'{run[k]} {UNITS[k]}' for k in keys)}"

    @property
    def arm(self) -> str | None:
        """What to train with: the best arm without a search, or one tied with it.

        Among the best arm and the arms without a search it is not shown to beat, the
        highest mean accuracy plus the arm's mean gain when trained longer (the length
        check): a run may train longer than the curve did, and there the arms part.
        """
        best = self.best_no_search
        candidates = [best, *[a for a in self.ties if a in self.accuracy]]
        if best is None or not all(a in self.length_gain for a in candidates):
            return best
        return max(candidates,
                   key=lambda a: 100 * self.accuracy[a] + self.length_gain[a]["points"])

    def overrides(self) -> dict[str, Any]:
        """The parameter values that train like :attr:`arm`."""
        arm = self.arm
        if self.size is None or arm in (None, "literature"):
            return {}
        if arm == "none":
            return {f"baseline.{k}": 0 for k in AUGMENT_KEYS}
        if arm in POLICIES[1:]:
            return {"baseline.policy": arm}
        raise ValueError(f"{EVIDENCE_FILE}: unknown arm {arm!r} at {self.size} images.")

    def augmentation_reason(self) -> str:
        """Why :meth:`overrides` are chosen (for ``key = value: reason``; names no arm first)."""
        arm, best = self.arm, self.best_no_search
        lit = self.accuracy.get("literature")
        against = (f" against {100 * lit:.1f} % for the literature values"
                   if lit is not None and arm != "literature" else "")
        if arm == best:
            return (f"the best arm without a search in {self.where}, "
                    f"{100 * self.accuracy[arm]:.1f} %{against}, {self.replicates} replicates")
        tie, gain = self.ties[arm], self.length_gain
        low, high = tie["interval"]
        return (f"{100 * self.accuracy[arm]:.1f} % in {self.where}, tied with the "
                f"best arm without a search, {best} ({100 * self.accuracy[best]:.1f} %; "
                f"{tie['diff_points']:+.1f} points, 95 % interval {low:+.1f} to {high:+.1f}, "
                f"{self.replicates} replicates); trained longer (the length check, "
                f"{_sizes(gain[arm]['sizes'])} images), {arm} gained "
                f"{gain[arm]['points']:+.1f} points on average and {best} "
                f"{gain[best]['points']:+.1f}")

    def search_pays(self) -> bool | None:
        """Whether the curve found the search paying near this size (None: not measured)."""
        if self.size is None or not self.search:
            return None
        return self.search["verdict"] == "pays"

    def search_reason(self) -> str:
        """The curve's verdict on the search near this size, in words."""
        s = self.search or {}
        ci = s.get("interval")
        interval = f" (95 % interval {ci[0]:+.1f} to {ci[1]:+.1f})" if ci else ""
        verdict = {"pays": "it pays", "loses": "it loses"}.get(s.get("verdict"),
                                                               "no gain shown")
        more = f"; {MORE_DATA}" if self.beyond else ""
        return (f"{verdict} in {self.where}: its best arm ({s.get('arm')}) "
                f"{s.get('gain_points', float('nan')):+.1f} points{interval} against "
                f"{self.best_no_search} without a search{more}")


def describe_data(about: dict[str, Any]) -> str:
    """A curve record's ``data`` in words: ``eurosat, 10 classes, 3 bands, 64 px``."""
    return (f"{about['dataset']}, {about['classes']} classes, {about['bands']} bands, "
            f"{about['image_size']} px")


def shape_data(shape: tuple[int, ...] | list[int] | None) -> dict[str, int] | None:
    """A run's ``run_data`` (image size and bands) from an image's (height, width, bands)."""
    return {"image_size": int(shape[0]), "bands": int(shape[-1])} if shape else None


def _sizes(sizes: list[int]) -> str:
    """250, 500 and 1,000."""
    words = [f"{n:,}" for n in sizes]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def read_evidence(path: str | Path = EVIDENCE_FILE) -> dict[str, Any]:
    """The evidence file's content (no sizes when it is missing)."""
    path = Path(path)
    if not path.is_file():
        return {"sizes": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def _usable(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """The entry when it has the replicates and the best arm advice needs, else None."""
    ok = entry and entry.get("replicates", 0) >= MIN_REPLICATES and entry.get("best_no_search")
    return entry if ok else None


def advice_for(images: int, evidence: dict[str, Any] | None = None,
               task: str = CURVE_TASK, run_data: dict[str, int] | None = None) -> Advice:
    """The advice for ``images`` training images (none beyond reach, or for another task).

    ``run_data``: the run's ``bands`` and ``image_size`` (either may be left out), named
    in the advice where they differ from the curve's.
    """
    if task != CURVE_TASK:
        return Advice(images, task=task)
    evidence = read_evidence() if evidence is None else evidence
    ready = {int(k): e for k, v in evidence.get("sizes", {}).items()
             for e in [_usable(v.get("longer")) or _usable(v)] if e}
    if not ready or images < 1:
        return Advice(images)
    size = min(ready, key=lambda s: abs(math.log(s / images)))
    beyond = images > max(ready) * REACH and (ready[size].get("search") or {}).get(
        "verdict") in ("loses", "no difference shown")
    if abs(math.log(size / images)) > math.log(REACH) and not beyond:
        return Advice(images)
    e = ready[size]
    longer = e is evidence["sizes"][str(size)].get("longer")  # already the longer training's
    return Advice(images, size, e["replicates"], e["best_no_search"], e.get("accuracy", {}),
                  e.get("search"), e.get("final_steps"), e.get("ties", {}),
                  {} if longer else evidence.get("length_gain", {}), data=evidence.get("data"),
                  run_data=run_data, beyond=beyond)


def search_note(images: int, searching: bool, evidence: dict[str, Any] | None = None,
                task: str = CURVE_TASK, run_data: dict[str, int] | None = None) -> str:
    """One line for a run's log: what the learning curve says of a search at this size."""
    advice = advice_for(images, evidence, task, run_data)
    pays = advice.search_pays()
    if pays is None:
        return f"{advice.unmeasured.capitalize()} (docs/curve.md)."
    if pays or not searching:
        return f"The search: {advice.search_reason()}."
    train = ", ".join(f"{k}={v}" for k, v in advice.overrides().items()) \
        or "the literature values"
    return (f"The search: {advice.search_reason()}. search.enabled=false, training with "
            f"{train}, would save its time.")


def auto_choices(train_images: int, hand: Collection[str] = (),
                 evidence: dict[str, Any] | None = None, task: str = CURVE_TASK,
                 run_data: dict[str, int] | None = None
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """What ``search.enabled: auto`` does at ``train_images`` training images, and why.

    Near a size the curve measured, the run searches only where the search paid there, and
    otherwise trains like the advised arm (the keys in ``hand``, set by a person, stay);
    where the curve measured nothing near, the method runs as declared (a search). Flat
    keys (``search.enabled``, ``baseline.policy``) to values, and a reason for each.
    """
    advice = advice_for(train_images, evidence, task, run_data)
    pays = advice.search_pays()
    choices: dict[str, Any] = {"search.enabled": pays is not False}
    reasons = {"search.enabled": advice.search_reason() if pays is not None else
               f"{advice.unmeasured}, so the method runs as declared"}
    if pays is False:  # a search keeps the file's values as its yardstick
        for key, value in advice.overrides().items():
            if key not in hand:
                choices[key], reasons[key] = value, advice.augmentation_reason()
    return choices, reasons


def settle_search(train_images: int, enabled: bool | str, hand: Collection[str] = (),
                  evidence: dict[str, Any] | None = None, task: str = CURVE_TASK,
                  run_data: dict[str, int] | None = None
                  ) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """``search.enabled`` settled at ``train_images``: the choices, why, and what to print.

    ``auto`` goes to :func:`auto_choices`; a hand-set true or false stays (no choices) and
    hears what the curve says of it (:func:`search_note`).
    """
    if enabled != "auto":
        return {}, {}, [search_note(train_images, enabled, evidence, task, run_data)]
    choices, reasons = auto_choices(train_images, hand, evidence, task, run_data)
    return choices, reasons, [
        "search.enabled is auto: the learning curve decides (docs/curve.md)",
        *(f"  {key} = {value}: {reasons[key]}" for key, value in choices.items())]


def advice_lines(evidence: dict[str, Any]) -> list[str]:
    """What a run at each measured size is advised, one line each (for the docs).

    The page names the curve's data once, so the lines do not.
    """
    out, unnamed = [], {k: v for k, v in evidence.items() if k != "data"}
    for size in sorted(int(k) for k in evidence.get("sizes", {})):
        a = advice_for(size, unnamed)
        if a.size != size:
            continue  # too few replicates there yet
        pays = a.search_pays()
        search = "no search" if pays is False else "searches (budgeted: where trials fit)"
        out.append(f"{size:,} images: trains with {a.arm}: {a.augmentation_reason()}; {search}"
                   + (f": {a.search_reason()}" if pays is not None else "") + ".")
    sizes = [int(k) for k in evidence.get("sizes", {})]
    far = advice_for(int(max(sizes, default=0) * REACH) + 1, unnamed)
    if far.beyond:
        out.append(f"More than {far.size * REACH:,.0f} images: as at {far.size:,} (trains "
                   f"with {far.arm}, no search): {MORE_DATA}.")
    return out
