"""Command line used by the Makefile: run notebooks (papermill), fetch data, evaluate, predict."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from earth_lib import progress
from earth_lib.errors import DatasetNotFoundError, EarthResnetError
from earth_lib.io import run_lock
from earth_lib.params import load_params, read_given, validate
from earth_lib.paths import CURVE_RECORDS, project_root, run_dir_for
from earth_lib.planning import needs_new_plan
from earth_lib.report.tables import params_markdown, regenerate_readme, results_markdown
from earth_lib.run import Run, load_run, mark_failed


def run_notebook(notebook: str | Path, params_file: str | Path,
                 run_dir: str | Path | None = None, overrides: str = "") -> Path:
    """Validate the params file (and overrides), execute the notebook into the run folder.

    Writes the executed notebook and its HTML export beside the results.

    The executed notebook is written as ``<name>.running.ipynb`` and renamed on success,
    or to ``<name>.failed.ipynb`` on failure, so a failed run is never taken as done.
    """
    import papermill as pm

    from earth_lib.io import atomic_write_text

    overrides = " ".join(overrides.split())
    given, source = read_given(params_file, overrides)
    params = validate(given, source)  # fail fast, before a kernel starts
    raw = raw_folder(params, params_file)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # cell output in the terminal
    live = not progress.headless()  # a person at a terminal: papermill's cell bar is useful
    os.environ.setdefault(progress.ENV, "lines")  # the kernel inherits it: no frozen widgets
    root = project_root()
    run_dir = Path(run_dir or run_dir_for(params_file, overrides=overrides))
    run = Run(run_dir)
    run.mark()
    name = Path(notebook).stem
    finished = run_dir / f"{name}.ipynb"
    if needs_new_plan(run.plan, params, given, finished):
        with run_lock(run_dir):
            plan_from_folder(params, given, params_file, raw, run.plan_path)
    running, done = run_dir / f"{name}.running.ipynb", finished
    with run_lock(run_dir):
        try:
            pm.execute_notebook(str(notebook), str(running), kernel_name="python3",
                                cwd=str(root), parameters={"params_file": str(params_file),
                                                           "run_dir": str(run_dir),
                                                           "overrides": overrides},
                                progress_bar=live, log_output=True)
        except BaseException as err:
            mark_failed(run_dir, name, f"{type(err).__name__}: {err}")
            if running.exists():
                running.replace(run_dir / f"{name}.failed.ipynb")
            raise
        running.replace(done)
        atomic_write_text(run_dir / f"{name}.html", notebook_html(done))
    return done


def raw_folder(params: dict[str, Any], params_file: str | Path) -> Path:
    """The folder a run reads its images from (a local copy where one is named)."""
    from earth_lib.data.datasets import local_copy

    raw = local_copy(params) or Path(params["data"]["raw_dir"])
    if params["data"]["dataset"] == "folder" and not raw.is_dir():
        raise DatasetNotFoundError(f"{params_file}: data.raw_dir {raw} is not a folder. Put one "
                                   "sub-folder of images per class there, or fix data.raw_dir.")
    return raw


def plan_from_folder(params: dict[str, Any], given: Any, params_file: str | Path, raw: Path,
                     path: Path | None) -> None:
    """Measure this machine on the images of ``raw``, print the plan, write it to ``path``."""
    from earth_lib.planning.measure import make_plan

    if not raw.is_dir():
        raise DatasetNotFoundError(f"{params_file}: budget_minutes plans from the images, "
                                   f"and {raw} is not a folder yet (make data first).")
    make_plan({**params, "data": {**params["data"], "raw_dir": str(raw)}}, given, path)


#: JupyterLab's page with each figure's alternative text (the lab template leaves it out).
HTML_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
alt="{{ ((output | get_metadata('alt', 'image/png')) or 'a figure') | escape_html }}">
</div>
{%- endblock data_png %}
"""


def notebook_html(path: str | Path) -> str:
    """An executed notebook as one HTML page, its figures described by their alt text."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"earth.html.j2": HTML_TEMPLATE})],
                            template_file="earth.html.j2")
    return exporter.from_notebook_node(nbformat.read(path, as_version=4))[0]


def check_inputs(run: str | Path, data: str | Path) -> None:
    """Fail fast, before TensorFlow loads: ``data`` must hold images and ``run`` a model."""
    from earth_lib.images import list_images

    folder = Path(data)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"Image folder not found: {folder}.")
    if not list_images(folder):
        raise DatasetNotFoundError(f"{folder}: no image files in it (or its sub-folders); "
                                   "nothing to predict or evaluate.")
    load_run(run)


def store_checked_outputs(executed: str | Path, source: str | Path) -> int:
    """Copy the outputs of ``# NBVAL_CHECK_OUTPUT`` cells from an executed run into a notebook.

    Every other output is cleared, so the committed notebook stays small and holds no
    stderr; nbval then compares only these stable outputs (class names, split sizes,
    the search space). Returns the number of cells updated.
    """
    import nbformat

    run = nbformat.read(executed, as_version=4)
    nb = nbformat.read(source, as_version=4)
    by_source = {c.source: c for c in run.cells if c.cell_type == "code"}
    updated = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        cell.outputs = []
        if "NBVAL_CHECK_OUTPUT" in cell.source and cell.source in by_source:
            ran = by_source[cell.source]
            cell.outputs = [o for o in ran.outputs if o.get("name") != "stderr"]
            cell.execution_count = ran.execution_count  # nbval skips "unrun" cells
            updated += 1
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, source)
    return updated


def run_learning_curve(params_file: str, run_dir: str | None, overrides: str,
                       worker: bool) -> None:
    """Run the curve's missing cells: this process and ``curve.workers - 1`` more."""
    from earth_lib.experiments.curve_run import run_curve, worker_argv

    overrides = " ".join(overrides.split())
    if worker:
        run = Run(Path(run_dir), load_params(params_file, overrides), params_file, overrides)
        run_curve(run.params, run)
        return
    run = Run.begin("curve", params_file, run_dir, overrides)
    done = run_curve(run.params, run, worker_argv(params_file, str(run.path), overrides))
    run.finish("curve", cells_run_here=done)


def parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per task, each with its arguments."""
    ap = argparse.ArgumentParser(prog="earth-resnet", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run-notebook", help="execute a notebook with a params file (papermill)")
    p.add_argument("notebook")
    p.add_argument("--params", required=True)
    p.add_argument("--run-dir")
    p.add_argument("--set", default="", metavar="KEY=VALUE ...",
                   help="overrides, e.g. 'train.epochs=5 search.steps=1' (validated like the file)")
    p = sub.add_parser("check-params", help="validate parameter files")
    p.add_argument("files", nargs="+")
    p.add_argument("--set", default="", metavar="KEY=VALUE ...", help="overrides to check too")
    p.add_argument("--print", action="store_true", dest="show",
                   help="print the resolved parameters (defaults filled in) as YAML")
    p = sub.add_parser("plan", help="measure this machine and print the plan a budgeted run "
                                    "would follow (without a budget: what its search will "
                                    "do); runs and writes nothing")
    p.add_argument("params")
    p.add_argument("--set", default="", metavar="KEY=VALUE ...",
                   help="overrides, e.g. 'budget_minutes=60'")
    p = sub.add_parser("data", help="download / verify / extract a public data set")
    p.add_argument("dataset")
    p.add_argument("--root", default=None)
    p.add_argument("--archive-dir", default="data/archives")
    p.add_argument("--no-download", action="store_true")
    p = sub.add_parser("evaluate", help="evaluate a run's model on a labelled class folder")
    p.add_argument("run")
    p.add_argument("data")
    p.add_argument("--labels", default=None, help="multi-label runs: the folder's labels CSV")
    p = sub.add_parser("predict", help="predict every image of a folder with a run's model")
    p.add_argument("run")
    p.add_argument("data")
    p = sub.add_parser("export", help="write <run>/export/: a SavedModel and its preprocessing")
    p.add_argument("run")
    sub.add_parser("params-doc", help="print every parameter as a Markdown table")
    p = sub.add_parser("results", help="print a Markdown table of the finished runs")
    p.add_argument("runs", nargs="*", help="run names (default: every run)")
    p.add_argument("--outputs", default="outputs")
    p = sub.add_parser("readme", help="regenerate the generated blocks of README.md and "
                                      "docs/*.md from outputs/")
    p.add_argument("files", nargs="*", help="default: README.md and docs/*.md")
    p.add_argument("--outputs", default="outputs")
    p = sub.add_parser("compare-results",
                       help="print the comparison table of a `make compare` run (so far)")
    p.add_argument("run")
    p = sub.add_parser("pair", help="two trained runs on run A's test images, image by image "
                                    "(McNemar, bootstrap interval)")
    p.add_argument("run_a", help="a make all run: its split.csv gives the test images")
    p.add_argument("run_b", help="another run or a comparison arm (arms/<arm>/seed<k>)")
    p = sub.add_parser("curve", help="run the learning curve's missing cells (make curve)")
    p.add_argument("params")
    p.add_argument("--run-dir")
    p.add_argument("--set", default="", metavar="KEY=VALUE ...", help="overrides")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p = sub.add_parser("curve-report", help="the learning curve's tables and figures, from "
                                            "its records alone")
    p.add_argument("records", nargs="?", default=CURVE_RECORDS)
    p.add_argument("--docs", default=None,
                   help="where curve.md and its figures go (default: docs/ for "
                        f"{CURVE_RECORDS}, docs/<folder name>/ for other records)")
    p.add_argument("--evidence", default=None,
                   help="where the planner's advice goes (default: for "
                        f"{CURVE_RECORDS}, the file the planner reads, "
                        "earth_lib/planning/curve_evidence.json; for other records and '': "
                        "nowhere)")
    p.add_argument("--title", default=None, help="the page's title (default: the curve's)")
    p = sub.add_parser("record-budget", help="keep a finished budgeted run's plan, time and "
                                             "scores as a record (for the README's table)")
    p.add_argument("run")
    p.add_argument("--to", default="results/budget")
    p = sub.add_parser("record-run", help="keep a run's records (small JSON files) in "
                                          "results/runs/ for the generated docs")
    p.add_argument("run")
    p.add_argument("--to", default=None, help="default: results/runs")
    p = sub.add_parser("store-checked-outputs",
                       help="keep only nbval-checked outputs, taken from an executed notebook")
    p.add_argument("executed")
    p.add_argument("notebook")
    return ap


def _run_notebook(args: argparse.Namespace) -> None:
    """Execute a notebook with a parameter file into its run folder."""
    run_notebook(args.notebook, args.params, args.run_dir, args.set)


def _check_params(args: argparse.Namespace) -> None:
    """Validate parameter files (and overrides) without starting TensorFlow."""
    import yaml

    for f in args.files:
        params = load_params(f, args.set)
        print(f"{f}{' with ' + args.set if args.set.strip() else ''}: ok")
        if args.show:
            if params.get("budget_minutes"):
                print("# budget_minutes is set: the run's plan (plan.json) replaces the values "
                      "it chooses that the file does not set")
            print(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), end="")


def _plan(args: argparse.Namespace) -> None:
    """Print the plan a budgeted run of this file would follow, without running it."""
    given, source = read_given(args.params, " ".join(args.set.split()))
    params = validate(given, source)
    raw = raw_folder(params, args.params)
    if params["budget_minutes"] is None:
        search_from_folder(params, given, args.params, raw)
        return
    plan_from_folder(params, given, args.params, raw, None)


def search_from_folder(params: dict[str, Any], given: Any, params_file: str | Path,
                       raw: Path) -> None:
    """Without a budget: count the images of ``raw`` and print what the search will do."""
    from earth_lib.params import data_selection
    from earth_lib.planning import set_by_hand
    from earth_lib.planning.evidence import settle_search
    from earth_lib.planning.measure import summarize_folder

    if not raw.is_dir():
        raise DatasetNotFoundError(f"{params_file}: {raw} is not a folder yet (make data "
                                   "first).")
    summary = summarize_folder(raw, data_selection(params), params["seed"], sample=1,
                               on_bad_file=params["data"]["on_bad_file"])[0]
    images = summary.images
    train = max(1, round(images * params["split"]["train"]))
    print(f"{params_file}: budget_minutes is not set, so nothing is planned: image size, "
          f"model and epochs are the file's (SET=\"budget_minutes=30\" plans them). "
          f"{images:,} images, about {train:,} to train.")
    lines = settle_search(train, params["search"]["enabled"], set_by_hand(given),
                          task=params["task"], run_data={
                              "bands": summary.bands,
                              "image_size": params["preprocess"]["image_size"]})[2]
    print("\n".join(lines))


def _data(args: argparse.Namespace) -> None:
    """Download, verify and extract a public data set into class folders."""
    from earth_lib.data.datasets import fetch_dataset

    root = args.root or f"data/raw/{args.dataset}"
    path = fetch_dataset(args.dataset, root, args.archive_dir, not args.no_download)
    print(f"{args.dataset}: class folders in {path}")


def _evaluate(args: argparse.Namespace) -> None:
    """Score a run's model on a labelled folder, holding the run's lock."""
    check_inputs(args.run, args.data)
    from earth_lib.evaluation import evaluate_folder
    from earth_lib.metrics import headline

    with run_lock(args.run):
        m = evaluate_folder(args.run, args.data, labels_csv=args.labels)
    print(f"{headline(m)}, macro F1 {m['macro_f1']:.4f}; {len(m['skipped'])} file(s) "
          "skipped")


def _predict(args: argparse.Namespace) -> None:
    """Predict every image of a folder with a run's model, holding the run's lock."""
    check_inputs(args.run, args.data)
    from earth_lib.evaluation import predict_folder

    with run_lock(args.run):
        print(f"predictions written to {predict_folder(args.run, args.data)}")


def _export(args: argparse.Namespace) -> None:
    """Write the run's SavedModel and serving.json, holding the run's lock."""
    from earth_lib.evaluation import export_for_serving

    load_run(args.run)
    with run_lock(args.run):
        print("SavedModel and serving.json written to "
              f"{export_for_serving(args.run)}")


def _params_doc(args: argparse.Namespace) -> None:
    """Print every parameter as a Markdown table."""
    print(params_markdown())


def _results(args: argparse.Namespace) -> None:
    """Print a Markdown table of the finished runs."""
    print(results_markdown(args.outputs, args.runs))


def _readme(args: argparse.Namespace) -> None:
    """Rewrite the generated blocks of README.md and docs/*.md, and the Colab cells and badges."""
    from earth_lib.colab import sync_colab

    for path in args.files or ["README.md", *sorted(map(str, Path("docs").glob("*.md")))]:
        for line in regenerate_readme(path, args.outputs):
            print(f"{path}: {line}")
    if not args.files:
        for path in sync_colab(".") or ["(none: in step with pyproject.toml)"]:
            print(f"Colab cells and badges rewritten: {path}")


def _pair(args: argparse.Namespace) -> None:
    """Pair two runs on run A's test images and print what differs."""
    from earth_lib.experiments.pairing import pair_runs

    r = pair_runs(args.run_a, args.run_b)
    print(f"{r['images']} test images: A {100 * r['accuracy_a']:.2f} %, B "
          f"{100 * r['accuracy_b']:.2f} %; A - B {r['diff_points']:+.2f} points, 95 % "
          f"interval [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]; only A right "
          f"{r['only_a_right']}, only B right {r['only_b_right']}, McNemar p "
          f"{r['mcnemar_p']:.2g}")
    for key in "ab":
        if r[f"matches_record_{key}"] is False:
            print(f"warning: run {key.upper()}'s answers differ from its recorded test "
                  f"accuracy {r[f'recorded_accuracy_{key}']}: not the images it was "
                  "tested on?")
    print(f"written to {r['written_to']}")


def _compare_results(args: argparse.Namespace) -> None:
    """Print the comparison table and verdict of a compare run so far."""
    from earth_lib.experiments.compare import (
        load_results,
        summary_table,
        table_markdown,
        verdict,
    )

    results = load_results(args.run)
    if not results:
        raise FileNotFoundError(f"{args.run}: no finished arm (arms/*/seed*/result.json)")
    table = summary_table(results)
    print(table_markdown(table) + "\n\n" + verdict(table))


def _curve(args: argparse.Namespace) -> None:
    """Run the learning curve's missing cells."""
    run_learning_curve(args.params, args.run_dir, args.set, args.worker)


def _curve_report(args: argparse.Namespace) -> None:
    """Write docs/curve.md and its figures from the curve's records."""
    from earth_lib.experiments.report import write_curve_report
    from earth_lib.planning.evidence import EVIDENCE_FILE

    main = Path(args.records).resolve() == Path(CURVE_RECORDS).resolve()
    evidence = (EVIDENCE_FILE if main else None) if args.evidence is None \
        else args.evidence or None
    docs = args.docs or ("docs" if main else str(Path("docs") / Path(args.records).name))
    written = write_curve_report(args.records, docs, evidence,
                                 **({"title": args.title} if args.title else {}))
    print(f"written: {', '.join(map(str, written))}")


def _record_budget(args: argparse.Namespace) -> None:
    """Write results/budget/<run>.json from a finished budgeted run."""
    from earth_lib.io import atomic_write_json
    from earth_lib.report.tables import budget_record

    record = budget_record(args.run)
    path = Path(args.to) / f"{record['run']}.json"
    atomic_write_json(path, record)
    print(f"written: {path}")


def _record_run(args: argparse.Namespace) -> None:
    """Copy a run's records to results/runs/<run>/."""
    from earth_lib.report.tables import RUN_RECORDS, record_run

    print(f"written: {record_run(args.run, args.to or RUN_RECORDS)}")


def _store_checked_outputs(args: argparse.Namespace) -> None:
    """Keep only the nbval-checked outputs of an executed notebook."""
    n = store_checked_outputs(args.executed, args.notebook)
    print(f"{args.notebook}: stored the outputs of {n} checked cell(s)")


#: Each sub-command's handler.
COMMANDS = {
    "run-notebook": _run_notebook,
    "check-params": _check_params,
    "plan": _plan,
    "data": _data,
    "evaluate": _evaluate,
    "predict": _predict,
    "export": _export,
    "params-doc": _params_doc,
    "results": _results,
    "readme": _readme,
    "pair": _pair,
    "compare-results": _compare_results,
    "curve": _curve,
    "curve-report": _curve_report,
    "record-budget": _record_budget,
    "record-run": _record_run,
    "store-checked-outputs": _store_checked_outputs,
}


def main(argv: list[str] | None = None) -> int:
    """``python -m earth_lib.cli <command> ...``: 2 on a user error, 1 on a notebook's."""
    args = parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (EarthResnetError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__name__ != "PapermillExecutionError":
            raise
        print(f"error: {Path(args.notebook).name} stopped in cell {err.exec_count}: "
              f"{err.ename}: {err.evalue} (the executed notebook is kept as "
              f"*.failed.ipynb in the run folder)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
