"""The chosen columns of experiment rows (metric final values, params, attributes) and the keys a
column chooser offers.

A metric column is one query for the whole page (``metric_latest`` by its primary key); params and
attributes come from the rows themselves. Values under secret keys are hidden by the store's redaction
policy, as everywhere else.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from airflow_mltrack.store import tables
from airflow_mltrack.store.base import as_float
from airflow_mltrack.store.search import Compiler, Key
from airflow_mltrack.store.visibility import only_readable

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from airflow_mltrack.store import TrackingStore

MAX_COLUMNS = 50
PARAM_SAMPLE = 500  # newest experiments whose hyperparameter keys the column chooser offers
experiments, metric_latest = tables.experiments, tables.metric_latest
RELATED_FIELDS = {"datasets": "dataset", "models": "model"}


def attach_columns(
    store: TrackingStore, conn: Connection, compiler: Compiler, items: list[dict[str, Any]], keys: list[Key]
) -> list[dict[str, str]]:
    """Set ``columns`` ({key as written: value}) on each row; returns the columns' descriptions
    ({"key", "canonical", "kind"}). A metric value is {"value", "min", "max", "step", "points"} or None."""
    described = []
    metric_keys: dict[str, tuple[str, str]] = {}
    for key in keys:
        split = compiler.split_of(key) if key.entity == "metrics" else None
        described.append({"key": key.text, "canonical": key.canonical(split), "kind": key.kind})
        if split is not None:
            metric_keys[key.text] = (key.name, split)
    for row in items:
        row["columns"] = {key.text: _row_value(store, row, key) for key in keys if key.entity != "metrics"}
    if metric_keys and items:
        latest = metric_latest.c
        query = select(
            latest.experiment_id,
            latest.name,
            latest.evaluation_set,
            latest.value,
            latest.min_value,
            latest.max_value,
            latest.step,
            latest.points,
        ).where(
            latest.experiment_id.in_([row["experiment_id"] for row in items]),
            tuple_(latest.name, latest.evaluation_set).in_(sorted(set(metric_keys.values()))),
        )
        found = {}
        for i, name, split, value, low, high, step, points in conn.execute(query):
            found[(int(i), name, split)] = {
                "value": as_float(value, null_is_nan=True),
                "min": as_float(low, null_is_nan=True),
                "max": as_float(high, null_is_nan=True),
                "step": step,
                "points": points,
            }
        for row in items:
            for text, (name, split) in metric_keys.items():
                row["columns"][text] = found.get((row["experiment_id"], name, split))
    return described


def _row_value(store: TrackingStore, row: dict[str, Any], key: Key) -> Any:
    if key.entity == "params":
        params = row.get("hyperparameters") or {}
        joined = ".".join(key.path)
        if isinstance(params, dict) and joined in params:
            value = params[joined]
        else:
            value = params
            for part in key.path:
                value = value.get(part) if isinstance(value, dict) else None
        if any(store.redaction.is_secret_key(p) for p in key.path):
            return store.redaction.redact(value, key.path[-1]) if value is not None else None
        return store.redaction.redact(value) if value is not None else None
    if key.entity in RELATED_FIELDS:
        return row.get(f"{RELATED_FIELDS[key.entity]}_{key.name}")
    if key.name == "duration":
        start, end = row.get("start_time"), row.get("end_time")
        return (end - start).total_seconds() if start is not None and end is not None else None
    return row.get(key.name)


def param_keys(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> list[str]:
    """Hyperparameter keys of the newest ``PARAM_SAMPLE`` readable experiments (one level of nesting as
    ``a.b``), secret ones left out: the param columns a chooser offers."""
    query = select(experiments.c.hyperparameters).order_by(experiments.c.experiment_id.desc())
    if project:
        query = query.join(tables.projects, tables.projects.c.project_id == experiments.c.project_id).where(
            tables.projects.c.name == project
        )
    query = only_readable(query, experiments.c.dag_id, visible_dag_ids).limit(PARAM_SAMPLE)
    found: set[str] = set()
    with store.read() as conn:
        for (params,) in conn.execute(query):
            for name, value in (params or {}).items() if isinstance(params, dict) else ():
                if store.redaction.is_secret_key(name):
                    continue
                if isinstance(value, dict) and value:
                    found.update(
                        f"{name}.{inner}" for inner in value if not store.redaction.is_secret_key(inner)
                    )
                else:
                    found.add(name)
    return sorted(found)


def column_choices(
    store: TrackingStore, project: str | None = None, visible_dag_ids: Collection[str] | None = None
) -> dict[str, list[str]]:
    """The keys a column chooser offers: ``metrics.<split>.<name>`` of logged metrics, ``params.<key>``
    of recent experiments, and the sortable attributes."""
    from airflow_mltrack.store.reads.experiment_list import metric_keys

    metrics = [
        Key("metrics", m["name"], "", split=m["evaluation_set"]).canonical()
        for m in metric_keys(store, project, visible_dag_ids)
    ]
    params = [
        Key("params", p, "", path=tuple(p.split("."))).canonical()
        for p in param_keys(store, project, visible_dag_ids)
    ]
    attributes = [
        f"attributes.{name}"
        for name in ("status", "start_time", "end_time", "duration", "dag_id", "run_id", "task_id", "project")
    ]
    return {"metrics": metrics, "params": params, "attributes": attributes}


__all__ = ["MAX_COLUMNS", "attach_columns", "column_choices", "param_keys"]
