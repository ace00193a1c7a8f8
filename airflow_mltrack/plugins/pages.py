"""The server-rendered HTML pages of the ML Tracking app (rendered by :mod:`.rendering`).

The data comes from :mod:`.loaders`, shared with the JSON API; the experiment lists build the one filter
model, :class:`~airflow_mltrack.plugins.filters.ExperimentQuery`, from their form fields.
"""

from __future__ import annotations

import math
import threading
from typing import Annotated, Any

from cachetools import TTLCache
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.plugins import loaders, runs_table
from airflow_mltrack.plugins.auth import AccessDep, StoreDep
from airflow_mltrack.plugins.filters import MAX_COMPARE, ExperimentQuery, parse_ids
from airflow_mltrack.plugins.rendering import airflow_links, query_string, relative_root, render
from airflow_mltrack.store.reads import compare as compare_read
from airflow_mltrack.store.reads import experiment_list
from airflow_mltrack.store.reads.experiment_list import MAX_OFFSET, MAX_PAGE
from airflow_mltrack.store.search import SYNTAX_HINT

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
    from_end: str = "",
    filter: str = "",  # the search expression (named as in the API)
    order_by: Annotated[list[str] | None, Query()] = None,
    columns: Annotated[list[str] | None, Query()] = None,
) -> HTMLResponse:
    """The runs table: quick filters, the filter box (a mistake shown under it with its position), chosen
    columns, sortable headers, pages, CSV export (docs/ui.md, "Runs table")."""
    params = {
        "project": project,
        "status": status,
        "dag_id": dag_id,
        "run_id": run_id,
        "tag": tag,
        "param": [p for p in (param or []) if p.strip()],
        "sort": sort,
        "order": order,
        "filter": filter,
        "order_by": [c for c in (order_by or []) if c.strip()],
        "columns": [c for c in (columns or []) if c.strip()],
        "from_end": "1" if from_end in ("1", "true") else "",
    }
    try:
        start = int(offset or 0) if len(offset) <= 20 else -1
    except ValueError:
        start = -1
    if not 0 <= start <= MAX_OFFSET:
        raise MLTrackError("offset", offset[:40], f"must be a whole number from 0 to {MAX_OFFSET}")
    state = runs_table.sort_state(params["order_by"], sort, order)
    shown = list(params["columns"])
    if state and not params["order_by"] and state[0] not in shown:
        shown.append(state[0])  # the older sort=<split>/<metric>: its metric as a column
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
        from_end=bool(params["from_end"]),
        filter=filter,
        order_by=params["order_by"],
        columns=shown,
    )
    error = None
    try:
        page = loaders.load_experiments(store, access, query)
    except MLTrackError as exc:
        if exc.field not in runs_table.SEARCH_FIELDS:
            raise
        error, page = runs_table.inline_error(exc, filter), runs_table.empty_page(PAGE_SIZE)
    keys = ("project", "status", "dag_id", "run_id", "tag", "param", "filter")
    filtered = any(params[k] for k in keys)
    choices = _cached_choices("filters", store, None, access.visible_dag_ids)
    columns_offered = _cached_choices("columns", store, project or None, access.visible_dag_ids)
    qs = lambda **changes: query_string(params, **changes)  # noqa: E731
    return render(
        request,
        "experiments.html",
        status_code=422 if error else 200,
        nav="experiments",
        title="Experiments",
        page=page,
        params=params,
        filtered=filtered,
        error=error,
        choices=choices,
        chooser=runs_table.chooser(columns_offered, page["columns"]),
        suggestions=runs_table.suggestions(columns_offered, choices["tags"]),
        hint=SYNTAX_HINT,
        sort=runs_table.sorter(state, qs),
        fixed=runs_table.FIXED_SORTS,
        cell=runs_table.column_cell,
        label=runs_table.column_label,
        took=runs_table.duration,
        max_compare=MAX_COMPARE,
        qs=qs,
        pages=runs_table.pager(page),
    )


# The quick-filter values and the column choices change rarely: each process keeps them for a minute (at
# 100k experiments they cost about 60 and 50 ms, see benchmarks/ui_bench.py; no query at all on most renders).
_CHOICES: TTLCache = TTLCache(maxsize=256, ttl=60)
_CHOICES_LOCK = threading.Lock()


def _cached_choices(kind: str, store: Any, project: str | None, visible: Any) -> Any:
    """``experiment_list.filter_choices`` ("filters": projects, DAG ids, tags) or ``column_choices``
    ("columns": the keys the column chooser and the filter box offer), kept a minute per process."""
    key = (kind, store.url, project, None if visible is None else frozenset(visible))
    with _CHOICES_LOCK:
        cached = _CHOICES.get(key)
    if cached is None:
        if kind == "filters":
            cached = experiment_list.filter_choices(store, visible)
        else:
            cached = experiment_list.column_choices(store, project, visible)
        with _CHOICES_LOCK:
            _CHOICES[key] = cached
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
        can_edit=access.can_edit(experiment.get("dag_id")),
        e=experiment,
        metrics=summary,
        curves=loaders.chart_data(curves),
        links=airflow_links(relative_root(request), experiment),
        artifacts=store.list_artifacts(experiment_id),
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, store: StoreDep, access: AccessDep, ids: Annotated[list[str] | None, Query()] = None
) -> HTMLResponse:
    """2 to 100 experiments: the parameters that differ, final metrics (best per row), and charts drawn by
    static/compare.js from the JSON block: overlaid curves of one metric (fetched, downsampled, from the
    API), parallel coordinates and a param-vs-metric scatter of the final values."""
    parsed = parse_ids(ids)
    result = loaders.load_compare(store, access, parsed)
    return render(
        request,
        "compare.html",
        nav="experiments",
        title="Compare experiments",
        c=result,
        ids=parsed,
        chart=_compare_chart_data(result),
    )


def _compare_chart_data(result: dict[str, Any]) -> dict[str, Any]:
    """What compare.js draws: run names, the differing parameters as chart values (numbers, or text for
    categories and nested values), each metric's finite final values, and the metric shown first (the first
    logged on validation, else the first)."""

    def chart_value(value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
        return compare_read.canonical(value)

    ids = [e["experiment_id"] for e in result["experiments"]]
    metrics = [
        {
            "key": f"{m['evaluation_set']}/{m['name']}",
            "lower": m["lower_is_better"],
            "values": {i: x for i, x in m["values"].items() if x is not None and math.isfinite(x)},
        }
        for m in result["metrics"]
    ]
    keys = [m["key"] for m in metrics]
    return {
        "ids": ids,
        "names": {e["experiment_id"]: f"#{e['experiment_id']} {e['name']}" for e in result["experiments"]},
        "params": {
            k: {i: chart_value(x) for i, x in result["hyperparameters"][k].items()}
            for k in result["differing"]
        },
        "metrics": metrics,
        "default": next((k for k in keys if k.startswith("validation/")), keys[0] if keys else None),
    }


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
    """The lineage graph around a dataset (also around an experiment or a model, the routes below)."""
    return _lineage(request, store, access, "dataset", dataset_id)


@router.get("/experiments/{experiment_id}/lineage", response_class=HTMLResponse)
def experiment_lineage_page(
    request: Request, experiment_id: int, store: StoreDep, access: AccessDep
) -> HTMLResponse:
    return _lineage(request, store, access, "experiment", experiment_id)


@router.get("/models/{model_id}/lineage", response_class=HTMLResponse)
def model_lineage_page(request: Request, model_id: int, store: StoreDep, access: AccessDep) -> HTMLResponse:
    return _lineage(request, store, access, "model", model_id)


_LINEAGE_NAV = {"dataset": "datasets", "experiment": "experiments", "model": "models"}


def _lineage(request: Request, store: Any, access: Any, kind: str, entity_id: int) -> HTMLResponse:
    graph = loaders.load_lineage_graph(store, access, kind, entity_id)
    root = relative_root(request)
    for node in graph["nodes"]:
        node["href"] = _lineage_href(root, node)
    center = next(n for n in graph["nodes"] if n["id"] == graph["root"])
    return render(
        request,
        "lineage.html",
        nav=_LINEAGE_NAV[kind],
        title=f"Lineage of {kind} {center['name']}",
        g=graph,
        center=center,
        kind=kind,
    )


def _lineage_href(root: str, node: dict[str, Any]) -> str | None:
    """The page a lineage node links to (datasets and models: their own lineage)."""
    kind, ref = node["kind"], node["ref"]
    if kind in ("dataset", "model"):
        return f"{root}{kind}s/{ref}/lineage"
    if kind == "experiment":
        return f"{root}experiments/{ref}"
    if kind == "endpoint":
        return f"{root}deployments"
    return None


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
