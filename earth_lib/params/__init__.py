"""Parameter files: a declared table of every parameter, validated once on load.

A parameter file is YAML with the sections of the table (``schema``). Every key is checked
against it (``validation``): an unknown or mistyped key, a wrong type or an impossible bound
is a :class:`ParameterError` that names the file and the key. Missing keys take the
table's defaults, the one place defaults live; ``settings`` turns a checked file into the
typed settings of each stage.
"""

from earth_lib.params.schema import (
    AUGMENT_KEYS,
    CURVE_ARMS,
    DATASETS,
    DEFAULT_SPACE,
    HYPERPARAMETER_LIMITS,
    HYPERPARAMETERS,
    POLICIES,
    REQUIRED_HYPERPARAMETERS,
    SCHEMA,
    TASKS,
    Param,
    section_defaults,
)
from earth_lib.params.settings import (
    TrainSettings,
    baseline_hyperparameters,
    data_selection,
    default_params,
    executor_settings,
    search_data_settings,
    search_fingerprint,
    search_plan,
)
from earth_lib.params.validation import (
    apply_overrides,
    load_params,
    parameter_table,
    parse_overrides,
    read_given,
    validate,
    validate_space,
)

__all__ = [
    "AUGMENT_KEYS",
    "CURVE_ARMS",
    "POLICIES",
    "DATASETS",
    "DEFAULT_SPACE",
    "HYPERPARAMETERS",
    "HYPERPARAMETER_LIMITS",
    "Param",
    "REQUIRED_HYPERPARAMETERS",
    "SCHEMA",
    "TASKS",
    "TrainSettings",
    "apply_overrides",
    "baseline_hyperparameters",
    "data_selection",
    "default_params",
    "executor_settings",
    "load_params",
    "read_given",
    "parameter_table",
    "parse_overrides",
    "search_data_settings",
    "search_fingerprint",
    "search_plan",
    "section_defaults",
    "validate",
    "validate_space",
]
