"""The server-rendered HTML pages of the ML Tracking app (rendered by :mod:`.rendering`).

The data comes from :mod:`.loaders`, shared with the JSON API; the experiment lists build the one filter
model, :class:`~airflow_mltrack.plugins.filters.ExperimentQuery`, from their form fields.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from cachetools import TTLCache
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.plugins import loaders
from airflow_mltrack.plugins.auth import AccessDep, StoreDep
from airflow_mltrack.plugins.filters import MAX_COMPARE, ExperimentQuery, parse_ids
from airflow_mltrack.plugins.rendering import airflow_links, query_string, relative_root, render
from airflow_mltrack.store.reads import experiment_list
from airflow_mltrack.store.reads.experiment_list import MAX_OFFSET, MAX_PAGE

PAGE_SIZE = 50

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, store: StoreDep, access: AccessDep) -> HTMLResponse:
    return projects_page(request, store, access)


@router.get("/projects", response_class=HTMLResponse)
def projects_page(request: Request, store: StoreDep, access: AccessDep) -> HTMLResponse:
    found = loaders.load_projects(store, access)
    return render(request, "projects.html", nav="projects", title="Projects", projects=found)


@router.get("/experiments", response_class=HTMLResponse)
def experiments_page(
    request: Request,
    store: StoreDep,
    access: AccessDep,
    project: str = "",
    status: str = "",
    dag_id: str = "",
    run_id: str = "",
    tag: str = "",
    param: Annotated[list[str] | None, Query()] = None,
    sort: str = "",
    order: str = "desc",
    offset: str = "0",
) -> HTMLResponse:
    params = {
        "project": project,
        "status": status,
        "dag_id": dag_id,
        "run_id": run_id,
        "tag": tag,
        "param": [p for p in (param or []) if p.strip()],
        "sort": sort,
        "order": order,
    }
    try:
        start = int(offset or 0) if len(offset) <= 20 else -1
    except ValueError:
        start = -1
    if not 0 <= start <= MAX_OFFSET:
        raise MLTrackError("offset", offset[:40], f"must be a whole number from 0 to {MAX_OFFSET}")
    query = ExperimentQuery(
        project=project,
        status=status,
        dag_id=dag_id,
        run_id=run_id,
        tag=tag,
        param=params["param"],
        sort=sort,
        order=order,
        limit=PAGE_SIZE,
        offset=start,
    )
    page = loaders.load_experiments(store, access, query)
    filtered = any(params[k] for k in ("project", "status", "dag_id", "run_id", "tag", "param"))
    return render(
        request,
        "experiments.html",
        nav="experiments",
        title="Experiments",
        page=page,
        params=params,
        filtered=filtered,
        choices=experiment_list.filter_choices(store, access.visible_dag_ids),
        metric_keys=_sort_choices(store, project or None, access.visible_dag_ids),
        qs=lambda **changes: query_string(params, **changes),
        prev_offset=max(start - PAGE_SIZE, 0) if start > 0 else None,
        next_offset=start + PAGE_SIZE if start + PAGE_SIZE < page["total"] else None,
    )


# The sort choices change rarely: each process keeps them for a minute (a skip scan of metric_latest's key
# index, a few ms at 10M metric rows, see benchmarks/ui_bench.py; and no query at all on most renders).
_SORT_CHOICES: TTLCache = TTLCache(maxsize=256, ttl=60)
_SORT_CHOICES_LOCK = threading.Lock()


def _sort_choices(store: Any, project: str | None, visible: Any) -> list[dict[str, str]]:
    key = (store.url, project, None if visible is None else frozenset(visible))
    with _SORT_CHOICES_LOCK:
        cached = _SORT_CHOICES.get(key)
    if cached is None:
        cached = experiment_list.metric_keys(store, project, visible)
        with _SORT_CHOICES_LOCK:
            _SORT_CHOICES[key] = cached
    return cached


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: int, store: StoreDep, access: AccessDep) -> HTMLResponse:
    experiment = loaders.load_experiment(store, access, experiment_id)
    summary = store.latest_metrics(experiment_id)
    curves = loaders.load_curves(store, [experiment_id])
    return render(
        request,
        "experiment.html",
        nav="experiments",
        title=f"Experiment {experiment['name']}",
        e=experiment,
        metrics=summary,
        curves=loaders.chart_data(curves),
        links=airflow_links(relative_root(request), experiment),
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, store: StoreDep, access: AccessDep, ids: Annotated[list[str] | None, Query()] = None
) -> HTMLResponse:
    parsed = parse_ids(ids)
    result = loaders.load_compare(store, access, parsed)
    curves = loaders.load_curves(store, parsed)
    return render(
        request,
        "compare.html",
        nav="experiments",
        title="Compare experiments",
        c=result,
        ids=parsed,
        curves=loaders.chart_data(curves),
        names={e["experiment_id"]: f"#{e['experiment_id']} {e['name']}" for e in result["experiments"]},
    )


@router.get("/run", response_class=HTMLResponse)
def run_page(
    request: Request, store: StoreDep, access: AccessDep, dag_id: str = "", run_id: str = ""
) -> HTMLResponse:
    """The DAG-run tab: the run's experiments."""
    if not dag_id or not run_id:
        raise MLTrackError(
            "dag_id/run_id", None, "both are required (this page is the DAG run tab of Airflow)"
        )
    query = ExperimentQuery(dag_id=dag_id, run_id=run_id, order="asc", limit=MAX_PAGE)
    page = loaders.load_experiments(store, access, query)
    return render(
        request,
        "run.html",
        title=f"Experiments of {dag_id} / {run_id}",
        page=page,
        dag_id=dag_id,
        run_id=run_id,
        task_id=None,
        compare_ids=[e["experiment_id"] for e in page["items"]][:MAX_COMPARE],
    )


@router.get("/task-instance", response_class=HTMLResponse, response_model=None)
def task_instance_page(
    request: Request,
    store: StoreDep,
    access: AccessDep,
    dag_id: str = "",
    run_id: str = "",
    task_id: str = "",
    map_index: str = "",
) -> HTMLResponse | RedirectResponse:
    """The task-instance tab: the task's experiment (straight to it when there is exactly one)."""
    if not dag_id or not run_id or not task_id:
        raise MLTrackError(
            "dag_id/run_id/task_id", None, "all are required (this page is a task instance tab)"
        )
    try:  # Airflow substitutes {MAP_INDEX}; an unmapped task may give -1, nothing or the placeholder.
        index: int | None = int(map_index) if len(map_index) <= 10 else None
    except ValueError:
        index = None
    query = ExperimentQuery(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=index if index is not None and 0 <= index <= MAX_OFFSET else None,
        order="asc",
        limit=MAX_PAGE,
    )
    page = loaders.load_experiments(store, access, query)
    if len(page["items"]) == 1:
        return RedirectResponse(f"experiments/{page['items'][0]['experiment_id']}", status_code=303)
    return render(
        request,
        "run.html",
        title=f"Experiments of task {task_id}",
        page=page,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        compare_ids=[e["experiment_id"] for e in page["items"]][:MAX_COMPARE],
    )


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, store: StoreDep, access: AccessDep, project: str = "") -> HTMLResponse:
    found = loaders.load_datasets(store, access, project)
    return render(
        request,
        "datasets.html",
        nav="datasets",
        title="Datasets",
        datasets=found,
        project=project,
        projects=[p["name"] for p in store.list_projects()],
    )


@router.get("/datasets/{dataset_id}/lineage", response_class=HTMLResponse)
def lineage_page(request: Request, dataset_id: int, store: StoreDep, access: AccessDep) -> HTMLResponse:
    graph = loaders.load_lineage(store, access, dataset_id)
    by_id = {d["dataset_id"]: d for d in graph["datasets"]}
    return render(
        request,
        "lineage.html",
        nav="datasets",
        title=f"Lineage of {graph['dataset']['name']}",
        g=graph,
        datasets_by_id=by_id,
        models_by_id={m["model_id"]: m for m in graph["models"]},
    )


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, store: StoreDep, access: AccessDep, project: str = "") -> HTMLResponse:
    found = loaders.load_models(store, access, project)
    return render(
        request,
        "models.html",
        nav="models",
        title="Models",
        models=found,
        project=project,
        projects=[p["name"] for p in store.list_projects()],
    )


@router.get("/deployments", response_class=HTMLResponse)
def deployments_page(request: Request, store: StoreDep, access: AccessDep, project: str = "") -> HTMLResponse:
    found = loaders.load_deployments(store, access, project)
    return render(
        request,
        "deployments.html",
        nav="deployments",
        title="Deployments",
        endpoints=found,
        project=project,
        projects=[p["name"] for p in store.list_projects()],
    )


@router.get("/schema", response_class=HTMLResponse)
def schema_page(request: Request, store: StoreDep) -> HTMLResponse:
    return render(request, "schema.html", nav="schema", title="Schema", schema=loaders.load_schema(store))
