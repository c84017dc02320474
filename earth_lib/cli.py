"""Command line used by the Makefile: run notebooks (papermill), fetch data, evaluate, predict."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from earth_lib import progress
from earth_lib.errors import DatasetNotFoundError, EarthResnetError
from earth_lib.params import load_params
from earth_lib.run import (
    METRICS_FILE,
    Run,
    load_run,
    mark_failed,
    project_root,
    run_dir_for,
    run_lock,
)


def run_notebook(notebook: str | Path, params_file: str | Path,
                 run_dir: str | Path | None = None, overrides: str = "") -> Path:
    """Validate the params file (and overrides), execute the notebook into the run folder.

    Writes the executed notebook and its HTML export beside the results.

    The executed notebook is written as ``<name>.running.ipynb`` and renamed on success,
    or to ``<name>.failed.ipynb`` on failure, so a failed run is never taken as done.
    """
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    from earth_lib.datasets import local_copy
    from earth_lib.io import atomic_write_text

    overrides = " ".join(overrides.split())
    params = load_params(params_file, overrides)  # fail fast, before a kernel starts
    raw = local_copy(params) or Path(params["data"]["raw_dir"])
    if params["data"]["dataset"] == "folder" and not raw.is_dir():
        raise DatasetNotFoundError(f"{params_file}: data.raw_dir {raw} is not a folder. Put one "
                                   "sub-folder of images per class there, or fix data.raw_dir.")
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # cell output in the terminal
    live = not progress.headless()  # a person at a terminal: papermill's cell bar is useful
    os.environ.setdefault(progress.ENV, "lines")  # the kernel inherits it: no frozen widgets
    root = project_root()
    run_dir = Path(run_dir or run_dir_for(params_file, overrides=overrides))
    Run(run_dir).mark()
    name = Path(notebook).stem
    running, done = run_dir / f"{name}.running.ipynb", run_dir / f"{name}.ipynb"
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
        html, _ = HTMLExporter().from_notebook_node(nbformat.read(done, as_version=4))
        atomic_write_text(run_dir / f"{name}.html", html)
    return done


def check_inputs(run: str | Path, data: str | Path) -> None:
    """Fail fast, before TensorFlow loads: ``data`` must hold images and ``run`` a model."""
    from earth_lib.images import IMAGE_EXTENSIONS

    folder = Path(data)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"Image folder not found: {folder}.")
    if not any(f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
               for f in folder.rglob("*") if f.is_file()):
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
            "| values from | search best val loss | literature val loss | trials | wall time |",
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
        rows.append(
            f"| {folder.name} | {rec['params']['data']['dataset']} | {m.test['n']} "
            f"| {m.test['accuracy']:.3f} | {m.test['macro_f1']:.3f} "
            f"| {num((m.classical_baseline or {}).get('accuracy'))} | {m.search['chosen_by']} "
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
    from earth_lib.compare import load_results, summary_table, table_markdown

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
    """The figures of ``make bench`` as a table, each beside its target (issue 11)."""
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


GENERATED = re.compile(r"(<!-- generated: (?P<kind>\w+) (?P<args>[^>]*?) -->\n)(?P<body>.*?)"
                       r"(<!-- /generated -->)", re.S)


def regenerate_readme(readme: str | Path = "README.md", outputs: str | Path = "outputs"
                      ) -> list[str]:
    """Rewrite README's generated blocks from the run folders; returns what was done.

    A block is ``<!-- generated: KIND RUN... -->`` ... ``<!-- /generated -->``; KIND is
    ``results`` (the runs' table and sentences), ``multilabel`` (multi-label runs' table),
    ``compare`` (a comparison's table, verdict
    and evidence), ``variants`` (several comparisons, one row per arm and folder) or
    ``bench`` (``make bench``'s figures beside their targets). A block
    whose runs are not under ``outputs`` is left as it is (a fresh clone keeps the README).
    """
    from earth_lib.compare import (
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
        missing = [r for r in runs if not (Path(outputs) / r).is_dir()]
        if missing:
            report.append(f"{kind} {' '.join(runs)}: kept ({', '.join(missing)} not in {outputs})")
            return match[0]
        unfinished = [r for r in runs if kind in ("results", "multilabel")
                      and Run(Path(outputs) / r).state() != "finished"]
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m earth_lib.cli <command> ...``."""
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
    p = sub.add_parser("readme", help="regenerate README.md's result blocks from outputs/")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--outputs", default="outputs")
    p = sub.add_parser("compare-results",
                       help="print the comparison table of a `make compare` run (so far)")
    p.add_argument("run")
    p = sub.add_parser("pair", help="two trained runs on run A's test images, image by image "
                                    "(McNemar, bootstrap interval)")
    p.add_argument("run_a", help="a make all run: its split.csv gives the test images")
    p.add_argument("run_b", help="another run or a comparison arm (arms/<arm>/seed<k>)")
    p = sub.add_parser("store-checked-outputs",
                       help="keep only nbval-checked outputs, taken from an executed notebook")
    p.add_argument("executed")
    p.add_argument("notebook")
    args = ap.parse_args(argv)
    try:
        if args.command == "run-notebook":
            run_notebook(args.notebook, args.params, args.run_dir, args.set)
        elif args.command == "check-params":
            for f in args.files:
                load_params(f, args.set)
                print(f"{f}{' with ' + args.set if args.set.strip() else ''}: ok")
        elif args.command == "data":
            from earth_lib.datasets import fetch_dataset

            root = args.root or f"data/raw/{args.dataset}"
            path = fetch_dataset(args.dataset, root, args.archive_dir, not args.no_download)
            print(f"{args.dataset}: class folders in {path}")
        elif args.command == "evaluate":
            check_inputs(args.run, args.data)
            from earth_lib.evaluation import evaluate_folder
            from earth_lib.metrics import headline

            with run_lock(args.run):
                m = evaluate_folder(args.run, args.data, labels_csv=args.labels)
            print(f"{headline(m)}, macro F1 {m['macro_f1']:.4f}; {len(m['skipped'])} file(s) "
                  "skipped")
        elif args.command == "predict":
            check_inputs(args.run, args.data)
            from earth_lib.evaluation import predict_folder

            with run_lock(args.run):
                print(f"predictions written to {predict_folder(args.run, args.data)}")
        elif args.command == "export":
            from earth_lib.run import export_for_serving

            load_run(args.run)
            with run_lock(args.run):
                print("SavedModel and serving.json written to "
                      f"{export_for_serving(args.run)}")
        elif args.command == "params-doc":
            print(params_markdown())
        elif args.command == "results":
            print(results_markdown(args.outputs, args.runs))
        elif args.command == "readme":
            for line in regenerate_readme(args.readme, args.outputs):
                print(line)
        elif args.command == "pair":
            from earth_lib.compare import pair_runs

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
        elif args.command == "compare-results":
            from earth_lib.compare import load_results, summary_table, table_markdown, verdict

            results = load_results(args.run)
            if not results:
                raise FileNotFoundError(f"{args.run}: no finished arm (arms/*/seed*/result.json)")
            table = summary_table(results)
            print(table_markdown(table) + "\n\n" + verdict(table))
        elif args.command == "store-checked-outputs":
            n = store_checked_outputs(args.executed, args.notebook)
            print(f"{args.notebook}: stored the outputs of {n} checked cell(s)")
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
