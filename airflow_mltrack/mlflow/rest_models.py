"""The MLflow REST handlers of metric histories and MLflow 3 logged models, their artifact listing included
(see :mod:`airflow_mltrack.mlflow.rest_handlers`; a logged model's file download is the artifact proxy's,
``plugins/api_artifacts.py``)."""

from __future__ import annotations

from typing import Any

from mlflow.entities import FileInfo, LoggedModelParameter, LoggedModelStatus, LoggedModelTag
from mlflow.protos.service_pb2 import (
    CreateLoggedModel,
    DeleteLoggedModel,
    DeleteLoggedModelTag,
    FinalizeLoggedModel,
    GetLoggedModel,
    GetMetricHistory,
    GetMetricHistoryBulkInterval,
    ListLoggedModelArtifacts,
    LogLoggedModelParamsRequest,
    SearchLoggedModels,
    SetLoggedModelTags,
)
from mlflow.utils.uri import validate_path_is_safe

from airflow_mltrack.hooks.artifacts import ArtifactStorage
from airflow_mltrack.mlflow import mapping as m
from airflow_mltrack.mlflow.rest import Call, handles
from airflow_mltrack.mlflow.rest import invalid as _invalid
from airflow_mltrack.mlflow.rest_schema import MAX_RESULTS_PER_RUN
from airflow_mltrack.store.artifacts import artifact_children


# -- metric history ----------------------------------------------------------------------------------
@handles(GetMetricHistory)
def get_metric_history(call: Call) -> Any:
    call.require("run_id", "metric_key")
    msg = call.message
    max_results = msg.max_results if call.has("max_results") else None
    if max_results is not None and max_results <= 0:
        raise _invalid(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be a positive integer."
        )
    history = call.adapter.get_metric_history(
        call.run_id, msg.metric_key, max_results=max_results, page_token=msg.page_token or None
    )
    response = GetMetricHistory.Response(metrics=[x.to_proto() for x in history])
    if history.token:
        response.next_page_token = history.token
    return response


@handles(GetMetricHistoryBulkInterval)
def get_metric_history_bulk_interval(call: Call) -> Any:
    call.require("run_ids", "metric_key")
    msg = call.message  # at most 100 run_ids, max_results in 1..2500: rest_schema
    max_results = msg.max_results if call.has("max_results") else MAX_RESULTS_PER_RUN
    start = msg.start_step if call.has("start_step") else None
    end = msg.end_step if call.has("end_step") else None
    if (start is None) != (end is None):
        raise _invalid("If either start step or end step are specified, both must be specified.")
    if start is not None and end is not None and start > end:
        raise _invalid(
            f"end_step must be greater than start_step. Found start_step={start} and end_step={end}."
        )
    metrics = call.adapter.get_metric_history_bulk_interval(
        run_ids=list(msg.run_ids),
        metric_key=msg.metric_key,
        max_results=max_results,
        start_step=start,
        end_step=end,
    )
    return GetMetricHistoryBulkInterval.Response(metrics=[x.to_proto() for x in metrics])


# -- logged models (MLflow 3) --------------------------------------------------------------------------
@handles(CreateLoggedModel)
def create_logged_model(call: Call) -> Any:
    call.require("experiment_id")
    msg = call.message
    model = call.adapter.create_logged_model(
        experiment_id=msg.experiment_id,
        name=msg.name or None,
        model_type=msg.model_type,
        source_run_id=msg.source_run_id or None,  # absent in the body: "" in the message
        params=[LoggedModelParameter.from_proto(p) for p in msg.params] or None,
        tags=[LoggedModelTag(key=t.key, value=t.value) for t in msg.tags] or None,
    )
    return CreateLoggedModel.Response(model=model.to_proto())


@handles(GetLoggedModel)
def get_logged_model(call: Call) -> Any:
    allow_deleted = call.query.get("allow_deleted", "false").lower() == "true"
    model = call.adapter.get_logged_model(call.message.model_id, allow_deleted=allow_deleted)
    return GetLoggedModel.Response(model=model.to_proto())


@handles(FinalizeLoggedModel)
def finalize_logged_model(call: Call) -> Any:
    call.require("model_id", "status")
    status = LoggedModelStatus.from_int(call.message.status)
    model = call.adapter.finalize_logged_model(call.message.model_id, status)
    return FinalizeLoggedModel.Response(model=model.to_proto())


@handles(DeleteLoggedModel)
def delete_logged_model(call: Call) -> Any:
    call.adapter.delete_logged_model(call.message.model_id)
    return DeleteLoggedModel.Response()


@handles(SetLoggedModelTags)
def set_logged_model_tags(call: Call) -> Any:
    tags = [LoggedModelTag(key=t.key, value=t.value) for t in call.message.tags]
    call.adapter.set_logged_model_tags(call.message.model_id, tags)
    return SetLoggedModelTags.Response()


@handles(DeleteLoggedModelTag)
def delete_logged_model_tag(call: Call) -> Any:
    call.adapter.delete_logged_model_tag(call.message.model_id, call.message.tag_key)
    return DeleteLoggedModelTag.Response()


@handles(LogLoggedModelParamsRequest)
def log_logged_model_params(call: Call) -> Any:
    call.require("model_id")
    params = [LoggedModelParameter.from_proto(p) for p in call.message.params]
    call.adapter.log_logged_model_params(call.message.model_id, params)
    return LogLoggedModelParamsRequest.Response()


@handles(SearchLoggedModels)
def search_logged_models(call: Call) -> Any:
    call.require("experiment_ids")
    call.adapter.visible_dag_ids = call.access.visible_dag_ids  # models of unreadable DAGs: not listed
    msg = call.message
    datasets = [
        {"dataset_name": d.dataset_name, "dataset_digest": d.dataset_digest or None} for d in msg.datasets
    ]
    order_by = [
        {
            "field_name": o.field_name,
            "ascending": o.ascending,
            "dataset_name": o.dataset_name or None,
            "dataset_digest": o.dataset_digest or None,
        }
        for o in msg.order_by
    ]
    models = call.adapter.search_logged_models(
        experiment_ids=list(msg.experiment_ids),
        filter_string=msg.filter or None,
        datasets=datasets or None,
        max_results=msg.max_results or None,
        order_by=order_by or None,
        page_token=msg.page_token or None,
    )
    response = SearchLoggedModels.Response(models=[x.to_proto() for x in models])
    if models.token:
        response.next_page_token = models.token
    return response


@handles(ListLoggedModelArtifacts)
def list_logged_model_artifacts(call: Call) -> Any:
    """The entries directly under ``artifact_directory_path`` of a logged model's files (paths from its
    ``artifact_location``), wherever they are stored: under the run that logged it, or the model's own."""
    msg = call.message
    path = validate_path_is_safe(msg.artifact_directory_path) if call.has("artifact_directory_path") else ""
    model = call.adapter.get_logged_model(msg.model_id)  # its run's DAG was checked readable (authorize)
    _row, owner, base = ArtifactStorage(call.adapter.tracking).model_files(m.model_id_of(model.model_id))
    relative = path.strip("/")
    prefix = "/".join(part for part in (base, relative) if part)
    found = call.adapter.tracking.list_artifacts(prefix=prefix or None, **owner)
    cut = len(base) + 1 if base else 0
    files = [
        FileInfo(
            child["path"][cut:], child["is_dir"], None if child["is_dir"] else child["size_bytes"]
        ).to_proto()
        for child in artifact_children(found, prefix)
    ]
    return ListLoggedModelArtifacts.Response(files=files, root_uri=model.artifact_location)


__all__: list[str] = []
