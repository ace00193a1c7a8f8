"""The experiment list: one filtered, sorted page, its filter choices and its sort keys.

Functions take the :class:`~airflow_mltrack.store.TrackingStore` first and typed, already-parsed values
(the HTTP forms of these filters are parsed in ``airflow_mltrack.plugins.filters``); every filter,
visibility included, is SQL (docs/architecture.md, "Visibility").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import and_, func, select, true, tuple_

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import float_rows, rows
from airflow_mltrack.store.models import EVALUATION_SETS, EXPERIMENT_STATUSES
from airflow_mltrack.store.reads.experiment_columns import MAX_COLUMNS, attach_columns, column_choices
from airflow_mltrack.store.reads.experiment_order import page_ids, page_window
from airflow_mltrack.store.search import (
    TIEBREAKS,
    Compiler,
    Key,
    OrderKey,
    parse_columns,
    parse_filter,
    parse_order_by,
)
from airflow_mltrack.store.visibility import distinct_values, only_readable, readable

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

MAX_PAGE = 500
MAX_OFFSET = 2**31 - 1  # far past any real page; keeps offset + limit inside every SQL integer type
#: Matches are counted exactly up to this many; past it the count stops (``total_exact`` False) and the
#: last page is read from the end (``from_end``), so no page costs a count of every match.
COUNT_CAP = 1_000
SORT_ORDERS = ("desc", "asc")
#: Which experiments by their delete mark (revision 0008, MLflow's ``delete_run``): the default hides deleted.
LIFECYCLES = ("active", "deleted", "all")

experiments, projects, metric_latest = tables.experiments, tables.projects, tables.metric_latest
tags, tag_assignments = tables.tags, tables.tag_assignments


@dataclass(frozen=True)
class ExperimentFilter:
    """Which experiments, in which order, which page, with which columns. ``None`` (or empty) means
    "any". ``search``: a filter in the search language (:mod:`airflow_mltrack.store.search`), AND-ed with
    the other fields; ``order_by``: its order-by clauses (``metrics.test.accuracy DESC``); ``sort`` is the
    older ``(evaluation_set, metric name)`` form with ``order``; neither: newest first. ``columns``: keys
    whose values each row carries in ``columns``. ``lifecycle``: ``active`` (default: deleted experiments
    hidden), ``deleted`` or ``all``. ``tiebreak``: the order of rows equal on every key, ``newest`` (id
    descending) or ``mlflow`` (start time descending, then the id as text ascending: MLflow's run order,
    for the MLflow adapter). ``count``: False skips the count of every match (``total`` None; the page
    reads one row more to tell ``more``: the MLflow adapter, whose pages need no total). ``labels``: False
    leaves the rows without their ``tags`` list (a caller that reads tags with their values itself)."""

    project: str | None = None
    status: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    tag: str | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    sort: tuple[str, str] | None = None
    order: str = "desc"
    limit: int = 50
    offset: int = 0
    from_end: bool = False
    search: str | None = None
    order_by: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    lifecycle: str = "active"
    tiebreak: str = "newest"
    count: bool = True
    labels: bool = True


class ExperimentPage(TypedDict):
    """One page of experiment rows (those of ``store.experiment_query()`` with ``tags``, ``columns``, and
    ``sort_value`` when sorted by one metric), the count of every match (None when not counted), whether
    rows follow the page, and the columns' descriptions."""

    total: int | None
    total_exact: bool
    more: bool
    limit: int
    offset: int
    from_end: bool
    items: list[dict[str, Any]]
    columns: list[dict[str, str]]


class MetricKey(TypedDict):
    evaluation_set: str
    name: str


def experiment_page(
    store: TrackingStore, where: ExperimentFilter, visible_dag_ids: Collection[str] | None = None
) -> ExperimentPage:
    """One page of the experiments matching ``where`` that the reader may see, with their count (exact up
    to ``COUNT_CAP``).

    Sorted by a metric: experiments with a finite final value by value, then the non-finite ones, then
    those without the metric (each tier newest first on ties); each row carries ``sort_value``.
    """
    limit = v.integer("limit", where.limit, minimum=1)
    if limit is None or limit > MAX_PAGE:
        raise MLTrackError("limit", limit, f"must be between 1 and {MAX_PAGE}")
    offset = v.integer("offset", where.offset, minimum=0) or 0
    if offset > MAX_OFFSET:
        raise MLTrackError("offset", offset, f"must be at most {MAX_OFFSET}")
    order = v.choice("order", where.order, SORT_ORDERS)
    sort_key = None
    if where.sort is not None:
        split, name = where.sort
        sort_key = v.choice("sort", split, EVALUATION_SETS), v.filter_text("sort", name) or name
    project, dag_id, run_id, task_id, tag = (
        v.filter_text(name, value)
        for name, value in (
            ("project", where.project),
            ("dag_id", where.dag_id),
            ("run_id", where.run_id),
            ("task_id", where.task_id),
            ("tag", where.tag),
        )
    )

    conditions: list[Any] = []
    lifecycle = v.choice("lifecycle", where.lifecycle, LIFECYCLES)
    tiebreak = v.choice("tiebreak", where.tiebreak, TIEBREAKS)
    if lifecycle != "all":
        deleted = experiments.c.deleted_at
        conditions.append(deleted.is_(None) if lifecycle == "active" else deleted.is_not(None))
    if project:
        conditions.append(projects.c.name == project)
    if where.status:
        conditions.append(experiments.c.status == v.choice("status", where.status, EXPERIMENT_STATUSES))
    for column, value in ((experiments.c.dag_id, dag_id), (experiments.c.run_id, run_id)):
        if value:
            conditions.append(column == value)
    if task_id:
        conditions.append(experiments.c.task_id == task_id)
    if where.map_index is not None:
        conditions.append(experiments.c.map_index == v.integer("map_index", where.map_index, minimum=-1))
    if tag:
        conditions.append(
            experiments.c.experiment_id.in_(
                select(tag_assignments.c.entity_id)
                .join(tags, tags.c.tag_id == tag_assignments.c.tag_id)
                .where(tag_assignments.c.entity_type == "experiment", tags.c.name == tag)
            )
        )
    if where.hyperparameters:
        params = v.json_object("hyperparameters", dict(where.hyperparameters)) or {}
        conditions.append(store.params_match(params))
    visible = readable(experiments.c.dag_id, visible_dag_ids)
    if visible is not None:
        conditions.append(visible)

    def filtered(query: Any) -> Any:
        """``query`` (over experiments) with the filters; projects joined only to filter by its name."""
        if project:
            query = query.join(projects, projects.c.project_id == experiments.c.project_id)
        return query.where(and_(*conditions)) if conditions else query

    node = parse_filter(where.search)
    keys = parse_order_by(list(where.order_by))
    if not keys and sort_key is not None:
        keys = [OrderKey(Key("metrics", sort_key[1], "sort", split=sort_key[0]), descending=order == "desc")]
    column_keys = parse_columns(list(where.columns))
    if len(column_keys) > MAX_COLUMNS:
        raise MLTrackError("columns", len(column_keys), f"at most {MAX_COLUMNS} columns")
    with store.read() as conn:
        compiler = Compiler(store, conn, tiebreak=tiebreak)
        if node is not None:
            conditions.append(compiler.condition(node))
        counted: int | None = None
        if where.count:
            capped = filtered(select(experiments.c.experiment_id)).limit(COUNT_CAP + 1).subquery()
            counted = int(conn.execute(select(func.count()).select_from(capped)).scalar_one())
        elif where.from_end:
            raise MLTrackError("from_end", True, "a page read from the end needs the count (count=True)")
        known = counted if counted is not None and counted <= COUNT_CAP else None
        # Not counted: one row past the page tells whether more follow.
        window = (known, offset, limit if where.count else limit + 1, where.from_end)
        if keys or tiebreak != "newest":
            page = page_ids(store, conn, compiler, filtered, keys, window)
            chosen = store.experiment_query().where(
                store.id_in(experiments.c.experiment_id, [i for i, _ in page])
            )
            by_id = {r["experiment_id"]: r for r in rows(conn.execute(chosen))}
            one_metric = len(keys) == 1 and keys[0].key.entity == "metrics" and tiebreak == "newest"
            items = [{**by_id[i], **({"sort_value": v} if one_metric else {})} for i, v in page if i in by_id]
            if one_metric:
                float_rows(items, ("sort_value",))
        else:
            reverse, start, count = page_window(*window)
            newest = experiments.c.experiment_id
            id_order = newest.desc() if (order == "desc") != reverse else newest.asc()
            query = store.experiment_query()
            query = (query.where(and_(*conditions)) if conditions else query).order_by(id_order)
            items = rows(conn.execute(query.limit(count).offset(start))) if count > 0 else []
            items = items[::-1] if reverse else items
        more = len(items) > limit
        items = items[:limit]
        described = attach_columns(store, conn, compiler, items, column_keys)
    if where.labels:
        _attach_tags(store, items)
    from_end = where.from_end
    if from_end and known is not None:  # a known total: the page's offset from the start
        offset, from_end = max(known - offset - len(items), 0), False
    if from_end:  # counted from the end: rows follow unless the page ends at the last one
        more = offset > 0
    elif counted is not None:
        more = offset + len(items) < counted or (known is None and len(items) == limit)
    return {
        "total": None if counted is None else min(counted, COUNT_CAP),
        "total_exact": known is not None,
        "more": more,
        "limit": limit,
        "offset": offset,
        "from_end": from_end,
        "items": items,
        "columns": described,
    }


def _attach_tags(store: TrackingStore, items: list[dict[str, Any]]) -> None:
    """Set ``tags`` (sorted names) on experiment rows, in one query."""
    by_id: dict[int, list[str]] = {row["experiment_id"]: [] for row in items}
    for row in items:
        row["tags"] = by_id[row["experiment_id"]]
    if not by_id:
        return
    query = (
        select(tag_assignments.c.entity_id, tags.c.name)
        .join(tags, tags.c.tag_id == tag_assignments.c.tag_id)
        .where(
            tag_assignments.c.entity_type == "experiment",
            store.id_in(tag_assignments.c.entity_id, list(by_id)),
        )
        .order_by(tags.c.name)
    )
    with store.read() as conn:
        for entity_id, name in conn.execute(query):
            by_id[int(entity_id)].append(name)


def metric_keys(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[MetricKey]:
    """Distinct (evaluation_set, metric name) pairs logged in a project (or anywhere): the sort choices.

    On PostgreSQL the distinct keys of ``metric_latest`` come from a skip scan of its key index (a
    recursive CTE that jumps from key to key: one probe per key, not one row per experiment), and each
    key is kept if one visible experiment of the project has it.
    """
    latest = metric_latest.c
    if store.is_postgres:
        seen = metric_latest.alias("seen")
        first = (
            select(seen.c.name, seen.c.evaluation_set).order_by(seen.c.name, seen.c.evaluation_set).limit(1)
        )
        keys = first.cte("metric_keys", recursive=True)
        later = metric_latest.alias("later")
        step = (
            select(later.c.name, later.c.evaluation_set)
            .where(tuple_(later.c.name, later.c.evaluation_set) > tuple_(keys.c.name, keys.c.evaluation_set))
            .order_by(later.c.name, later.c.evaluation_set)
            .limit(1)
            .lateral("next_key")
        )
        keys = keys.union_all(select(step.c.name, step.c.evaluation_set).select_from(keys).join(step, true()))
        used = (
            select(latest.experiment_id)
            .join(experiments, experiments.c.experiment_id == latest.experiment_id)
            .where(latest.name == keys.c.name, latest.evaluation_set == keys.c.evaluation_set)
        )
        query = select(keys.c.evaluation_set, keys.c.name)
    else:
        used = select(latest.experiment_id).join(
            experiments, experiments.c.experiment_id == latest.experiment_id
        )
        query = select(latest.evaluation_set, latest.name).distinct()
    if project:
        used = used.join(projects, projects.c.project_id == experiments.c.project_id).where(
            projects.c.name == project
        )
    used = only_readable(used, experiments.c.dag_id, visible_dag_ids)
    if store.is_postgres:
        # LATERAL .. LIMIT 1 keeps it a probe per key (an EXISTS would be planned as a join of every row).
        hit = used.limit(1).lateral("hit")
        query = query.select_from(keys).join(hit, true()).order_by(keys.c.evaluation_set, keys.c.name)
    else:
        query = query.where(latest.experiment_id.in_(used)).order_by(latest.evaluation_set, latest.name)
    with store.read() as conn:
        return rows(conn.execute(query))  # type: ignore[return-value]


def filter_choices(
    store: TrackingStore, visible_dag_ids: Collection[str] | None = None
) -> dict[str, list[str]]:
    """Values for the experiment filters: projects, visible DAG ids and the tags of visible experiments."""
    values = distinct_values(store, experiments.c.dag_id).subquery()
    dag_query = select(values.c.value).order_by(values.c.value)
    if visible_dag_ids is not None:
        dag_query = dag_query.where(values.c.value.in_(sorted(visible_dag_ids)))
    tag_query = (
        select(tags.c.name)
        .join(tag_assignments, tag_assignments.c.tag_id == tags.c.tag_id)
        .where(tag_assignments.c.entity_type == "experiment")
        .distinct()
        .order_by(tags.c.name)
    )
    visible = readable(experiments.c.dag_id, visible_dag_ids)
    if visible is not None:  # only tags of experiments the reader may see
        tag_query = tag_query.where(
            tag_assignments.c.entity_id.in_(select(experiments.c.experiment_id).where(visible))
        )
    with store.read() as conn:
        return {
            "projects": list(conn.execute(select(projects.c.name).order_by(projects.c.name)).scalars()),
            "dag_ids": list(conn.execute(dag_query).scalars()),
            "tags": list(conn.execute(tag_query).scalars()),
            "statuses": list(EXPERIMENT_STATUSES),
        }


__all__ = [
    "COUNT_CAP",
    "MAX_COLUMNS",
    "MAX_OFFSET",
    "MAX_PAGE",
    "SORT_ORDERS",
    "ExperimentFilter",
    "ExperimentPage",
    "MetricKey",
    "column_choices",
    "experiment_page",
    "filter_choices",
    "metric_keys",
]
