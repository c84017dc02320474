"""The learning curve's tables, paired statistics, verdicts and figures, from its records alone.

Everything here reads the cells' JSON records (``results/curve/`` for the committed curve),
so a fresh clone regenerates ``docs/curve.md`` and its figures without ``outputs/``.

Replicates are the unit: arms are paired within a replicate (same subset, same training
seed), and each comparison is the mean of the per-replicate differences, a bootstrap 95 %
interval over replicates, a Student-t 95 % interval and the Wilcoxon signed-rank p-value
(exact; with 5 replicates the smallest two-sided p is 0.0625, with 3 it is 0.25),
Holm-corrected across sizes. A McNemar test over images pooled across replicates treats
replicates as independent and is left out.

With 3 to 5 replicates a bootstrap percentile interval is too narrow (with 3, it covers the
true mean about 75 % of the time, not 95 %: three differences of one sign make it exclude
zero). The verdicts therefore rest on the Student-t interval, widened for picking the best
of the search arms (Bonferroni), not on the bootstrap.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import spearmanr, wilcoxon

from earth_lib.experiments.curve import (
    ARMS,
    FIDELITY,
    FIDELITY_TRIAL,
    NO_SEARCH,
    POLICY_FREE,
    SEARCH_ARMS,
    planned_names,
)
from earth_lib.io import atomic_write_text
from earth_lib.planning.evidence import advice_lines, describe_data

RESAMPLES = 10000


def load_records(folder: str | Path) -> list[dict[str, Any]]:
    """Every cell record of a curve (``*.json``), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no curve records (run make curve first).")
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def _arm_cell(r: dict[str, Any], longer: bool = False) -> bool:
    """A record of an arm at the curve's length, or (``longer``) of its length check."""
    return r["arm"] in ARMS and bool(r.get("length_factor")) == longer


def accuracies(records: list[dict[str, Any]], longer: bool = False) -> pd.DataFrame:
    """Every arm cell's test accuracy, macro F1, minutes and final training steps.

    ``longer``: the length check's cells instead (the same tables and verdicts apply), of
    its smallest factor at each size where records of several factors are there.
    """
    cells = [r for r in records if _arm_cell(r, longer)]
    main: dict[int, int] = {}
    for r in cells:
        main[r["size"]] = min(main.get(r["size"], r.get("length_factor", 1)),
                              r.get("length_factor", 1))
    rows = [{"size": r["size"], "replicate": r["replicate"], "arm": r["arm"],
             "accuracy": r["test"]["accuracy"], "macro_f1": r["test"]["macro_f1"],
             "minutes": (r["seconds"]["search"] + r["seconds"]["final"]) / 60,
             "steps": r.get("final_steps")}
            for r in cells if r.get("length_factor", 1) == main[r["size"]]]
    return pd.DataFrame(rows, columns=["size", "replicate", "arm", "accuracy", "macro_f1",
                                       "minutes", "steps"])


def length_check(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Each longer final training (``length_factor``) beside the same cell at the curve's length.

    Same subset, seed and values; only the steps differ, so the difference is the length's.
    A cell trained at several factors gives a row for each.
    """
    base = {(r["size"], r["replicate"], r["arm"]): r for r in records if _arm_cell(r)}
    rows = []
    for r in records:
        short = base.get((r["size"], r["replicate"], r["arm"]))
        if r.get("length_factor") and short:
            rows.append({"size": r["size"], "factor": r["length_factor"],
                         "replicate": r["replicate"], "arm": r["arm"],
                         "steps": short["final_steps"], "accuracy": short["test"]["accuracy"],
                         "long_steps": r["final_steps"], "long_accuracy": r["test"]["accuracy"],
                         "gain_points": 100 * (r["test"]["accuracy"]
                                               - short["test"]["accuracy"])})
    out = pd.DataFrame(rows, columns=["size", "factor", "replicate", "arm", "steps", "accuracy",
                                      "long_steps", "long_accuracy", "gain_points"])
    out["order"] = out["arm"].map({a: i for i, a in enumerate(ARMS)})
    return out.sort_values(["size", "factor", "replicate", "order"]).drop(columns="order")


def length_markdown(lengths: pd.DataFrame) -> str:
    """The length check as Markdown, per size and arm over its replicates, and the best arm.

    Each row: the mean at both lengths and their mean difference; under the table, per
    size, the best arm at either length.
    """
    rows, notes = [], []
    for (size, _), g in lengths.groupby(["size", "factor"], sort=True):
        for arm, a in g.groupby("arm", sort=False):
            rows.append([f"{int(size):,}", arm, str(len(a)),
                         f"{_pct(a['accuracy'].mean())} ({int(a['steps'].iloc[0]):,} steps)",
                         f"{_pct(a['long_accuracy'].mean())} "
                         f"({int(a['long_steps'].iloc[0]):,} steps)",
                         f"{a['gain_points'].mean():+.1f}"])
        means = g.groupby("arm")[["accuracy", "long_accuracy"]].mean()
        short, long = (means[col].idxmax() for col in ("accuracy", "long_accuracy"))
        same = "the same" if short == long else f"{long}, not {short}"
        reps = sorted(g["replicate"].unique())
        notes.append(f"- {int(size):,} images (replicate{'s' if len(reps) > 1 else ''} "
                     f"{', '.join(map(str, reps))}): the best of these arms trained "
                     f"{int(g['long_steps'].iloc[0]):,} steps is {same}.")
    return (markdown_table(["images", "arm", "replicates", "the curve's length", "longer",
                            "difference (points)"], rows) + "\n\n" + "\n".join(notes))


def steps_at(acc: pd.DataFrame, size: int) -> int | None:
    """The optimiser steps of the final trainings at ``size`` (None: not recorded).

    Every verdict holds at this training length: a longer one favours strong augmentation.
    """
    steps = acc.loc[acc["size"] == size, "steps"].dropna() if "steps" in acc else []
    return int(steps.max()) if len(steps) else None


def bootstrap_interval(values: np.ndarray, resamples: int = RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """A 95 % percentile interval of the mean, resampling the values; nan below 2 values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def t_interval(mean: float, sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """A Student-t interval of a mean from its sample sd and size; nan below 2 values."""
    if n < 2 or not np.isfinite(sd):
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    return mean - half, mean + half


def paired_difference(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict[str, float]:
    """A - B over paired replicates: mean, sd, bootstrap and t 95 % intervals, Wilcoxon p."""
    d = 100 * (np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    low, high = bootstrap_interval(d, seed=seed)
    sd = float(d.std(ddof=1)) if len(d) >= 2 else float("nan")
    t_low, t_high = t_interval(float(d.mean()) if len(d) else float("nan"), sd, len(d))
    p = float("nan")
    if len(d) >= 2 and np.any(d != 0):
        p = float(wilcoxon(d, zero_method="zsplit", method="exact"
                           if len(d) <= 25 else "auto").pvalue)
    return {"replicates": len(d), "diff_points": float(d.mean()) if len(d) else float("nan"),
            "sd_points": sd, "ci_low": low, "ci_high": high, "t_low": t_low, "t_high": t_high,
            "wilcoxon_p": p}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (nan kept as nan)."""
    p = np.asarray(pvalues, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), np.nan)
    running = 0.0
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (len(finite) - rank) * p[i]))
        out[i] = running
    return out.tolist()


def summary(acc: pd.DataFrame) -> pd.DataFrame:
    """Per size and arm: replicates, mean accuracy, its Student-t 95 % interval, F1, minutes.

    The interval is cut to what an accuracy can be, 0 to 1 (two replicates reach past it).
    """
    rows = []
    for (size, arm), g in acc.groupby(["size", "arm"]):
        a = g["accuracy"].to_numpy(dtype=float)
        low, high = np.clip(t_interval(float(a.mean()), float(a.std(ddof=1)) if len(a) > 1
                                       else float("nan"), len(a)), 0.0, 1.0)
        rows.append({"size": size, "arm": arm, "replicates": len(g),
                     "accuracy": g["accuracy"].mean(), "ci_low": low, "ci_high": high,
                     "macro_f1": g["macro_f1"].mean(), "minutes": g["minutes"].mean(),
                     "steps": steps_at(acc, size)})
    out = pd.DataFrame(rows, columns=["size", "arm", "replicates", "accuracy", "ci_low",
                                      "ci_high", "macro_f1", "minutes", "steps"])
    out["order"] = out["arm"].map({a: i for i, a in enumerate(ARMS)})
    return out.sort_values(["size", "order"]).drop(columns="order").reset_index(drop=True)


def best_arm(acc: pd.DataFrame, size: int, among: tuple[str, ...]) -> str | None:
    """The arm of ``among`` with the highest mean accuracy at ``size`` (None: none ran)."""
    g = acc[(acc["size"] == size) & acc["arm"].isin(among)]
    return None if g.empty else str(g.groupby("arm")["accuracy"].mean().idxmax())


def comparisons(acc: pd.DataFrame) -> pd.DataFrame:
    """Each arm against the literature values, the best policy-free and the best no-search arm.

    Per size, on the replicates both arms ran; Holm-corrected across sizes within each
    (arm, reference) family. The best arms are picked by mean at that size (after seeing
    the results, which favours them). Where the best policy-free arm is also the best
    no-search arm, its rows would repeat those and are left out.
    """
    rows = []
    for size in sorted(acc["size"].unique()):
        no_search = best_arm(acc, size, NO_SEARCH)
        policy_free = best_arm(acc, size, POLICY_FREE)
        refs = {"literature": "literature",
                "best policy-free": policy_free if policy_free != no_search else None,
                "best no-search": no_search}
        wide = acc[acc["size"] == size].pivot(index="replicate", columns="arm",
                                              values="accuracy")
        for label, ref in refs.items():
            if ref is None or ref not in wide:
                continue
            for arm in [a for a in ARMS if a in wide and a != ref]:
                both = wide[[arm, ref]].dropna()
                if both.empty:
                    continue
                rows.append({"size": size, "arm": arm, "against": label, "reference": ref,
                             **paired_difference(both[arm].to_numpy(), both[ref].to_numpy())})
    out = pd.DataFrame(rows, columns=["size", "arm", "against", "reference", "replicates",
                                      "diff_points", "sd_points", "ci_low", "ci_high", "t_low",
                                      "t_high", "wilcoxon_p"])
    out["holm_p"] = np.nan
    for _, idx in out.groupby(["arm", "against"]).groups.items():
        out.loc[idx, "holm_p"] = holm(out.loc[idx, "wilcoxon_p"].tolist())
    return out


def search_gains(comp: pd.DataFrame) -> pd.DataFrame:
    """Per size: the best search arm against the best no-search arm, and the verdict.

    The best of ``m`` search arms is judged by its Student-t interval at 1 - 0.05 / m
    (Bonferroni: picking the best of m would otherwise find a gain by chance); "pays" and
    "loses" need that interval clear of zero.
    """
    rows = []
    gains = comp[(comp["against"] == "best no-search") & comp["arm"].isin(SEARCH_ARMS)]
    for size, g in gains.groupby("size"):
        best = g.loc[g["diff_points"].idxmax()]
        low, high = t_interval(best["diff_points"], best["sd_points"],
                               int(best["replicates"]), 1 - 0.05 / len(g))
        verdict = ("not judged yet" if not np.isfinite(low) else "pays" if low > 0 else
                   "loses" if high < 0 else "no difference shown")
        rows.append({"size": int(size), "search_arm": best["arm"],
                     "no_search_arm": best["reference"], "replicates": int(best["replicates"]),
                     "search_arms": len(g), "gain_points": float(best["diff_points"]),
                     "low": low, "high": high, "verdict": verdict})
    return pd.DataFrame(rows, columns=["size", "search_arm", "no_search_arm", "replicates",
                                       "search_arms", "gain_points", "low", "high", "verdict"])


def verdicts(comp: pd.DataFrame) -> dict[int, str]:
    """Per size, one sentence: does the best search arm beat the best no-search arm?"""
    out = {}
    for _, g in search_gains(comp).iterrows():
        m = g["search_arms"]
        ci = (f"95 % interval [{g['low']:+.1f}, {g['high']:+.1f}] (Student t, Bonferroni over "
              f"{m} search arm{'s' if m > 1 else ''}), {int(g['replicates'])} replicates"
              if np.isfinite(g["low"]) else "one replicate, no interval yet")
        word = {"pays": "the search pays", "loses": "the search loses"}.get(g["verdict"],
                                                                         g["verdict"])
        out[int(g["size"])] = (
            f"{int(g['size']):,} images: {word}: the best search arm ({g['search_arm']}) "
            f"{g['gain_points']:+.1f} points against the best no-search arm "
            f"({g['no_search_arm']}), {ci}.")
    return out


def evidence(acc: pd.DataFrame, comp: pd.DataFrame,
             longer: pd.DataFrame | None = None) -> dict[str, Any]:
    """What the curve tells a run at each size (the planner's advice; JSON-ready).

    Per size: the replicates every arm there ran, the best no-search arm by mean accuracy
    (what a run without a search should train with), the no-search arms it is not shown to
    beat (``ties``: their paired Student t 95 % interval against it holds zero), and the
    search's verdict against it; under ``longer``, the same from the length check's cells
    (``accuracies(..., longer=True)``) where it ran.
    """
    long = evidence(longer, comparisons(longer))["sizes"] if longer is not None \
        and len(longer) else {}
    gains = search_gains(comp).set_index("size")
    sizes = {}
    for size, g in acc.groupby("size"):
        means = g.groupby("arm")["accuracy"].agg(["mean", "count"])
        best = best_arm(acc, size, NO_SEARCH)
        entry: dict[str, Any] = {
            "replicates": int(means["count"].min()),
            "final_steps": steps_at(acc, size),
            "best_no_search": best,
            "accuracy": {a: round(float(means.loc[a, "mean"]), 6)
                         for a in ARMS if a in means.index}}
        ties = comp[(comp["size"] == size) & (comp["against"] == "best no-search")
                    & comp["arm"].isin(NO_SEARCH) & (comp["t_low"] <= 0) & (comp["t_high"] >= 0)]
        if len(ties):
            entry["ties"] = {r["arm"]: {"diff_points": round(float(r["diff_points"]), 4),
                                        "interval": [round(float(r["t_low"]), 4),
                                                     round(float(r["t_high"]), 4)]}
                             for _, r in ties.iterrows()}
        if size in gains.index:
            r = gains.loc[size]
            entry["search"] = {"verdict": r["verdict"], "arm": r["search_arm"],
                               "gain_points": round(float(r["gain_points"]), 4),
                               "interval": [round(float(r["low"]), 4), round(float(r["high"]), 4)]
                               if np.isfinite(r["low"]) else None,
                               "replicates": int(r["replicates"])}
        if str(int(size)) in long:
            entry["longer"] = long[str(int(size))]
        sizes[str(int(size))] = entry
    return {"sizes": sizes}


def length_gains(lengths: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per arm, what training longer changed, over every length-check cell (JSON-ready).

    The mean gain in points (same subset, seed and values, longer training), the cells and
    the sizes it rests on: which arms hold up when a run trains longer than the curve did.
    """
    return {arm: {"points": round(float(g["gain_points"].mean()), 4), "cells": len(g),
                  "sizes": sorted(int(s) for s in g["size"].unique())}
            for arm, g in lengths.groupby("arm", sort=False)}


def planner_evidence(records: list[dict[str, Any]], records_dir: str | Path,
                     comp: pd.DataFrame | None = None) -> dict[str, Any]:
    """The planner's evidence file: :func:`evidence` per size and :func:`length_gains`.

    ``comp``: the :func:`comparisons` already made from ``records`` (bootstraps: not twice).
    """
    acc = accuracies(records)
    comp = comparisons(acc) if comp is None else comp
    about = curve_data(records)
    out = {"records": str(records_dir), **({"data": about} if about else {}),
           **evidence(acc, comp, accuracies(records, longer=True))}
    lengths = length_check(records)
    if len(lengths):
        out["length_gain"] = length_gains(lengths)
    return out


#: The key of the fidelity rows that score each full training by its own final validation
#: error: the most any trial could rank with that many validation images.
FULL_TRAINING = -1


def fidelity_pairs(records: list[dict[str, Any]]
                   ) -> dict[tuple[int, int, bool], pd.DataFrame]:
    """Each trial's validation loss beside its configuration's fully trained test error.

    Keyed by (size, trial steps, BatchNorm refreshed): steps 0 for the fidelity cells' own
    trials (``curve.fidelity_first_trial``), the steps of each trial-only cell
    (``fidelity_trial`` records, paired with the fidelity cell of the same configuration
    and seed; refreshed where ``refresh_bn``), and :data:`FULL_TRAINING` for the full
    training's own final validation error (its ``loss``).
    """
    cells = [r for r in records if r["arm"] == FIDELITY and r.get("trial_score")]
    full = {(r["size"], r["point"], r["seed_index"]): r for r in cells}
    pairs: dict[tuple[int, int, bool], list[tuple[float, Any, dict]]] = {}
    for r in cells:
        pairs.setdefault((r["size"], 0, False), []).append(
            (r["trial_score"]["val_loss"], r["trial_score"].get("epochs_run"), r))
    for r in (r for r in records if r["arm"] == FIDELITY_TRIAL):
        key = (r["size"], r["point"], r["seed_index"])
        if key in full:
            pairs.setdefault((r["size"], r["trial_steps"], bool(r.get("refresh_bn"))), []).append(
                (r["trial_score"]["val_loss"], r["trial_score"].get("epochs_run"), full[key]))
    for r in cells:
        if r.get("final_val_accuracy") is not None:
            pairs.setdefault((r["size"], FULL_TRAINING, False), []).append(
                (1 - r["final_val_accuracy"], None, r))
    return {k: pd.DataFrame([{"point": f["point"], "loss": loss, "epochs": epochs,
                              "error": 1 - f["test"]["accuracy"],
                              "batch": f.get("hyperparameters", {}).get("batch_size")}
                             for loss, epochs, f in v])
            for k, v in sorted(pairs.items(), key=lambda kv: (kv[0][0], kv[0][1] == FULL_TRAINING,
                                                              kv[0][2], kv[0][1]))}


def fidelity(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per size and trial length: does a trial's validation loss rank the test error?

    Beside them, how far apart the configurations are (the sd of their mean test error)
    against how far one configuration's seeds are (the pooled sd within a configuration):
    where the first is not larger, there is little for any trial to rank.
    Spearman's rho over every (configuration, seed), over the configurations' means, and
    within a batch size (the mean of each batch size's rho, weighted by its trainings): a
    fixed number of steps gives batch 64 twice the images of batch 32, in trials as in
    the final training, so batch size alone could make the ranking look good.
    """
    rows = []
    for (size, steps, refreshed), g in fidelity_pairs(records).items():
        within = [(len(b), spearmanr(b["loss"], b["error"])[0])
                  for _, b in g.groupby("batch") if len(b) > 2]
        within = [(n, r) for n, r in within if np.isfinite(r)]
        rho_w = (sum(n * r for n, r in within) / sum(n for n, _ in within)
                 if within else np.nan)
        means = g.groupby("point")[["loss", "error"]].mean()
        rho, p = spearmanr(g["loss"], g["error"]) if len(g) > 2 else (np.nan, np.nan)
        rho_m, p_m = spearmanr(means["loss"], means["error"]) if len(means) > 2 else (np.nan,
                                                                                     np.nan)
        seeds_sd = float(np.sqrt(g.groupby("point")["error"].var(ddof=1).mean())) \
            if len(g) > len(means) else np.nan
        epochs = " / ".join(f"{int(e)} at batch {int(b)}" for b, e in
                            g.dropna(subset=["epochs", "batch"]).groupby("batch")["epochs"].max()
                            .items())
        rows.append({"size": size, "trial_steps": steps, "refreshed": refreshed,
                     "trial_epochs": epochs,
                     "trainings": len(g),
                     "configurations": len(means),
                     "configurations_sd": float(means["error"].std(ddof=1))
                     if len(means) > 1 else np.nan, "seeds_sd": seeds_sd,
                     "rho": float(rho), "p": float(p), "rho_means": float(rho_m),
                     "p_means": float(p_m), "rho_within_batch": float(rho_w),
                     "test_error_range": float(g["error"].max() - g["error"].min())})
    return pd.DataFrame(rows)


def _pct(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{100 * v:.1f}"


def _num(v: float, form: str) -> str:
    return "-" if not np.isfinite(v) else format(v, form)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table from its header and rows of cells (already formatted)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def summary_markdown(table: pd.DataFrame) -> str:
    """Accuracy per size (rows) and arm (columns): mean % [95 % interval] (replicates).

    Beside each size, the final trainings' optimiser steps: the verdicts hold at that length.
    """
    arms = [a for a in ARMS if a in set(table["arm"])]
    rows = []
    for size, g in table.groupby("size"):
        steps = g["steps"].dropna()
        cells = [f"{int(size):,}", f"{int(steps.max()):,}" if len(steps) else "-"]
        for arm in arms:
            r = g[g["arm"] == arm]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            ci = (f" [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
                  if np.isfinite(r["ci_low"]) else "")
            cells.append(f"{_pct(r['accuracy'])}{ci} ({int(r['replicates'])})")
        rows.append(cells)
    return markdown_table(["images", "final steps", *arms], rows)


def comparisons_markdown(comp: pd.DataFrame, against: str) -> str:
    """One reference's paired differences as Markdown, one row per size and arm."""
    rows = [[f"{int(r['size']):,}", r["arm"], r["reference"], str(int(r["replicates"])),
             f"{r['diff_points']:+.1f}",
             _interval(r["ci_low"], r["ci_high"]), _interval(r["t_low"], r["t_high"]),
             _num(r["wilcoxon_p"], ".3f"), _num(r["holm_p"], ".3f")]
            for _, r in comp[comp["against"] == against].iterrows()]
    return markdown_table(["images", "arm", "against", "replicates", "difference (points)",
                           "bootstrap 95 %", "Student t 95 %", "Wilcoxon p", "Holm p"], rows)


def _interval(low: float, high: float) -> str:
    return f"[{low:+.1f}, {high:+.1f}]" if np.isfinite(low) else "-"


def _trial_label(steps: int, refreshed: bool = False) -> str:
    """A fidelity row's trial, in words."""
    return ("none: the full training's own validation error" if steps == FULL_TRAINING
            else (f"{int(steps)} steps" if steps else "the first")
            + (", BatchNorm refreshed" if refreshed else ""))


def fidelity_markdown(fid: pd.DataFrame) -> str:
    """The fidelity check as Markdown, one row per size and trial length."""
    rows = [[f"{int(r['size']):,}", _trial_label(r["trial_steps"], r["refreshed"])
             + (f" ({r['trial_epochs']})" if r["trial_epochs"] else ""),
             str(int(r["trainings"])), str(int(r["configurations"])),
             _num(r["rho"], "+.2f"), _num(r["p"], ".3f"), _num(r["rho_means"], "+.2f"),
             _num(r["p_means"], ".3f"), _num(r["rho_within_batch"], "+.2f"),
             f"{100 * r['test_error_range']:.1f} points",
             f"{_num(100 * r['configurations_sd'], '.1f')} / {_num(100 * r['seeds_sd'], '.1f')}"]
            for _, r in fid.iterrows()]
    return markdown_table(["images", "trial (whole epochs run)", "trainings", "configurations",
                           "Spearman rho (trial loss vs test error)", "p",
                           "rho of the configurations' means", "p", "rho within a batch size",
                           "spread of test error",
                           "sd between configurations / between seeds (points)"], rows)


def machines_line(records: list[dict[str, Any]]) -> str:
    """Which machines (CPU models) ran the cells, and how many each: their times differ."""
    counts: dict[str, int] = {}
    for r in records:
        cpu = str((r.get("provenance") or {}).get("cpu") or "an unrecorded machine")
        counts[cpu] = counts.get(cpu, 0) + 1
    ran = ", ".join(f"{n} on {cpu}" for cpu, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"Cells run: {ran}." if ran else ""


def curve_data(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the records were trained and tested on (their ``data``), or None.

    Records before the field share their data digest with those that carry it; any other
    digest, or two descriptions, and the records name no one data set.
    """
    digests = {r.get("fingerprint", {}).get("data") for r in records}
    about = [r["data"] for r in records if "data" in r]
    if len(digests) != 1 or not about or any(a != about[0] for a in about):
        return None
    return about[0]


def planned_done(records: list[dict[str, Any]], plan: list[str]) -> tuple[int, int]:
    """How many of the ``plan``'s cells (by name) have a record, and how many it plans."""
    names = set(plan)
    return len(names & {r.get("cell") for r in records}), len(names)


def progress_line(records: list[dict[str, Any]], plan: list[str] | None = None) -> str:
    """How many cells are done (of the ``plan``'s, where known), and their hours."""
    hours = sum(r["seconds"]["search"] + r["seconds"]["final"] + r["seconds"]["test"]
                for r in records) / 3600
    done = "{} of {} planned cells".format(*planned_done(records, plan)) if plan \
        else f"{len(records)} cells"
    return f"{done} recorded, {hours:.1f} hours of training in all."


def finished(records: list[dict[str, Any]], plan: list[str] | None) -> bool:
    """Whether every cell of a known ``plan`` has its record (else results are "so far")."""
    if not plan:
        return False
    done, total = planned_done(records, plan)
    return done == total


def curve_figures(table: pd.DataFrame, comp: pd.DataFrame, folder: Path) -> list[Path]:
    """Accuracy against size (one line per arm, with its interval), and the search's gain.

    The gain's figure only where a search arm was compared (records without one have none).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "curve_accuracy.png", folder / "curve_gain.png"]
    sizes = sorted(table["size"].unique())

    def size_axis(ax) -> None:
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{int(v):,}" for v in sizes])
        ax.minorticks_off()

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    groups = list(table.groupby("arm", sort=False))
    for i, (arm, g) in enumerate(groups):
        # each arm a little apart along the size axis, so that nine intervals stay apart
        x = g["size"] * 10 ** (0.012 * (i - (len(groups) - 1) / 2))
        mean, low, high = (100 * g[k].to_numpy(float) for k in ("accuracy", "ci_low", "ci_high"))
        err = np.where(np.isfinite([mean - low, high - mean]), [mean - low, high - mean], 0.0)
        ax.errorbar(x, mean, yerr=err, fmt=("-" if arm in SEARCH_ARMS else "--") + "o",
                    capsize=2, elinewidth=0.8, markersize=4, label=arm)
    size_axis(ax)
    ax.set(xlabel="training images (log scale)", ylabel="test accuracy (%)",
           title="Test accuracy against training-set size\n(mean, Student t 95 % interval)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)
    gains = comp[(comp["against"] == "best no-search") & comp["arm"].isin(SEARCH_ARMS)]
    if gains.empty:
        return paths[:1]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, (arm, g) in enumerate(gains.groupby("arm", sort=False)):
        x = g["size"] * (1 + 0.04 * (i - 1.5))  # side by side on the log axis
        err = np.vstack([g["diff_points"] - g["t_low"], g["t_high"] - g["diff_points"]])
        ax.errorbar(x, g["diff_points"], yerr=np.nan_to_num(err), marker="o", capsize=3,
                    label=arm)
    ax.axhline(0, color="k", lw=0.8)
    size_axis(ax)
    ax.set(xlabel="training images (log scale)", ylabel="points against the best no-search arm",
           title="What the search gains over the best arm without a search\n"
                 "(mean, Student t 95 % interval)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths


LENGTH_FIGURE = "curve_length.png"


def length_figure(lengths: pd.DataFrame, folder: Path) -> Path | None:
    """Each arm's mean accuracy at the curve's length and trained longer, one panel a size.

    An arrow per arm from the first to the second: where strong augmentation gains more
    from the longer training than weak, the ranking changes. None without a length check.
    """
    if not len(lengths):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    panels = sorted(set(zip(lengths["size"], lengths["factor"], strict=True)))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (size, factor) in zip(axes.flat, panels, strict=True):
        g = lengths[(lengths["size"] == size) & (lengths["factor"] == factor)]
        means = g.groupby("arm", sort=False)[["accuracy", "long_accuracy"]].mean() * 100
        x = np.arange(len(means))
        ax.scatter(x, means["accuracy"], color="grey",
                   label=f"the curve's length ({int(g['steps'].iloc[0]):,} steps)")
        ax.scatter(x, means["long_accuracy"], color="C3",
                   label=f"longer ({int(g['long_steps'].iloc[0]):,} steps)")
        for i, (a, b) in enumerate(zip(means["accuracy"], means["long_accuracy"], strict=True)):
            ax.annotate("", (i, b), (i, a), arrowprops={"arrowstyle": "->", "color": "C3"})
        ax.set_xticks(x, means.index, rotation=35, ha="right")
        reps = g["replicate"].nunique()
        ax.set(ylabel="test accuracy (%)",
               title=f"{int(size):,} images, {int(factor)}x the steps: mean of {reps} "
                     f"replicate{'s' if reps > 1 else ''}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("Does the ranking hold when every arm trains longer?", fontsize=10)
    fig.tight_layout()
    path = folder / LENGTH_FIGURE
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


FIDELITY_FIGURE = "curve_fidelity.png"


def fidelity_figure(records: list[dict[str, Any]], folder: Path) -> Path | None:
    """Each trial's validation loss against the fully trained test accuracy.

    One panel per size and trial (three trainings or more); one colour per configuration,
    its seeds joined by a line. None without fidelity cells.
    """
    pairs = {k: g for k, g in fidelity_pairs(records).items()
             if k[1] != FULL_TRAINING and len(g) > 2}  # fewer: no rank to show yet
    if not pairs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fid = fidelity(records).set_index(["size", "trial_steps", "refreshed"])
    cols = min(4, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    for ax, (key, g) in zip(axes.flat, pairs.items(), strict=False):
        g = g.assign(acc=100 * (1 - g["error"])).sort_values(["point", "loss"])
        marks = {b: m for b, m in zip(sorted(g["batch"].dropna().unique()), "osD^v",
                                      strict=False)}
        for point, p in g.groupby("point"):
            ax.plot(p["loss"], p["acc"], "-", marker=marks.get(p["batch"].iloc[0], "o"),
                    color=f"C{int(point) % 10}", alpha=0.8)
        for b, m in marks.items():
            ax.plot([], [], m, color="grey", label=f"batch {int(b)}")
        if marks:
            ax.legend(fontsize=8)
        rho, (size, steps, refreshed) = fid.loc[key, "rho"], key
        trial = (f"trials of {steps} steps" if steps else "the first trials") + (
            ",\nBatchNorm refreshed" if refreshed else "")
        ax.set(xlabel="trial's validation loss (lower is better)",
               ylabel="test accuracy after the full training (%)",
               title=f"{size:,} images, {trial}:\nSpearman rho {rho:+.2f} over {len(g)} "
                     "trainings")
        ax.grid(alpha=0.3)
    fig.suptitle("Does a short trial rank the full training?\n"
                 "One colour per configuration, its seeds joined", fontsize=10)
    fig.tight_layout()
    path = folder / FIDELITY_FIGURE
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curve_markdown(records: list[dict[str, Any]], figures: str | None = "figures",
                   tables: tuple[pd.DataFrame, pd.DataFrame] | None = None,
                   advice: dict[str, Any] | None = None, plan: list[str] | None = None
                   ) -> str:
    """The curve's page: verdicts, figures, accuracy table, paired differences, fidelity.

    ``tables``: the :func:`summary` and :func:`comparisons` already made from ``records``;
    ``advice``: the planner's evidence made from them, to say what a run does at each size;
    ``plan``: the cells planned (:func:`~earth_lib.experiments.curve.planned_names`).
    """
    if tables is None:
        acc = accuracies(records)
        tables = summary(acc), comparisons(acc)
    table, comp = tables
    about = curve_data(records)
    data = (f"The data: {describe_data(about)}, {about['images']:,} images in all (the test "
            "set and the pool the subsets are drawn from). " if about else "")
    parts = [data + progress_line(records, plan)
             + (" " + machines_line(records) if records else "")]
    said = verdicts(comp)
    if said:
        parts.append("Verdict per size (the best search arm against the best arm without a "
                     "search):\n\n" + "\n".join(f"- {v}" for v in said.values()))
    advised = advice_lines(advice) if advice else []
    if advised:
        parts.append("What a run does near each size, budgeted (`make plan` shows it) or "
                     "left at `search.enabled: auto`, the default "
                     "(`earth_lib/planning/evidence.py`):\n\n"
                     + "\n".join(f"- {line}" for line in advised))
    if figures and len(table):
        searched = comp["arm"].isin(SEARCH_ARMS) & (comp["against"] == "best no-search")
        parts.append(f"![Test accuracy against training-set size]({figures}/curve_accuracy.png)"
                     + (f"\n\n![The search's gain]({figures}/curve_gain.png)"
                        if searched.any() else ""))
    if len(table):
        parts.append("Test accuracy (%), mean [Student t 95 % interval over replicates] "
                     "(replicates):\n\n"
                     + summary_markdown(table))
    for against in ("best no-search", "best policy-free", "literature"):
        if (comp["against"] == against).any():
            where = (" (at the sizes where it is not the best no-search arm too)"
                     if against == "best policy-free" else "")
            parts.append(f"Paired differences against the {against} arm{where}:\n\n"
                         + comparisons_markdown(comp, against))
    lengths = length_check(records)
    if len(lengths):
        parts.append("Training length: the arms' values trained longer (same subset, seed and "
                     "values; a search arm's as its cell chose them), against the curve's "
                     "length:\n\n" + length_markdown(lengths)
                     + (f"\n\n![Accuracy at either length]({figures}/{LENGTH_FIGURE})"
                        if figures else ""))
        longer = accuracies(records, longer=True)
        said_long = verdicts(comparisons(longer)) if len(longer) else {}
        if said_long:
            parts.append("Verdict per size at the longer training (the same rule):\n\n"
                         + "\n".join(f"- {v}" for v in said_long.values())
                         + "\n\nTest accuracy (%) at the longer training:\n\n"
                         + summary_markdown(summary(longer)))
    fid = fidelity(records)
    if len(fid):
        parts.append("Fidelity: does a trial's validation loss rank the fully trained test "
                     "error?\n\n" + fidelity_markdown(fid)
                     + (f"\n\n![Trial loss against test accuracy]({figures}/{FIDELITY_FIGURE})"
                        if figures else ""))
    return "\n\n".join(parts)


def short_verdict(gain: pd.Series) -> str:
    """One row of :func:`search_gains` in a few words (a table cell)."""
    ci = (f" [{gain['low']:+.1f}, {gain['high']:+.1f}]" if np.isfinite(gain["low"]) else "")
    return (f"{gain['verdict']}: {gain['search_arm']} {gain['gain_points']:+.1f}{ci} "
            f"against {gain['no_search_arm']}")


def readme_table(acc: pd.DataFrame, longer: pd.DataFrame) -> str:
    """The README's table: mean accuracy per size and arm, and the search's verdict.

    Each length check's row comes under its size's; the intervals and paired tables are in
    ``docs/curve.md``.
    """
    arms = [a for a in ARMS if a in set(acc["arm"]) | set(longer["arm"])]
    rows = []
    for frame, label in ((acc, ""), (longer, " (longer)")):
        if not len(frame):
            continue
        gains = search_gains(comparisons(frame)).set_index("size")
        for size, g in summary(frame).groupby("size"):
            means = {r.arm: f"{_pct(r.accuracy)} ({r.replicates})" for r in g.itertuples()}
            steps = g["steps"].dropna()
            rows.append((size, label, [f"{int(size):,}{label}",
                                       f"{int(steps.max()):,}" if len(steps) else "-",
                                       *[means.get(a, "") for a in arms],
                                       short_verdict(gains.loc[size]) if size in gains.index
                                       else ""]))
    return markdown_table(["images", "final steps", *arms, "the best search arm against the "
                           "best arm without one (points)"], [r[2] for r in sorted(rows)])


def _join(words: list[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _sizes(sizes: list[int]) -> str:
    """``[250, 500, 1000]`` -> ``"250, 500 and 1,000"``."""
    return _join([f"{int(n):,}" for n in sizes])


def where_search_pays(records: list[dict[str, Any]], plan: list[str] | None = None) -> str:
    """The README's opening answer: at which sizes the search pays, and how sure.

    Sizes grouped by verdict (:func:`search_gains`) at the curve's length, then at the
    length check's where it has judged one; "so far" until every cell of ``plan`` is in.
    """
    acc = accuracies(records)
    if not len(acc):
        return "**Where the search pays**: the learning curve (`make curve`) has no record yet."
    parts, pays = [], []
    for label, frame in (("", acc), ("trained longer (the length check)",
                                     accuracies(records, longer=True))):
        if not len(frame):
            continue
        gains = search_gains(comparisons(frame)).set_index("size")
        judged = gains[gains["verdict"] != "not judged yet"]
        groups = []
        for verdict in ("pays", "loses", "no difference shown"):
            g = judged[judged["verdict"] == verdict]
            if g.empty:
                continue
            pays += list(g.index) if verdict == "pays" and not label else []
            refs = sorted(set(g["no_search_arm"]))
            reps = [str(n) for n in g["replicates"]]
            groups.append(
                f"{'the search ' if verdict != 'no difference shown' else ''}{verdict} at "
                f"{_sizes(list(g.index))} images (the best search arm against "
                f"{' / '.join(refs)}: {_join([f'{v:+.1f}' for v in g['gain_points']])} "
                f"points, on {_join(reps) if len(set(reps)) > 1 else reps[0]} replicates)")
        waiting = sorted(set(frame["size"]) - set(judged.index))
        if waiting:
            groups.append(f"not judged yet at {_sizes(waiting)} images (a search arm on "
                          "one replicate, or none yet)")
        parts.append((f"{label[0].upper() + label[1:]}: " if label else "")
                     + "; ".join(groups) + ".")
    head = (f"at {_sizes(sorted(pays))} training images" if pays else "at no size measured")
    tests = sorted({r["images"]["test"] for r in records if "images" in r})
    on = f", one test set of {tests[0]:,}" if len(tests) == 1 else ""
    so_far = "" if finished(records, plan) else ", so far"
    return (f"**Where the search pays**{so_far} ([the learning curve](docs/curve.md): "
            f"{acc['arm'].nunique()} arms on {_sizes(sorted(set(acc['size'])))} training "
            f"images{on}): {head}. "
            + " ".join(p[0].upper() + p[1:] for p in parts))


def curve_verdicts(records: list[dict[str, Any]], figures: str = "docs/figures",
                   plan: list[str] | None = None) -> str:
    """The README's lines: progress, a table of means and verdicts per size, and the figure.

    ``figures``: where ``make curve-report`` put them, relative to the README (the other
    figures and the intervals are in ``docs/curve.md``); ``plan``: the cells planned.
    """
    acc, longer = accuracies(records), accuracies(records, longer=True)
    if not len(acc):
        return progress_line(records, plan) + " No cell of the curve proper is recorded yet."
    tests = sorted({r["images"]["test"] for r in records if "images" in r})
    on = f" on the {tests[0]:,} test images" if len(tests) == 1 else ""
    lines = [progress_line(records, plan) + f" Mean test accuracy (%){on} "
             "(replicates); every arm at a size trains the same optimiser steps, its "
             "length-check row (longer) the same values longer. The verdict: the best search "
             "arm against the best arm without one, Student t 95 % interval, Bonferroni over "
             "the search arms.", readme_table(acc, longer)]
    if (Path(figures) / "curve_accuracy.png").is_file():
        lines.append(f"![Test accuracy against training-set size]({figures}/curve_accuracy.png)")
    return "\n\n".join(lines)


def write_curve_report(records_dir: str | Path, docs_dir: str | Path = "docs",
                       evidence_file: str | Path | None = None,
                       title: str = "The learning curve: where does the search pay?"
                       ) -> list[Path]:
    """``docs/curve.md`` and its figures, regenerated from the records alone.

    ``evidence_file``: where the planner's advice (:func:`evidence`) goes too, if anywhere.
    The committed curve's page counts its records against its plan (:func:`planned_names`).
    """
    records = load_records(records_dir)
    docs = Path(docs_dir)
    acc = accuracies(records)
    tables = summary(acc), comparisons(acc)
    written, advice = [], None
    if evidence_file:
        advice = planner_evidence(records, records_dir, tables[1])
        atomic_write_text(Path(evidence_file), json.dumps(advice, indent=1) + "\n")
        written.append(Path(evidence_file))
    figures = curve_figures(*tables, docs / "figures") if len(acc) else []
    figures += [p for p in [length_figure(length_check(records), docs / "figures"),
                            fidelity_figure(records, docs / "figures")] if p]
    page = docs / "curve.md"
    atomic_write_text(page, f"# {title}\n\n"
                      "Generated by `make curve-report` from the records in "
                      f"`{records_dir}`; do not edit by hand. How the curve is run: "
                      "`earth_lib/experiments/curve.py`; the statistics: "
                      "`earth_lib/experiments/report.py`.\n\n"
                      "Replicates are the unit (arms paired within one). A verdict compares "
                      "the best search arm with the best arm without a search by a Student-t "
                      "95 % interval over replicates, widened (Bonferroni) for having picked "
                      "the best of the search arms; the bootstrap intervals beside it are too "
                      "narrow with 3 to 5 replicates. A budgeted run, and one left at "
                      "`search.enabled: auto`, follows these verdicts near the sizes they "
                      "cover (`earth_lib/planning/curve_evidence.json`), and above the "
                      "largest where the search did not pay there, "
                      "the length check's where it has three replicates (a planned run on "
                      "a few hundred images trains nearer its length); of arms without a "
                      "search that it cannot tell apart, it takes the one that gains more "
                      "when trained longer. It names the curve's data, and where the run's "
                      "bands or image size differ."
                      "\n\n"
                      + curve_markdown(records, "figures" if figures else None, tables,
                                       advice, planned_names(records_dir))
                      + "\n")
    return [page, *figures, *written]
