"""MLflow's web-UI endpoints that are not in its service protos (``mlflow/server/__init__.py`` routes them by
hand): ``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk`` and ``POST
/ajax-api/2.0/mlflow/experiments/search-datasets``, answered as ``mlflow/server/handlers.py`` does."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlflow.entities import ViewType
from mlflow.entities.dataset_summary import _DatasetSummary
from mlflow.protos.service_pb2 import SearchDatasets
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from mlflow.utils.proto_json_utils import message_to_json, parse_dict

from airflow_mltrack.mlflow import rest
from airflow_mltrack.mlflow.store import MLTrackMlflowStore
from airflow_mltrack.store import TrackingStore

#: MLflow's server limits (mlflow/server/handlers.py).
MAX_HISTORY_RESULTS = 25000
MAX_RUN_IDS_PER_REQUEST = 100
MAX_EXPERIMENT_IDS_PER_REQUEST = 20
MAX_DATASET_SUMMARIES = 1000
#: Runs read per page when the dataset summaries are gathered from the run search.
SEARCH_PAGE = 500


@dataclass
class AjaxCall:
    """One request: its query parameters (repeated ones kept), its JSON body, the adapter."""

    query: Sequence[tuple[str, str]]
    request_json: dict[str, Any]
    adapter: MLTrackMlflowStore
    tracking: TrackingStore
    access: rest.Access

    def arg(self, name: str, default: str | None = None) -> str | None:
        return next((value for key, value in self.query if key == name), default)


Route = Callable[[AjaxCall], str]


def _check_count(request: str, field: str, values: list[str], limit: int) -> None:
    """MLflow's words for a list parameter that is empty or longer than ``limit``."""
    if not values:
        raise rest.invalid(f"{request} request must specify at least one {field}.")
    if len(values) > limit:
        raise rest.invalid(
            f"{request} request cannot specify more than {limit} {field}s. Received {len(values)} {field}s."
        )


def get_metric_history_bulk(call: AjaxCall) -> str:
    """Every point of one metric of up to 100 runs (run ids in text order, each run's points by timestamp,
    step, value), at most ``max_results`` in all."""
    run_ids = [value for key, value in call.query if key == "run_id"]
    _check_count("GetMetricHistoryBulk", "run_id", run_ids, MAX_RUN_IDS_PER_REQUEST)
    metric_key = call.arg("metric_key")
    if metric_key is None:
        raise rest.invalid("GetMetricHistoryBulk request must specify a metric_key.")
    text = call.arg("max_results", str(MAX_HISTORY_RESULTS)) or ""
    try:
        max_results = min(int(text), MAX_HISTORY_RESULTS)
    except ValueError:
        raise rest.invalid(
            f"Invalid value {text!r} for parameter 'max_results' supplied: not an integer"
        ) from None
    for run_id in run_ids:
        rest.check_run(call.tracking, call.access, run_id, write=False)
    metrics: list[dict[str, Any]] = []
    for run_id in sorted(run_ids):
        history = call.adapter.get_metric_history(run_id, metric_key, max_results=max_results)
        for metric in sorted(history, key=lambda x: (x.timestamp, x.step, x.value)):
            metrics.append(
                {
                    "key": metric.key,
                    "value": metric.value,
                    "timestamp": metric.timestamp,
                    "step": metric.step,
                    "run_id": run_id,
                }
            )
    return json.dumps({"metrics": metrics[:max_results]})


def search_datasets(call: AjaxCall) -> str:
    """The dataset summaries of up to 20 experiments: the store's ``_search_datasets`` when it has one, else
    gathered from its run search (runs of DAGs the reader may not read left out)."""
    message = SearchDatasets()
    try:
        parse_dict(call.request_json, message)
    except Exception as exc:  # protobuf's ParseError: a value that does not fit its field
        raise rest.invalid(f"Invalid SearchDatasets request: {exc}") from exc
    experiment_ids = list(message.experiment_ids)
    _check_count("SearchDatasets", "experiment_id", experiment_ids, MAX_EXPERIMENT_IDS_PER_REQUEST)
    call.adapter.visible_dag_ids = call.access.visible_dag_ids  # runs of unreadable DAGs: not read
    search = getattr(call.adapter, "_search_datasets", None) or (lambda ids: _summaries(call.adapter, ids))
    response = SearchDatasets.Response()
    response.dataset_summaries.extend([summary.to_proto() for summary in search(experiment_ids)])
    return message_to_json(response)


def _summaries(adapter: MLTrackMlflowStore, experiment_ids: list[str]) -> list[_DatasetSummary]:
    """MLflow's dataset summaries read through the adapter's run search: the distinct (experiment, dataset
    name, digest, ``mlflow.data.context`` tag) of the active runs' dataset inputs, at most
    :data:`MAX_DATASET_SUMMARIES`, in the order the runs are found."""
    found: dict[tuple[str, str, str, str | None], None] = {}
    token = None
    while len(found) < MAX_DATASET_SUMMARIES:
        runs = adapter.search_runs(experiment_ids, "", ViewType.ACTIVE_ONLY, SEARCH_PAGE, None, token)
        for run in runs:
            for entry in run.inputs.dataset_inputs if run.inputs else []:
                context = next((t.value for t in entry.tags if t.key == MLFLOW_DATASET_CONTEXT), None)
                key = (run.info.experiment_id, entry.dataset.name, entry.dataset.digest, context)
                found.setdefault(key, None)
        if not (token := runs.token):
            break
    return [_DatasetSummary(*key) for key in list(found)[:MAX_DATASET_SUMMARIES]]


#: (method, path relative to the ``/mlflow`` root) -> handler returning the JSON answer.
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/ajax-api/2.0/mlflow/metrics/get-history-bulk"): get_metric_history_bulk,
    ("POST", "/ajax-api/2.0/mlflow/experiments/search-datasets"): search_datasets,
}

__all__ = ["ROUTES", "AjaxCall"]
