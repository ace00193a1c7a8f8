"""The JSON API routes of the ML Tracking app, under ``/mltrack/api/...`` (OpenAPI at ``/mltrack/openapi.json``).

Every route needs a signed-in Airflow user (the app's dependency, see ``auth.py``) and shows only rows of
DAGs that user may read (filtered in SQL, before any LIMIT). Errors are answered by the routes themselves
(:mod:`.api_errors`): unknown id -> 404, bad filter -> 422. Response shapes: :mod:`.schemas`; the data:
:mod:`.loaders` (shared with the pages); query parsing: :mod:`.filters`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from airflow_mltrack.plugins import export, loaders
from airflow_mltrack.plugins.api_errors import JsonErrorRoute
from airflow_mltrack.plugins.auth import AccessDep, StoreDep
from airflow_mltrack.plugins.filters import ExperimentQuery, parse_ids
from airflow_mltrack.plugins.schemas import (
    CompareOut,
    DatasetOut,
    EndpointOut,
    ExperimentDetailOut,
    ExperimentPageOut,
    JobOut,
    LeaderboardRowOut,
    LineageOut,
    MetricKeyOut,
    ModelOut,
    ProjectOut,
    SchemaOut,
)
from airflow_mltrack.store.reads import experiment_list
from airflow_mltrack.store.reads.experiment_list import MAX_OFFSET, MAX_PAGE

router = APIRouter(tags=["ML Tracking"], route_class=JsonErrorRoute)

ProjectQ = Annotated[str | None, Query(description="project name")]
IdsQ = Annotated[list[str], Query(description="experiment ids: ids=1&ids=2 or ids=1,2")]


@router.get("/projects", response_model=list[ProjectOut], summary="Projects with counts")
def projects(store: StoreDep, access: AccessDep) -> Any:
    return loaders.load_projects(store, access)


@router.get(
    "/experiments", response_model=ExperimentPageOut, summary="Experiments, filtered, sorted, paginated"
)
def experiments(store: StoreDep, access: AccessDep, query: Annotated[ExperimentQuery, Depends()]) -> Any:
    """``filter=`` (search language), ``order_by=`` and ``columns=`` beside the older quick filters; a bad
    expression is a 422 naming the token and its position (docs/ui.md, "Search")."""
    return loaders.load_experiments(store, access, query)


@router.get(
    "/experiments.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
    summary="Every experiment matching the filters, as CSV",
)
def experiments_csv(
    store: StoreDep, access: AccessDep, query: Annotated[ExperimentQuery, Depends()]
) -> StreamingResponse:
    """The rows of ``/experiments`` with the same filters, order and columns (limit and offset ignored),
    streamed in pages of 500; cells as the runs table shows them, formula-injection safe."""
    first = export.first_export_page(store, access, query)
    return StreamingResponse(
        export.stream_csv(store, access, query, first),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="experiments.csv"'},
    )


@router.get("/experiments/{experiment_id}", response_model=ExperimentDetailOut, summary="One experiment")
def experiment(experiment_id: int, store: StoreDep, access: AccessDep) -> Any:
    found = loaders.load_experiment(store, access, experiment_id)
    return {"experiment": found, "metrics": store.latest_metrics(experiment_id)}


@router.get("/compare", response_model=CompareOut, summary="2 to 100 experiments side by side")
def compare(store: StoreDep, access: AccessDep, ids: IdsQ) -> Any:
    """Hyperparameters (and the keys that differ) and final metrics (best run per metric) of ``ids``
    (``ids=1,2,3``); a missing or hidden id is a 404 naming every such id, more than 100 ids a 422."""
    return loaders.load_compare(store, access, parse_ids(ids))


@router.get("/leaderboard", response_model=list[LeaderboardRowOut], summary="Best experiments by a metric")
def leaderboard(
    store: StoreDep,
    access: AccessDep,
    project: Annotated[str, Query(description="project name")],
    metric: str,
    evaluation_set: str = "test",
    mode: Annotated[str, Query(pattern="^(max|min)$")] = "max",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
) -> Any:
    return loaders.load_leaderboard(store, access, project, metric, evaluation_set, mode, limit)


@router.get("/metric-keys", response_model=list[MetricKeyOut], summary="Metric names per split (sort keys)")
def metric_keys(store: StoreDep, access: AccessDep, project: ProjectQ = None) -> Any:
    return experiment_list.metric_keys(store, project, access.visible_dag_ids)


@router.get("/datasets", response_model=list[DatasetOut], summary="Datasets, every version")
def datasets(store: StoreDep, access: AccessDep, project: ProjectQ = None) -> Any:
    if project:
        store.get_project(project)
    return loaders.load_datasets(store, access, project)


@router.get("/datasets/{dataset_id}/lineage", response_model=LineageOut, summary="Lineage around a dataset")
def dataset_lineage(dataset_id: int, store: StoreDep, access: AccessDep) -> Any:
    return loaders.load_lineage(store, access, dataset_id)


@router.get("/models", response_model=list[ModelOut], summary="Models, every version")
def models(store: StoreDep, access: AccessDep, project: ProjectQ = None) -> Any:
    if project:
        store.get_project(project)
    return loaders.load_models(store, access, project)


@router.get("/preprocessing-jobs", response_model=list[JobOut], summary="Preprocessing jobs")
def preprocessing_jobs(
    store: StoreDep,
    access: AccessDep,
    project: ProjectQ = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Any:
    if project:
        store.get_project(project)
    return loaders.load_jobs(store, access, project, limit, offset)


@router.get("/deployments", response_model=list[EndpointOut], summary="Endpoints, traffic split, history")
def deployments(store: StoreDep, access: AccessDep, project: ProjectQ = None) -> Any:
    if project:
        store.get_project(project)
    return loaders.load_deployments(store, access, project)


@router.get("/schema", response_model=SchemaOut, summary="ER diagram of the live tracking database (Mermaid)")
def schema(store: StoreDep) -> Any:
    return loaders.load_schema(store)
