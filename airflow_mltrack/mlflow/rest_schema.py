"""MLflow's request validation: the per-message schemas of MLflow's own server (``mlflow/server/handlers.py``,
``_get_request_message(..., schema=...)``) and its rules, so a bad request gets MLflow's status and words
("Invalid value 31 for parameter 'run_id' supplied", "Missing value for required parameter 'key'").

As there, the type checks only run when the body did not parse into the request message (a value of the
wrong JSON type); the presence and range checks always run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.validation import invalid_value, missing_value

#: MLflow's server limits (mlflow/server/handlers.py).
MAX_SEARCH_RUNS_RESULTS = 50000
MAX_RUNS_GET_METRIC_HISTORY_BULK = 100
MAX_RESULTS_PER_RUN = 2500
_DOCS = " See the API docs for more information about request parameters."

#: A check: True when the value passes, False for MLflow's default message, or the message itself.
Check = Callable[[Any], bool | str]


# -- MLflow's checks ----------------------------------------------------------------------------------
def required(x: Any) -> bool:
    return x is not None and x != ""


def string(x: Any) -> bool:
    return isinstance(x, str)


def intlike(x: Any) -> bool:
    try:
        int(x)
    except (TypeError, ValueError):
        return isinstance(x, int)
    return True


def floatlike(x: Any) -> bool:
    try:
        float(x)
    except (TypeError, ValueError):
        return isinstance(x, float)
    return True


def array(x: Any) -> bool:
    return isinstance(x, list)


def strings(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(item, str) for item in x)


TYPE_CHECKS: frozenset[Check] = frozenset({string, intlike, floatlike, array, strings})


def at_most(limit: int, message: str | None = None, size: bool = False) -> Check:
    """``x`` (or its length, with ``size``) is at most ``limit``; ``message`` may name it as ``{value}``."""

    def check(x: Any) -> bool | str:
        try:
            value = len(x) if size else int(x)
        except (TypeError, ValueError):
            return True  # the type check answers
        if value <= limit:
            return True
        return message.format(value=value) if message else False

    return check


def within(low: int, high: int, message: str) -> Check:
    def check(x: Any) -> bool | str:
        try:
            return low <= int(x) <= high or message
        except (TypeError, ValueError):
            return True

    return check


def fields_present(name: str, *keys: str) -> Check:
    """Each item of the list ``name`` has every one of ``keys`` (``metrics[0].timestamp``)."""

    def check(items: Any) -> bool | str:
        for index, item in enumerate(items if isinstance(items, list) else ()):
            for key in keys:
                value = item.get(key) if isinstance(item, dict) else None
                if value is None or value == "":
                    return missing_value(f"{name}[{index}].{key}")
        return True

    return check


# -- the schemas, by request message -----------------------------------------------------------------
_ID = [required, string]
SCHEMAS: dict[str, dict[str, list[Check]]] = {
    "CreateExperiment": {"name": [required, string], "artifact_location": [string], "tags": [array]},
    "GetExperiment": {"experiment_id": _ID},
    "GetExperimentByName": {"experiment_name": _ID},
    "DeleteExperiment": {"experiment_id": _ID},
    "RestoreExperiment": {"experiment_id": _ID},
    "UpdateExperiment": {"experiment_id": _ID, "new_name": [string, required]},
    "SearchExperiments": {
        "view_type": [intlike],
        "max_results": [intlike],
        "order_by": [array],
        "filter": [string],
        "page_token": [string],
    },
    "SetExperimentTag": {"experiment_id": _ID, "key": [required, string], "value": [string]},
    "DeleteExperimentTag": {"experiment_id": _ID, "key": [required, string]},
    "CreateRun": {"experiment_id": [string], "start_time": [intlike], "run_name": [string]},
    "UpdateRun": {"run_id": _ID, "end_time": [intlike], "status": [string], "run_name": [string]},
    "DeleteRun": {"run_id": _ID},
    "RestoreRun": {"run_id": _ID},
    "GetRun": {"run_id": _ID},
    "ListArtifacts": {"run_id": [string, required], "path": [string], "page_token": [string]},
    "SearchRuns": {
        "experiment_ids": [array],
        "filter": [string],
        "max_results": [intlike, at_most(MAX_SEARCH_RUNS_RESULTS)],
        "order_by": [array, strings],
    },
    "LogMetric": {
        "run_id": _ID,
        "key": [required, string],
        "value": [required, floatlike],
        "timestamp": [intlike, required],
        "step": [intlike],
        "model_id": [string],
        "dataset_name": [string],
        "dataset_digest": [string],
    },
    "LogParam": {"run_id": _ID, "key": [required, string], "value": [string]},
    "SetTag": {"run_id": _ID, "key": [required, string], "value": [string]},
    "DeleteTag": {"run_id": _ID, "key": [required, string]},
    "LogBatch": {
        "run_id": [string, required],
        "metrics": [array, fields_present("metrics", "key", "value", "timestamp")],
        "params": [array, fields_present("params", "key")],
        "tags": [array, fields_present("tags", "key")],
    },
    "LogInputs": {"run_id": _ID, "datasets": [array], "models": [array]},
    "LogOutputs": {"run_id": _ID, "models": [required, array]},
    "LogModel": {"run_id": [string, required], "model_json": [string, required]},
    "GetMetricHistory": {
        "run_id": [string, required],
        "metric_key": [string, required],
        "page_token": [string],
    },
    "GetMetricHistoryBulkInterval": {
        "run_ids": [
            required,
            array,
            strings,
            at_most(
                MAX_RUNS_GET_METRIC_HISTORY_BULK,
                f"GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS_GET_METRIC_HISTORY_BULK} "
                "run_ids. Received {value} run_ids.",
                size=True,
            ),
        ],
        "metric_key": [required, string],
        "start_step": [intlike],
        "end_step": [intlike],
        "max_results": [
            intlike,
            within(1, MAX_RESULTS_PER_RUN, f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}."),
        ],
    },
    "CreateLoggedModel": {
        "experiment_id": [string, required],
        "name": [string],
        "model_type": [string],
        "source_run_id": [string],
        "params": [array],
        "tags": [array],
    },
    "LogLoggedModelParamsRequest": {"model_id": [string, required], "params": [array]},
    "FinalizeLoggedModel": {"model_id": [string, required], "status": [intlike, required]},
    "SetLoggedModelTags": {"tags": [array]},
    "SearchLoggedModels": {
        "experiment_ids": [array, strings, required],
        "filter": [string],
        "datasets": [array],
        "max_results": [intlike],
        "order_by": [array],
        "page_token": [string],
    },
}


def validate(message_name: str, request_json: dict[str, Any], parsed: bool) -> None:
    """Check ``request_json`` against the schema of ``message_name`` as MLflow's server does
    (``_validate_request_json_with_schema``); ``parsed``: the body parsed into the message (the type
    checks are skipped then). Raises INVALID_PARAMETER_VALUE in MLflow's words."""
    for param, checks in SCHEMAS.get(message_name, {}).items():
        if param not in request_json and required not in checks:
            continue
        value = request_json.get(param)
        if param == "run_id" and value is None and "run_uuid" in request_json:
            value = request_json.get("run_uuid")
        for check in checks:
            if parsed and check in TYPE_CHECKS:
                continue
            result = check(value)
            if result is True:
                continue
            if isinstance(result, str):
                message = result
            elif check is required:
                message = missing_value(param)
            else:
                message = invalid_value(param, value, f" Hint: Value was of type '{type(value).__name__}'.")
            raise MlflowException(message + _DOCS, error_code=INVALID_PARAMETER_VALUE)


__all__ = [
    "MAX_RESULTS_PER_RUN",
    "MAX_RUNS_GET_METRIC_HISTORY_BULK",
    "MAX_SEARCH_RUNS_RESULTS",
    "SCHEMAS",
    "validate",
]
