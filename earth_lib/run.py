"""One owner for a run folder ``outputs/<run>/``: its paths, records, metrics and model.

Every module and notebook that reads or writes a run goes through :class:`Run`:

* ``run.json``: what produced the run (parameters, package versions, git commit,
  machine) and when each stage (notebook) started and finished;
* ``metrics.json``: a :class:`Metrics` record, versioned by its ``schema`` field;
* ``model.keras`` + ``model_card.json`` (a :class:`ModelCard`) + ``band_pca.npz``: the
  trained network and what evaluate/predict need to feed it as it was trained;
* ``figures/``, ``split.csv``, ``skipped_files.csv``, ``search_history.csv``,
  ``evaluation/<name>/``, ``predictions/<name>/``.

A record of another schema (older or newer version) is refused with a message saying
what to do.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earth_lib.errors import ParameterError, RunFormatError, RunNotFoundError
from earth_lib.io import atomic_write_csv, atomic_write_json, file_digest
from earth_lib.params import read_given, validate
from earth_lib.paths import enter_project_root, mark, run_dir_for
from earth_lib.planning import RunPlan, budget_line, read_plan, set_by_hand, with_plan
from earth_lib.planning.evidence import settle_search, shape_data
from earth_lib.provenance import (
    compute_record,
    cpu_model,
    git_commit,
    installed_packages,
    package_versions,
)

if TYPE_CHECKING:
    import keras

    from earth_lib.analysis import BandPCA

METRICS_SCHEMA = 2
CARD_SCHEMA = 2
#: The files of a run folder, each named once (``Run`` gives their paths).
METRICS_FILE = "metrics.json"
RESULT_FILE = "result.json"  # a comparison arm's result (arms/<arm>/seed<k>/)
PREDICTIONS_FILE = "predictions.csv"
UNREADABLE_FILE = "unreadable.csv"
SKIPPED_FILE = "skipped_files.csv"
BAND_PCA_FILE = "band_pca.npz"
SERVING_FILE = "serving.json"  # export/: how to prepare images for the SavedModel


# --- Typed records ----------------------------------------------------------------------

def _from_record(cls, data: dict[str, Any], path: Path, current: int):
    """Build a record dataclass from JSON; another schema than this version's is refused."""
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or schema > current:
        raise RunFormatError(
            f"{path} has schema {schema!r}; this earth-resnet reads up to {current}. Update "
            "earth-resnet (git pull; make env), or rerun the run with this version.")
    if schema < current:
        raise RunFormatError(
            f"{path} has schema {schema}, from an older earth-resnet; this one reads schema "
            f"{current}. Rerun the run with this version (make all PARAMS=...).")
    names = {f.name for f in fields(cls)}
    missing = [f.name for f in fields(cls) if f.name not in data and f.default is MISSING]
    unknown = sorted(set(data) - names)
    if missing or unknown:
        raise RunFormatError(
            f"{path} is not a {cls.__name__} record (missing {missing}, unknown {unknown}); "
            "it is damaged or from another program. Rerun the run (make all PARAMS=...).")
    return cls(**{**data, "schema": current})


@dataclass
class ModelCard:
    """What a trained model needs beside it: classes, input shape, preprocessing, values."""

    class_names: list[str]
    input_shape: list[int]
    preprocess: dict[str, Any]
    hyperparameters: dict[str, Any]
    tta: bool = False
    band_pca: str | None = None
    #: multi-label models: each label's decision threshold (tuned on validation); else None
    thresholds: list[float] | None = None
    #: SHA-256 of the model.keras this card describes: a model and a card from two
    #: trainings (a save killed between the two files) are refused, never mixed
    model_sha256: str | None = None
    schema: int = CARD_SCHEMA


@dataclass
class Metrics:
    """Everything a classifier run measured; ``metrics.json`` is this record as JSON.

    ``test`` and ``classical_baseline`` are ``metrics.evaluate_predictions`` results;
    ``search`` and ``literature_baseline`` come from ``search.Selection.record``.
    """

    test: dict[str, Any]
    classical_baseline: dict[str, Any] | None
    class_names: list[str]
    split_sizes: dict[str, int]
    duplicates_across_splits: int
    pca: dict[str, Any]
    search: dict[str, Any]
    literature_baseline: dict[str, Any]
    final_training: dict[str, Any]
    schema: int = METRICS_SCHEMA


# --- Where a run lives and what produced it --------------------------------------------

def mark_failed(run_dir: str | Path, notebook: str, error: str) -> None:
    """Record in ``run.json`` that a notebook of the run failed, so nothing reports the run."""
    run = Run(run_dir)
    record = run.read_record() if run.record_path.is_file() else {}
    record["failed"] = {"notebook": notebook, "error": error[:500], "at": _now()}
    atomic_write_json(run.record_path, record)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Run:
    """A run folder and the parameters it runs with.

    ``params`` is empty for a run opened only to be read (evaluate, predict, results).
    """

    path: Path
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    params_file: str | None = None
    overrides: str = ""

    def __post_init__(self):
        self.path = Path(self.path)
        p = self.path  # where each file of the run lives:
        self.figures = p / "figures"
        self.record_path = p / "run.json"
        self.metrics_path = p / METRICS_FILE
        self.model_path = p / "model.keras"
        self.card_path = p / "model_card.json"
        self.search_history = p / "search_history.csv"  # one row per trial; resumed from
        self.split_csv = p / "split.csv"  # every image's path, class and split
        self.training_log = p / "training_log.csv"  # the final training, one row per epoch
        self.result_path = p / RESULT_FILE  # a comparison arm's result
        self.comparison_path = p / "comparison.json"  # a comparison's table and verdict
        self.plan_path = p / "plan.json"  # a budgeted run's plan (earth_lib.planning)

    @property
    def plan(self) -> RunPlan | None:
        """The run's plan when it has a budget (``budget_minutes``), else None."""
        return read_plan(self.plan_path)

    def budget(self, stage: str, log: Callable[[str], None] = print) -> None:
        """Say where a budgeted run stands before ``stage`` (nothing without a plan)."""
        plan = self.plan
        if plan is not None:
            log(budget_line(plan, stage))

    def follow_evidence(self, train_images: int, log: Callable[[str], None] = print,
                        evidence: dict[str, Any] | None = None,
                        shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """The parameters, with ``search.enabled: auto`` settled by the learning curve.

        At ``train_images`` training images (``planning.evidence.auto_choices``; ``evidence``:
        the committed file unless given); the choices and their reasons go into ``run.json``
        (``evidence``). A run that set the search on or off keeps it and hears what the
        curve says of it. ``shape``: an image's (height, width, bands), to say where the
        run's data differ from the curve's.
        """
        enabled = self.params["search"]["enabled"]
        given = read_given(self.params_file, self.overrides)[0] \
            if enabled == "auto" and self.params_file else {}
        choices, reasons, lines = settle_search(train_images, enabled, set_by_hand(given),
                                                evidence, self.params["task"],
                                                shape_data(shape))
        for line in lines:
            log(line)
        if not choices:
            return self.params
        for key, value in choices.items():
            section, name = key.split(".")
            self.params[section][name] = value  # in place: the notebook's P is this dict
        record = self.read_record() if self.record_path.is_file() else {}
        record["params"] = self.params
        record["evidence"] = {"train_images": train_images, "choices": choices,
                              "reasons": reasons}
        atomic_write_json(self.record_path, record)
        return self.params

    def mark(self) -> Path:
        """Make the folder and mark it as a run of earth-resnet (what ``make clean`` removes)."""
        return mark(self.path, "run")

    def state(self) -> str:
        """``finished`` (every stage ended), ``failed`` (a notebook failed) or ``running``.

        A run killed midway stays ``running``: only a finished run is reported.
        """
        if not self.record_path.is_file():
            return "running"
        record = self.read_record()
        if record.get("failed"):
            return "failed"
        stages = record.get("stages", {}).values()
        return "finished" if stages and all("finished" in s for s in stages) else "running"

    def figure(self, name: str) -> Path:
        """Where the figure ``name`` (without extension) is saved."""
        return self.figures / f"{name}.png"

    def tensorboard_dir(self, name: str) -> Path | None:
        """``tensorboard/<name>`` when ``logging.tensorboard`` is on, else None (no logs)."""
        if not self.params.get("logging", {}).get("tensorboard", False):
            return None
        if importlib.util.find_spec("tensorboard") is None:
            raise ParameterError(
                f"{self.params_file}: logging.tensorboard is true but TensorBoard is not "
                "installed: pip install tensorboard (or the extra: pip install -e "
                "'.[tensorboard]'), or set logging.tensorboard: false.")
        return self.path / "tensorboard" / name

    def training_logs(self) -> dict[str, Path | None]:
        """``train_model`` keyword arguments that log the final training into this run."""
        return {"csv_log": self.training_log, "tensorboard_dir": self.tensorboard_dir("final")}

    def output_dir(self, kind: str, name: str) -> Path:
        """``evaluation/<name>`` or ``predictions/<name>``, with its ``figures/``."""
        out = self.path / kind / name
        (out / "figures").mkdir(parents=True, exist_ok=True)
        return out

    # Stages --------------------------------------------------------------------------------
    @classmethod
    def begin(cls, stage: str, params_file: str | Path, run_dir: str | Path | None = None,
              overrides: str = "") -> Run:
        """Start a stage (notebook) and return its run.

        The project root becomes the working folder, the parameters (file plus ``key=value``
        overrides, and the run's plan under them when it has a budget) are checked, the run
        folder is made (``outputs/<params stem>[.set-<hash>]`` unless given) and the start
        is recorded.
        """
        enter_project_root()
        overrides = " ".join(overrides.split())
        given, source = read_given(params_file, overrides)
        params = validate(given, source)
        run = cls(Path(run_dir) if run_dir else run_dir_for(params_file, overrides=overrides),
                  params, str(params_file), overrides)
        if params["budget_minutes"] is not None:
            run.params = with_plan(given, source, read_plan(run.plan_path))
        run.mark()
        run.figures.mkdir(parents=True, exist_ok=True)
        run._record_stage(stage, finished=False)
        return run

    def finish(self, stage: str, **extra: Any) -> Path:
        """Record the end of a stage, with any figures worth keeping (counts, sizes)."""
        return self._record_stage(stage, finished=True, extra=extra)

    def _record_stage(self, stage: str, finished: bool,
                      extra: dict[str, Any] | None = None) -> Path:
        """Add or update one stage in ``run.json``; atomic, keeps the other stages."""
        record = self.read_record() if self.record_path.is_file() else {}
        if not finished:
            record.pop("failed", None)
        stage_rec = record.setdefault("stages", {}).setdefault(stage, {})
        # the code that ran is the commit checked out when the stage began (its modules
        # were imported then), even if the checkout moves while it runs
        now = git_commit()
        commit = stage_rec.get("git_commit", now) if finished else now
        record.update({"params_file": self.params_file, "overrides": self.overrides,
                       "params": self.params,
                       "packages": package_versions(), "installed": installed_packages(),
                       "git_commit": commit,
                       "machine": {"platform": platform.platform(), "cpu": cpu_model(),
                                   "processor": platform.machine(), "cpus": os.cpu_count()}})
        if self.plan_path.is_file():
            record["plan"] = read_json(self.plan_path)
        if finished:
            stage_rec["finished"] = _now()
            if now != commit:
                stage_rec["git_commit_at_finish"] = now
            # this process's peak resident memory (Linux: kB; macOS: bytes)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            stage_rec["peak_rss_mb"] = round(peak / (1024 ** 2 if sys.platform == "darwin"
                                                     else 1024))
            compute = compute_record()
            if compute is not None:
                stage_rec["compute"] = compute
        else:
            stage_rec.clear()
            stage_rec.update({"started": _now(), "git_commit": commit})
        stage_rec.update(extra or {})
        atomic_write_json(self.record_path, record)
        return self.record_path

    def read_record(self) -> dict[str, Any]:
        """``run.json`` as a dict."""
        return read_json(self.record_path)

    def wall_minutes(self) -> float | None:
        """Minutes from the first stage's start to the last stage's end (None if unfinished)."""
        stages = self.read_record().get("stages", {}).values() if self.record_path.is_file() \
            else []
        try:
            t = [datetime.fromisoformat(s[k]) for s in stages for k in ("started", "finished")]
        except (KeyError, ValueError):
            return None
        return (max(t) - min(t)).total_seconds() / 60 if t else None

    # Files of the run ----------------------------------------------------------------------
    def write_skipped(self, skipped: list[tuple[str, str]],
                      name: str | Path = SKIPPED_FILE) -> Path:
        """The files that were not used, and why (CSV, atomic); ``name`` inside the run."""
        path = self.path / name
        atomic_write_csv(path, ["path", "reason"], skipped)
        return path

    def save_metrics(self, metrics: Metrics) -> Path:
        """Write ``metrics.json`` atomically."""
        atomic_write_json(self.metrics_path, asdict(metrics))
        return self.metrics_path

    def load_metrics(self) -> Metrics:
        """Read ``metrics.json`` (another schema refused, saying why)."""
        if not self.metrics_path.is_file():
            raise RunNotFoundError(f"{self.metrics_path} not found: the classifier notebook "
                                   f"has not finished in {self.path} (make all PARAMS=...).")
        return _from_record(Metrics, read_json(self.metrics_path), self.metrics_path,
                            METRICS_SCHEMA)

    def save_model(self, model: keras.Model, class_names: list[str],
                   preprocess: dict[str, Any], hyperparameters: dict[str, Any],
                   tta: bool = False, band_pca: BandPCA | None = None,
                   thresholds: Sequence[float] | None = None) -> ModelCard:
        """Save ``model.keras``, the band PCA if any, and ``model_card.json``, each atomically.

        The card lets evaluate/predict apply exactly the preprocessing the model was trained
        with, and holds the model file's digest: a save killed between the two files leaves
        a pair that :meth:`load_model` refuses.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".model.", suffix=".keras", dir=self.path)
        os.close(fd)
        tmp = Path(name)
        try:
            model.save(tmp)
            digest = file_digest(tmp)
            tmp.replace(self.model_path)
        finally:
            tmp.unlink(missing_ok=True)
        if band_pca is not None:
            band_pca.save(self.path / BAND_PCA_FILE)
        card = ModelCard(list(class_names), list(model.input_shape[1:]), dict(preprocess),
                         dict(hyperparameters), bool(tta),
                         BAND_PCA_FILE if band_pca is not None else None,
                         None if thresholds is None else [float(t) for t in thresholds],
                         digest)
        atomic_write_json(self.card_path, asdict(card))
        return card

    def load_card(self) -> ModelCard:
        """Read ``model_card.json`` (another schema refused, saying why)."""
        return _from_record(ModelCard, read_json(self.card_path), self.card_path, CARD_SCHEMA)

    def load_model(self) -> tuple[keras.Model, ModelCard]:
        """The trained network and its card, checked to belong together.

        Keras' ``safe_mode`` stays on: a model file that would run code on loading (a
        ``Lambda`` layer) is refused. A run folder from elsewhere is code all the same: load
        only runs you trust.
        """
        card = self.load_card()
        if card.model_sha256 is not None and file_digest(self.model_path) != card.model_sha256:
            raise RunFormatError(
                f"{self.model_path} is not the model {self.card_path.name} (model_card) "
                "describes: a save was interrupted between the two. Rerun the training.")
        import keras

        import earth_lib.nn.layers  # noqa: F401  (registers the network's custom layer)

        return keras.models.load_model(self.model_path, safe_mode=True), card

    def load_band_pca(self, card: ModelCard) -> BandPCA | None:
        """The spectral band PCA the model was trained behind, if any."""
        from earth_lib.analysis import BandPCA

        return BandPCA.load(self.path / card.band_pca) if card.band_pca else None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a run file; a damaged file is a RunFormatError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFormatError(f"{path}: cannot be read as JSON ({err}); the file is damaged. "
                             "Rerun the run (make all PARAMS=...).") from err
    if not isinstance(data, dict):
        raise RunFormatError(f"{path}: expected a JSON object; the file is damaged.")
    return data


def load_run(path: str | Path, need_model: bool = True) -> Run:
    """Open an existing run folder to read it (evaluate, predict, results).

    Raises:
        RunNotFoundError: no such folder, or (``need_model``) no trained model in it.
    """
    run = Run(Path(path))
    if not run.path.is_dir():
        raise RunNotFoundError(f"Run folder not found: {run.path}. Runs live in outputs/<name>/ "
                               "(make all PARAMS=params/<name>.yaml).")
    if need_model:
        for p in (run.model_path, run.card_path):
            if not p.is_file():
                raise RunNotFoundError(f"{p} not found: is {run.path} a finished run folder "
                                       "(make all PARAMS=...)?")
    return run
