"""Loading a parameter file: every key checked against the table, overrides applied."""

from __future__ import annotations

import copy
import difflib
import math
import re
from pathlib import Path
from typing import Any

import yaml

from earth_lib.errors import (
    ParameterError,
)
from earth_lib.params.schema import (
    CURVE_ARMS,
    DEFAULT_SPACE,
    HYPERPARAMETER_LIMITS,
    HYPERPARAMETERS,
    REQUIRED_HYPERPARAMETERS,
    SCHEMA,
    Param,
)
from earth_lib.paths import MOSAIC_LABELS


def _fail(source: str, key: str, expected: str, got: Any) -> ParameterError:
    hint = (" (a mapping written without a space after its colons? YAML reads {500:8} as "
            "{30008: null}; write {500: 8})"
            if isinstance(got, dict) and None in got.values() else "")
    return ParameterError(
        f"{source}: the '{key}' parameter must be {expected}. Got {got!r} instead.{hint}"
    )


def _describe(p: Param) -> str:
    if p.choices is not None:
        return "one of " + ", ".join(str(c).lower() if isinstance(c, bool) else repr(c)
                                     for c in p.choices)
    kinds = p.kind if isinstance(p.kind, tuple) else (p.kind,)
    text = " or ".join("a number" if k is float else ("an int" if k is int else f"a {k.__name__}")
                       for k in kinds)
    if p.low is not None or p.high is not None:
        lo = "-inf" if p.low is None else p.low
        hi = "inf" if p.high is None else p.high
        text += f" in the range [{lo}, {hi}]"
    return text + (" (or null)" if p.nullable else "")


def _check_value(p: Param, value: Any, key: str, source: str) -> Any:
    if value is None:
        if p.nullable:
            return None
        raise _fail(source, key, _describe(p), value)
    kinds = p.kind if isinstance(p.kind, tuple) else (p.kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds:
        raise _fail(source, key, _describe(p), value)
    if not isinstance(value, kinds):
        raise _fail(source, key, _describe(p), value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(source, key, _describe(p), value)
    if p.choices is not None and value not in p.choices:
        raise _fail(source, key, _describe(p), value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
            raise _fail(source, key, _describe(p), value)
    return value


def _unknown(source: str, key: str, known: list[str]) -> ParameterError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else f" Known: {', '.join(sorted(known))}."
    return ParameterError(f"{source}: unknown parameter '{key}'.{hint}")


def validate_space(space: dict, source: str = "<params>") -> dict[str, dict]:
    """Check a search space declaration and return it normalised (floats, sorted values)."""
    if not isinstance(space, dict):
        raise _fail(source, "search.space", "a mapping of hyperparameter -> spec", space)
    out: dict[str, dict] = {}
    for name, spec in space.items():
        key = f"search.space.{name}"
        if name not in HYPERPARAMETERS:
            raise _unknown(source, key, list(HYPERPARAMETERS))
        if not isinstance(spec, dict):
            raise _fail(source, key, "a mapping with 'type' and 'bounds' or 'values'", spec)
        extra = set(spec) - {"type", "bounds", "values", "log"}
        if extra:
            raise _unknown(source, f"{key}.{sorted(extra)[0]}", ["type", "bounds", "values", "log"])
        lo_lim, hi_lim = HYPERPARAMETER_LIMITS[name]
        kind = spec.get("type")
        if kind == "continuous":
            if name in ("horizontal_flip", "vertical_flip", "batch_size", "kernel_size", "epochs"):
                raise _fail(source, f"{key}.type", "'discrete' for this hyperparameter", kind)
            b = spec.get("bounds")
            if (not isinstance(b, (list, tuple)) or len(b) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)):
                raise _fail(source, f"{key}.bounds", "a list [low, high] of two numbers", b)
            lo, hi = float(b[0]), float(b[1])
            if not lo < hi:
                raise _fail(source, f"{key}.bounds", "[low, high] with low < high", b)
            if lo < lo_lim or hi > hi_lim:
                raise _fail(source, f"{key}.bounds", f"within [{lo_lim}, {hi_lim}]", b)
            log = spec.get("log", False)
            if not isinstance(log, bool):
                raise _fail(source, f"{key}.log", "true or false", log)
            if log and lo <= 0:
                raise _fail(source, f"{key}.bounds", "positive when log is true", b)
            out[name] = {"type": "continuous", "bounds": [lo, hi], "log": log}
        elif kind == "discrete":
            vals = spec.get("values")
            if (not isinstance(vals, (list, tuple)) or not vals
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               for v in vals)):
                raise _fail(source, f"{key}.values", "a non-empty list of numbers", vals)
            if any(v < lo_lim or v > hi_lim for v in vals):
                raise _fail(source, f"{key}.values", f"numbers within [{lo_lim}, {hi_lim}]", vals)
            if name != "learning_rate" and any(float(v) != int(v) for v in vals):
                raise _fail(source, f"{key}.values", "whole numbers", vals)
            if name == "kernel_size" and any(int(v) % 2 == 0 for v in vals):
                raise _fail(source, f"{key}.values", "odd kernel sizes", vals)
            if "log" in spec:
                raise _unknown(source, f"{key}.log", ["type", "values"])
            out[name] = {"type": "discrete", "values": sorted({float(v) for v in vals})}
        else:
            raise _fail(source, f"{key}.type", "'continuous' or 'discrete'", kind)
    missing = [n for n in REQUIRED_HYPERPARAMETERS if n not in out]
    if missing:
        raise ParameterError(
            f"{source}: 'search.space' is missing {', '.join(repr(m) for m in missing)}; "
            f"the method searches all nine of {', '.join(REQUIRED_HYPERPARAMETERS)}."
        )
    return out


def validate(raw: dict | None, source: str = "<params>") -> dict[str, Any]:
    """Return a complete, checked parameter dict: defaults filled, every key validated."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParameterError(f"{source}: a parameter file must be a YAML mapping of sections.")
    out: dict[str, Any] = {}
    for key in raw:
        if key not in SCHEMA:
            raise _unknown(source, str(key), list(SCHEMA))
    for section, spec in SCHEMA.items():
        given = raw.get(section)
        if isinstance(spec, Param):
            out[section] = _check_value(spec, spec.default if given is None else given,
                                        section, source)
            continue
        given = {} if given is None else given
        if not isinstance(given, dict):
            raise _fail(source, section, "a mapping of parameters", given)
        for key in given:
            if key not in spec:
                raise _unknown(source, f"{section}.{key}", list(spec))
        out[section] = {
            key: _check_value(p, copy.deepcopy(given.get(key, p.default)), f"{section}.{key}",
                              source)
            for key, p in spec.items()
        }
    split = out["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        raise ParameterError(
            f"{source}: 'split.train' + 'split.val' + 'split.test' must add up to 1. "
            f"Got {total:g} instead."
        )
    space = out["search"]["space"]
    if space is not None and not isinstance(space, dict):
        raise _fail(source, "search.space", "a mapping of hyperparameter -> spec", space)
    # a partial space overrides only the entries it names; the others keep the default's
    out["search"]["space"] = validate_space({**DEFAULT_SPACE, **(space or {})}, source)
    _check_compare(out["compare"], source)
    _check_curve(out["curve"], source)
    _check_task(out, source)
    _check_folders(out, source)
    return out


def _check_folders(out: dict[str, Any], source: str) -> None:
    """The processed folder is written (and, with overwrite, replaced): never the raw images'.

    Without one, it is named after the raw folder.
    """
    if out["preprocess"]["processed_dir"] is None:
        out["preprocess"]["processed_dir"] = \
            f"data/processed/{Path(out['data']['raw_dir']).name or 'images'}"
    processed = Path(out["preprocess"]["processed_dir"]).expanduser().resolve()
    for key in ("raw_dir", "local_copy"):
        if not out["data"][key]:
            continue
        raw = Path(out["data"][key]).expanduser().resolve()
        if processed == raw or raw in processed.parents or processed in raw.parents:
            raise ParameterError(
                f"{source}: 'preprocess.processed_dir' ({processed}) must be apart from "
                f"'data.{key}' ({raw}): equal, inside or containing it, preprocessing would "
                "write over or mix with the raw images. Use e.g. data/processed/<name>.")


def _check_task(out: dict[str, Any], source: str) -> None:
    """Multi-label needs labels; mosaics are multi-label and bring their labels and split."""
    d, task = out["data"], out["task"]
    if d["dataset"] == "mosaic":
        if task != "multilabel":
            raise _fail(source, "task", "multilabel with data.dataset: mosaic", task)
        lo_hi = d["mosaic_labels"]
        if (len(lo_hi) != 2 or not all(isinstance(v, int) for v in lo_hi)
                or not 1 <= lo_hi[0] <= lo_hi[1] <= d["mosaic_grid"] ** 2):
            raise _fail(source, "data.mosaic_labels", "[low, high] with 1 <= low <= high <= "
                        f"tiles per mosaic ({d['mosaic_grid'] ** 2})", lo_hi)
        csv = f"{d['raw_dir'].rstrip('/')}/{MOSAIC_LABELS}"
        d["labels_csv"] = d["labels_csv"] or csv
        out["split"]["split_file"] = out["split"]["split_file"] or csv  # tile-disjoint splits
    if task == "multilabel" and not d["labels_csv"]:
        raise _fail(source, "data.labels_csv", "a labels CSV for task: multilabel", None)
    if task == "multiclass" and d["labels_csv"]:
        raise ParameterError(f"{source}: 'data.labels_csv' is for task: multilabel; task is "
                             "multiclass (labels from the class folders). Set task: multilabel "
                             "or remove data.labels_csv.")


def _check_compare(c: dict[str, Any], source: str) -> None:
    """Seeds: distinct whole numbers; arms: known names, each once."""
    seeds, arms, known = c["seeds"], c["arms"], SCHEMA["compare"]["arms"].default
    if not seeds or len(set(seeds)) != len(seeds) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds):
        raise _fail(source, "compare.seeds", "a non-empty list of distinct whole numbers >= 0",
                    seeds)
    for arm in arms:
        if arm not in known:
            raise _unknown(source, f"compare.arms: {arm}", list(known))
    if not arms or len(set(arms)) != len(arms):
        raise _fail(source, "compare.arms", "a non-empty list of distinct arms", arms)


def _check_curve(c: dict[str, Any], source: str) -> None:
    """Sizes, replicates and steps line up; arms are known; the ranges are ranges."""
    def whole(v: Any, low: int = 1) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    sizes = c["sizes"]
    if not sizes or not all(whole(v, 2) for v in sizes) or sorted(set(sizes)) != sizes:
        raise _fail(source, "curve.sizes", "increasing whole numbers >= 2", sizes)
    def share(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1

    # {size: value} for every size; where one value may stand for all, it is spread out
    for key, ok, what, one_for_all in (("replicates", whole, "whole number >= 1", True),
                                       ("final_steps", whole, "whole number >= 1", False),
                                       ("trial_fraction", share, "share in (0, 1]", True),
                                       ("length_check_replicates", whole, "whole number >= 1",
                                        True)):
        given = dict.fromkeys(sizes, c[key]) if one_for_all and ok(c[key]) else c[key]
        if not isinstance(given, dict) or not all(
                size in given and ok(given[size]) for size in sizes):
            raise _fail(source, f"curve.{key}", f"{{size: {what}}} for every size of {sizes}"
                        + (f", or one {what} for all" if one_for_all else ""), c[key])
        c[key] = {size: given[size] for size in sizes}
    for arm in c["arms"]:
        if arm not in CURVE_ARMS:
            raise _unknown(source, f"curve.arms: {arm}", list(CURVE_ARMS))
    if not c["arms"] or len(set(c["arms"])) != len(c["arms"]):
        raise _fail(source, "curve.arms", "a non-empty list of distinct arms", c["arms"])
    lo_hi = c["weight_decay_bounds"]
    if len(lo_hi) != 2 or not all(isinstance(v, (int, float)) for v in lo_hi) \
            or not 0 < lo_hi[0] < lo_hi[1] <= 1:
        raise _fail(source, "curve.weight_decay_bounds", "[low, high] with 0 < low < high <= 1",
                    lo_hi)
    for size in c["fidelity_sizes"]:
        if size not in sizes:
            raise _fail(source, "curve.fidelity_sizes", f"sizes among curve.sizes {sizes}",
                        c["fidelity_sizes"])
    for key in ("fidelity_trial_fractions", "fidelity_refreshed"):
        for size, fractions in c[key].items():
            if not whole(size, 2) or not isinstance(fractions, list) or not all(
                    map(share, fractions)):
                raise _fail(source, f"curve.{key}",
                            "{size: [shares of the final training, each in (0, 1]]} (used at "
                            "the sizes of curve.fidelity_sizes)", c[key])
    for size, factor in c["length_check"].items():
        if size not in sizes or not whole(factor, 2):
            raise _fail(source, "curve.length_check",
                        f"{{size: whole factor >= 2}} for sizes among curve.sizes {sizes}",
                        c["length_check"])


def parse_overrides(overrides: str | list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    """``"train.epochs=5 search.steps=1"`` (or a list of items) -> ``[(key, value), ...]``.

    Values are read as YAML (``5``, ``true``, ``[0, 90]`` written ``[0,90]``, ``{500: 8}``
    written ``{500:8}``), so an override means what the same value means in a file. Items are
    separated by whitespace.
    """
    items = overrides.split() if isinstance(overrides, str) else list(overrides)
    out = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ParameterError(
                f"override {item!r}: expected section.key=value (e.g. train.epochs=5).")
        try:
            out.append((key, yaml.safe_load(_spaced_pairs(text))))
        except yaml.YAMLError as err:
            raise ParameterError(f"override {item!r}: the value is not valid YAML ({err})") \
                from err
    return out


def _spaced_pairs(text: str) -> str:
    """``{500:8}`` -> ``{500: 8}``: without the space YAML reads ``500:8`` as one number."""
    if not text.startswith("{") or "'" in text or '"' in text:
        return text
    return re.sub(r":(?=\S)", ": ", text)


def apply_overrides(raw: dict | None, items: list[tuple[str, Any]],
                    source: str) -> dict[str, Any]:
    """A copy of a file's raw mapping with parsed overrides set (validated later, like it).

    A ``search.space.*`` override on a file without a space edits the default space.
    """
    raw = copy.deepcopy(raw) if raw else {}
    for key, value in items:
        parts = key.split(".")
        if parts[:2] == ["search", "space"] and len(parts) > 2:
            if raw.get("search") is None:
                raw["search"] = {}
            search = raw["search"]
            if isinstance(search, dict) and search.get("space") is None:
                search["space"] = copy.deepcopy(DEFAULT_SPACE)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ParameterError(
                    f"{source}: override {key}: {'.'.join(parts[:i + 1])} is a value, not a "
                    "section, so it has no keys.")
            node = child
        node[parts[-1]] = value
    return raw


def load_params(path: str | Path,
                overrides: str | list[str] | tuple[str, ...] = "") -> dict[str, Any]:
    """Read and validate a YAML parameter file, with optional ``key=value`` overrides.

    Overrides are validated like the file; errors name the key and say it came from them.
    """
    raw, source = read_given(path, overrides)
    return validate(raw, source=source)


def read_given(path: str | Path, overrides: str | list[str] | tuple[str, ...] = ""
               ) -> tuple[Any, str]:
    """What a file and its overrides set by hand (before defaults), and how to name them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Parameter file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParameterError(f"{path}: not valid YAML ({err})") from err
    items = parse_overrides(overrides)
    if not items or (raw is not None and not isinstance(raw, dict)):
        return raw, str(path)
    text = overrides if isinstance(overrides, str) else " ".join(overrides)
    source = f"{path} with overrides {' '.join(text.split())!r}"
    return apply_overrides(raw, items, source), source


def parameter_table(params: dict[str, Any],
                    sections: tuple[str, ...] | None = None) -> list[tuple[str, Any]]:
    """Flatten checked parameters into (dotted key, value) rows for display.

    ``sections`` keeps only the sections named (default: all).
    """
    rows: list[tuple[str, Any]] = []
    for section, value in params.items():
        if sections is not None and section not in sections:
            continue
        if not isinstance(value, dict):
            rows.append((section, value))
            continue
        for key, v in value.items():
            if key == "space":
                rows += [(f"search.space.{hp}", s) for hp, s in v.items()]
            else:
                rows.append((f"{section}.{key}", v))
    return rows
