"""Server-rendered HTML pages of the ML Tracking app (Jinja2, autoescaped).

Every link between pages is relative (``root`` in the templates is ``./`` or ``../``...), so the pages work
at ``<airflow>/mltrack/...`` and inside the Airflow UI's plugin iframe alike; links into the Airflow UI
itself (DAG runs, task instances) are relative to the UI root and open in the top window.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from cachetools import TTLCache
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.plugins import api
from airflow_mltrack.plugins.auth import AccessDep, StoreDep
from airflow_mltrack.store import ui_queries

TEMPLATES = Path(__file__).parent / "templates"
UPLOT_VERSION = "1.6.32"
PAGE_SIZE = 50

router = APIRouter(include_in_schema=False)


# -- template environment -----------------------------------------------------------------------------
def fmt_num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.6g}"
    return str(value)


def fmt_version(value: Any) -> str:
    """A version as shown: ``v1.2`` for one that starts with a digit, any other (``sgd-539ac701``,
    ``candidates``) as it is."""
    if value is None:
        return "—"
    text = str(value)
    return f"v{text}" if text[:1].isdigit() else text


def fmt_dt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def fmt_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def fmt_bytes(value: Any) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def json_script(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    from markupsafe import Markup

    text = json.dumps(value, default=str, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # noqa: S704 - escaped above for the script-data context


def seg(value: Any) -> str:
    """One URL path segment."""
    return quote(str(value), safe="")


_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    num=fmt_num,
    dt=fmt_dt,
    ver=fmt_version,
    jsontext=fmt_json,
    bytes=fmt_bytes,
    json_script=json_script,
    seg=seg,
)


def relative_root(request: Request) -> str:
    """The relative path from the current page to the app root (``./``, ``../``, ...)."""
    path = request.scope.get("path", "")
    root_path = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    depth = max(path.lstrip("/").count("/"), 0)
    return "../" * depth if depth else "./"


def airflow_links(root: str, row: dict[str, Any]) -> dict[str, str]:
    """Links into the Airflow UI (relative to its root, which is one level above this app)."""
    if not row.get("dag_id"):
        return {}
    ui = root + "../"
    links = {"dag": f"{ui}dags/{seg(row['dag_id'])}"}
    if row.get("run_id"):
        links["run"] = f"{links['dag']}/runs/{seg(row['run_id'])}"
        if row.get("task_id"):
            task = f"{links['run']}/tasks/{seg(row['task_id'])}"
            if row.get("map_index") is not None and row["map_index"] >= 0:
                task += f"/mapped/{row['map_index']}"
            links["task"] = task
    return links


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    root = relative_root(request)
    context.setdefault("nav", "")
    html = _env.get_template(template).render(
        root=root,
        static=f"{root}static/",
        uplot=f"{root}static/vendor/uplot-{UPLOT_VERSION}/",
        airflow_links=lambda row: airflow_links(root, row),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def render_error(request: Request, status_code: int, title: str, message: str, **extra: Any) -> HTMLResponse:
    return render(request, "error.html", status_code=status_code, title=title, message=message, **extra)


def query_string(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    pairs: list[tuple[str, Any]] = []
    for key, value in merged.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list):
            pairs.extend((key, v) for v in value if v)
        else:
            pairs.append((key, value))
    return "?" + urlencode(pairs) if pairs else "?"


# -- pages --------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def index(request: Request, store: StoreDep, access: AccessDep) -> HTMLResponse:
    return projects_page(request, store, access)


@router.get("/projects", response_class=HTMLResponse)
def projects_page(request: Request, store: StoreDep, access: AccessDep) -> HTMLResponse:
    found = ui_queries.project_summaries(store, access.visible_dag_ids)
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
    if not 0 <= start <= ui_queries.MAX_OFFSET:
        raise MLTrackError("offset", offset[:40], f"must be a whole number from 0 to {ui_queries.MAX_OFFSET}")
    page = api.load_experiments(
        store,
        access,
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
    filtered = any(params[k] for k in ("project", "status", "dag_id", "run_id", "tag", "param"))
    return render(
        request,
        "experiments.html",
        nav="experiments",
        title="Experiments",
        page=page,
        params=params,
        filtered=filtered,
        choices=ui_queries.filter_choices(store, access.visible_dag_ids),
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
        cached = ui_queries.metric_keys(store, project, visible)
        with _SORT_CHOICES_LOCK:
            _SORT_CHOICES[key] = cached
    return cached


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: int, store: StoreDep, access: AccessDep) -> HTMLResponse:
    experiment = api.load_experiment(store, access, experiment_id)
    summary = store.latest_metrics(experiment_id)
    curves = api.curves_of(store, [experiment_id])
    return render(
        request,
        "experiment.html",
        nav="experiments",
        title=f"Experiment {experiment['name']}",
        e=experiment,
        metrics=summary,
        curves=api.chart_data(curves),
        links=airflow_links(relative_root(request), experiment),
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, store: StoreDep, access: AccessDep, ids: Annotated[list[str] | None, Query()] = None
) -> HTMLResponse:
    parsed = api.parse_ids(ids)
    result = api.load_compare(store, access, parsed)
    curves = api.curves_of(store, parsed)
    return render(
        request,
        "compare.html",
        nav="experiments",
        title="Compare experiments",
        c=result,
        ids=parsed,
        curves=api.chart_data(curves),
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
    page = api.load_experiments(
        store, access, dag_id=dag_id, run_id=run_id, order="asc", limit=ui_queries.MAX_PAGE
    )
    return render(
        request,
        "run.html",
        title=f"Experiments of {dag_id} / {run_id}",
        page=page,
        dag_id=dag_id,
        run_id=run_id,
        task_id=None,
        compare_ids=[e["experiment_id"] for e in page["items"]][:10],
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
    page = api.load_experiments(
        store,
        access,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=index if index is not None and 0 <= index <= ui_queries.MAX_OFFSET else None,
        order="asc",
        limit=ui_queries.MAX_PAGE,
    )
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
        compare_ids=[e["experiment_id"] for e in page["items"]][:10],
    )


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, store: StoreDep, access: AccessDep, project: str = "") -> HTMLResponse:
    found = ui_queries.datasets_with_usage(store, project or None, access.visible_dag_ids)
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
    graph = api.load_lineage(store, access, dataset_id)
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
    found = ui_queries.models_with_usage(store, project or None, access.visible_dag_ids)
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
    found = api.load_deployments(store, access, project)
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
    return render(request, "schema.html", nav="schema", title="Schema", schema=api.load_schema(store))
