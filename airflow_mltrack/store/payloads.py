"""Metric payloads: every shape docs/operators.md lists, parsed into rows; anything else is refused.

Shapes: ``{"accuracy": 0.93}``; ``{"loss": [0.9, 0.5, 0.3]}`` (index = step);
``{"test": {"accuracy": 0.93}, "train": {...}}`` (split first); rows
``[{"name": ..., "value": ..., "step": ..., "evaluation_set": ...}]``. A value may also be one of the strings
of :data:`NON_FINITE` (``"NaN"``, ``"Infinity"``, ``"-Infinity"``): how strict JSON (XCom) carries them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.models import EVALUATION_SETS, METRIC_NAME_LEN

MAX_STEP = 2**31 - 1
#: How strict JSON (XComs, ``mltrack_unsaved``) spells the values it lacks.
NON_FINITE: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_MISSING: Any = object()


class MetricRow(NamedTuple):
    """One metric value: the unique key is (name, step, evaluation_set) within an experiment.
    ``recorded_at``: when it was measured (MLflow's metric ``timestamp``); None: the time of the write."""

    name: str
    value: float
    step: int | None
    evaluation_set: str
    recorded_at: dt.datetime | None = None


def parse_metrics(
    payload: Any,
    evaluation_set: str = "test",
    step: int | None = None,
    field: str = "metrics",
    *,
    not_metrics: list[str] | None = None,
) -> list[MetricRow]:
    """Rows of ``payload``; ``evaluation_set`` and ``step`` apply where the payload gives none.

    ``not_metrics``: for a task's return value (``@task.mltrack``, ``LogMetricsOperator`` reading XCom), where
    a dict often carries more than metrics (``{"accuracy": 0.93, "model_path": "/m.pkl"}``). Its top-level
    entries whose value is text, a bool or None are then not metrics: their keys are appended to this list and
    they are skipped. Everything else is parsed as strictly as ever (``{"val": {...}}``, ``{"test": {"acc":
    "high"}}`` are refused). Without it (an explicit ``metrics=`` argument, the tracker), nothing is skipped.
    """
    if not_metrics is not None and isinstance(payload, Mapping):
        kept = {k: item for k, item in payload.items() if not _not_a_metric(item)}
        not_metrics.extend(str(k) for k in payload if k not in kept)
        if not kept:
            return []
        payload = kept
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
        return _rows(field, payload, default_set, default_step)
    raise MLTrackError(field, payload, f"must be a dict or a list of rows, not {type(payload).__name__}")


def _not_a_metric(value: Any) -> bool:
    """A returned entry that is data, not a metric: text (but not a NaN/inf spelling), a bool, None."""
    if isinstance(value, str):
        return value not in NON_FINITE
    return value is None or isinstance(value, bool)


def _split_key(field: str, key: Any) -> str:
    if isinstance(key, str) and key.strip().lower() in EVALUATION_SETS:
        return key.strip().lower()
    raise MLTrackError(
        f"{field}.{key}",
        key,
        f"a nested dict must be keyed by an evaluation set ({', '.join(EVALUATION_SETS)})",
    )


def _named(
    field: str, name: Any, value: Any, split: str, step: int | None, where: str | None = None
) -> list[MetricRow]:
    metric = _name(f"{field} name", name)
    where = where or f"{field}.{metric}"
    if isinstance(value, list | tuple):
        if not value:
            raise MLTrackError(where, value, "is an empty list: nothing to log")
        if step is not None:
            raise MLTrackError(where, value, "a list of values gives its own steps; do not also pass step")
        return [
            MetricRow(metric, item if type(item) is float else _value(f"{where}[{i}]", item), i, split)
            for i, item in enumerate(value)
        ]
    return [MetricRow(metric, _value(where, value), step, split)]


_new_row = tuple.__new__  # MetricRow without the Python-level __new__ of a NamedTuple: 2x faster


def _rows(field: str, payload: Sequence[Any], default_set: str, default_step: int | None) -> list[MetricRow]:
    """Rows of a list payload. The common row (a dict with a known name, a float or int value, an int step
    and a known split) takes a fast path; anything else goes through ``_row``, which validates it fully
    (and names the field of anything wrong)."""
    names: dict[str, str] = {}
    splits: dict[str, str] = {}
    out: list[MetricRow] = []
    append = out.append
    missing = _MISSING
    for i, row in enumerate(payload):
        if type(row) is dict:
            get = row.get
            name = get("name", missing)
            value = get("value", missing)
            step = get("step", missing)
            split = get("evaluation_set", missing)
            # no unknown keys: the dict holds exactly the known keys it was found to have
            known = len(row) == 4 - (step is missing) - (split is missing)
            metric = names.get(name) if type(name) is str else None
            split = (
                default_set
                if split is missing or split is None
                else (splits.get(split) if type(split) is str else None)
            )
            if step is missing:
                step = None
            if (
                known
                and metric is not None
                and split is not None
                and (type(value) is float or (type(value) is int and -(2**53) <= value <= 2**53))
                and (step is None or (type(step) is int and 0 <= step <= MAX_STEP))
            ):
                step = default_step if step is None else step
                append(_new_row(MetricRow, (metric, float(value), step, split, None)))
                continue
        parsed = _row(f"{field}[{i}]", row, default_set, default_step)
        names[row["name"]] = parsed.name
        if row.get("evaluation_set") is not None:
            splits[row["evaluation_set"]] = parsed.evaluation_set
        append(parsed)
    return out


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
    return v.name(field, name, METRIC_NAME_LEN)


def _value(field: str, value: Any) -> float:
    if isinstance(value, list | tuple | Mapping):
        raise MLTrackError(field, value, "must be a number, not a nested list or dict")
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    return v.number(field, value)


def parse_metric(
    name: Any, value: Any, evaluation_set: str = "test", step: int | None = None, *, call: str = "log_metric"
) -> list[MetricRow]:
    """Rows of one named value (a number, or a list of numbers: a curve). Errors name the arguments of
    ``call`` (``log_metric('acc') value='high': ...``), not a payload field the caller never wrote."""
    split = v.choice("evaluation_set", evaluation_set, EVALUATION_SETS)
    default_step = _step("step", step)
    return _named(call, name, value, split, default_step, where=f"{call}({name!r}) value")


def _step(field: str, step: Any) -> int | None:
    result = v.integer(field, step, minimum=0, required=False)
    if result is not None and result > MAX_STEP:
        raise MLTrackError(field, step, f"must be <= {MAX_STEP}")
    return result


def json_number(value: float) -> float | str:
    """``value``, or for NaN and +/-inf its :data:`NON_FINITE` spelling (strict JSON has no such numbers)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON can carry it (XCom): NaN and +/-inf, also inside dicts, lists and tuples
    and as numpy scalars, become their :data:`NON_FINITE` spellings; everything else is left as it is."""
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, Mapping):
        return {k: json_safe(item) for k, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    if type(value) is tuple:
        return tuple(json_safe(item) for item in value)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        item = value.item()
        return json_number(item) if isinstance(item, float) else value
    return value


def dedupe(rows: list[MetricRow]) -> list[MetricRow]:
    """One row per key (the last given wins), sorted by (name, evaluation_set, step), a step-less row first,
    so concurrent writers lock in one order."""
    groups: dict[tuple[str, str], dict[int | None, MetricRow]] = {}
    for row in rows:
        key = (row.name, row.evaluation_set)
        steps = groups.get(key)
        if steps is None:
            steps = groups[key] = {}
        steps[row.step] = row
    out: list[MetricRow] = []
    for key in sorted(groups):
        steps = groups[key]
        stepless = steps.pop(None, None)
        if stepless is not None:
            out.append(stepless)
        out.extend([steps[step] for step in sorted(steps)])  # type: ignore[type-var]
    return out


_KEY = itemgetter(0, 3)  # (name, evaluation_set) of a MetricRow
_VALUE = itemgetter(1)


class KeySummary(NamedTuple):
    """What a deduplicated batch holds for one (name, evaluation_set): the input of ``metric_latest``."""

    name: str
    evaluation_set: str
    first_step: int | None
    final_step: int | None
    final_value: float
    min_value: float
    max_value: float
    points: int


def summarize(batch: Sequence[MetricRow]) -> list[KeySummary]:
    """Per key of a ``dedupe``d batch (in its order): first and final step, final value, min, max, count.

    The final row is the step-less one if there is one, else the highest step; NaN counts as larger than
    every number, as PostgreSQL orders it (and SQLite, which stores it as the text 'NaN').
    """
    out: list[KeySummary] = []
    for (name, split), group in groupby(batch, key=_KEY):
        rows = list(group)
        values = list(map(_VALUE, rows))
        numbers = [x for x in values if not math.isnan(x)]
        final = rows[0] if rows[0].step is None else rows[-1]
        out.append(
            KeySummary(
                name,
                split,
                rows[0].step,
                final.step,
                final.value,
                min(numbers) if numbers else math.nan,
                max(numbers) if len(numbers) == len(values) else math.nan,
                len(rows),
            )
        )
    return out
