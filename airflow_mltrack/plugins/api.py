"""The JSON API of the ML Tracking app, under ``/mltrack/api/...`` (OpenAPI at ``/mltrack/openapi.json``).

Every route needs a signed-in Airflow user (the app's dependency, see ``auth.py``) and shows only rows of
DAGs that user may read. Errors: unknown id -> 404, bad filter -> 422, both as
``{"detail": ..., "field": ..., "value": ...}``. Non-finite metric values are given as the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"``. Visibility is filtered in SQL (the readable DAG ids go into
each query), never after a LIMIT; every input is bounded (ids, offsets, filter sizes).

The ``load_*`` functions gather the data once for both the API and the HTML pages.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.hooks.mltrack import redact_secrets, redact_text, reveals_hidden
from airflow_mltrack.plugins.auth import AccessDep, DagAccess, StoreDep
from airflow_mltrack.store import TrackingStore, ui_queries

MAX_COMPARE = 10


# -- response models --------------------------------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")


class ProjectOut(_Out):
    project_id: int
    name: str
    description: str | None = None
    status: str
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    datasets: int = 0
    models: int = 0
    experiments: int = 0
    endpoints: int = 0


class ExperimentOut(_Out):
    experiment_id: int
    project_id: int
    project: str
    name: str
    description: str | None = None
    status: str
    error: str | None = None
    hyperparameters: dict[str, Any] | None = None
    model_id: int
    model_name: str
    model_version: str
    dataset_id: int
    dataset_name: str
    dataset_version: str
    code_version: str | None = None
    notes: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    tags: list[str] = Field(default_factory=list)
    sort_value: float | None = None


class ExperimentPageOut(_Out):
    total: int
    limit: int
    offset: int
    sort: str | None = None
    order: str
    items: list[ExperimentOut]


class MetricSummaryOut(_Out):
    name: str
    evaluation_set: str
    value: float = Field(description="the final value: the step-less one, else the one of the highest step")
    step: int | None = None
    min_value: float
    max_value: float
    points: int


class ExperimentDetailOut(_Out):
    experiment: ExperimentOut
    metrics: list[MetricSummaryOut]


class CurveOut(_Out):
    experiment_id: int
    name: str
    evaluation_set: str
    steps: list[int]
    values: list[float]


class CompareMetricOut(_Out):
    name: str
    evaluation_set: str
    values: dict[int, float | None]


class CompareOut(_Out):
    experiments: list[ExperimentOut]
    hyperparameters: dict[str, dict[int, Any]]
    differing: list[str]
    metrics: list[CompareMetricOut]


class LeaderboardRowOut(_Out):
    rank: int
    experiment_id: int
    name: str
    status: str
    value: float
    step: int | None = None
    hyperparameters: dict[str, Any] | None = None
    model_id: int
    dag_id: str | None = None
    run_id: str | None = None


class MetricKeyOut(_Out):
    evaluation_set: str
    name: str


class DatasetOut(_Out):
    dataset_id: int
    project_id: int
    project: str
    name: str
    version: str
    data_type: str
    description: str | None = None
    source_url: str | None = None
    size_bytes: int | None = None
    num_records: int | None = None
    created_at: dt.datetime | None = None
    experiments: int = 0


class ServingOut(_Out):
    endpoint: str
    traffic_percentage: float


class ModelOut(_Out):
    model_id: int
    project_id: int
    project: str | None = None
    name: str
    version: str
    framework: str
    architecture: str | None = None
    description: str | None = None
    model_path: str | None = None
    model_type: str | None = None
    input_schema: Any = None
    output_schema: Any = None
    created_at: dt.datetime | None = None
    experiments: int = 0
    serving: list[ServingOut] = Field(default_factory=list)


class JobOut(_Out):
    job_id: int
    project_id: int
    name: str
    input_dataset_id: int
    output_dataset_id: int | None = None
    parameters: dict[str, Any] | None = None
    status: str
    error: str | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None


class LineageDatasetOut(_Out):
    dataset_id: int
    name: str
    version: str
    data_type: str


class LineageExperimentOut(_Out):
    experiment_id: int
    name: str
    status: str
    dataset_id: int
    model_id: int
    dag_id: str | None = None
    run_id: str | None = None


class LineageModelOut(_Out):
    model_id: int
    name: str
    version: str
    framework: str


class AssignmentOut(_Out):
    endpoint_model_id: int
    kind: str | None = Field(
        default=None, description="deploy, canary, promote, rollback or adjust (unknown for old rows)"
    )
    endpoint_id: int
    endpoint: str
    model_id: int
    model_name: str | None = None
    model_version: str | None = None
    traffic_percentage: float
    promoted_at: dt.datetime | None = None
    retired_at: dt.datetime | None = None
    dag_id: str | None = None
    run_id: str | None = None


class LineageOut(_Out):
    dataset: LineageDatasetOut
    upstream_jobs: list[JobOut]
    downstream_jobs: list[JobOut]
    datasets: list[LineageDatasetOut]
    experiments: list[LineageExperimentOut] = Field(description="the newest experiments (at most 100)")
    experiments_total: int = Field(description="all experiments trained on these datasets")
    models: list[LineageModelOut]
    deployments: list[AssignmentOut]


class EndpointOut(_Out):
    endpoint_id: int
    project_id: int
    project: str
    name: str
    url: str | None = None
    description: str | None = None
    status: str
    active: list[AssignmentOut]
    history: list[AssignmentOut]


class SchemaOut(_Out):
    dialect: str
    mermaid: str


# -- data shared by the API and the pages -------------------------------------------------------------
def hide_secrets(found: list[dict[str, Any]], key: str = "hyperparameters") -> list[dict[str, Any]]:
    """Secret-looking values of ``key`` (hyperparameters, job parameters) replaced by ``***``, and the
    secrets in an ``error`` text masked.

    The hook redacts them before they are stored; this covers rows written some other way (older
    versions, plain ``TrackingStore`` use), so neither the API nor a page ever shows them.
    """
    for row in found:
        if row.get(key):
            row[key] = redact_secrets(row[key])
        if row.get("error"):
            row["error"] = redact_text(row["error"])
    return found


def check_param_filters(params: dict[str, Any]) -> dict[str, Any]:
    """Refuse a hyperparameter filter on a value the pages hide (a secret key, a URL password): else a
    reader could test guesses of it against the experiment count."""
    for key, value in params.items():
        if reveals_hidden(value, key):
            raise MLTrackError("param", key, "hidden (secret) hyperparameter values cannot be filtered on")
    return params


def load_experiments(
    store: TrackingStore,
    access: DagAccess,
    *,
    project: str | None = None,
    status: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
    tag: str | None = None,
    param: list[str] | None = None,
    sort: str | None = None,
    order: str = "desc",
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    page = ui_queries.experiment_page(
        store,
        project=project or None,
        status=status or None,
        dag_id=dag_id or None,
        run_id=run_id or None,
        task_id=task_id or None,
        map_index=map_index,
        tag=tag or None,
        hyperparameters=check_param_filters(ui_queries.parse_params(param)),
        sort=sort or None,
        order=order,
        limit=limit,
        offset=offset,
        visible_dag_ids=access.visible_dag_ids,
    )
    page["sort"] = sort or None
    page["order"] = order
    hide_secrets(page["items"])
    return page


def load_experiment(store: TrackingStore, access: DagAccess, experiment_id: int) -> dict[str, Any]:
    experiment = store.get_experiment(experiment_id)
    return hide_secrets([access.check(experiment, "experiment_id", experiment_id)])[0]


def curves_of(store: TrackingStore, ids: list[int]) -> list[dict[str, Any]]:
    """Metric rows grouped into one curve per (experiment, metric, split); step-less values are left out."""
    curves: dict[tuple[int, str, str], dict[str, Any]] = {}
    for row in store.metric_curves(ids):
        if row["step"] is None:
            continue
        key = (row["experiment_id"], row["name"], row["evaluation_set"])
        curve = curves.setdefault(
            key,
            {"experiment_id": key[0], "name": key[1], "evaluation_set": key[2], "steps": [], "values": []},
        )
        curve["steps"].append(row["step"])
        curve["values"].append(row["value"])
    return list(curves.values())


def chart_data(curves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Curves for the browser: non-finite values become null (a gap in the chart)."""
    return [
        {**c, "values": [v if v is not None and math.isfinite(v) else None for v in c["values"]]}
        for c in curves
    ]


def parse_ids(raw: list[str] | None) -> list[int]:
    """``ids=1&ids=2`` or ``ids=1,2`` -> [1, 2] (2 to 10 distinct ids).

    Linear in the input and stops at the 11th distinct id; an error echoes at most a few ids.
    """
    ids: dict[int, None] = {}
    for part in (p.strip() for chunk in raw or [] for p in chunk.split(",")):
        if not part:
            continue
        if len(part) > 10 or not part.isdigit():  # 10 digits hold every valid id
            raise MLTrackError("ids", part[:20], "experiment ids are positive integers")
        ids[int(part)] = None
        if len(ids) > MAX_COMPARE:
            raise MLTrackError(
                "ids", [*ids][: MAX_COMPARE + 1], f"choose between 2 and {MAX_COMPARE} experiments to compare"
            )
    if len(ids) < 2:
        raise MLTrackError("ids", list(ids), f"choose between 2 and {MAX_COMPARE} experiments to compare")
    return list(ids)


def load_compare(store: TrackingStore, access: DagAccess, ids: list[int]) -> dict[str, Any]:
    """The comparison of ``ids``; an id that does not exist and one the user may not see both answer the
    same 404 (every such id named). ``differing`` compares the values as shown (after redaction)."""
    found = ui_queries.visible_experiment_ids(store, ids, access.visible_dag_ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError("ids", missing, "no experiment with these ids")
    result = store.compare(ids)
    hide_secrets(result["experiments"])
    result["hyperparameters"] = {
        key: {experiment_id: redact_secrets(value, key) for experiment_id, value in values.items()}
        for key, values in result["hyperparameters"].items()
    }
    result["differing"] = [
        key
        for key, values in result["hyperparameters"].items()
        if len({json.dumps(x, sort_keys=True, default=str) for x in values.values()}) > 1
    ]
    return result


def load_lineage(store: TrackingStore, access: DagAccess, dataset_id: int) -> dict[str, Any]:
    graph = ui_queries.lineage(store, dataset_id, access.visible_dag_ids)
    for key in ("upstream_jobs", "downstream_jobs"):
        hide_secrets(graph[key], "parameters")
    hide_secrets(graph["experiments"])
    return graph


def load_deployments(store: TrackingStore, access: DagAccess, project: str | None) -> list[dict[str, Any]]:
    return ui_queries.deployments_overview(store, project or None, access.visible_dag_ids)


def load_schema(store: TrackingStore) -> dict[str, str]:
    from airflow_mltrack.store.introspect import erd_mermaid

    return {"dialect": store.dialect, "mermaid": erd_mermaid(store.engine)}


# -- routes -----------------------------------------------------------------------------------------
router = APIRouter(tags=["ML Tracking"])

ProjectQ = Annotated[str | None, Query(description="project name")]


@router.get("/projects", response_model=list[ProjectOut], summary="Projects with counts")
def projects(store: StoreDep, access: AccessDep) -> Any:
    return ui_queries.project_summaries(store, access.visible_dag_ids)


@router.get(
    "/experiments", response_model=ExperimentPageOut, summary="Experiments, filtered, sorted, paginated"
)
def experiments(
    store: StoreDep,
    access: AccessDep,
    project: ProjectQ = None,
    status: Annotated[
        str | None, Query(description="Pending, Running, Completed, Failed or Cancelled")
    ] = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    tag: str | None = None,
    param: Annotated[
        list[str] | None,
        Query(description="hyperparameter filter key=value (value read as JSON), repeatable"),
    ] = None,
    sort: Annotated[
        str | None, Query(description="<evaluation_set>/<metric>: by the final value of that metric")
    ] = None,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    limit: Annotated[int, Query(ge=1, le=ui_queries.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=ui_queries.MAX_OFFSET)] = 0,
) -> Any:
    return load_experiments(
        store,
        access,
        project=project,
        status=status,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        tag=tag,
        param=param,
        sort=sort,
        order=order,
        limit=limit,
        offset=offset,
    )


@router.get("/experiments/{experiment_id}", response_model=ExperimentDetailOut, summary="One experiment")
def experiment(experiment_id: int, store: StoreDep, access: AccessDep) -> Any:
    found = load_experiment(store, access, experiment_id)
    return {"experiment": found, "metrics": store.latest_metrics(experiment_id)}


@router.get(
    "/experiments/{experiment_id}/curves", response_model=list[CurveOut], summary="Every metric curve by step"
)
def experiment_curves(experiment_id: int, store: StoreDep, access: AccessDep) -> Any:
    load_experiment(store, access, experiment_id)
    return curves_of(store, [experiment_id])


@router.get("/compare", response_model=CompareOut, summary="2 to 10 experiments side by side")
def compare(
    store: StoreDep,
    access: AccessDep,
    ids: Annotated[list[str], Query(description="experiment ids: ids=1&ids=2 or ids=1,2")],
) -> Any:
    return load_compare(store, access, parse_ids(ids))


@router.get("/compare/curves", response_model=list[CurveOut], summary="Curves of 2 to 10 experiments")
def compare_curves(
    store: StoreDep, access: AccessDep, ids: Annotated[list[str], Query(description="experiment ids")]
) -> Any:
    parsed = parse_ids(ids)
    load_compare(store, access, parsed)
    return curves_of(store, parsed)


@router.get("/leaderboard", response_model=list[LeaderboardRowOut], summary="Best experiments by a metric")
def leaderboard(
    store: StoreDep,
    access: AccessDep,
    project: Annotated[str, Query(description="project name")],
    metric: str,
    evaluation_set: str = "test",
    mode: Annotated[str, Query(pattern="^(max|min)$")] = "max",
    limit: Annotated[int, Query(ge=1, le=ui_queries.MAX_PAGE)] = 10,
) -> Any:
    found = store.leaderboard(project, metric, evaluation_set, mode, limit, access.visible_dag_ids)
    return hide_secrets(found)


@router.get("/metric-keys", response_model=list[MetricKeyOut], summary="Metric names per split (sort keys)")
def metric_keys(store: StoreDep, access: AccessDep, project: ProjectQ = None) -> Any:
    return ui_queries.metric_keys(store, project, access.visible_dag_ids)


@router.get("/datasets", response_model=list[DatasetOut], summary="Datasets, every version")
def datasets(store: StoreDep, access: AccessDep, project: ProjectQ = None) -> Any:
    if project:
        store.get_project(project)
    return ui_queries.datasets_with_usage(store, project, access.visible_dag_ids)


@router.get("/datasets/{dataset_id}/lineage", response_model=LineageOut, summary="Lineage around a dataset")
def dataset_lineage(dataset_id: int, store: StoreDep, access: AccessDep) -> Any:
    return load_lineage(store, access, dataset_id)


@router.get("/models", response_model=list[ModelOut], summary="Models, every version")
def models(store: StoreDep, access: AccessDep, project: ProjectQ = None) -> Any:
    if project:
        store.get_project(project)
    return ui_queries.models_with_usage(store, project, access.visible_dag_ids)


@router.get("/preprocessing-jobs", response_model=list[JobOut], summary="Preprocessing jobs")
def preprocessing_jobs(
    store: StoreDep,
    access: AccessDep,
    project: ProjectQ = None,
    limit: Annotated[int, Query(ge=1, le=ui_queries.MAX_PAGE)] = ui_queries.MAX_PAGE,
    offset: Annotated[int, Query(ge=0, le=ui_queries.MAX_OFFSET)] = 0,
) -> Any:
    if project:
        store.get_project(project)
    found = ui_queries.preprocessing_jobs(store, project or None, access.visible_dag_ids, limit, offset)
    return hide_secrets(found, "parameters")


@router.get("/deployments", response_model=list[EndpointOut], summary="Endpoints, traffic split, history")
def deployments(store: StoreDep, access: AccessDep, project: ProjectQ = None) -> Any:
    if project:
        store.get_project(project)
    return load_deployments(store, access, project)


@router.get("/schema", response_model=SchemaOut, summary="ER diagram of the live tracking database (Mermaid)")
def schema(store: StoreDep) -> Any:
    return load_schema(store)
