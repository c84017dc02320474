"""Parameters -> keyword arguments of the package's functions, one adapter per stage."""

from __future__ import annotations

from typing import Any


def train_settings(params: dict[str, Any], final: bool) -> dict[str, Any]:
    """Keyword arguments of ``training.train_model`` for a search trial or the final training."""
    m, t, s = params["model"], params["train"], params["search"]
    common = {"preset": m["preset"], "weight_decay": m["weight_decay"],
              "label_smoothing": m["label_smoothing"], "dropout": m["dropout"],
              "warmup_epochs": t["warmup_epochs"], "optimizer": t["optimizer"],
              "schedule": t["schedule"], "micro_batch": t["micro_batch"],
              "precision": t["precision"]}
    if final:
        return {**common, "epochs": t["epochs"], "patience": t["patience"],
                "early_stopping": t["early_stopping"], "distribute": t["distribute"]}
    # a trial runs all its epochs and is scored on its best one
    return {**common, "epochs": s["epochs"], "time_limit": s["max_trial_seconds"]}


def search_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``search.search_or_baseline``: whether and how to search."""
    s = params["search"]
    return {"enabled": s["enabled"], "evaluate_baseline": params["baseline"]["enabled"],
            "steps": s["steps"], "initial_points": s["initial_points"],
            "iterations_per_step": s["iterations_per_step"], "shrink": s["shrink"],
            "min_step": s["min_step"], "seed": params["seed"], "design": s["design"],
            "acquisition": s["acquisition"],
            "start_points": [baseline_hyperparameters(params)] if s["start_from_baseline"]
            else None,
            "finalists": s["finalists"], "finalist_budget": s["finalist_budget"],
            "finalist_repeats": s["finalist_repeats"], "workers": s["workers"],
            # a trial stops itself at the first batch past max_trial_seconds; one with no
            # result well after that is hung, and is cancelled (trials on Ray)
            "trial_timeout": None if s["max_trial_seconds"] is None
            else 1.5 * s["max_trial_seconds"] + 120}


def executor_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``distributed.trial_executor``: where the search's trials run."""
    return {"workers": params["search"]["workers"], "address": params["search"]["ray_address"]}


def search_fingerprint(params: dict[str, Any], **data: Any) -> dict[str, Any]:
    """What gives a search trial its meaning and decides which trial comes next.

    A history whose fingerprint differs is refused (``search.fingerprint`` digests these).

    Trial settings, data share, PCA, preprocessing, the task, the search plan (design,
    points, iterations, shrink, acquisition, start points, finalists) and the literature
    values; ``data`` adds the arrays the trials read (``images=``, ``labels=``, ``split=``).
    The space is added by the search itself.
    """
    plan = {k: v for k, v in search_settings(params).items()
            if k not in ("enabled", "evaluate_baseline", "workers")}
    return {"trial": train_settings(params, final=False),
            "data_share": search_data_settings(params),
            "pca": params["pca"], "preprocess": {k: v for k, v in params["preprocess"].items()
                                                  if k not in ("overwrite", "workers")},
            "task": params["task"], "plan": plan,
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
    """The literature values (METHOD.md) for the names the search explores."""
    hp = {k: v for k, v in params["baseline"].items() if k != "enabled"}
    if "epochs" in params["search"]["space"]:
        hp["epochs"] = params["search"]["epochs"]
    return hp
