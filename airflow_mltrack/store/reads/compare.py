"""Experiments side by side: their rows, every hyperparameter per experiment, the keys whose values
differ and the final value of each metric, with the best run of each metric.

Two queries whatever the number of experiments (up to :data:`MAX_COMPARED`): the experiments (with the
reader's DAG visibility in the SQL) and their ``metric_latest`` rows (final values, served by its
primary key), never the ``metrics`` table.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, cast

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import metric_summary, tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import float_rows, rows
from airflow_mltrack.store.visibility import only_readable

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.records import ExperimentRow

#: The most experiments one comparison shows.
MAX_COMPARED = 100

#: Words of a metric name for which a lower value is better (anywhere in the name, case-insensitive).
LOWER_IS_BETTER_WORDS = ("loss", "error", "mse", "mae", "rmse", "perplexity")
_LOWER = re.compile("|".join(LOWER_IS_BETTER_WORDS), re.IGNORECASE)


class ComparedMetric(TypedDict):
    """One metric on one split: its final value per experiment id, which way is better (guessed from the
    name) and the experiments with the best finite final value (ties: all of them)."""

    name: str
    evaluation_set: str
    values: dict[int, float]
    lower_is_better: bool
    best: list[int]


class Comparison(TypedDict):
    """The experiments in the order asked, every hyperparameter per experiment id (None where one has no
    such key), the keys whose values differ, and the final metrics side by side."""

    experiments: list[ExperimentRow]
    hyperparameters: dict[str, dict[int, Any]]
    differing: list[str]
    metrics: list[ComparedMetric]


def lower_is_better(name: str) -> bool:
    """Whether a lower value of metric ``name`` is better: loss, error, mse, mae, rmse, perplexity."""
    return bool(_LOWER.search(name))


def canonical(value: Any) -> str:
    """A value as comparable text: nested JSON compared as a value (key order does not matter)."""
    return json.dumps(value, sort_keys=True, default=str)


def differing_keys(hyperparameters: Mapping[str, Mapping[int, Any]]) -> list[str]:
    """The keys whose values (as :func:`canonical` text, a missing key counting as null) differ."""
    return [
        key
        for key, by_id in hyperparameters.items()
        if len({canonical(value) for value in by_id.values()}) > 1
    ]


def best_of(values: Mapping[int, float], lower: bool) -> list[int]:
    """The ids with the best finite value (none when no value is finite)."""
    finite = {i: x for i, x in values.items() if x is not None and math.isfinite(x)}
    if not finite:
        return []
    target = min(finite.values()) if lower else max(finite.values())
    return [i for i, x in finite.items() if x == target]


def compare_ids(experiment_ids: Iterable[Any], field: str = "experiment_ids") -> list[int]:
    """Distinct ids in the order given, 1 to :data:`MAX_COMPARED` of them."""
    ids = list(dict.fromkeys(v.entity_id(field, i) for i in experiment_ids))
    if not 1 <= len(ids) <= MAX_COMPARED:
        raise MLTrackError(field, f"{len(ids)} ids", f"give between 1 and {MAX_COMPARED} experiment ids")
    return ids


def compare(
    store: TrackingStore,
    experiment_ids: Sequence[int],
    visible_dag_ids: Collection[str] | None = None,
    field: str = "experiment_ids",
) -> Comparison:
    """Side by side: experiments, hyperparameters (with the keys that differ) and final metrics.

    An id that does not exist and one of a DAG the reader may not see (``visible_dag_ids``; None: all)
    both raise the same :class:`NotFoundError` naming every such id (as ``field``).
    """
    ids = compare_ids(experiment_ids, field)
    experiments = tables.experiments
    query = only_readable(
        store.experiment_query().where(experiments.c.experiment_id.in_(ids)),
        experiments.c.dag_id,
        visible_dag_ids,
    )
    latest = tables.metric_latest
    with store.read() as conn:
        found = {r["experiment_id"]: r for r in rows(conn.execute(query))}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(field, missing, "no experiment with these ids")
        finals = float_rows(
            rows(conn.execute(metric_summary.latest_query().where(latest.c.experiment_id.in_(ids)))),
            null_is_nan=True,
        )
    keys = sorted({k for r in found.values() for k in (r["hyperparameters"] or {})})
    params = {k: {i: (found[i]["hyperparameters"] or {}).get(k) for i in ids} for k in keys}
    table: dict[tuple[str, str], ComparedMetric] = {}
    for r in finals:
        entry = table.setdefault(
            (r["evaluation_set"], r["name"]),
            ComparedMetric(
                name=r["name"],
                evaluation_set=r["evaluation_set"],
                values={},
                lower_is_better=lower_is_better(r["name"]),
                best=[],
            ),
        )
        entry["values"][r["experiment_id"]] = r["value"]
    for entry in table.values():
        entry["values"] = {i: entry["values"][i] for i in ids if i in entry["values"]}
        entry["best"] = best_of(entry["values"], entry["lower_is_better"])
    return {
        "experiments": [cast("ExperimentRow", found[i]) for i in ids],
        "hyperparameters": params,
        "differing": differing_keys(params),
        "metrics": [table[k] for k in sorted(table)],
    }


__all__ = [
    "LOWER_IS_BETTER_WORDS",
    "MAX_COMPARED",
    "ComparedMetric",
    "Comparison",
    "best_of",
    "canonical",
    "compare",
    "compare_ids",
    "differing_keys",
    "lower_is_better",
]
