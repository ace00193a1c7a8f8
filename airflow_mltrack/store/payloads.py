"""Metric payloads: every shape DESIGN.md allows, parsed into rows; anything else is refused.

Shapes: ``{"accuracy": 0.93}``; ``{"loss": [0.9, 0.5, 0.3]}`` (index = step);
``{"test": {"accuracy": 0.93}, "train": {...}}`` (split first); rows
``[{"name": ..., "value": ..., "step": ..., "evaluation_set": ...}]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.models import EVALUATION_SETS, METRIC_NAME_LEN

MAX_STEP = 2**31 - 1


class MetricRow(NamedTuple):
    """One metric value: the unique key is (name, step, evaluation_set) within an experiment."""

    name: str
    value: float
    step: int | None
    evaluation_set: str


def parse_metrics(
    payload: Any, evaluation_set: str = "test", step: int | None = None, field: str = "metrics"
) -> list[MetricRow]:
    """Rows of ``payload``; ``evaluation_set`` and ``step`` apply where the payload gives none."""
    default_set = v.choice("evaluation_set", evaluation_set, EVALUATION_SETS)
    default_step = _step("step", step)
    if isinstance(payload, str | bytes):
        raise MLTrackError(field, payload, "must be a dict or a list of rows, not a string")
    if isinstance(payload, Mapping):
        if not payload:
            raise MLTrackError(field, payload, "is empty: nothing to log")
        out: list[MetricRow] = []
        for key, item in payload.items():
            if isinstance(item, Mapping):
                split = _split_key(field, key)
                if not item:
                    raise MLTrackError(f"{field}.{key}", item, "is empty: nothing to log")
                for name, value in item.items():
                    out.extend(_named(f"{field}.{key}", name, value, split, default_step))
            else:
                out.extend(_named(field, key, item, default_set, default_step))
        return out
    if isinstance(payload, Sequence):
        if not payload:
            raise MLTrackError(field, payload, "is empty: nothing to log")
        return [_row(f"{field}[{i}]", row, default_set, default_step) for i, row in enumerate(payload)]
    raise MLTrackError(field, payload, f"must be a dict or a list of rows, not {type(payload).__name__}")


def _split_key(field: str, key: Any) -> str:
    if isinstance(key, str) and key.strip().lower() in EVALUATION_SETS:
        return key.strip().lower()
    raise MLTrackError(
        f"{field}.{key}",
        key,
        f"a nested dict must be keyed by an evaluation set ({', '.join(EVALUATION_SETS)})",
    )


def _named(field: str, name: Any, value: Any, split: str, step: int | None) -> list[MetricRow]:
    metric = _name(f"{field} name", name)
    where = f"{field}.{metric}"
    if isinstance(value, list | tuple):
        if not value:
            raise MLTrackError(where, value, "is an empty list: nothing to log")
        if step is not None:
            raise MLTrackError(where, value, "a list of values gives its own steps; do not also pass step")
        return [MetricRow(metric, _value(f"{where}[{i}]", item), i, split) for i, item in enumerate(value)]
    return [MetricRow(metric, _value(where, value), step, split)]


def _row(field: str, row: Any, default_set: str, default_step: int | None) -> MetricRow:
    if not isinstance(row, Mapping):
        raise MLTrackError(field, row, "must be a dict with name and value")
    unknown = set(row) - {"name", "value", "step", "evaluation_set"}
    if unknown:
        raise MLTrackError(
            field, sorted(map(str, unknown))[0], "unknown key; rows have name, value, step, evaluation_set"
        )
    if "name" not in row or "value" not in row:
        raise MLTrackError(field, row, "a row needs both name and value")
    split = row.get("evaluation_set")
    return MetricRow(
        _name(f"{field}.name", row["name"]),
        _value(f"{field}.value", row["value"]),
        _step(f"{field}.step", row["step"]) if row.get("step") is not None else default_step,
        v.choice(f"{field}.evaluation_set", split, EVALUATION_SETS) if split is not None else default_set,
    )


def _name(field: str, name: Any) -> str:
    result = v.name(field, name, METRIC_NAME_LEN)
    assert result is not None
    return result


def _value(field: str, value: Any) -> float:
    if isinstance(value, list | tuple | Mapping):
        raise MLTrackError(field, value, "must be a number, not a nested list or dict")
    return v.number(field, value)


def _step(field: str, step: Any) -> int | None:
    result = v.integer(field, step, minimum=0, required=False)
    if result is not None and result > MAX_STEP:
        raise MLTrackError(field, step, f"must be <= {MAX_STEP}")
    return result


def dedupe(rows: list[MetricRow]) -> list[MetricRow]:
    """One row per key (the last given wins), sorted by key so concurrent writers lock in one order."""
    latest: dict[tuple[str, int | None, str], MetricRow] = {}
    for row in rows:
        latest[(row.name, row.step, row.evaluation_set)] = row
    return sorted(latest.values(), key=lambda r: (r.name, r.evaluation_set, -1 if r.step is None else r.step))
