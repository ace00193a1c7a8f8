"""What the API routes and the HTML pages show, gathered once for both (docs/architecture.md).

Each loader reads through :mod:`airflow_mltrack.store.reads` with the reader's visible DAGs (filtered in
SQL, before any LIMIT) and hides secrets in what it returns, so neither the API nor a page shows them.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from airflow_mltrack.store.reads import catalog, compare, experiment_list, lineage, metric_curves
from airflow_mltrack.vocabulary import is_system_tag

if TYPE_CHECKING:
    from airflow_mltrack.plugins.auth import DagAccess
    from airflow_mltrack.plugins.filters import ExperimentQuery
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.reads.metric_curves import Series, SeriesKey


def hide_secrets(
    store: TrackingStore, found: list[dict[str, Any]], key: str = "hyperparameters"
) -> list[dict[str, Any]]:
    """Secret-looking values of ``key`` (hyperparameters, job parameters) replaced by ``***``, and the
    secrets in an ``error`` text masked, by the store's redaction policy (the hook's: Airflow's
    sensitive names and secrets masker).

    The store redacts them before they are written; this covers rows written some other way (older
    versions, another policy), so neither the API nor a page ever shows them.
    """
    for row in found:
        if row.get(key):
            row[key] = store.redaction.redact(row[key])
        if row.get("error"):
            row["error"] = store.redaction.redact_text(row["error"])
    return found


def load_experiments(store: TrackingStore, access: DagAccess, query: ExperimentQuery) -> dict[str, Any]:
    """One page of the experiment list, with the ``sort``, ``order``, ``filter`` and ``order_by`` it was
    asked for and its ``columns`` (descriptions; each row's values in its own ``columns``)."""
    where = query.to_filter(store.redaction)
    page: dict[str, Any] = dict(experiment_list.experiment_page(store, where, access.visible_dag_ids))
    page["sort"] = query.sort or None
    page["order"] = query.order
    page["filter"] = where.search
    page["order_by"] = list(where.order_by)
    hide_secrets(store, page["items"])
    return page


def load_experiment(store: TrackingStore, access: DagAccess, experiment_id: int) -> dict[str, Any]:
    """One experiment; a hidden one answers the same 404 as an unknown id."""
    experiment = access.check(store.get_experiment(experiment_id), "experiment_id", experiment_id)
    values = store.tag_values("experiment", experiment_id)
    experiment["tags"] = [t for t in experiment["tags"] if not is_system_tag(t)]
    experiment["tag_values"] = {k: v for k, v in values.items() if v is not None and not is_system_tag(k)}
    experiment["system_tags"] = sorted((k, v) for k, v in values.items() if is_system_tag(k))
    return hide_secrets(store, [experiment])[0]


def load_curves(
    store: TrackingStore,
    ids: list[int],
    keys: list[SeriesKey] | None = None,
    points: int = metric_curves.DEFAULT_POINTS,
    start: int | None = None,
    end: int | None = None,
) -> list[Series]:
    """The metric curves of experiments already checked readable (see :func:`load_experiment`), each
    downsampled to at most ``points`` points in the step range ``start``..``end`` (docs/ui.md, "Charts")."""
    return metric_curves.series(store, ids, keys, points, start, end)


def chart_data(curves: list[Series]) -> list[dict[str, Any]]:
    """Curves for the browser: non-finite values become null (a gap; ``gaps`` has their steps) and the
    experiment's start time is given in seconds since the epoch (the wall-time axis)."""
    found = []
    for c in curves:
        started = c.get("start_time")
        if started is not None and started.tzinfo is None:  # SQLite: naive UTC
            started = started.replace(tzinfo=dt.UTC)
        found.append(
            {
                **c,
                "values": [v if v is not None and math.isfinite(v) else None for v in c["values"]],
                "start_time": started.timestamp() if started is not None else None,
            }
        )
    return found


def load_compare(store: TrackingStore, access: DagAccess, ids: list[int]) -> dict[str, Any]:
    """The comparison of ``ids`` (two queries, see :mod:`airflow_mltrack.store.reads.compare`); an id that
    does not exist and one the user may not see both answer the same 404 (every such id named).
    ``differing`` compares the values as shown (after redaction)."""
    result: dict[str, Any] = dict(compare.compare(store, ids, access.visible_dag_ids, field="ids"))
    hide_secrets(store, result["experiments"])
    result["hyperparameters"] = {
        key: {experiment_id: store.redaction.redact(value, key) for experiment_id, value in values.items()}
        for key, values in result["hyperparameters"].items()
    }
    result["differing"] = compare.differing_keys(result["hyperparameters"])
    return result


def load_lineage(store: TrackingStore, access: DagAccess, dataset_id: int) -> dict[str, Any]:
    """The lineage around a dataset, job parameters and hyperparameters with secrets hidden."""
    graph: dict[str, Any] = dict(lineage.lineage(store, dataset_id, access.visible_dag_ids))
    for key in ("upstream_jobs", "downstream_jobs"):
        hide_secrets(store, graph[key], "parameters")
    hide_secrets(store, graph["experiments"])
    return graph


def load_lineage_graph(store: TrackingStore, access: DagAccess, kind: str, entity_id: int) -> dict[str, Any]:
    """The drawn lineage graph around a dataset, experiment or model (bounded; names only, no values that
    could hold secrets)."""
    return dict(lineage.lineage_graph(store, kind, entity_id, access.visible_dag_ids))


def load_projects(store: TrackingStore, access: DagAccess) -> list[dict[str, Any]]:
    return catalog.project_summaries(store, access.visible_dag_ids)


def load_datasets(store: TrackingStore, access: DagAccess, project: str | None) -> list[dict[str, Any]]:
    return catalog.datasets_with_usage(store, project or None, access.visible_dag_ids)


def load_models(store: TrackingStore, access: DagAccess, project: str | None) -> list[dict[str, Any]]:
    return catalog.models_with_usage(store, project or None, access.visible_dag_ids)


def load_jobs(
    store: TrackingStore, access: DagAccess, project: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    found = catalog.preprocessing_jobs(store, project or None, access.visible_dag_ids, limit, offset)
    return hide_secrets(store, found, "parameters")


def load_deployments(store: TrackingStore, access: DagAccess, project: str | None) -> list[dict[str, Any]]:
    return catalog.deployments_overview(store, project or None, access.visible_dag_ids)


def load_leaderboard(
    store: TrackingStore,
    access: DagAccess,
    project: str,
    metric: str,
    evaluation_set: str,
    mode: str,
    limit: int,
) -> list[dict[str, Any]]:
    found = store.leaderboard(project, metric, evaluation_set, mode, limit, access.visible_dag_ids)
    return hide_secrets(store, found)


def load_schema(store: TrackingStore) -> dict[str, str]:
    from airflow_mltrack.store.introspect import erd_mermaid

    return {"dialect": store.dialect, "mermaid": erd_mermaid(store.engine)}
