"""Metric values read back by step: the curves of the charts, and the stored points of one experiment
that a metric backfill compares against (docs/backfill.md).

Functions take the :class:`~airflow_mltrack.store.TrackingStore` first and only read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypedDict

from sqlalchemy import func, select

from airflow_mltrack.store import tables

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

metrics = tables.metrics


class Curve(TypedDict):
    """One metric of one experiment on one split: its values in step order."""

    experiment_id: int
    name: str
    evaluation_set: str
    steps: list[int]
    values: list[float]


def curves(store: TrackingStore, experiment_ids: Iterable[int]) -> list[Curve]:
    """The curves of these experiments, one per (experiment, metric, split); step-less values are left
    out (they are final values, not points of a curve)."""
    found: dict[tuple[int, str, str], Curve] = {}
    for row in store.metric_curves(experiment_ids):
        if row["step"] is None:
            continue
        key = (row["experiment_id"], row["name"], row["evaluation_set"])
        curve = found.setdefault(
            key,
            {"experiment_id": key[0], "name": key[1], "evaluation_set": key[2], "steps": [], "values": []},
        )
        curve["steps"].append(row["step"])
        curve["values"].append(row["value"])
    return list(found.values())


def stored_metric_values(
    store: TrackingStore, experiment_id: int, names: Iterable[str] | None = None
) -> dict[tuple[str, int | None, str], float]:
    """``{(name, step, evaluation_set): value}`` of an experiment's metrics (only ``names`` when given)."""
    query = select(metrics.c.name, metrics.c.step, metrics.c.evaluation_set, metrics.c.value).where(
        metrics.c.experiment_id == experiment_id
    )
    if names is not None:
        query = query.where(metrics.c.name.in_(sorted(set(names))))
    with store.read() as conn:
        return {
            (name, step, split): float(value) if value is not None else float("nan")
            for name, step, split, value in conn.execute(query)
        }


def metric_steps(store: TrackingStore, experiment_id: int, evaluation_set: str) -> dict[str, int]:
    """``{metric name: number of rows}`` of one experiment and split (a cheap shape check for monitoring)."""
    query = (
        select(metrics.c.name, func.count())
        .where(metrics.c.experiment_id == experiment_id, metrics.c.evaluation_set == evaluation_set)
        .group_by(metrics.c.name)
    )
    with store.read() as conn:
        return {name: int(n) for name, n in conn.execute(query)}


__all__ = ["Curve", "curves", "metric_steps", "stored_metric_values"]
