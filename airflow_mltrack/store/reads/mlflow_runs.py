"""Everything MLflow's ``Run`` shows of a page of experiments, in a few batched queries: the experiment
rows, their tags with values, their final metric values (``metric_latest``) and, in a second call, the
datasets they list with those datasets' tags (the MLflow adapter's ``get_run`` and ``search_runs``).

A page of 100 runs costs one connection and three statements (plus two for its datasets), not the ten
statements per run of calling ``get_experiment``, ``tag_values`` and ``latest_metrics`` for each.
Takes the :class:`~airflow_mltrack.store.TrackingStore` first and only reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import select

from airflow_mltrack.store import metric_summary, tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import float_rows, rows

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

experiments, metric_latest = tables.experiments, tables.metric_latest
tags_t, tag_assignments, datasets = tables.tags, tables.tag_assignments, tables.datasets

# Bound parameters per IN list: well under SQLite's and PostgreSQL's limits.
_CHUNK = 500


class RunRecord(TypedDict):
    """One experiment as ``get_experiment`` (without its label list), ``tag_values`` and
    ``latest_metrics`` give it."""

    row: dict[str, Any]
    tags: dict[str, str | None]
    latest: list[dict[str, Any]]


class DatasetRecord(TypedDict):
    """One dataset row (as ``get_dataset``) and its tags (as ``tag_values``)."""

    row: dict[str, Any]
    tags: dict[str, str | None]


def _ids(field: str, ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(v.entity_id(field, i) for i in ids))


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _tags(conn: Any, entity_type: str, ids: Sequence[int]) -> dict[int, dict[str, str | None]]:
    found: dict[int, dict[str, str | None]] = {i: {} for i in ids}
    query = (
        select(tag_assignments.c.entity_id, tags_t.c.name, tag_assignments.c.value)
        .join(tags_t, tags_t.c.tag_id == tag_assignments.c.tag_id)
        .where(tag_assignments.c.entity_type == entity_type, tag_assignments.c.entity_id.in_(ids))
        .order_by(tag_assignments.c.entity_id, tags_t.c.name)
    )
    for entity_id, name, value in conn.execute(query):
        found[entity_id][name] = value
    return found


def experiment_rows(store: TrackingStore, experiment_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """``{experiment_id: row}`` as ``get_experiment`` gives it but without its label list (one statement
    per 500 ids; a missing id is absent): what a write checks first (state, DAG)."""
    ids = _ids("experiment_id", experiment_ids)
    found: dict[int, dict[str, Any]] = {}
    with store.read() as conn:
        for chunk in _chunks(ids):
            query = store.experiment_query().where(experiments.c.experiment_id.in_(chunk))
            found.update({r["experiment_id"]: r for r in rows(conn.execute(query))})
    return found


def run_records(
    store: TrackingStore, experiment_ids: Iterable[int], known: Sequence[dict[str, Any]] = ()
) -> dict[int, RunRecord]:
    """``{experiment_id: RunRecord}`` for the ids that exist (a missing id is simply absent), in the
    order asked; latest metrics sorted by (split, name), tags by name. ``known``: experiment rows the
    caller has just read (``experiment_page`` items), not read again."""
    ids = _ids("experiment_id", experiment_ids)
    given = {int(r["experiment_id"]): r for r in known}
    found: dict[int, RunRecord] = {}
    with store.read() as conn:
        for chunk in _chunks(ids):
            by_id = {i: given[i] for i in chunk if i in given}
            missing = [i for i in chunk if i not in given]
            if missing:
                query = store.experiment_query().where(experiments.c.experiment_id.in_(missing))
                by_id.update({r["experiment_id"]: r for r in rows(conn.execute(query))})
            present = [i for i in chunk if i in by_id]
            if not present:
                continue
            tag_map = _tags(conn, "experiment", present)
            latest: dict[int, list[dict[str, Any]]] = {i: [] for i in present}
            query = metric_summary.latest_query().where(metric_latest.c.experiment_id.in_(present))
            for r in float_rows(rows(conn.execute(query)), null_is_nan=True):
                latest[r["experiment_id"]].append(r)
            for i in present:
                ordered = sorted(latest[i], key=lambda r: (r["evaluation_set"], r["name"]))
                found[i] = RunRecord(row=by_id[i], tags=tag_map[i], latest=ordered)
    return found


def dataset_records(store: TrackingStore, dataset_ids: Iterable[int]) -> dict[int, DatasetRecord]:
    """``{dataset_id: DatasetRecord}`` for the ids that exist (a missing id is absent)."""
    ids = _ids("dataset_id", dataset_ids)
    found: dict[int, DatasetRecord] = {}
    if not ids:
        return found
    with store.read() as conn:
        for chunk in _chunks(ids):
            by_id = {
                r["dataset_id"]: r
                for r in rows(conn.execute(select(datasets).where(datasets.c.dataset_id.in_(chunk))))
            }
            present = [i for i in chunk if i in by_id]
            if present:
                tag_map = _tags(conn, "dataset", present)
                found.update({i: DatasetRecord(row=by_id[i], tags=tag_map[i]) for i in present})
    return found
