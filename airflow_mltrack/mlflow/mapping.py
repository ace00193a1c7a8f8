"""Pure translations between MLflow's words and ours (docs/mlflow.md): ids, statuses, splits, params,
times and the Airflow link tags. No ``mlflow`` import and no database here."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.vocabulary import DEFAULT_CONN_ID

#: MLflow run status -> ours, and back.
TO_OURS = {
    "RUNNING": "Running",
    "FINISHED": "Completed",
    "FAILED": "Failed",
    "KILLED": "Cancelled",
    "SCHEDULED": "Pending",
}
TO_MLFLOW = {ours: theirs for theirs, ours in TO_OURS.items()}
#: Our statuses that end a run (they carry an end_time).
FINAL_STATUSES = frozenset({"Completed", "Failed", "Cancelled"})

#: MLflow's default experiment id ("0"): our project of this name (created on first use).
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_PROJECT = "Default"

#: Tags the run-context provider sets inside an Airflow task; they become the experiment's Airflow link
#: columns (not stored as tags) and are given back, from those columns, by ``get_run``.
LINK_TAGS = {
    "airflow.dag_id": "dag_id",
    "airflow.run_id": "run_id",
    "airflow.task_id": "task_id",
    "airflow.map_index": "map_index",
    "airflow.try_number": "try_number",
}
#: The environment variable ``@task.mltrack`` sets to its experiment id while its function runs: MLflow
#: ending that run (FINISHED, FAILED, KILLED) leaves its status to the decorator and the listener.
TASK_RUN_ENV = "MLTRACK_TASK_RUN_ID"
#: A run tag naming the split of metrics whose name has no split prefix.
DEFAULT_SPLIT_TAG = "mltrack.default_split"
DEFAULT_SPLIT = "test"
SPLITS = ("train", "validation", "test", "inference")
_PREFIXES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "eval": "validation",
    "test": "test",
    "inference": "inference",
}
_PREFIX = re.compile(r"^([A-Za-z]+)[_/.\-]")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def conn_id_of(uri: str) -> str:
    """The Airflow connection id in ``mltrack://<conn_id>`` (empty: :data:`DEFAULT_CONN_ID`)."""
    parts = urlsplit(uri or "")
    if parts.scheme != "mltrack":
        raise MLTrackError("tracking_uri", uri, "must be mltrack://<conn_id>")
    conn_id = (parts.netloc + parts.path).strip("/")
    return conn_id or DEFAULT_CONN_ID


def experiment_id_of(run_id: Any) -> int:
    """Our experiment id from an MLflow run id (the id's digits: run ``"42"`` is experiment 42)."""
    text = str(run_id).strip() if run_id is not None else ""
    if not text.isdigit() or int(text) < 1:
        raise MLTrackError("run_id", run_id, "not a run of this store (run ids are experiment ids: digits)")
    return int(text)


def project_id_of(experiment_id: Any) -> int | None:
    """Our project id from an MLflow experiment id; None for MLflow's default experiment ``"0"``."""
    text = str(experiment_id).strip() if experiment_id is not None else ""
    if text == DEFAULT_EXPERIMENT_ID:
        return None
    if not text.isdigit():
        raise MLTrackError("experiment_id", experiment_id, "not an experiment of this store (digits)")
    return int(text)


def split_of(name: str, default: str | None = None) -> str:
    """The split a metric named ``name`` goes to: a prefix ``train_``/``training_`` -> train,
    ``val_``/``valid_``/``validation_``/``eval_`` -> validation, ``test_`` -> test, ``inference_`` ->
    inference (separator ``_``, ``/``, ``.`` or ``-``, any case); else ``default`` (the run's
    ``mltrack.default_split`` tag) or ``test``. The name itself is kept whole."""
    found = _PREFIX.match(name or "")
    if found:
        split = _PREFIXES.get(found.group(1).lower())
        if split:
            return split
    return default if default in SPLITS else DEFAULT_SPLIT


def has_split_prefix(name: str) -> bool:
    """Whether ``name`` names its split itself (so no ``mltrack.default_split`` tag is needed)."""
    found = _PREFIX.match(name or "")
    return bool(found and found.group(1).lower() in _PREFIXES)


def param_value(text: str) -> Any:
    """What a param (always text in MLflow) is stored as: an int, float or JSON boolean when its text is
    exactly that value's canonical form (``"10"``, ``"0.01"``, ``"true"``), else the text itself, so
    :func:`param_text` gives back exactly what was logged."""
    if not isinstance(text, str):
        return text
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            return text
        return value if str(value) == text else text
    return text


def param_text(value: Any) -> str:
    """A stored hyperparameter as MLflow's param text (inverse of :func:`param_value`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def millis(value: Any) -> int | None:
    """A stored timestamp (datetime or ISO text; naive = UTC) as ms since the epoch."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - _EPOCH) // dt.timedelta(milliseconds=1)  # exact: no float rounding


def as_utc(value: Any) -> dt.datetime:
    """A stored timestamp (datetime or ISO text; naive = UTC) as an aware UTC datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def from_millis(field: str, value: Any) -> dt.datetime:
    """MLflow's ms since the epoch (a metric's ``timestamp``, a run's ``start_time``/``end_time``) as an
    aware UTC datetime (our ``recorded_at``, ``start_time``, ``end_time``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise MLTrackError(field, value, "must be milliseconds since the epoch (an integer)")
    try:
        return _EPOCH + dt.timedelta(milliseconds=int(value))
    except OverflowError:
        raise MLTrackError(field, value, "must be milliseconds since the epoch within years 1-9999") from None


def link_fields(tags: dict[str, str]) -> dict[str, Any]:
    """The Airflow link columns named by the ``airflow.*`` link tags (empty without a dag_id)."""
    fields: dict[str, Any] = {LINK_TAGS[k]: v for k, v in tags.items() if k in LINK_TAGS}
    if not fields.get("dag_id"):
        return {}
    for number in ("map_index", "try_number"):
        if fields.get(number) not in (None, ""):
            fields[number] = int(fields[number])
        else:
            fields.pop(number, None)
    return fields


def link_tags(row: dict[str, Any]) -> dict[str, str]:
    """The ``airflow.*`` tags of an experiment row (from its link columns)."""
    return {tag: str(row[col]) for tag, col in LINK_TAGS.items() if row.get(col) is not None}


def run_name_for(link: dict[str, Any]) -> str:
    """The name of the run of a task instance when MLflow is given none: the task id (``-<map_index>``
    when mapped), stable across retries so a retry finds the same experiment."""
    name = str(link["task_id"])
    map_index = link.get("map_index", -1)
    return name if map_index in (None, -1) else f"{name}-{map_index}"


# -- MLflow 3: logged models, datasets, run inputs and outputs (docs/mlflow.md) ------------------------------
#: A logged model's id: ``m-<our model_id>`` (our model's version is the same text).
LOGGED_MODEL_PREFIX = "m-"
#: MLflow logged-model status -> ours, and back.
MODEL_TO_OURS = {"PENDING": "Pending", "READY": "Ready", "FAILED": "Failed"}
MODEL_TO_MLFLOW = {ours: theirs for theirs, ours in MODEL_TO_OURS.items()}
#: Run tags (JSON) holding what ``log_inputs`` / ``log_outputs`` gave beyond the experiment's one model and
#: dataset; ``get_run`` turns them into RunInputs / RunOutputs and does not list them as tags.
DATASET_INPUTS_TAG = "mltrack.dataset_inputs"
MODEL_INPUTS_TAG = "mltrack.model_inputs"
MODEL_OUTPUTS_TAG = "mltrack.model_outputs"
#: A model tag (JSON ``{run_id: [metric names]}``): the metrics logged with this ``model_id``.
MODEL_METRICS_TAG = "mltrack.model_metrics"
HIDDEN_TAGS = frozenset({DATASET_INPUTS_TAG, MODEL_INPUTS_TAG, MODEL_OUTPUTS_TAG, MODEL_METRICS_TAG})
#: Dataset tags keeping what our dataset columns do not: MLflow's source type, source, schema and profile.
DATASET_TAGS = {
    "source_type": "mlflow.source_type",
    "source": "mlflow.source",
    "schema": "mlflow.schema",
    "profile": "mlflow.profile",
}
#: The input tag naming a dataset's role (MLflow's ``mlflow.data.context``) and the roles that make a
#: dataset the experiment's own (training) dataset.
CONTEXT_TAG = "mlflow.data.context"
TRAINING_CONTEXTS = frozenset({"train", "training"})


def logged_model_id(model_id: int) -> str:
    """MLflow's id of our model ``model_id``."""
    return f"{LOGGED_MODEL_PREFIX}{model_id}"


def model_id_of(logged_id: Any) -> int:
    """Our model id from an MLflow logged model id (``m-17`` -> 17)."""
    text = str(logged_id).strip() if logged_id is not None else ""
    digits = text[len(LOGGED_MODEL_PREFIX) :] if text.startswith(LOGGED_MODEL_PREFIX) else ""
    if not digits.isdigit() or int(digits) < 1:
        raise MLTrackError("model_id", logged_id, "not a logged model of this store (ids are m-<digits>)")
    return int(digits)


def json_list(text: str | None) -> list[Any]:
    """A JSON list kept in a tag value (absent or unreadable: empty)."""
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def dataset_source_url(source: str | None) -> str | None:
    """The URL or path in an MLflow dataset source (its JSON ``uri``, ``url``, ``path`` or ``source`` key,
    or the text itself when it is not JSON), when it fits ``datasets.source_url`` (512 characters)."""
    if not source:
        return None
    try:
        parsed = json.loads(source)
    except ValueError:
        parsed = source
    if isinstance(parsed, dict):
        parsed = next(
            (parsed[k] for k in ("uri", "url", "path", "source") if isinstance(parsed.get(k), str)), None
        )
    return parsed if isinstance(parsed, str) and 0 < len(parsed) <= 512 else None


def dataset_records(profile: str | None) -> int | None:
    """The number of records in an MLflow dataset profile: ``num_rows`` (pandas, Spark) or the first
    dimension of ``features_shape`` (NumPy); None when the profile says neither."""
    try:
        parsed = json.loads(profile) if profile else {}
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    rows = parsed.get("num_rows")
    if rows is None and isinstance(parsed.get("features_shape"), list) and parsed["features_shape"]:
        rows = parsed["features_shape"][0]
    return rows if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0 else None


def dataset_data_type(schema: str | None) -> str:
    """Our data type of an MLflow dataset: Tabular for a column schema (pandas, Spark), else Other."""
    return "Tabular" if schema and "mlflow_colspec" in schema else "Other"
