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

from airflow_mltrack.store import tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import as_float, rows

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

experiments, metric_latest = tables.experiments, tables.metric_latest
tags_t, tag_assignments, datasets = tables.tags, tables.tag_assignments, tables.datasets

# Bound parameters per IN list: well under SQLite's and PostgreSQL's limits.
_CHUNK = 500
#: The ``metric_latest`` columns of a run's final values (RunRecord.latest).
_LATEST = ("experiment_id", "name", "evaluation_set", "step", "value")


class RunRecord(TypedDict):
    """One experiment as ``get_experiment`` (without its label list), ``tag_values`` and
    ``latest_metrics`` give it (each final value with its name, split and step only)."""

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


def _tags(
    store: TrackingStore, conn: Any, entity_type: str, ids: Sequence[int]
) -> dict[int, dict[str, str | None]]:
    found: dict[int, dict[str, str | None]] = {i: {} for i in ids}
    query = (
        select(tag_assignments.c.entity_id, tags_t.c.name, tag_assignments.c.value)
        .join(tags_t, tags_t.c.tag_id == tag_assignments.c.tag_id)
        .where(tag_assignments.c.entity_type == entity_type, store.id_in(tag_assignments.c.entity_id, ids))
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
            query = store.experiment_query().where(store.id_in(experiments.c.experiment_id, chunk))
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
                query = store.experiment_query().where(store.id_in(experiments.c.experiment_id, missing))
                by_id.update({r["experiment_id"]: r for r in rows(conn.execute(query))})
            present = [i for i in chunk if i in by_id]
            if not present:
                continue
            tag_map = _tags(store, conn, "experiment", present)
            latest: dict[int, list[dict[str, Any]]] = {i: [] for i in present}
            # Only the columns a Run shows, read as tuples: a 100-run page has 1,000 of these rows, and
            # whole rows turned into dicts cost 12 ms of a 40 ms search (3 ms so).
            query = select(*(metric_latest.c[name] for name in _LATEST)).where(
                store.id_in(metric_latest.c.experiment_id, present)
            )
            for experiment_id, name, split, step, value in conn.execute(query):
                latest[experiment_id].append(
                    {
                        "name": name,
                        "evaluation_set": split,
                        "step": step,
                        "value": as_float(value, null_is_nan=True),
                    }
                )
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
                for r in rows(conn.execute(select(datasets).where(store.id_in(datasets.c.dataset_id, chunk))))
            }
            present = [i for i in chunk if i in by_id]
            if present:
                tag_map = _tags(store, conn, "dataset", present)
                found.update({i: DatasetRecord(row=by_id[i], tags=tag_map[i]) for i in present})
    return found
