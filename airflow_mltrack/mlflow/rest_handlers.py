"""One handler per MLflow tracking request message: the same validations and store calls as MLflow's own
server (``mlflow/server/handlers.py``), answered with the message's ``Response``.

Every handler calls an ``AbstractStore`` method of the adapter: a method the adapter does not implement
raises ``NotImplementedError`` (MLflow's default) and the request answers NOT_IMPLEMENTED (501), so a
method added to :class:`~airflow_mltrack.mlflow.store.MLTrackMlflowStore` is served with no change here.
"""

from __future__ import annotations

import json
from typing import Any

from mlflow.entities import (
    DatasetInput,
    ExperimentTag,
    FileInfo,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import NOT_IMPLEMENTED, RESOURCE_DOES_NOT_EXIST
from mlflow.protos.service_pb2 import (
    CreateExperiment,
    CreateRun,
    DeleteExperiment,
    DeleteExperimentTag,
    DeleteRun,
    DeleteTag,
    GetExperiment,
    GetExperimentByName,
    GetRun,
    ListArtifacts,
    LogBatch,
    LogInputs,
    LogMetric,
    LogModel,
    LogOutputs,
    LogParam,
    RestoreExperiment,
    RestoreRun,
    SearchExperiments,
    SearchRuns,
    SetExperimentTag,
    SetTag,
    UpdateExperiment,
    UpdateRun,
)
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.uri import validate_path_is_safe
from mlflow.utils.validation import (
    MAX_BATCH_LOG_REQUEST_SIZE,
    _validate_batch_log_data,
    _validate_batch_log_limits,
)

from airflow_mltrack.mlflow import mapping as m
from airflow_mltrack.mlflow.rest import ARTIFACT_URI, Call, handles
from airflow_mltrack.mlflow.rest import invalid as _invalid
from airflow_mltrack.mlflow.rest_json import run_json
from airflow_mltrack.store.artifacts import artifact_children

#: ``AbstractStore`` methods whose default silently does nothing: not overridden = not implemented.
_NO_OP_DEFAULTS = ("set_experiment_tag", "delete_experiment_tag")


def _implemented(call: Call, name: str) -> None:
    if name in _NO_OP_DEFAULTS and getattr(type(call.adapter), name) is getattr(AbstractStore, name):
        raise MlflowException(f"{name} is not implemented by airflow-mltrack", error_code=NOT_IMPLEMENTED)


# -- artifact locations of what is served here ---------------------------------------------------------
def _run_proto(run: Any) -> Any:
    proto = run.to_proto()
    _fix_info(proto.info)
    return proto


def _run_json(info: Any, metrics: Any, params: Any, tags: Any, io: Any) -> dict[str, Any]:
    return run_json(info, metrics, params, tags, io, _fix_info)


def _fix_info(info: Any) -> Any:
    """A run's ``artifact_uri`` over REST: ``mlflow-artifacts:/<experiment id>/<run id>/artifacts`` when
    the adapter gave the bare root (``ARTIFACT_URI``) or nothing."""
    if info.artifact_uri.rstrip("/") in ("", ARTIFACT_URI):
        info.artifact_uri = f"{ARTIFACT_URI}/{info.experiment_id}/{info.run_id}/artifacts"
    return info


def _experiment_proto(experiment: Any) -> Any:
    proto = experiment.to_proto()
    if proto.artifact_location.rstrip("/") in ("", ARTIFACT_URI):
        proto.artifact_location = f"{ARTIFACT_URI}/{proto.experiment_id}"
    return proto


# -- experiments -------------------------------------------------------------------------------------
@handles(CreateExperiment)
def create_experiment(call: Call) -> Any:
    call.require("name")
    msg = call.message
    tags = [ExperimentTag(t.key, t.value) for t in msg.tags]
    experiment_id = call.adapter.create_experiment(msg.name, msg.artifact_location or None, tags)
    return CreateExperiment.Response(experiment_id=experiment_id)


@handles(GetExperiment)
def get_experiment(call: Call) -> Any:
    call.require("experiment_id")
    experiment = call.adapter.get_experiment(call.message.experiment_id)
    return GetExperiment.Response(experiment=_experiment_proto(experiment))


@handles(GetExperimentByName)
def get_experiment_by_name(call: Call) -> Any:
    call.require("experiment_name")
    name = call.message.experiment_name
    experiment = call.adapter.get_experiment_by_name(name)
    if experiment is None:
        raise MlflowException(
            f"Could not find experiment with name '{name}'", error_code=RESOURCE_DOES_NOT_EXIST
        )
    return GetExperimentByName.Response(experiment=_experiment_proto(experiment))


@handles(DeleteExperiment)
def delete_experiment(call: Call) -> Any:
    call.require("experiment_id")
    call.adapter.delete_experiment(call.message.experiment_id)
    return DeleteExperiment.Response()


@handles(RestoreExperiment)
def restore_experiment(call: Call) -> Any:
    call.require("experiment_id")
    call.adapter.restore_experiment(call.message.experiment_id)
    return RestoreExperiment.Response()


@handles(UpdateExperiment)
def update_experiment(call: Call) -> Any:
    call.require("experiment_id", "new_name")
    call.adapter.rename_experiment(call.message.experiment_id, call.message.new_name)
    return UpdateExperiment.Response()


@handles(SearchExperiments)
def search_experiments(call: Call) -> Any:
    msg = call.message
    found = call.adapter.search_experiments(
        view_type=msg.view_type,
        max_results=msg.max_results,
        filter_string=msg.filter or None,
        order_by=list(msg.order_by) or None,
        page_token=msg.page_token or None,
    )
    response = SearchExperiments.Response(experiments=[_experiment_proto(e) for e in found])
    if found.token:
        response.next_page_token = found.token
    return response


@handles(SetExperimentTag)
def set_experiment_tag(call: Call) -> Any:
    call.require("experiment_id", "key")
    _implemented(call, "set_experiment_tag")
    msg = call.message
    call.adapter.set_experiment_tag(msg.experiment_id, ExperimentTag(msg.key, msg.value))
    return SetExperimentTag.Response()


@handles(DeleteExperimentTag)
def delete_experiment_tag(call: Call) -> Any:
    call.require("experiment_id", "key")
    _implemented(call, "delete_experiment_tag")
    call.adapter.delete_experiment_tag(call.message.experiment_id, call.message.key)
    return DeleteExperimentTag.Response()


# -- runs --------------------------------------------------------------------------------------------
@handles(CreateRun)
def create_run(call: Call) -> Any:
    msg = call.message
    run = call.adapter.create_run(
        experiment_id=msg.experiment_id,
        user_id=msg.user_id,
        start_time=msg.start_time,
        tags=[RunTag(t.key, t.value) for t in msg.tags],
        run_name=msg.run_name,
    )
    return CreateRun.Response(run=_run_proto(run))


@handles(GetRun)
def get_run(call: Call) -> Any:
    return GetRun.Response(run=_run_proto(call.adapter.get_run(call.run_id)))


@handles(UpdateRun)
def update_run(call: Call) -> Any:
    run_id = call.run_id
    status = call.message.status if call.has("status") else None
    end_time = call.message.end_time if call.has("end_time") else None
    run_name = call.message.run_name if call.has("run_name") else None
    info = call.adapter.update_run_info(run_id, status, end_time, run_name)
    return UpdateRun.Response(run_info=_fix_info(info.to_proto()))


@handles(DeleteRun)
def delete_run(call: Call) -> Any:
    call.adapter.delete_run(call.run_id)
    return DeleteRun.Response()


@handles(RestoreRun)
def restore_run(call: Call) -> Any:
    call.adapter.restore_run(call.run_id)
    return RestoreRun.Response()


@handles(SearchRuns)
def search_runs(call: Call) -> Any:
    msg = call.message  # max_results <= MAX_SEARCH_RUNS_RESULTS: rest_schema
    view_type = ViewType.from_proto(msg.run_view_type) if call.has("run_view_type") else ViewType.ACTIVE_ONLY
    call.adapter.visible_dag_ids = call.access.visible_dag_ids  # runs of unreadable DAGs: not listed
    call.adapter.render_run = _run_json  # each run as its JSON object, with no Run entity in between
    runs = call.adapter.search_runs(
        experiment_ids=list(msg.experiment_ids),
        filter_string=msg.filter,
        run_view_type=view_type,
        max_results=msg.max_results,
        order_by=list(msg.order_by),
        page_token=msg.page_token or None,
    )
    response: dict[str, Any] = {}  # SearchRuns.Response's JSON, built directly (rest_json)
    if runs:
        response["runs"] = list(runs)
    if runs.token:
        response["next_page_token"] = runs.token
    return response


@handles(ListArtifacts)
def list_artifacts(call: Call) -> Any:
    """The entries directly under ``path`` of a run's artifacts (paths from the run's artifact root), as
    MLflow's server lists a proxied artifact root; a path leaving the root is MLflow's "Invalid path"."""
    path = validate_path_is_safe(call.message.path) if call.has("path") else None
    run = call.adapter.get_run(call.run_id)
    prefix = path.strip("/") if path else ""
    found = call.adapter.tracking.list_artifacts(m.experiment_id_of(run.info.run_id), prefix or None)
    files = [
        FileInfo(child["path"], child["is_dir"], None if child["is_dir"] else child["size_bytes"]).to_proto()
        for child in artifact_children(found, prefix)
    ]
    return ListArtifacts.Response(root_uri=_fix_info(run.to_proto().info).artifact_uri, files=files)


# -- logging -----------------------------------------------------------------------------------------
@handles(LogMetric)
def log_metric(call: Call) -> Any:
    call.require("run_id", "key", "value", "timestamp")
    msg = call.message
    run_id = call.run_id
    metric = Metric(
        msg.key,
        msg.value,
        msg.timestamp,
        msg.step,
        msg.model_id or None,
        msg.dataset_name or None,
        msg.dataset_digest or None,
        run_id,
    )
    _validate_batch_log_data([metric], [], [])
    call.adapter.log_metric(run_id, metric)
    return LogMetric.Response()


@handles(LogParam)
def log_param(call: Call) -> Any:
    call.require("run_id", "key")
    param = Param(call.message.key, call.message.value)
    _validate_batch_log_data([], [param], [])
    call.adapter.log_param(call.run_id, param)
    return LogParam.Response()


@handles(SetTag)
def set_tag(call: Call) -> Any:
    call.require("run_id", "key")
    tag = RunTag(call.message.key, call.message.value)
    _validate_batch_log_data([], [], [tag])
    call.adapter.set_tag(call.run_id, tag)
    return SetTag.Response()


@handles(DeleteTag)
def delete_tag(call: Call) -> Any:
    call.require("run_id", "key")
    call.adapter.delete_tag(call.run_id, call.message.key)
    return DeleteTag.Response()


@handles(LogBatch)
def log_batch(call: Call) -> Any:
    """Whole or nothing: every limit and value is checked before the store writes."""
    if call.body_size > MAX_BATCH_LOG_REQUEST_SIZE:
        raise _invalid(
            f"Batched logging API requests must be at most {MAX_BATCH_LOG_REQUEST_SIZE} bytes, got a "
            f"request of size {call.body_size}."
        )
    call.require("run_id")  # and each metric's key, value, timestamp... (rest_schema)
    msg = call.message
    metrics = [Metric.from_proto(p) for p in msg.metrics]
    params = [Param.from_proto(p) for p in msg.params]
    tags = [RunTag.from_proto(p) for p in msg.tags]
    _validate_batch_log_limits(metrics, params, tags)
    metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
    call.adapter.log_batch(run_id=msg.run_id, metrics=metrics, params=params, tags=tags)
    return LogBatch.Response()


@handles(LogInputs)
def log_inputs(call: Call) -> Any:
    call.require("run_id")
    msg = call.message
    datasets = [DatasetInput.from_proto(d) for d in msg.datasets]
    models = [LoggedModelInput.from_proto(x) for x in msg.models] if msg.models else None
    call.adapter.log_inputs(msg.run_id, datasets=datasets, models=models)
    return LogInputs.Response()


@handles(LogOutputs)
def log_outputs(call: Call) -> Any:
    call.require("run_id", "models")
    models = [LoggedModelOutput.from_proto(x) for x in call.message.models]
    call.adapter.log_outputs(run_id=call.message.run_id, models=models)
    return LogOutputs.Response()


@handles(LogModel)
def log_model(call: Call) -> Any:
    call.require("run_id", "model_json")
    try:
        model = json.loads(call.message.model_json)
    except ValueError as exc:
        raise _invalid(f"Malformed model info. \n {call.message.model_json} \n is not a valid JSON.") from exc
    missing = {"artifact_path", "flavors", "utc_time_created", "run_id"} - set(model)
    if missing:
        raise _invalid(f"Model json is missing mandatory fields: {missing}")
    from mlflow.models import Model

    call.adapter.record_logged_model(run_id=call.message.run_id, mlflow_model=Model.from_dict(model))
    return LogModel.Response()


__all__: list[str] = []
