"""The ``mltrack_unsaved`` envelope: what ``@task.mltrack`` pushes to XCom when the store was down, and
how the reconcile reads it back.

One module for both sides (the decorator builds it with :func:`unsaved_envelope`, the
:class:`~airflow_mltrack.reconcile.reconciler.Reconciler` reads it with :func:`parse_unsaved`), so the
keys are written once. No Airflow import: see docs/backfill.md for when it is pushed and read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store.payloads import NON_FINITE, MetricRow, dedupe, parse_metrics

ENVELOPE_KEYS = frozenset(
    {"experiment_id", "project", "experiment", "evaluation_set", "hyperparameters", "metrics"}
)


@dataclass(frozen=True)
class Unsaved:
    """What one XCom gives to import: rows, and for an ``mltrack_unsaved`` XCom the hyperparameters and the
    experiment the task was logging into (``experiment_id`` None when the store was down from the start)."""

    rows: list[MetricRow]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    experiment_id: int | None = None
    experiment: str | None = None
    envelope: bool = False


def is_unsaved_envelope(payload: Any) -> bool:
    """Is ``payload`` the dict ``@task.mltrack`` pushes to ``mltrack_unsaved``? It has ``metrics`` and
    ``hyperparameters`` keys; no metric payload can (a nested dict must be keyed by an evaluation set)."""
    return isinstance(payload, Mapping) and "metrics" in payload and "hyperparameters" in payload


def unsaved_envelope(
    *,
    experiment_id: int | None,
    project: str,
    experiment: str,
    evaluation_set: str,
    hyperparameters: Mapping[str, Any],
    metrics: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``mltrack_unsaved`` XCom value: the rows (strict JSON) and hyperparameters not written, and the
    experiment they belong to (``experiment_id`` None when the store was down from the start)."""
    return {
        "experiment_id": experiment_id,
        "project": project,
        "experiment": experiment,
        "evaluation_set": evaluation_set,
        "hyperparameters": dict(hyperparameters),
        "metrics": metrics,
    }


def parse_unsaved(payload: Mapping[str, Any], evaluation_set: str = "test", field: str = "xcom") -> Unsaved:
    """An ``mltrack_unsaved`` envelope as :class:`Unsaved` (its ``metrics`` may be empty)."""
    unknown = sorted((key for key in payload if key not in ENVELOPE_KEYS), key=str)
    if unknown:
        raise MLTrackError(
            f"{field}.{unknown[0]}",
            payload[unknown[0]],
            f"unknown key; allowed: {', '.join(sorted(ENVELOPE_KEYS))}",
        )
    params = payload.get("hyperparameters") or {}
    if not isinstance(params, Mapping):
        raise MLTrackError(f"{field}.hyperparameters", params, "must be a dict")
    experiment_id = payload.get("experiment_id")
    if experiment_id is not None and (
        isinstance(experiment_id, bool) or not isinstance(experiment_id, int) or experiment_id < 1
    ):
        raise MLTrackError(f"{field}.experiment_id", experiment_id, "must be a positive integer id or null")
    experiment = payload.get("experiment")
    metrics = payload.get("metrics")
    rows: list[MetricRow] = []
    if metrics:
        split = payload.get("evaluation_set") or evaluation_set
        rows = dedupe(parse_metrics(_non_finite_values(metrics), split, field=f"{field}.metrics"))
    elif metrics is not None and not isinstance(metrics, list | tuple):
        raise MLTrackError(f"{field}.metrics", metrics, "must be a list of rows")
    return Unsaved(
        rows,
        dict(params),
        experiment_id,
        experiment if isinstance(experiment, str) and experiment.strip() else None,
        envelope=True,
    )


def _non_finite_values(metrics: Any) -> Any:
    """Rows with the strict-JSON spellings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` as floats again."""
    if not isinstance(metrics, list | tuple):
        return metrics
    return [
        {**row, "value": NON_FINITE[row["value"]]}
        if isinstance(row, Mapping) and isinstance(row.get("value"), str) and row["value"] in NON_FINITE
        else row
        for row in metrics
    ]
