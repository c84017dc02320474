"""Does the search pay? Ways of choosing the values, at one trial budget, fully trained and tested.

Each *arm* chooses hyperparameters its own way, spending the same budget of
trial-epochs (the method's: ``steps x (initial_points + iterations_per_step) x
search.epochs``); then every arm's values get the same final training and are scored on
the same test split. The arms:

* ``literature``: the literature values (docs/method.md), no search (one trial, for its loss);
* ``random``: uniform random search;
* ``gp_one_step``: GPyOpt without tightening;
* ``method``: GPyOpt in the method's tightening steps, as notebook 2 runs it (with the
  literature point in step 1's design where ``search.start_from_baseline``: one trial more);
* ``improved``: shorter trials, the literature point in the first design and the best point
  in every later one, and the best few points re-trained longer before the choice
  (``compare.improved_*`` and ``search.finalist_*``).

Each (arm, seed) is one folder ``arms/<arm>/seed<k>/``: its search history, the trained
model and card (so ``make evaluate`` accepts it) and ``result.json``, written last; a rerun
skips what is finished. The seed changes the search and the training, never the split.
:func:`earth_lib.experiments.pairing.pair_runs` (``make pair``) pairs two separate runs the
same way, on one's test images.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import numpy as np
import pandas as pd

from earth_lib import params as params_mod
from earth_lib.data import Split
from earth_lib.errors import ParameterError
from earth_lib.experiments.pairing import paired_stats
from earth_lib.io import atomic_write_json
from earth_lib.metrics import evaluate_predictions
from earth_lib.nn.training import make_objective, predict_proba, train_model
from earth_lib.run import RESULT_FILE, Run, read_json
from earth_lib.search import SearchSpace, run_search
from earth_lib.search import fingerprint as digest

#: The arms, in the order tables show them (declared in the parameter table: compare.arms).
ARMS = tuple(params_mod.SCHEMA["compare"]["arms"].default)


@dataclass
class ArmResult:
    """One arm on one seed: the values it chose, what choosing cost, and the test result."""

    arm: str
    seed: int
    hyperparameters: dict[str, Any]
    best_val_loss: float | None
    trials: int
    trial_epochs: float
    search_seconds: float
    final_seconds: float
    epochs_run: int
    test: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    #: 1 where the test image (in test-split order) was classified right: for paired tests
    test_correct: list[int] = field(default_factory=list)
    #: digests of everything that shaped this result (:func:`arm_fingerprint`): a result
    #: whose digests differ from the current settings' is rerun, never reused
    fingerprint: dict[str, str] = field(default_factory=dict)


def arm_fingerprint(arm: str, seed: int, p: dict[str, Any], class_names: list[str],
                    search_fingerprint: dict[str, str]) -> dict[str, str]:
    """Digests of what gives one arm's result its meaning.

    The data and search settings (``search_fingerprint``), the arm's plan, the seed, the
    final training and the test.
    """
    plan = arm_plan(arm, p, seed)
    return digest({"search": search_fingerprint, "arm": arm, "seed": seed,
                   "plan": {"epochs": plan["epochs"],
                            "search": plan["search"] and plan["search"].record()},
                   "final": params_mod.TrainSettings.final(p).record(),
                   "tta": p["train"]["tta"], "classes": class_names})


def budget_trial_epochs(p: dict[str, Any]) -> float:
    """The budget every arm gets: the method's trials times its trial epochs."""
    s = p["search"]
    return float(s["steps"] * (s["initial_points"] + s["iterations_per_step"]) * s["epochs"])


def arm_plan(arm: str, p: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """How an arm searches: its trial epochs and its ``SearchPlan`` (None: no search).

    Every plan spends at most :func:`budget_trial_epochs`; the ``improved`` arm turns its
    shorter trials into more points, less the cost of its finalists' longer trials.
    """
    s, c = p["search"], p["compare"]
    budget, epochs = budget_trial_epochs(p), s["epochs"]
    trials = int(budget // epochs)
    base = params_mod.search_plan(p, **({} if seed is None else {"seed": seed}))
    plain = base.replace(design="lhs", start_points=None, finalists=0)
    if arm == "literature":
        return {"epochs": epochs, "search": None}
    if arm == "random":
        return {"epochs": epochs, "search": plain.replace(
            steps=1, initial_points=trials, iterations_per_step=0, design="random")}
    if arm == "gp_one_step":
        first = min(trials, s["steps"] * s["initial_points"])
        return {"epochs": epochs, "search": plain.replace(
            steps=1, initial_points=first, iterations_per_step=trials - first)}
    if arm == "method":  # as `make all` searches: with the literature point if configured
        return {"epochs": epochs, "search": base.replace(finalists=0)}
    if arm == "improved":
        short = c["improved_epochs"] or epochs
        final = s["finalists"] * s["finalist_repeats"] * s["finalist_budget"] * short
        per_step = int((budget - final) // (s["steps"] * short))
        # step 1 adds the literature point, later steps the best so far: one trial each
        initial = max(1, math.ceil(per_step / 2) - 1)
        if per_step - 1 - initial < 0:
            raise ParameterError(
                f"compare: the improved arm's finalists ({s['finalists']} x "
                f"{s['finalist_repeats']} at x{s['finalist_budget']:g}) leave no budget for "
                "its steps; lower search.finalists or compare.improved_epochs.")
        return {"epochs": short, "search": plain.replace(
            initial_points=initial, iterations_per_step=per_step - 1 - initial,
            acquisition=c["improved_acquisition"],
            start_points=(params_mod.baseline_hyperparameters(p),),
            finalists=s["finalists"])}
    raise ParameterError(f"compare.arms: unknown arm {arm!r}; known: {', '.join(ARMS)}.")


def plan_summary(p: dict[str, Any]) -> pd.DataFrame:
    """What each arm will spend: trials (short and long), trial epochs, trial-epochs."""
    rows = {}
    for arm in p["compare"]["arms"]:
        plan = arm_plan(arm, p)
        k = plan["search"]
        long = k.finalists * k.finalist_repeats if k else 0
        short = k.planned_trials - long if k else 1
        rows[arm] = {"steps": k.steps if k else 1, "trials": short,
                     "trial_epochs": plan["epochs"], "long_trials": long,
                     "planned_trial_epochs": plan["epochs"] * (
                         short + long * (k.finalist_budget if k else 1.0))}
    return pd.DataFrame(rows).T


def run_arm(arm: str, seed: int, splits: dict[str, Split], search_splits: tuple,
            class_names: list[str], p: dict[str, Any], space: SearchSpace, folder: Run,
            preprocess: dict[str, Any], fingerprint: dict[str, str], band_pca=None,
            executor=None, log: Callable[[str], None] = print) -> ArmResult:
    """Choose one arm's values on one seed, train them like the final model, test them."""
    plan = arm_plan(arm, p, seed)
    num_classes, shape = len(class_names), splits["train"].x.shape[1:]
    s_train, s_val, decoder = search_splits
    trial = params_mod.TrainSettings.trial(p).replace(epochs=plan["epochs"])
    objective = make_objective(s_train, s_val, num_classes, shape, trial, seed=seed,
                               decoder=decoder)
    t0 = time.perf_counter()
    literature = params_mod.baseline_hyperparameters(p)
    result = None
    if plan["search"] is None:
        scored = objective(dict(literature))
        hp, best = literature, scored["val_loss"]
        history = [{"step": 1, "trial": 0, "source": "given", **literature, "budget": 1.0,
                    "val_loss": scored["val_loss"]}]
    else:
        result = run_search(
            objective, space, folder.search_history, plan["search"], log=log,
            executor=executor,
            fingerprint={**fingerprint, "arm": arm, "trial_epochs": str(plan["epochs"])})
        hp, best, history = dict(result.best.hp), result.best.val_loss, result.table()
    search_seconds = time.perf_counter() - t0
    final = params_mod.TrainSettings.final(p)
    log(f"final training, {int(hp.get('epochs', final.epochs))} epochs at most (a line "
        f"per epoch; also in {folder.training_log})")
    t0 = time.perf_counter()
    model, curves = train_model(hp, splits["train"], splits["val"], num_classes, shape, final,
                                seed=seed, csv_log=folder.training_log)
    proba = predict_proba(model, splits["test"].x, tta=p["train"]["tta"])
    folder.save_model(model, class_names, preprocess, hp, tta=p["train"]["tta"],
                      band_pca=band_pca)
    budget = result.trial_budget if result else 1.0
    y = np.asarray(splits["test"].y)
    out = ArmResult(arm, seed, hp, best, len(history), budget * plan["epochs"],
                    round(search_seconds, 1), round(time.perf_counter() - t0, 1),
                    len(curves["loss"]), evaluate_predictions(y, proba, class_names), history,
                    (proba.argmax(axis=1) == y).astype(int).tolist(),
                    arm_fingerprint(arm, seed, p, class_names, fingerprint))
    atomic_write_json(folder.result_path, asdict(out))
    return out


def run_comparison(splits: dict[str, Split], search_splits: tuple, class_names: list[str],
                   p: dict[str, Any], run: Run, preprocess: dict[str, Any],
                   fingerprint: dict[str, str], band_pca=None, executor=None,
                   log: Callable[[str], None] = print) -> list[ArmResult]:
    """Every arm on every seed; finished (arm, seed) pairs are read back, not rerun.

    ``executor`` (``distributed.trial_executor``): where the arms' search trials run.
    """
    if np.ndim(splits["train"].y) == 2:
        raise ParameterError("compare: task multilabel is not supported by the comparison yet "
                             "(its table and paired tests count images right or wrong); run "
                             "notebook 2 (make all) for a multi-label set.")
    space = SearchSpace.from_dict(p["search"]["space"])
    pairs = [(a, s) for s in p["compare"]["seeds"] for a in p["compare"]["arms"]]
    results, started = [], time.perf_counter()
    for i, (arm, seed) in enumerate(pairs):
        folder = Run(run.path / "arms" / arm / f"seed{seed}")
        done = folder.result_path
        expected = arm_fingerprint(arm, seed, p, class_names, fingerprint)
        if done.is_file():
            before = ArmResult(**read_json(done))
            changed = sorted(k for k in expected if before.fingerprint.get(k) != expected[k])
            if not changed:
                results.append(before)
                log(f"[{i + 1}/{len(pairs)}] {arm}, seed {seed}: done before "
                    f"(test accuracy {before.test['accuracy']:.3f})")
                continue
            log(f"[{i + 1}/{len(pairs)}] {arm}, seed {seed}: rerun, its {', '.join(changed)} "
                "changed since it ran")
            shutil.rmtree(folder.path)  # the arm's own folder: made and owned by this run
        folder.path.mkdir(parents=True, exist_ok=True)
        r = run_arm(arm, seed, splits, search_splits, class_names, p, space, folder,
                    preprocess, fingerprint, band_pca, executor,
                    log=lambda m, a=arm, s=seed: log(f"  {a}/{s}: {m}"))

        keras.backend.clear_session()
        results.append(r)
        elapsed = time.perf_counter() - started
        log(f"[{i + 1}/{len(pairs)}] {arm}, seed {seed}: test accuracy "
            f"{r.test['accuracy']:.3f}, {r.trial_epochs:g} trial-epochs, search "
            f"{r.search_seconds / 60:.1f} min + final {r.final_seconds / 60:.1f} min; "
            f"{elapsed / 60:.0f} min so far")
    return results


def summary_table(results: list[ArmResult]) -> pd.DataFrame:
    """Per arm: mean and spread (sd over seeds) of test accuracy and macro F1, and the costs."""
    df = pd.DataFrame([{"arm": r.arm, "seed": r.seed, "acc": r.test["accuracy"],
                        "f1": r.test["macro_f1"], "val": r.best_val_loss,
                        "te": r.trial_epochs, "min": (r.search_seconds + r.final_seconds) / 60}
                       for r in results])
    order = [a for a in ARMS if a in set(df["arm"])]
    g = df.groupby("arm").agg(seeds=("seed", "count"), test_acc_mean=("acc", "mean"),
                              test_acc_sd=("acc", "std"), macro_f1_mean=("f1", "mean"),
                              macro_f1_sd=("f1", "std"), best_val_loss=("val", "mean"),
                              trial_epochs=("te", "mean"), wall_min=("min", "mean"))
    return g.loc[order].round(4)


def verdict(table: pd.DataFrame) -> str:
    """Say in one sentence, from the numbers, whether the best search arm wins by the spread.

    Its mean test accuracy is compared with the literature values' and random search's;
    the spread is the largest standard deviation over seeds among the arms compared.
    """
    searched = [a for a in ("gp_one_step", "method", "improved") if a in table.index]
    if not searched or "literature" not in table.index:
        return "Not enough arms to judge (the literature arm and a GP arm are needed)."
    best = max(searched, key=lambda a: table.loc[a, "test_acc_mean"])
    rivals = [a for a in ("literature", "random") if a in table.index]
    margins = {a: table.loc[best, "test_acc_mean"] - table.loc[a, "test_acc_mean"]
               for a in rivals}
    sds = [float(table.loc[a, "test_acc_sd"]) for a in [best, *rivals]]
    if not any(np.isfinite(sds)):
        return (f"Best search arm: {best}; one seed only, so no spread between seeds: "
                "run more seeds (compare.seeds) before reading a difference.")
    spread = float(np.nanmax(sds))
    wins = all(m > spread for m in margins.values())
    said = ", ".join(f"{m * 100:+.1f} points against {a}" for a, m in margins.items())
    return (f"Best search arm: {best} ({said}; largest spread between seeds "
            f"{spread * 100:.1f} points): "
            + ("it wins by more than the spread." if wins else
               "it does NOT win by more than the spread between seeds."))


def paired_differences(results: list[ArmResult], references: tuple[str, ...] = (
        "literature", "random"), resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each arm against each reference on the same test images and seeds, image by image.

    Seed spread mixes the training seed's luck into both arms; pairing the two arms' answers
    on each test image (same seed, same split) removes what they share. Per pair of arms,
    pooled over the seeds both ran: :func:`paired_stats`.
    """
    by = {(r.arm, r.seed): np.asarray(r.test_correct, dtype=int) for r in results
          if r.test_correct}
    rng, rows = np.random.default_rng(seed), []
    for ref in references:
        for arm in [a for a in ARMS if a != ref]:
            seeds = sorted(s for a, s in by if a == arm and (ref, s) in by)
            pairs = [(by[(arm, s)], by[(ref, s)]) for s in seeds
                     if len(by[(arm, s)]) == len(by[(ref, s)])]
            if pairs:
                rows.append({"arm": arm, "against": ref, **paired_stats(pairs, resamples, rng)})
    return pd.DataFrame(rows).round(4)


#: Under every paired table: what its image-level figures leave out.
PAIRED_CAVEAT = ("The interval resamples test images within each seed, and McNemar's test "
                 "pools the seeds' images as if independent: neither counts how far a new "
                 "training seed moves an arm (the spread between seeds above), so both are "
                 "secondary to it.")


def paired_markdown(paired: pd.DataFrame) -> str:
    """The paired differences as Markdown, one row per (arm, reference), and their caveat."""
    rows = ["| arm | against | seeds x images | difference (points) | 95 % interval | "
            "only this arm right / only the other | McNemar p |", "|---|---|---|---|---|---|---|"]
    for _, r in paired.iterrows():
        rows.append(f"| {r['arm']} | {r['against']} | {int(r['seeds'])} x "
                    f"{int(r['images']) // int(r['seeds'])} | {r['diff_points']:+.1f} | "
                    f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}] | {int(r['only_arm_right'])} / "
                    f"{int(r['only_ref_right'])} | {r['mcnemar_p']:.2f} |")
    return "\n".join(rows) + "\n\n" + PAIRED_CAVEAT


def evidence(results: list[ArmResult]) -> str:
    """Two figures that say how far to trust the table, as sentences generated with it.

    The literature arm's accuracy on each seed (the spread from the training seed alone),
    and the rank correlation between a run's best trial loss and its test error, over the
    runs whose trials all had the same length (a loss from longer trials is not comparable).
    """
    from scipy.stats import spearmanr

    said = []
    lit = [r for r in results if r.arm == "literature"]
    if len(lit) > 1:
        accs = ", ".join(f"{100 * r.test['accuracy']:.1f} %" for r in lit)
        said.append(f"The literature values alone, trained on {len(lit)} seeds, gave {accs}: "
                    "that is the spread from the training seed.")
    lengths = [r.trial_epochs / max(1, r.trials) for r in results]
    common = pd.Series(lengths).mode()
    same = [r for r, n in zip(results, lengths, strict=True)
            if r.best_val_loss is not None and len(common) and abs(n - common[0]) < 1e-9]
    losses = [r.best_val_loss for r in same]
    if len(same) >= 4 and len(set(losses)) > 1:
        rho, pval = spearmanr(losses, [1 - r.test["accuracy"] for r in same])
        said.append(f"Across the {len(same)} runs with {common[0]:g}-epoch trials, a run's best "
                    f"trial loss and its test error have Spearman rho = {rho:+.2f} "
                    f"(p = {pval:.2f}): "
                    + ("the trial loss predicts the test result." if rho > 0 and pval < 0.05
                       else "the trial loss does not significantly predict the test result."))
    return " ".join(said)


def save_comparison(run: Run, results: list[ArmResult], table: pd.DataFrame,
                    p: dict[str, Any]) -> None:
    """``comparison.json``: the budget, the table, the verdict and every arm's result."""
    atomic_write_json(run.comparison_path, {
        "budget_trial_epochs": budget_trial_epochs(p),
        "table": table.reset_index().to_dict(orient="records"), "verdict": verdict(table),
        "paired": paired_differences(results).to_dict(orient="records"),
        "results": [asdict(r) for r in results]})



def load_results(run_dir) -> list[ArmResult]:
    """Every finished (arm, seed) of a comparison folder, finished or still running."""
    found = sorted(Run(run_dir).path.glob(f"arms/*/seed*/{RESULT_FILE}"))
    results = [ArmResult(**read_json(f)) for f in found]
    return sorted(results, key=lambda r: (ARMS.index(r.arm), r.seed))


def table_markdown(table: pd.DataFrame) -> str:
    """The summary table as Markdown: accuracy and F1 as mean ± sd in %, costs."""
    rows = ["| arm | seeds | test accuracy (%) | macro F1 (%) | best val loss | trial-epochs "
            "| wall time per seed |", "|---|---|---|---|---|---|---|"]
    for arm, r in table.iterrows():
        val = "-" if pd.isna(r["best_val_loss"]) else f"{r['best_val_loss']:.3f}"
        rows.append(f"| {arm} | {int(r['seeds'])} | {100 * r['test_acc_mean']:.1f} ± "
                    f"{100 * np.nan_to_num(r['test_acc_sd']):.1f} | "
                    f"{100 * r['macro_f1_mean']:.1f} ± {100 * np.nan_to_num(r['macro_f1_sd']):.1f}"
                    f" | {val} | {r['trial_epochs']:g} | {r['wall_min']:.1f} min |")
    return "\n".join(rows)
