"""Read queries of the web UI and its JSON API that the TrackingStore does not offer as methods.

Functions take a :class:`~airflow_mltrack.store.TrackingStore`; SQLAlchemy Core only, values are always
bound. No Airflow imports: the caller (``airflow_mltrack.plugins``) decides which DAGs a user may see and
passes them in as ``visible_dag_ids`` (``None`` means every DAG). Experiments, preprocessing jobs and
deployments without a ``dag_id`` (written outside Airflow) are visible to every signed-in user.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, not_, null, or_, select, true, tuple_, union

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import rows
from airflow_mltrack.store.catalog import datasets, models, projects
from airflow_mltrack.store.deployments import endpoint_models, endpoints
from airflow_mltrack.store.experiments import experiments
from airflow_mltrack.store.metrics import _float_rows, metric_latest
from airflow_mltrack.store.models import EVALUATION_SETS, EXPERIMENT_STATUSES
from airflow_mltrack.store.preprocessing import jobs
from airflow_mltrack.store.tags import tag_assignments, tags_t

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

MAX_PAGE = 500
MAX_OFFSET = 2**31 - 1  # far past any real page; keeps offset + limit inside every SQL integer type
MAX_PARAMS = 20  # hyperparameter filters per request
MAX_PARAM_LENGTH = 2000  # characters of one key=value filter
MAX_PARAM_DEPTH = 20  # nesting of a filter value read as JSON
LINEAGE_EXPERIMENTS = 100  # experiments listed in a lineage (the newest); the rest are counted
SORT_ORDERS = ("desc", "asc")


def _visible(column: Any, visible_dag_ids: Collection[str] | None) -> Any:
    """Rows whose ``dag_id`` the user may read (rows without a DAG are always visible)."""
    if visible_dag_ids is None:
        return None
    return or_(column.is_(None), column.in_(sorted(visible_dag_ids)))


def _where(query: Any, condition: Any) -> Any:
    return query if condition is None else query.where(condition)


def dag_ids(store: TrackingStore) -> set[str]:
    """Every DAG id that appears in the tracking store (to ask the auth manager about)."""
    union_all = union(
        _distinct_values(store, experiments.c.dag_id),
        select(jobs.c.dag_id).where(jobs.c.dag_id.is_not(None)),
        select(endpoint_models.c.dag_id).where(endpoint_models.c.dag_id.is_not(None)),
    )
    with store._read() as conn:
        return set(conn.execute(union_all).scalars())


def _distinct_values(store: TrackingStore, column: Any) -> Any:
    """SELECT of the distinct non-null values of an indexed ``column`` (its index's leading column).

    On PostgreSQL a skip scan: a recursive CTE that asks the index for the next larger value, one probe
    per distinct value instead of reading every row (8 DAGs over 100k experiments: 8 probes).
    """
    if not store.is_postgres:
        return select(column.label("value")).where(column.is_not(None)).distinct()
    table = column.table
    found = select(func.min(column).label("value")).cte(
        f"distinct_{table.name}_{column.name}", recursive=True
    )
    following = (
        select(select(func.min(column)).where(column > found.c.value).scalar_subquery())
        .select_from(found)
        .where(found.c.value.is_not(None))
    )
    found = found.union_all(following)
    return select(found.c.value).where(found.c.value.is_not(None))


def project_summaries(
    store: TrackingStore, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Projects with their counts of datasets, models, visible experiments and endpoints."""

    def counter(table: Any, condition: Any = None) -> Any:
        query = select(func.count()).where(table.c.project_id == projects.c.project_id)
        return _where(query, condition).scalar_subquery()

    query = select(
        projects,
        counter(datasets).label("datasets"),
        counter(models).label("models"),
        counter(experiments, _visible(experiments.c.dag_id, visible_dag_ids)).label("experiments"),
        counter(endpoints).label("endpoints"),
    ).order_by(projects.c.name)
    with store._read() as conn:
        return rows(conn.execute(query))


def parse_sort(sort: str | None) -> tuple[str, str] | None:
    """``"<split>/<metric>"`` (e.g. ``test/accuracy``) -> (split, metric); empty -> None."""
    if not sort:
        return None
    split, sep, name = sort.partition("/")
    if not sep or not name:
        raise MLTrackError("sort", sort, "expected <evaluation_set>/<metric>, e.g. test/accuracy")
    return v.choice("sort", split, EVALUATION_SETS), v.filter_text("sort", name) or name


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["lr=0.1", "optimizer=adam"]`` -> ``{"lr": 0.1, "optimizer": "adam"}`` (values read as JSON if they can be).

    At most ``MAX_PARAMS`` filters of ``MAX_PARAM_LENGTH`` characters, nested at most ``MAX_PARAM_DEPTH``
    deep: a longer or deeper one is a 422 naming it, not minutes of parsing or a crash.
    """
    import json

    pairs = [p for p in pairs or [] if p.strip()]
    if len(pairs) > MAX_PARAMS:
        raise MLTrackError("param", f"{len(pairs)} filters", f"at most {MAX_PARAMS} hyperparameter filters")
    out: dict[str, Any] = {}
    for pair in pairs:
        if len(pair) > MAX_PARAM_LENGTH:
            raise MLTrackError(
                "param", pair[:40] + "...", f"is {len(pair)} characters long; at most {MAX_PARAM_LENGTH}"
            )
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise MLTrackError("param", pair, "expected key=value, e.g. learning_rate=0.01")
        raw = raw.strip()
        if _nesting(raw) > MAX_PARAM_DEPTH:
            raise MLTrackError("param", pair[:40] + "...", f"nested deeper than {MAX_PARAM_DEPTH} levels")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[key] = value
    return out


def _nesting(text: str) -> int:
    """The deepest ``[``/``{`` nesting of ``text`` (an upper bound: brackets inside strings count too)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def experiment_page(
    store: TrackingStore,
    *,
    project: str | None = None,
    status: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
    tag: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    sort: str | None = None,
    order: str = "desc",
    limit: int = 50,
    offset: int = 0,
    visible_dag_ids: Collection[str] | None = None,
) -> dict[str, Any]:
    """One page of experiments with the total count (every filter, visibility included, is SQL).

    ``sort`` is ``"<split>/<metric>"``: ordered by the final value of that metric on that split
    (experiments without it last), else newest first. Each row carries ``sort_value``.
    """
    limit = v.integer("limit", limit, minimum=1)
    if limit is None or limit > MAX_PAGE:
        raise MLTrackError("limit", limit, f"must be between 1 and {MAX_PAGE}")
    offset = v.integer("offset", offset, minimum=0) or 0
    if offset > MAX_OFFSET:
        raise MLTrackError("offset", offset, f"must be at most {MAX_OFFSET}")
    order = v.choice("order", order, SORT_ORDERS)
    sort_key = parse_sort(sort)
    project, dag_id, run_id, task_id, tag = (
        v.filter_text(field, value)
        for field, value in (
            ("project", project),
            ("dag_id", dag_id),
            ("run_id", run_id),
            ("task_id", task_id),
            ("tag", tag),
        )
    )

    conditions: list[Any] = []
    if project:
        conditions.append(projects.c.name == project)
    if status:
        conditions.append(experiments.c.status == v.choice("status", status, EXPERIMENT_STATUSES))
    if dag_id:
        conditions.append(experiments.c.dag_id == dag_id)
    if run_id:
        conditions.append(experiments.c.run_id == run_id)
    if task_id:
        conditions.append(experiments.c.task_id == task_id)
    if map_index is not None:
        conditions.append(experiments.c.map_index == v.integer("map_index", map_index, minimum=-1))
    if tag:
        conditions.append(
            experiments.c.experiment_id.in_(
                select(tag_assignments.c.entity_id)
                .join(tags_t, tags_t.c.tag_id == tag_assignments.c.tag_id)
                .where(tag_assignments.c.entity_type == "experiment", tags_t.c.name == tag)
            )
        )
    if hyperparameters:
        conditions.append(store._params_match(v.json_object("hyperparameters", dict(hyperparameters)) or {}))
    visible = _visible(experiments.c.dag_id, visible_dag_ids)
    if visible is not None:
        conditions.append(visible)

    def filtered(query: Any) -> Any:
        """``query`` (over experiments) with the filters; projects joined only to filter by its name."""
        if project:
            query = query.join(projects, projects.c.project_id == experiments.c.project_id)
        return query.where(and_(*conditions)) if conditions else query

    count_query = filtered(select(func.count()).select_from(experiments))
    with store._read() as conn:
        total = int(conn.execute(count_query).scalar_one())
        if sort_key is None:
            id_order = (
                experiments.c.experiment_id.desc() if order == "desc" else experiments.c.experiment_id.asc()
            )
            query = store._experiment_query()
            query = (query.where(and_(*conditions)) if conditions else query).order_by(id_order)
            items = rows(conn.execute(query.limit(limit).offset(offset)))
        else:
            page = _metric_sorted_ids(store, conn, filtered, sort_key, order, offset + limit)[offset:]
            by_id = {
                r["experiment_id"]: r
                for r in rows(
                    conn.execute(
                        store._experiment_query().where(experiments.c.experiment_id.in_([i for i, _ in page]))
                    )
                )
            }
            items = [{**by_id[i], "sort_value": value} for i, value in page if i in by_id]
            _float_rows(items, ("sort_value",))
    _attach_tags(store, items)
    return {"total": total, "limit": limit, "offset": offset, "items": items}


def _metric_sorted_ids(
    store: TrackingStore, conn: Any, filtered: Any, sort_key: tuple[str, str], order: str, n: int
) -> list[tuple[int, float | None]]:
    """The first ``n`` (experiment_id, final value) of the filtered experiments sorted by a metric.

    Three tiers, each its own query and asked only while the page is not full: experiments with a number
    (by value, ties newest first), then those whose final value is not finite (NaN, +-Infinity: not ranked,
    as on the leaderboard), then those without the metric
    (newest first). The first is a walk of ``idx_metric_latest_key_value`` that stops after ``n`` rows,
    instead of joining every experiment to its value and sorting them all.
    """
    split, name = sort_key
    latest = metric_latest.c
    of_key = and_(latest.name == name, latest.evaluation_set == split)
    valued = filtered(
        select(latest.experiment_id, latest.value).join(
            experiments, experiments.c.experiment_id == latest.experiment_id
        )
    ).where(of_key)
    newest = latest.experiment_id.desc()
    tiers = [
        valued.where(store._finite(latest.value)).order_by(
            latest.value.desc() if order == "desc" else latest.value.asc(), newest
        ),
        # NaN is NULL on SQLite (no comparison passes it): named, as NOT of an unknown would drop it too.
        valued.where(or_(latest.value.is_(None), not_(store._finite(latest.value)))).order_by(newest),
        filtered(select(experiments.c.experiment_id, null().label("value")))
        .where(
            ~select(latest.experiment_id)
            .where(of_key, latest.experiment_id == experiments.c.experiment_id)
            .exists()
        )
        .order_by(experiments.c.experiment_id.desc()),
    ]
    found: list[tuple[int, float | None]] = []
    for number, tier in enumerate(tiers):
        if len(found) >= n:
            break
        for i, value in conn.execute(tier.limit(n - len(found))):
            # The non-finite tier's NULL is SQLite's NaN; the last tier's NULL means "no value".
            found.append((int(i), math.nan if value is None and number == 1 else value))
    return found


def _attach_tags(store: TrackingStore, items: list[dict[str, Any]]) -> None:
    """Set ``tags`` (sorted names) on experiment rows, in one query."""
    by_id: dict[int, list[str]] = {row["experiment_id"]: [] for row in items}
    for row in items:
        row["tags"] = by_id[row["experiment_id"]]
    if not by_id:
        return
    query = (
        select(tag_assignments.c.entity_id, tags_t.c.name)
        .join(tags_t, tags_t.c.tag_id == tag_assignments.c.tag_id)
        .where(tag_assignments.c.entity_type == "experiment", tag_assignments.c.entity_id.in_(list(by_id)))
        .order_by(tags_t.c.name)
    )
    with store._read() as conn:
        for entity_id, name in conn.execute(query):
            by_id[int(entity_id)].append(name)


def metric_keys(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, str]]:
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
    used = _where(used, _visible(experiments.c.dag_id, visible_dag_ids))
    if store.is_postgres:
        # LATERAL .. LIMIT 1 keeps it a probe per key (an EXISTS would be planned as a join of every row).
        hit = used.limit(1).lateral("hit")
        query = query.select_from(keys).join(hit, true()).order_by(keys.c.evaluation_set, keys.c.name)
    else:
        query = query.where(latest.experiment_id.in_(used)).order_by(latest.evaluation_set, latest.name)
    with store._read() as conn:
        return rows(conn.execute(query))


def filter_choices(
    store: TrackingStore, visible_dag_ids: Collection[str] | None = None
) -> dict[str, list[str]]:
    """Values for the experiment filters: projects, visible DAG ids and the tags of visible experiments."""
    values = _distinct_values(store, experiments.c.dag_id).subquery()
    dag_query = select(values.c.value).order_by(values.c.value)
    if visible_dag_ids is not None:
        dag_query = dag_query.where(values.c.value.in_(sorted(visible_dag_ids)))
    tag_query = (
        select(tags_t.c.name)
        .join(tag_assignments, tag_assignments.c.tag_id == tags_t.c.tag_id)
        .where(tag_assignments.c.entity_type == "experiment")
        .distinct()
        .order_by(tags_t.c.name)
    )
    visible = _visible(experiments.c.dag_id, visible_dag_ids)
    if visible is not None:  # only tags of experiments the user may see
        tag_query = tag_query.where(
            tag_assignments.c.entity_id.in_(select(experiments.c.experiment_id).where(visible))
        )
    with store._read() as conn:
        return {
            "projects": list(conn.execute(select(projects.c.name).order_by(projects.c.name)).scalars()),
            "dag_ids": list(conn.execute(dag_query).scalars()),
            "tags": list(conn.execute(tag_query).scalars()),
            "statuses": list(EXPERIMENT_STATUSES),
        }


def _experiment_counts(
    store: TrackingStore, column: Any, visible_dag_ids: Collection[str] | None
) -> dict[int, int]:
    query = _where(
        select(column, func.count()).group_by(column), _visible(experiments.c.dag_id, visible_dag_ids)
    )
    with store._read() as conn:
        return {int(k): int(n) for k, n in conn.execute(query)}


def datasets_with_usage(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Datasets (every version) with the number of visible experiments that used each."""
    found = store.list_datasets(project or None)
    counts = _experiment_counts(store, experiments.c.dataset_id, visible_dag_ids)
    for row in found:
        row["experiments"] = counts.get(row["dataset_id"], 0)
    return found


def models_with_usage(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Models (every version) with their visible experiment count and the active endpoints of deployments
    the user may see."""
    found = store.list_models(project or None)
    counts = _experiment_counts(store, experiments.c.model_id, visible_dag_ids)
    serving = _where(
        select(endpoint_models.c.model_id, endpoints.c.name, endpoint_models.c.traffic_percentage)
        .join(endpoints, endpoints.c.endpoint_id == endpoint_models.c.endpoint_id)
        .where(endpoint_models.c.retired_at.is_(None)),
        _visible(endpoint_models.c.dag_id, visible_dag_ids),
    ).order_by(endpoints.c.name)
    with store._read() as conn:
        active: dict[int, list[dict[str, Any]]] = {}
        for model_id, name, traffic in conn.execute(serving):
            active.setdefault(int(model_id), []).append({"endpoint": name, "traffic_percentage": traffic})
    for row in found:
        row["experiments"] = counts.get(row["model_id"], 0)
        row["serving"] = active.get(row["model_id"], [])
    return found


def lineage(
    store: TrackingStore,
    dataset_id: int,
    visible_dag_ids: Collection[str] | None = None,
    experiment_limit: int = LINEAGE_EXPERIMENTS,
) -> dict[str, Any]:
    """The lineage around a dataset.

    Upstream: the preprocessing chain that produced it. Downstream: preprocessing jobs from it and from
    every dataset derived from it (transitively), the experiments trained on any of these datasets, their
    models and the endpoints serving those models (every assignment, active or retired).

    Experiments: the newest ``experiment_limit`` (``experiments_total`` counts them all); the models and
    endpoints are those of every experiment, shown or not.
    """
    dataset_id = v.entity_id("dataset_id", dataset_id)
    with store._read() as conn:
        root = conn.execute(select(datasets).where(datasets.c.dataset_id == dataset_id)).first()
        if root is None:
            raise NotFoundError("dataset_id", dataset_id, "no dataset with this id")
        project_id = root.project_id
        all_jobs = rows(
            conn.execute(
                _where(
                    select(jobs).where(jobs.c.project_id == project_id),
                    _visible(jobs.c.dag_id, visible_dag_ids),
                ).order_by(jobs.c.job_id)
            )
        )
        # Walk the job graph both ways from the root dataset.
        downstream_ids, upstream_ids = {dataset_id}, {dataset_id}
        down_jobs: list[dict[str, Any]] = []
        up_jobs: list[dict[str, Any]] = []
        frontier = [dataset_id]
        while frontier:
            current = frontier.pop()
            for job in all_jobs:
                if job["input_dataset_id"] == current and job not in down_jobs:
                    down_jobs.append(job)
                    out = job["output_dataset_id"]
                    if out is not None and out not in downstream_ids:
                        downstream_ids.add(out)
                        frontier.append(out)
        frontier = [dataset_id]
        while frontier:
            current = frontier.pop()
            for job in all_jobs:
                if job["output_dataset_id"] == current and job not in up_jobs:
                    up_jobs.append(job)
                    source = job["input_dataset_id"]
                    if source not in upstream_ids:
                        upstream_ids.add(source)
                        frontier.append(source)
        dataset_rows = {
            r["dataset_id"]: r
            for r in rows(
                conn.execute(select(datasets).where(datasets.c.dataset_id.in_(downstream_ids | upstream_ids)))
            )
        }
        trained = _where(
            select(experiments.c.experiment_id).where(experiments.c.dataset_id.in_(downstream_ids)),
            _visible(experiments.c.dag_id, visible_dag_ids),
        ).subquery()
        newest = (
            select(
                experiments.c.experiment_id,
                experiments.c.name,
                experiments.c.status,
                experiments.c.dataset_id,
                experiments.c.model_id,
                experiments.c.dag_id,
                experiments.c.run_id,
            )
            .where(experiments.c.experiment_id.in_(select(trained.c.experiment_id)))
            .order_by(experiments.c.experiment_id.desc())
            .limit(experiment_limit)
        )
        exp_rows = rows(conn.execute(newest))
        total = int(conn.execute(select(func.count()).select_from(trained)).scalar_one())
        model_ids = set(
            conn.execute(
                select(experiments.c.model_id)
                .where(experiments.c.experiment_id.in_(select(trained.c.experiment_id)))
                .distinct()
            ).scalars()
        )
        model_rows = rows(
            conn.execute(select(models).where(models.c.model_id.in_(model_ids)).order_by(models.c.model_id))
        )
        deployments = rows(
            conn.execute(
                _where(
                    select(
                        endpoint_models,
                        endpoints.c.name.label("endpoint"),
                        endpoints.c.url,
                    )
                    .join(endpoints, endpoints.c.endpoint_id == endpoint_models.c.endpoint_id)
                    .where(endpoint_models.c.model_id.in_(model_ids)),
                    _visible(endpoint_models.c.dag_id, visible_dag_ids),
                ).order_by(endpoint_models.c.endpoint_model_id)
            )
        )
    return {
        "dataset": dict(root._mapping),
        "upstream_jobs": up_jobs,
        "downstream_jobs": down_jobs,
        "datasets": [dataset_rows[i] for i in sorted(dataset_rows)],
        "experiments": exp_rows,
        "experiments_total": total,
        "models": model_rows,
        "deployments": deployments,
    }


def deployments_overview(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Every endpoint (of a project) with its project name, current split (``active``, highest share
    first) and full history (oldest first): only the assignments made by DAGs the user may read. Two
    queries, whatever the number of endpoints."""
    query = (
        select(endpoints, projects.c.name.label("project"))
        .join(projects, projects.c.project_id == endpoints.c.project_id)
        .order_by(projects.c.name, endpoints.c.name)
    )
    if project:
        query = query.where(projects.c.name == project)
    with store._read() as conn:
        found = rows(conn.execute(query))
        if not found:
            return []
        assignments = _where(
            store._assignment_query().where(
                endpoint_models.c.endpoint_id.in_([row["endpoint_id"] for row in found])
            ),
            _visible(endpoint_models.c.dag_id, visible_dag_ids),
        ).order_by(endpoint_models.c.endpoint_model_id)
        history: dict[int, list[dict[str, Any]]] = {}
        for row in rows(conn.execute(assignments)):
            history.setdefault(row["endpoint_id"], []).append(row)
    for row in found:
        row["history"] = history.get(row["endpoint_id"], [])
        active = [a for a in row["history"] if a["retired_at"] is None]
        row["active"] = sorted(active, key=lambda a: -a["traffic_percentage"])
    return found


def visible_experiment_ids(
    store: TrackingStore, ids: Collection[int], visible_dag_ids: Collection[str] | None = None
) -> set[int]:
    """Those of ``ids`` that exist and that the user may see (hidden and missing ids look the same)."""
    query = _where(
        select(experiments.c.experiment_id).where(experiments.c.experiment_id.in_(list(ids))),
        _visible(experiments.c.dag_id, visible_dag_ids),
    )
    with store._read() as conn:
        return {int(i) for i in conn.execute(query).scalars()}


def preprocessing_jobs(
    store: TrackingStore,
    project: str | None = None,
    visible_dag_ids: Collection[str] | None = None,
    limit: int = MAX_PAGE,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Preprocessing jobs (of a project) the user may see, oldest first, one page."""
    limit = v.integer("limit", limit, minimum=1) or MAX_PAGE
    offset = v.integer("offset", offset, minimum=0) or 0
    query = _where(select(jobs), _visible(jobs.c.dag_id, visible_dag_ids))
    if project:
        query = query.join(projects, projects.c.project_id == jobs.c.project_id).where(
            projects.c.name == project
        )
    with store._read() as conn:
        return rows(conn.execute(query.order_by(jobs.c.job_id).limit(min(limit, MAX_PAGE)).offset(offset)))


__all__ = [
    "MAX_OFFSET",
    "MAX_PAGE",
    "dag_ids",
    "datasets_with_usage",
    "deployments_overview",
    "experiment_page",
    "filter_choices",
    "lineage",
    "metric_keys",
    "models_with_usage",
    "parse_params",
    "parse_sort",
    "preprocessing_jobs",
    "project_summaries",
    "visible_experiment_ids",
]
