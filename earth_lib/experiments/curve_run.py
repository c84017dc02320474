"""Running the learning curve: each cell chosen, trained, tested and recorded, resumably.

Several processes share one plan (:func:`run_curve`): each claims a cell by its folder's
lock, and a cell whose record carries the current fingerprint is never run again.
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from earth_lib import data as data_mod
from earth_lib import params as params_mod
from earth_lib.errors import RunInUseError
from earth_lib.experiments.curve import (
    FIDELITY,
    FIDELITY_TRIAL,
    NO_SEARCH,
    SEARCH,
    TRAIN,
    Cell,
    CurveData,
    cell_fingerprint,
    check_trial_budget,
    derive_seed,
    epochs_for,
    fidelity_point,
    final_settings,
    final_steps,
    fixed_values,
    load_curve_data,
    loop_plan,
    plan_cells,
    planned_steps,
    search_plan,
    trial_settings,
    trial_steps,
    values_cell,
)
from earth_lib.io import atomic_write_json, run_lock
from earth_lib.metrics import evaluate_predictions
from earth_lib.nn.training import backed_up_epoch, make_objective, predict_proba, train_model
from earth_lib.preprocessing import read_settings
from earth_lib.provenance import cpu_model, git_commit, package_versions
from earth_lib.run import Run, read_json
from earth_lib.search import SearchSpace, posterior_means, run_search

#: A cell's final training is backed up at each epoch's end here (in its folder), and an
#: interrupted one goes on from there.
BACKUP = "final_backup"


def _objective(settings: params_mod.TrainSettings, train: data_mod.Split, val: data_mod.Split,
               n_classes: int, steps: int, seed: int,
               fixed: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """A trial: ``fixed`` values under the point's, ``steps`` optimiser steps, val loss."""
    inner = make_objective(train, val, n_classes, tuple(train.x.shape[1:]), settings, seed=seed)

    def objective(hp: dict, budget: float = 1.0, repeat: int = 0) -> dict[str, Any]:
        full = {**fixed, **hp}
        full["epochs"] = epochs_for(steps, len(train.y), full["batch_size"])
        return inner(full, budget=budget, repeat=repeat)

    return objective


def _choose(cell: Cell, P: dict[str, Any], objective_for: Callable, folder: Run,
            search_seed: int, fp: dict[str, str], log: Callable[[str], None]
            ) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    """The values an arm trains finally, its trials, and those trials' seconds before a resume."""
    if cell.arm in NO_SEARCH:
        return fixed_values(cell.arm, P), [], 0.0
    space_dict, fixed, _ = search_plan(cell.arm, P)
    space = SearchSpace.from_dict(space_dict)
    result = run_search(objective_for(fixed), space, folder.search_history,
                        loop_plan(cell.arm, P, search_seed), log=log, fingerprint=fp)
    ok = [t for t in result.trials if math.isfinite(t.val_loss)]
    if cell.arm == "noisy_gp" and len(ok) > 1:
        means = posterior_means(space, [t.hp for t in ok], [t.val_loss for t in ok],
                                search_seed, ard=True)
        hp = dict(ok[int(np.argmin(means))].hp)
    else:
        hp = dict(result.best.hp)
    return {**fixed, **hp}, result.table(), result.resumed_seconds


def run_cell(cell: Cell, P: dict[str, Any], cd: CurveData, folder: Run,
             log: Callable[[str], None] = print,
             chosen: dict[str, Any] | None = None) -> dict[str, Any]:
    """Choose one cell's values, train them finally, test them; returns its record.

    A longer fidelity trial (``fidelity_trial``) trains its configuration as a trial only.
    ``chosen``: a search arm's length-check cell trains these values (its
    :func:`~earth_lib.experiments.curve.values_cell`'s record's) without a search.
    """
    c, seed = P["curve"], P["seed"]
    fp = cell_fingerprint(cell, P, cd)
    train_idx, val_idx = cd.subset(cell.size, cell.replicate, c["val_fraction"], seed)
    train, val = cd.split(train_idx), cd.split(val_idx)
    steps = final_steps(cell, c)
    n_classes = len(cd.class_names)
    fidelity = cell.arm in (FIDELITY, FIDELITY_TRIAL)
    train_seed = derive_seed(seed, TRAIN, 1000 + cell.seed_index if fidelity else cell.replicate)
    search_seed = derive_seed(seed, SEARCH, cell.replicate)

    def objective_for(fixed: dict[str, Any]) -> Callable[..., dict[str, Any]]:
        return _objective(trial_settings(cell, P), train, val, n_classes, trial_steps(cell, c),
                          train_seed, fixed)

    t0 = time.perf_counter()
    if cell.arm == FIDELITY_TRIAL:
        score = objective_for({})(fidelity_point(cell, P))
        return {"cell": cell.name, "size": cell.size, "replicate": cell.replicate,
                "arm": cell.arm, "point": cell.point, "seed_index": cell.seed_index,
                "fraction": cell.fraction, "trial_steps": trial_steps(cell, c),
                **({"refresh_bn": True} if cell.refresh else {}),
                "seeds": {"train": train_seed}, "trial_score": score,
                "seconds": {"search": round(time.perf_counter() - t0, 1), "final": 0.0,
                            "test": 0.0},
                "fingerprint": fp, "provenance": _provenance()}
    trial_score, earlier = None, 0.0
    if fidelity:
        hp = fidelity_point(cell, P)
        trial_score = objective_for({})(hp)
        trials = []
    elif chosen is not None:
        hp, trials = {k: v for k, v in chosen.items() if k != "epochs"}, []
    else:
        hp, trials, earlier = _choose(cell, P, objective_for, folder, search_seed, fp, log)
    search_seconds = time.perf_counter() - t0 + earlier
    final_hp = {**hp, "epochs": epochs_for(steps, cell.size, hp["batch_size"])}
    done = backed_up_epoch(folder.path / BACKUP)
    if done:
        log(f"final training: goes on from epoch {done} of {final_hp['epochs']} (a backup)")
    t0 = time.perf_counter()
    model, curves = train_model(final_hp, train, val, n_classes, tuple(train.x.shape[1:]),
                                final_settings(P), seed=train_seed, verbose=False,
                                csv_log=folder.training_log, backup_dir=folder.path / BACKUP)
    final_seconds = time.perf_counter() - t0 + curves.get("seconds_before_resume", [0.0])[0]
    test = cd.split(cd.test)
    t0 = time.perf_counter()
    proba = predict_proba(model, test.x, tta=P["train"]["tta"])
    scores = evaluate_predictions(test.y, proba, cd.class_names)
    folder.save_model(model, cd.class_names, read_settings(P["preprocess"]["processed_dir"]),
                      final_hp, tta=P["train"]["tta"])
    right = (proba.argmax(axis=1) == test.y).astype(int)
    return {
        "cell": cell.name, "size": cell.size, "replicate": cell.replicate, "arm": cell.arm,
        "point": cell.point if fidelity else None,
        "seed_index": cell.seed_index if fidelity else None,
        "seeds": {"search": search_seed, "train": train_seed},
        "images": {"train": len(train_idx), "val": len(val_idx), "test": len(cd.test)},
        "hyperparameters": final_hp, "final_steps": steps, "trial_score": trial_score,
        "trial_steps": trial_steps(cell, c) if trial_score or trials else None,
        **({"length_factor": cell.factor} if cell.factor > 1 else {}),
        **({"values_from": values_cell(cell).name} if chosen is not None else {}),
        "trials": trials,
        "test": {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
                 "cross_entropy": scores["cross_entropy"],
                 "per_class": {k: {m: round(v[m], 4) for m in ("precision", "recall", "f1-score")}
                               for k, v in scores["per_class"].items()}},
        "test_correct": "".join(map(str, right)),
        "final_val_accuracy": (curves.get("val_accuracy") or [None])[-1],
        **({"resumed_at_epoch": int(curves["resumed_at_epoch"][0])}
           if "resumed_at_epoch" in curves else {}),
        "seconds": {"search": round(search_seconds, 1), "final": round(final_seconds, 1),
                    "test": round(time.perf_counter() - t0, 1)},
        "fingerprint": fp,
        "provenance": _provenance(),
    }


def _provenance() -> dict[str, Any]:
    """What produced a record: commit, packages, CPU, threads, when it finished."""
    return {"git_commit": git_commit(), "packages": package_versions(), "cpu": cpu_model(),
            "threads": _threads(),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def _threads() -> int | None:
    """TensorFlow's intra-op threads in this process (0: TensorFlow's choice)."""
    return tf.config.threading.get_intra_op_parallelism_threads()


def record_state(path: Path, expected: dict[str, str]) -> tuple[str, list[str]]:
    """``done`` (a record with this fingerprint), ``stale`` (another; what changed) or ``todo``."""
    if not path.is_file():
        return "todo", []
    found = read_json(path).get("fingerprint", {})
    changed = sorted(k for k in expected if found.get(k) != expected[k])
    return ("stale", changed) if changed else ("done", [])


def begin_cell(folder: Run, fp: dict[str, str]) -> None:
    """Note the cell's fingerprint; a search or final training begun otherwise restarts."""
    note = folder.path / "cell.json"
    if note.is_file() and read_json(note).get("fingerprint") != fp:
        folder.search_history.unlink(missing_ok=True)
        shutil.rmtree(folder.path / BACKUP, ignore_errors=True)
    atomic_write_json(note, {"fingerprint": fp})


def chosen_values(cell: Cell, P: dict[str, Any], cd: CurveData,
                  results_dir: Path) -> dict[str, Any] | None:
    """The values a search arm's length-check cell trains: its values cell's, once recorded.

    None where the cell chooses its own; raises :class:`LookupError` while that record is
    missing or stale (its cell runs earlier in the plan, perhaps in another process).
    """
    base = values_cell(cell)
    if base is None:
        return None
    path = results_dir / f"{base.name}.json"
    if record_state(path, cell_fingerprint(base, P, cd))[0] != "done":
        raise LookupError(f"{cell.name} trains the values {base.name} chooses: not recorded "
                          "yet")
    return read_json(path)["hyperparameters"]


def work_through(P: dict[str, Any], run: Run, results_dir: Path, cd: CurveData,
                 log: Callable[[str], None] = print) -> int:
    """Run every cell without a current record that no other process holds; returns how many.

    Each cell is claimed by its folder's lock, so several processes share one plan. A cell
    that trains another's values waits for that record (the process running it comes to
    this cell after it).
    """
    cells, done_here, started = plan_cells(P["curve"]), 0, time.perf_counter()
    for i, cell in enumerate(cells):
        path = results_dir / f"{cell.name}.json"
        fp = cell_fingerprint(cell, P, cd)
        state, changed = record_state(path, fp)
        if state == "done":
            continue
        try:
            chosen = chosen_values(cell, P, cd, results_dir)
        except LookupError as why:
            log(f"[{i + 1}/{len(cells)}] left for now: {why}")
            continue
        folder = Run(run.path / "cells" / cell.name)
        try:
            with run_lock(folder.path):
                state, changed = record_state(path, fp)  # another process may have finished it
                if state == "done":
                    continue
                why = f" (rerun: its {', '.join(changed)} changed)" if changed else ""
                log(f"[{i + 1}/{len(cells)}] {cell.name}{why}")
                begin_cell(folder, fp)
                record = run_cell(cell, P, cd, folder,
                                  log=lambda m, n=cell.name: log(f"  {n}: {m}"), chosen=chosen)
                atomic_write_json(path, {**record, "data": cd.about})
        except RunInUseError:
            continue
        keras.backend.clear_session()
        done_here += 1
        s, spent = record["seconds"], time.perf_counter() - started
        left = [c for c in cells[i + 1:] if not (results_dir / f"{c.name}.json").is_file()]
        hours = hours_left(left, P["curve"], *recent_pace(results_dir, cells, P["curve"]))
        scored = (f"test accuracy {record['test']['accuracy']:.3f}" if "test" in record else
                  f"trial val loss {record['trial_score']['val_loss']:.3f}")
        log(f"[{i + 1}/{len(cells)}] {cell.name}: {scored}; search {s['search'] / 60:.1f} "
            f"min, final {s['final'] / 60:.1f} min; {spent / 60:.0f} min so far, "
            f"{len(left)} cell(s) without a record, ~{hours:.1f} h left at this pace")
    return done_here


def recent_pace(results_dir: Path, cells: list[Cell], c: dict[str, Any],
                last: int = 20) -> tuple[float, float]:
    """Seconds per planned step and per test over the ``last`` records made like this process.

    Records of this plan's cells from every worker, on this CPU model and thread count: a
    steadier pace than this process's few cells, whose steps cost more at batch 64.
    """
    by_name, here = {cell.name: cell for cell in cells}, (cpu_model(), _threads())
    records = []
    for path in results_dir.glob("*.json"):
        record = read_json(path)
        prov = record.get("provenance", {})
        if record.get("cell") in by_name and (prov.get("cpu"), prov.get("threads")) == here:
            records.append(record)
    records = sorted(records, key=lambda r: r["provenance"].get("finished", ""))[-last:]
    steps = sum(planned_steps(by_name[r["cell"]], c) for r in records)
    training = sum(r["seconds"]["search"] + r["seconds"]["final"] for r in records)
    tests = sum(r["seconds"]["test"] for r in records)
    return training / max(steps, 1), tests / max(len(records), 1)


def hours_left(cells: list[Cell], c: dict[str, Any], seconds_per_step: float,
               test_seconds: float) -> float:
    """Hours the ``cells`` take on ``curve.workers`` processes at this pace.

    The pace: seconds per planned step (trials and final training) and per test.
    """
    steps = sum(planned_steps(cell, c) for cell in cells)
    return (steps * seconds_per_step + len(cells) * test_seconds) / c["workers"] / 3600


def results_folder(P: dict[str, Any], run: Run) -> Path:
    """Where the cells' records go: ``curve.results_dir``, else ``<run>/records``."""
    folder = Path(P["curve"]["results_dir"] or run.path / "records")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def limit_threads(workers: int) -> int:
    """Share the CPU between ``workers`` processes: each gets cores // workers threads."""
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return threads


def run_curve(P: dict[str, Any], run: Run, worker_command: list[str] | None = None,
              log: Callable[[str], None] = print) -> int:
    """Run the curve's missing cells, in ``curve.workers`` processes; returns cells run here.

    ``worker_command``: how to start one more worker (this process is the first); each
    claims cells by their locks, so a worker started by hand joins the same plan.
    """
    check_trial_budget(P)
    workers = P["curve"]["workers"]
    limit_threads(workers)
    extra = [subprocess.Popen(worker_command) for _ in range(workers - 1)] \
        if worker_command and workers > 1 else []
    try:
        cd = load_curve_data(P)
        results_dir = results_folder(P, run)
        log(f"curve: {len(plan_cells(P['curve']))} cells planned; records in {results_dir}; "
            f"{len(cd.test)} test images, a pool of {len(cd.pool)}")
        done = work_through(P, run, results_dir, cd, log)
    finally:
        for proc in extra:
            if proc.wait() != 0:
                log(f"a curve worker (process {proc.pid}) ended with status {proc.returncode}")
    return done


def worker_argv(params_file: str, run_dir: str, overrides: str) -> list[str]:
    """The command line of one more worker of the same curve."""
    return [sys.executable, "-m", "earth_lib.cli", "curve", params_file, "--run-dir", run_dir,
            "--set", overrides, "--worker"]
