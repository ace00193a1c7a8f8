"""What a reconcile is asked to do: the source tasks (:class:`SourceSpec`) and the dates (UTC).

No Airflow import: the operator checks its ``sources`` with :func:`check_sources` when the DAG is parsed,
the CLI and the operator parse them with :func:`parse_sources` (docs/backfill.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store.models import EVALUATION_SETS
from airflow_mltrack.vocabulary import XCOM_RETURN_VALUE


@dataclass(frozen=True)
class SourceSpec:
    """One source task whose XCom holds metrics (the ``sources=[{...}]`` items of the operator).

    ``model_id``/``dataset_id``: the model and dataset of experiments created for runs that have none.
    When not given, a placeholder per source is registered (idempotently): dataset and model named
    ``"{dag_id}.{task_id}"``, data type ``Other``, framework ``unspecified``, version ``1.0``
    (``airflow_mltrack.vocabulary``).
    """

    dag_id: str
    task_id: str
    project: str
    xcom_key: str = XCOM_RETURN_VALUE
    evaluation_set: str = "test"
    map_index: int = -1
    model_id: int | None = None
    dataset_id: int | None = None
    experiment_name: str | None = None

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], default_project: str | None = None, index: int = 0
    ) -> SourceSpec:
        where = f"sources[{index}]"
        if not isinstance(raw, Mapping):
            raise MLTrackError(where, raw, "must be a dict with dag_id, task_id and project")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(raw) - allowed
        if unknown:
            raise MLTrackError(
                f"{where}.{sorted(unknown)[0]}",
                raw[sorted(unknown)[0]],
                f"unknown key; allowed: {', '.join(sorted(allowed))}",
            )
        values = dict(raw)
        if not values.get("project") and default_project:
            values["project"] = default_project
        for key in ("dag_id", "task_id", "project"):
            if not isinstance(values.get(key), str) or not values[key].strip():
                raise MLTrackError(f"{where}.{key}", values.get(key), "is required (a non-empty string)")
        if not values.get("xcom_key"):
            values["xcom_key"] = XCOM_RETURN_VALUE
        split = values.get("evaluation_set") or "test"
        if split not in EVALUATION_SETS:
            raise MLTrackError(
                f"{where}.evaluation_set", split, f"must be one of {', '.join(EVALUATION_SETS)}"
            )
        values["evaluation_set"] = split
        for key in ("model_id", "dataset_id"):
            if values.get(key) is not None and (not isinstance(values[key], int) or values[key] < 1):
                raise MLTrackError(f"{where}.{key}", values[key], "must be a positive integer id")
        if (values.get("model_id") is None) != (values.get("dataset_id") is None):
            raise MLTrackError(
                f"{where}.model_id",
                values.get("model_id"),
                "give both model_id and dataset_id, or neither (placeholders are registered)",
            )
        map_index = values.get("map_index", -1)
        if not isinstance(map_index, int) or map_index < -1:
            raise MLTrackError(f"{where}.map_index", map_index, "must be an integer >= -1")
        return cls(**values)

    @property
    def placeholder_name(self) -> str:
        return f"{self.dag_id}.{self.task_id}"

    @property
    def name_for_experiment(self) -> str:
        return self.experiment_name or self.placeholder_name


def parse_sources(sources: Any, default_project: str | None = None) -> list[SourceSpec]:
    """``sources`` (a dict or a list of dicts) as :class:`SourceSpec` items."""
    if isinstance(sources, Mapping):
        sources = [sources]
    if not isinstance(sources, list | tuple) or not sources:
        raise MLTrackError(
            "sources", sources, "must be a non-empty list of dicts (dag_id, task_id, project, ...)"
        )
    return [SourceSpec.from_mapping(s, default_project, i) for i, s in enumerate(sources)]


# -- checks when the DAG is parsed ------------------------------------------------------------------
# Stand-ins for templated source values, so the keys that are not templates are checked at parse time.
_TEMPLATE_STANDINS: dict[str, Any] = {
    "evaluation_set": "test",
    "map_index": -1,
    "model_id": 1,
    "dataset_id": 1,
}


def check_sources(sources: Any, default_project: Any, dynamic: Callable[[Any], bool]) -> None:
    """What :func:`parse_sources` would refuse, checked when the DAG is parsed: values that ``dynamic``
    says are known only at run time (templates, XComArgs) are left to the run; every other key is checked,
    naming ``sources[i].key``."""
    if not isinstance(sources, Mapping | list | tuple) and dynamic(sources):
        return  # "{{ params.sources }}", an XComArg
    if dynamic(default_project):
        default_project = "templated"
    items = [sources] if isinstance(sources, Mapping) else sources
    if not isinstance(items, list | tuple) or not items:
        parse_sources(sources, default_project)  # raises, naming "sources"
        return
    for index, raw in enumerate(items):
        if isinstance(raw, Mapping):
            raw = {k: _TEMPLATE_STANDINS.get(k, "templated") if dynamic(v) else v for k, v in raw.items()}
        elif dynamic(raw):
            continue
        SourceSpec.from_mapping(raw, default_project, index)


def as_utc(value: dt.datetime | dt.date | str) -> dt.datetime:
    """A timezone-aware UTC datetime from a datetime, a date or an ISO string (naive means UTC)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise MLTrackError("date", value, "is empty")
        try:
            import pendulum

            parsed: Any = pendulum.parse(text)
        except Exception as exc:
            raise MLTrackError("date", value, f"not an ISO date or datetime ({exc})") from None
        value = parsed
    if isinstance(value, dt.datetime):
        aware = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        # A plain datetime (not pendulum's subclass, whose arithmetic can drop a foreign tzinfo).
        return dt.datetime(
            aware.year,
            aware.month,
            aware.day,
            aware.hour,
            aware.minute,
            aware.second,
            aware.microsecond,
            tzinfo=dt.UTC,
        )
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise MLTrackError(
        "date", value, f"must be a datetime, a date or an ISO string, not {type(value).__name__}"
    )


def as_utc_field(value: Any, field: str) -> dt.datetime:
    """:func:`as_utc`, with ``field`` named when ``value`` is refused."""
    try:
        return as_utc(value)
    except MLTrackError as exc:
        raise MLTrackError(field, value, exc.reason) from None
