# earth-resnet: `make all` runs the whole method, `make test` runs the tests.
# Variables (override on the command line, e.g. `make all PARAMS=params/paper.yaml`):
PARAMS ?= params/default.yaml
# SET: overrides on top of PARAMS, e.g. SET="train.epochs=5 search.steps=1"; such a run goes
# to outputs/<params name>.set-<hash of SET>/, never the plain one (earth_lib.paths.run_name).
SET ?=
OUTPUTS ?= outputs
PYTHON ?= python3
# Every value a user gives reaches the shell single-quoted ($(call q,...)), and file names
# in rules have their spaces escaped ($(call esc,...)): paths with spaces, quotes or accents
# work, and no value is ever run as a command.
space := $(subst ,, )
q = '$(subst ','\'',$(1))'
esc = $(subst $(space),\ ,$(1))
RUN_NAME := $(shell $(PYTHON) -m earth_lib.paths name $(call q,$(PARAMS)) $(call q,$(strip $(SET))))
OUT := $(OUTPUTS)/$(RUN_NAME)
OUT_ESC := $(call esc,$(OUT))
PARAMS_ESC := $(call esc,$(PARAMS))
# RUN (a run folder) and DATA (an image folder) are given by the user for evaluate/predict.
RUN ?=
DATA ?=
# OTHER: the second run for make pair
OTHER ?=
# LABELS: the labels CSV of DATA, for evaluating a multi-label run
LABELS ?=
# RECORDS: the learning curve's records (make curve-report)
RECORDS ?= results/curve
# DATA_ROOT: where generated and processed data live (make clean looks in raw/ and processed/)
DATA_ROOT ?= data
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,notebooks
# The pinned runtime set make env installs, with hashes (refresh with `make lock`): gpu.lock
# when EXTRAS has gpu. DEV_LOCK adds the tests, ruff, Ray and TensorBoard (make env-dev).
LOCK ?= requirements/$(if $(findstring gpu,$(EXTRAS)),gpu,cpu).lock
DEV_LOCK ?= requirements/dev.lock
DATASET ?= eurosat
BENCH_ARGS ?=
# TEST_WORKERS: pytest-xdist processes for make test (0: one process, in order); tests that
# share a folder or a notebook chain run on one worker (xdist_group, tests/conftest.py)
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
LIB := $(wildcard earth_lib/*.py earth_lib/*/*.py)
NB1 := notebooks/01_preprocessing.ipynb
NB2 := notebooks/02_earth_classifier.ipynb
NB3 := notebooks/03_does_the_search_pay.ipynb
UV_COMPILE := $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --quiet \
	--generate-hashes --custom-compile-command 'make lock'
RUN_NB := $(PY) -m earth_lib.cli run-notebook --params $(call q,$(PARAMS)) --run-dir $(call q,$(OUT)) --set $(call q,$(strip $(SET)))

# The targets that need a run or a folder say how to call them before anything is built.
USAGE_evaluate := RUN=outputs/<run> DATA=<folder> [LABELS=<csv>]
USAGE_predict := RUN=outputs/<run> DATA=<folder>
USAGE_pair := RUN=outputs/<run> OTHER=<run or outputs/<compare run>/arms/<arm>/seed<k>>
USAGE_export := RUN=outputs/<run>
NEEDS_evaluate := RUN DATA
NEEDS_predict := RUN DATA
NEEDS_pair := RUN OTHER
NEEDS_export := RUN
$(foreach t,$(filter evaluate predict pair export,$(MAKECMDGOALS)),$(foreach v,$(NEEDS_$(t)),\
  $(if $(strip $($(v))),,$(error usage: make $(t) $(USAGE_$(t))))))
# ... and what they name must exist, checked before an environment is built.
$(foreach t,$(filter evaluate predict pair export record-budget record-run,$(MAKECMDGOALS)),\
  $(foreach v,RUN DATA OTHER,$(if $(and $(strip $($(v))),$(filter $(v),$(NEEDS_$(t)) RUN)),\
  $(if $(wildcard $(call esc,$($(v)))),,$(error $(v)=$($(v)): no such file or folder)))))
ifneq ($(filter all preprocess classify compare curve,$(MAKECMDGOALS)),)
ifeq ($(wildcard $(PARAMS_ESC)),)
$(error PARAMS=$(PARAMS): no such parameter file (see params/, or make help))
endif
endif

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help env env-dev lock readme all plan preprocess classify compare curve curve-report record-budget record-run data evaluate predict pair export test nbval-variants test-fast lint bench lab clean

## help: list every target with its description
help:
	@echo earth-resnet targets "(PARAMS="$(call q,$(PARAMS))" -> "$(call q,$(OUT))"/):"
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /' -e 's/: /\t/' | expand -t 18

$(VENV)/.installed: pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
		|| { echo "earth-resnet needs Python 3.11 or newer; $(PYTHON) is" \
		"$$($(PYTHON) --version 2>&1 || echo missing): make PYTHON=python3.11 ..." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e '.[$(EXTRAS)]'
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed $(DEV_LOCK)
	$(PY) -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	@touch $@

## env: create .venv and install the pinned packages of LOCK, then the project (when out of date)
env: $(VENV)/.installed

## env-dev: env, plus the tests, ruff, Ray and TensorBoard of DEV_LOCK (make test does this)
env-dev: $(VENV)/.dev-installed

## lock: re-resolve requirements/{cpu,gpu,dev}.lock from pyproject.toml (every platform, 3.11+)
lock: env-dev
	$(UV_COMPILE) --extra cpu --extra notebooks -o requirements/cpu.lock
	$(UV_COMPILE) --extra gpu --extra notebooks -c requirements/cpu.lock -o requirements/gpu.lock
	$(UV_COMPILE) --extra dev --extra distributed --extra tensorboard -c requirements/cpu.lock \
		-o $(DEV_LOCK)

$(OUT_ESC)/01_preprocessing.ipynb: $(NB1) $(PARAMS_ESC) $(LIB) | $(VENV)/.installed
	$(RUN_NB) $(NB1)

$(OUT_ESC)/02_earth_classifier.ipynb: $(NB2) $(OUT_ESC)/01_preprocessing.ipynb $(PARAMS_ESC) $(LIB) | $(VENV)/.installed
	$(RUN_NB) $(NB2)

$(OUT_ESC)/03_does_the_search_pay.ipynb: $(NB3) $(OUT_ESC)/01_preprocessing.ipynb $(PARAMS_ESC) $(LIB) | $(VENV)/.installed
	$(RUN_NB) $(NB3)

## all: create the environment, then run both notebooks with PARAMS (and SET) into outputs/<run>/
all: env $(OUT_ESC)/02_earth_classifier.ipynb
	@echo Results in $(call q,$(OUT))/ "(start with report.html or report.md; metrics.json, figures/, executed notebooks)"

## plan: print the plan a budgeted PARAMS (and SET) would follow (no budget: what its search will do); runs nothing
plan: env
	$(PY) -m earth_lib.cli plan $(call q,$(PARAMS)) --set $(call q,$(strip $(SET)))

## preprocess: run notebook 1 (enhancement) with PARAMS
preprocess: env $(OUT_ESC)/01_preprocessing.ipynb

## classify: run notebook 2 (EDA, PCA, search, training, test) with PARAMS
classify: env $(OUT_ESC)/02_earth_classifier.ipynb

## compare: does the search pay? every arm at one budget, fully trained, over seeds (notebook 3)
compare: env $(OUT_ESC)/03_does_the_search_pay.ipynb

## curve: the learning curve's missing cells (PARAMS=params/curve.yaml; resumes; records in results/curve)
curve: env $(OUT_ESC)/01_preprocessing.ipynb
	$(PY) -m earth_lib.cli curve $(call q,$(PARAMS)) --run-dir $(call q,$(OUT)) --set $(call q,$(strip $(SET)))

## curve-report: docs/curve.md and its figures, from the curve's records alone (RECORDS=results/curve; another folder: docs/<its name>/curve.md, the planner's evidence untouched)
curve-report: env
	$(PY) -m earth_lib.cli curve-report $(call q,$(RECORDS))

## record-budget: keep a finished budgeted run as a record in results/budget/ (RUN=outputs/<run>)
record-budget: env
	$(PY) -m earth_lib.cli record-budget $(call q,$(RUN))

## record-run: keep a finished run's records (its small JSON files) in results/runs/, so docs regenerate without outputs/ (RUN=outputs/<run>)
record-run: env
	$(PY) -m earth_lib.cli record-run $(call q,$(RUN))

## data: download, verify and extract a public data set (DATASET=eurosat|eurosat_ms|ucmerced)
data: env
	$(PY) -m earth_lib.cli data $(call q,$(DATASET))

## evaluate: evaluate a run on a labelled folder (RUN=outputs/<run> DATA=<class folders>; multi-label: LABELS=<csv>)
evaluate: env
	$(PY) -m earth_lib.cli evaluate $(call q,$(RUN)) $(call q,$(DATA)) $(if $(LABELS),--labels $(call q,$(LABELS)))

## predict: predict every image of a folder (RUN=outputs/<run> DATA=<folder>) -> predictions.csv
predict: env
	$(PY) -m earth_lib.cli predict $(call q,$(RUN)) $(call q,$(DATA))

## pair: two runs on RUN's test images, image by image (RUN=outputs/<run> OTHER=<run or arm>)
pair: env
	$(PY) -m earth_lib.cli pair $(call q,$(RUN)) $(call q,$(OTHER))

## export: write RUN/export/: a TensorFlow SavedModel and serving.json (RUN=outputs/<run>)
export: env
	$(PY) -m earth_lib.cli export $(call q,$(RUN))

## readme: regenerate the result blocks of README.md and docs/ (tables, verdicts) from outputs/
readme: env
	$(PY) -m earth_lib.cli readme --outputs $(call q,$(OUTPUTS))

## test: unit tests, notebook checks (nbval) and a smoke run of the whole pipeline
test: env-dev
	EARTH_RESNET_PROGRESS=lines $(PY) -m pytest -q $(XDIST) --durations=12 --nbval-lax -p no:randomly \
		--nbval-sanitize-with tests/nbval_sanitize.cfg tests $(NB1) $(NB2) $(NB3)

## nbval-variants: re-execute the notebooks' multi-label variants for nbval (after editing a notebook)
nbval-variants: env-dev
	$(PY) tests/nbval_variants.py multilabel

## test-fast: unit tests only (no notebooks, no pipeline run)
test-fast: env-dev
	$(PY) -m pytest -q $(XDIST) -m "not slow"

## lint: ruff over the package and tests
lint: env-dev
	$(PY) -m ruff check earth_lib tests benchmarks

## bench: speed and memory figures -> outputs/bench/bench.json (BENCH_ARGS="--help" for sizes)
bench: env
	$(PY) benchmarks/bench.py --out $(call q,$(OUTPUTS)/bench/bench.json) $(BENCH_ARGS)

## lab: open Jupyter Lab on the notebooks
lab: env
	$(VENV)/bin/jupyter lab notebooks/

## clean: remove the run folders and generated data earth-resnet made (keeps .venv, archives, the rest)
clean:
	$(PYTHON) -m earth_lib.paths clean $(call q,$(OUTPUTS)) $(call q,$(DATA_ROOT))
