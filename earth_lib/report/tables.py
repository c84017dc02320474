"""Tables and README blocks generated from run folders, and the parameter table.

Results, comparisons and the bench's figures; read-only over ``outputs/``, writing the
README's generated blocks only.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from earth_lib.errors import RunNotFoundError
from earth_lib.paths import CURVE_RECORDS
from earth_lib.run import METRICS_FILE, Run, load_run
from earth_lib.search.selection import baseline_name


def params_markdown() -> str:
    """Every parameter as a Markdown table (key, default, meaning), from the declared schema."""
    from earth_lib.params import SCHEMA, Param

    rows = ["| parameter | default | meaning |", "|---|---|---|"]
    for section, spec in SCHEMA.items():
        items = [(section, spec)] if isinstance(spec, Param) else \
            [(f"{section}.{k}", p) for k, p in spec.items()]
        for key, p in items:
            default = "(see below)" if key == "search.space" else f"`{p.default}`"
            choices = f" ({' / '.join(map(str, p.choices))})" if p.choices else ""
            rows.append(f"| `{key}` | {default} | {p.help}{choices} |")
    return "\n".join(rows)


def results_markdown(outputs: str | Path = "outputs", runs: list[str] | None = None) -> str:
    """A Markdown table of the finished runs under ``outputs/`` (all, or those named)."""
    rows = ["| run | data | test images | ResNet test acc. | macro F1 | classical baseline acc. "
            "| values from | search best val loss | baseline val loss | trials | wall time |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    folders = ([Path(outputs) / r for r in runs] if runs
               else sorted(p.parent for p in Path(outputs).glob(f"*/{METRICS_FILE}")
                           if Run(p.parent).state() == "finished"))

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for folder in folders:
        run = load_run(folder, need_model=False)
        m, rec, wall = run.load_metrics(), run.read_record(), run.wall_minutes()
        if "accuracy" not in m.test:  # multi-label runs have their own table
            continue
        values_from = m.search["chosen_by"]
        if values_from == "baseline":
            values_from = f"baseline ({baseline_name(m.literature_baseline)})"
        rows.append(
            f"| {folder.name} | {rec['params']['data']['dataset']} | {m.test['n']} "
            f"| {m.test['accuracy']:.3f} | {m.test['macro_f1']:.3f} "
            f"| {num((m.classical_baseline or {}).get('accuracy'))} | {values_from} "
            f"| {num(m.search.get('best_val_loss'))} "
            f"| {num(m.literature_baseline.get('val_loss'))} | {m.search['trials']} "
            f"| {'?' if wall is None else f'{wall:.1f} min'} |")
    return "\n".join(rows)


def multilabel_markdown(outputs: str | Path, runs: list[str]) -> str:
    """A Markdown table of multi-label runs: micro F1, mAP and macro F1, ResNet and baseline."""
    rows = ["| run | test images | labels | ResNet micro F1 | ResNet mAP | ResNet macro F1 "
            "| one-vs-rest RF micro F1 | RF mAP | values from | wall time |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name in runs:
        run = load_run(Path(outputs) / name, need_model=False)
        m, wall = run.load_metrics(), run.wall_minutes()
        base = m.classical_baseline or {}
        rf = [f"{base[k]:.3f}" if k in base else "-" for k in ("micro_f1",
                                                              "mean_average_precision")]
        rows.append(f"| {name} | {m.test['n']} | {len(m.class_names)} | {m.test['micro_f1']:.3f} "
                    f"| {m.test['mean_average_precision']:.3f} | {m.test['macro_f1']:.3f} "
                    f"| {rf[0]} | {rf[1]} | {m.search['chosen_by']} "
                    f"| {'?' if wall is None else f'{wall:.1f} min'} |")
    return "\n".join(rows)


def results_sentence(outputs: str | Path, run_name: str) -> str:
    """The sentence a results table needs: the difference and what one test image is worth."""
    m = load_run(Path(outputs) / run_name, need_model=False).load_metrics()
    n, acc = m.test["n"], m.test["accuracy"]
    base = (m.classical_baseline or {}).get("accuracy")
    vs = "" if base is None else (f" against {100 * base:.1f} % for the classical baseline "
                                  f"({100 * (acc - base):+.1f} points)")
    return (f"`{run_name}`: the ResNet reached {100 * acc:.1f} % on {n} test images{vs}; one "
            f"test image is {100 / n:.2f} points, so differences of a few images are noise.")


def variants_markdown(outputs: str | Path, runs: list[str]) -> str:
    """One comparison table over several `make compare` folders (e.g. one lever each).

    Each row is an arm of one folder, labelled by that run's overrides (``SET``).
    """
    from earth_lib.experiments.compare import load_results, summary_table, table_markdown

    rows: list[str] = []
    for name in runs:
        run = load_run(Path(outputs) / name, need_model=False)
        results = load_results(run.path)
        if not results:
            continue
        label = " ".join(w for w in (run.read_record().get("overrides") or "").split()
                         if not w.startswith("compare.arms=")) or "as in the file"
        table = table_markdown(summary_table(results)).splitlines()
        rows += table[:2] if not rows else []
        rows += [line.replace("| ", f"| {label}: ", 1) for line in table[2:]]
    return "\n".join(rows)


def bench_markdown(bench_json: str | Path) -> str:
    """The figures of ``make bench`` as a table, each beside its target."""
    from earth_lib.run import read_json

    b = read_json(Path(bench_json))
    rows = ["| figure | measured | target |", "|---|---|---|"]
    if "preprocessing" in b:
        pp = b["preprocessing"]
        engines = [e for e in ("skimage", "opencv") if f"{e}_images_per_s" in pp] or [None]
        for engine in engines:  # None: a bench.json from before the engines
            rate = pp[f"{engine}_images_per_s" if engine else "earth_lib_images_per_s"]
            rows.append(f"| preprocessing, {pp['images']} images {pp['source_px']} -> "
                        f"{pp['output_px']} px, gray + CLAHE ({pp['workers']} workers"
                        f"{f', engine {engine}' if engine else ''}) | {rate:.1f} images/s = "
                        f"x{rate / pp['original_images_per_s']:.2f} the original loop "
                        f"({pp['original_images_per_s']:.1f} images/s) | x20 |")
        if "decode_images_per_s" in pp:  # the bound PNG decoding sets on these cores
            rows.append(f"| reading the {pp['source_px']}-px PNGs alone ({pp['workers']} "
                        f"workers): the most any pipeline reading them could reach | "
                        f"{pp['decode_images_per_s']:.1f} images/s = x{pp['speedup_ceiling']:.2f}"
                        " the original loop | - |")
    if "gemm_gflops" in b:
        rows.append(f"| float32 matrix product, TensorFlow | {b['gemm_gflops']:.1f} GFLOP/s | - |")
        if "gemm_gflops_bfloat16" in b:
            rows.append(f"| bfloat16 matrix product, TensorFlow | "
                        f"{b['gemm_gflops_bfloat16']:.1f} GFLOP/s | - |")
        for name, t in b["training"].items():
            batch = f" (batch {t['batch_size']})" if "batch_size" in t else ""
            steps = (f" ({100 * t['train_flop_fraction_steps']:.1f} % in the training steps "
                     "alone)" if "train_flop_fraction_steps" in t else "")
            if "train_flop_fraction_of_bf16_gemm" in t:
                steps += (f"; {100 * t['train_flop_fraction_of_bf16_gemm']:.1f} % of the "
                          "bfloat16 product")
            rows.append(f"| training `{name}`{batch}: {t['images_per_s']:.1f} images/s, "
                        f"{t['gflop_per_training_image']:g} GFLOP per image | "
                        f"{100 * t['train_flop_fraction']:.1f} % of the matrix product{steps} "
                        "| 50 % |")
    if "augmentation" in b:
        a = b["augmentation"]
        rows.append(f"| augmenting a batch of {a['batch_size']} at {a['image_px']} px in "
                    "`tf.data` (rotation, zoom, shifts, flips): one affine resampling | "
                    f"{a['affine_ms_per_batch']:.1f} ms (Keras' four layers in turn: "
                    f"{a['keras_layers_ms_per_batch']:.1f} ms) | - |")
    for n, sec in b.get("search_seconds_per_suggestion", {}).items():
        rows.append(f"| one GPyOpt suggestion after {n} trials | {sec:.2f} s | - |")
    for workers, w in b.get("search_workers_seconds", {}).items():
        where = "in process" if workers == "1" else f"as Ray tasks ({workers} at once)"
        rows.append(f"| the same search trials {where} | {w['seconds']:.0f} s (starting Ray "
                    f"{w['ray_start_seconds']:.0f} s) | - |")
    for key, mb in b.items():
        if key.startswith("peak_rss_mb_") and key != "peak_rss_mb_this_process":
            n, px, *rest = key.removeprefix("peak_rss_mb_").split("_", 2)
            where = ("read from disk (`data.in_memory: false`)" if "on_disk" in key
                     else "in memory")
            micro = re.search(r"micro(\d+)", rest[0]) if rest else None
            passes = f", passes of {micro[1]} images (`train.micro_batch`)" if micro else ""
            rows.append(f"| peak memory, search + final training, {int(n):,} images of {px}, "
                        f"images {where}{passes} | {mb:,} MB | 2,048 MB |")
    machine = b.get("machine", {})
    where = ", ".join(machine.get("gpus") or []) or f"{machine.get('cpus', '?')} CPU cores"
    return "\n".join(rows) + f"\n\nMeasured on {where} in {b.get('seconds', '?')} s."


BUDGET_FIGURE = "docs/figures/budget_accuracy.png"  # linked from the README's budget block
GENERATED = re.compile(r"(<!-- generated: (?P<kind>\w+) (?P<args>[^>]*?) -->\n)(?P<body>.*?)"
                       r"(<!-- /generated -->)", re.S)


def outside_outputs(kind: str, args: list[str]) -> str | None:
    """A block made without run folders: the parameter table, or one from records.

    ``curve RECORDS``: the verdict per size and the figure (docs/curve.md has the rest);
    ``pays RECORDS``: the sizes where the search pays, in a sentence or three;
    ``budget RECORDS``: the budgeted runs' table. None where the folder holds no record.
    """
    if kind == "params":
        return params_markdown()
    if kind == "budget":
        folder = Path(args[0] if args else "results/budget")
        found = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if not found:
            return None
        from earth_lib.report.plotting import save_figure
        from earth_lib.report.report_figures import plot_budget_accuracy

        records = [json.loads(p.read_text()) for p in found]
        save_figure(plot_budget_accuracy(records), BUDGET_FIGURE)
        return budget_markdown(records) + f"\n\n![Accuracy against the budget]({BUDGET_FIGURE})"
    from earth_lib.experiments.curve import planned_names
    from earth_lib.experiments.report import curve_verdicts, load_records, where_search_pays

    folder = Path(args[0] if args else CURVE_RECORDS)
    records = load_records(folder) if folder.is_dir() else []
    if not records:
        return None
    plan = planned_names(folder)
    return where_search_pays(records, plan) if kind == "pays" else \
        curve_verdicts(records, plan=plan)


#: A run's records: the small JSON files its tables are made from (``make record-run``).
RUN_RECORDS = Path("results") / "runs"
RECORD_FILES = ("run.json", METRICS_FILE, "plan.json", "bench.json", "comparison.json",
                "arms/*/seed*/result.json", "paired/*.json")


def record_run(run_dir: str | Path, to: str | Path = RUN_RECORDS) -> Path:
    """Copy a run's records (:data:`RECORD_FILES`, kilobytes) to ``to/<run>/``.

    Committed, they let a clone without ``outputs/`` regenerate the blocks of that run.
    """
    from earth_lib.io import atomic_write_bytes

    src = Path(run_dir)
    found = [f for pattern in RECORD_FILES for f in sorted(src.glob(pattern))]
    if not (src / "run.json").is_file() or len(found) < 2:
        raise RunNotFoundError(f"{src}: no run records here (run.json with metrics.json, "
                               "comparison.json or bench.json); is it a run folder?")
    dest = Path(to) / src.name
    for f in found:
        atomic_write_bytes(dest / f.relative_to(src), f.read_bytes())
    return dest


def pair_sentence(path: str | Path) -> str:
    """What ``make pair`` found for two runs on the same test images, in one sentence."""
    p = json.loads(Path(path).read_text(encoding="utf-8"))
    a, b = (Path(p[k]).name for k in ("run_a", "run_b"))
    return (f"`{a}` against `{b}` on the same {p['images']:,} test images: "
            f"{100 * p['accuracy_a']:.2f} % against {100 * p['accuracy_b']:.2f} %, "
            f"{p['diff_points']:+.2f} points (bootstrap 95 % interval {p['ci_low']:+.2f} to "
            f"{p['ci_high']:+.2f}); only `{a}` right on {p['only_a_right']} images, only "
            f"`{b}` on {p['only_b_right']}; McNemar p = {p['mcnemar_p']:.2g}. One training "
            "each: the interval and p are over test images, not over training seeds.")


def regenerate_readme(readme: str | Path = "README.md", outputs: str | Path = "outputs",
                      records: str | Path = RUN_RECORDS) -> list[str]:
    """Rewrite README's generated blocks from the run folders; returns what was done.

    A block is ``<!-- generated: KIND RUN... -->`` ... ``<!-- /generated -->``; KIND is
    ``results`` (the runs' table and sentences), ``multilabel`` (multi-label runs' table),
    ``compare`` (a comparison's table, verdict
    and evidence), ``variants`` (several comparisons, one row per arm and folder) or
    ``bench`` (``make bench``'s figures beside their targets), ``params`` (the parameter
    table), ``curve`` (the learning curve's verdicts, from its records), ``pays`` (at which
    sizes the search pays, from the same records), ``budget``
    (budgeted runs, from their records in ``results/budget``) or ``pair`` (``RUN OTHER``:
    what ``make pair`` found, from ``RUN/paired/OTHER.json``). A block
    whose runs are not under ``outputs`` is made from their copies under ``records``
    (:func:`record_run`), else left as it is (a fresh clone keeps the README).
    """
    from earth_lib.experiments.compare import (
        evidence,
        load_results,
        paired_differences,
        paired_markdown,
        summary_table,
        table_markdown,
        verdict,
    )

    path, report = Path(readme), []

    def render(match: re.Match) -> str:
        kind, runs = match["kind"], match["args"].split()
        if kind in ("params", "curve", "pays", "budget"):
            body = outside_outputs(kind, runs)
            report.append(f"{kind} {' '.join(runs)}: "
                          + ("kept (no records)" if body is None else "regenerated"))
            return match[0] if body is None else f"{match[1]}{body}\n{match[5]}"
        if kind == "pair":
            found = next((f for d in (outputs, records)
                          if (f := Path(d) / runs[0] / "paired" / f"{runs[-1]}.json").is_file()),
                         None)
            report.append(f"pair {' '.join(runs)}: "
                          + ("regenerated" if found else "kept (no paired record)"))
            return f"{match[1]}{pair_sentence(found)}\n{match[5]}" if found else match[0]
        base = next((Path(d) for d in (outputs, records)
                     if all((Path(d) / r).is_dir() for r in runs)), None)
        if base is None:
            missing = [r for r in runs if not (Path(outputs) / r).is_dir()]
            report.append(f"{kind} {' '.join(runs)}: kept ({', '.join(missing)} not in "
                          f"{outputs} or {records})")
            return match[0]
        return render_runs(match, kind, runs, base)

    def render_runs(match: re.Match, kind: str, runs: list[str], outputs: Path) -> str:
        unfinished = [r for r in runs if kind in ("results", "multilabel")
                      and (Run(Path(outputs) / r).state() != "finished"
                           or not (Path(outputs) / r / METRICS_FILE).is_file())]
        if unfinished:  # never new parameters beside old numbers
            report.append(f"{kind} {' '.join(runs)}: kept ({', '.join(unfinished)} not finished:"
                          " running, failed or killed)")
            return match[0]
        if kind == "results":
            body = results_markdown(outputs, runs) + "\n\n" + "\n".join(
                results_sentence(outputs, r) for r in runs)
        elif kind == "compare":
            results = load_results(Path(outputs) / runs[0])
            table = summary_table(results)
            paired = paired_differences(results)
            body = "\n\n".join(filter(None, [
                table_markdown(table), verdict(table), evidence(results),
                "Paired on the same test images and seeds:\n\n" + paired_markdown(paired)
                if len(paired) else ""]))
        elif kind == "multilabel":
            body = multilabel_markdown(outputs, runs)
        elif kind == "variants":
            body = variants_markdown(outputs, runs)
        elif kind == "bench":
            body = bench_markdown(Path(outputs) / runs[0] / "bench.json")
        else:
            raise ValueError(f"{path}: unknown generated block kind {kind!r}")
        report.append(f"{kind} {' '.join(runs)}: regenerated")
        return f"{match[1]}{body}\n{match[5]}"

    text = path.read_text(encoding="utf-8")
    new = GENERATED.sub(render, text)
    if new != text:
        from earth_lib.io import atomic_write_text

        atomic_write_text(path, new)
    return report


def budget_record(run_dir: str | Path) -> dict[str, Any]:
    """A budgeted run in a few numbers: its plan's choices, its time and its scores."""
    run = load_run(run_dir, need_model=False)
    plan, rec, m = run.plan, run.read_record(), run.load_metrics()
    if plan is None or run.state() != "finished":
        raise ValueError(f"{run_dir}: not a finished run with a budget (budget_minutes).")
    ends = [datetime.fromisoformat(s["finished"]).timestamp()
            for s in rec.get("stages", {}).values() if "finished" in s]
    params = rec["params"]
    return {"run": Path(run_dir).name, "budget_minutes": plan.budget_minutes,
            "data": asdict(plan.data), "planned_minutes": round(plan.expected_minutes, 1),
            "minutes": round((max(ends) - plan.started) / 60, 1),
            "image_size": params["preprocess"]["image_size"],
            "epochs": params["train"]["epochs"], "preset": params["model"]["preset"],
            "search": params["search"]["enabled"],
            "epochs_run": m.final_training.get("epochs_run"),
            "peak_rss_mb": max((s.get("peak_rss_mb", 0) for s in rec.get("stages", {}).values()),
                               default=0) or None,
            "accuracy": m.test["accuracy"], "macro_f1": m.test["macro_f1"],
            "classical_accuracy": (m.classical_baseline or {}).get("accuracy"),
            "cpu": rec.get("machine", {}).get("cpu"), "cpus": rec.get("machine", {}).get("cpus"),
            "git_commit": rec.get("git_commit")}


def budget_markdown(records: list[dict[str, Any]]) -> str:
    """Budget against what the plan chose, the time it took and the accuracy it reached."""
    rows = ["| data | budget | planned | took | image size | epochs (run) | search "
            "| ResNet test acc. | classical acc. | peak memory | machine |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["data"]["images"], r["budget_minutes"])):
        d = r["data"]
        base = "-" if r["classical_accuracy"] is None else f"{r['classical_accuracy']:.3f}"
        memory = f"{r['peak_rss_mb']:,} MB" if r.get("peak_rss_mb") else "-"
        rows.append(f"| {d['images']:,} images, {d['classes']} classes, {d['native_size']} px "
                    f"| {r['budget_minutes']:g} min | {r['planned_minutes']:.1f} min "
                    f"| {r['minutes']:.1f} min | {r['image_size']} px "
                    f"| {r['epochs']} ({r['epochs_run']}) | {'yes' if r['search'] else 'no'} "
                    f"| {r['accuracy']:.3f} | {base} | {memory} "
                    f"| {r['cpus']} cores, {r['cpu']} |")
    return "\n".join(rows)
