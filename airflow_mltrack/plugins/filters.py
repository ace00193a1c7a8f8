"""The query strings of the ML Tracking app parsed into the store's typed values (docs/architecture.md).

:class:`ExperimentQuery` is the experiment list's one filter model: the API route takes it as a
dependency (its fields are the query parameters and their OpenAPI documentation), the pages build it
from their own form fields, and :meth:`ExperimentQuery.to_filter` turns it into the store's
:class:`~airflow_mltrack.store.reads.experiment_list.ExperimentFilter`. Every input is bounded: a longer,
deeper or more numerous one is a 422 naming it, not minutes of parsing.
"""

# No ``from __future__ import annotations``: FastAPI reads ExperimentQuery's field annotations at runtime.
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store.reads.experiment_list import MAX_OFFSET, MAX_PAGE, ExperimentFilter
from airflow_mltrack.store.redaction import RedactionPolicy
from airflow_mltrack.store.search import parse_columns, parse_order_by
from airflow_mltrack.store.search.grammar import MAX_EXPRESSION

MAX_COMPARE = 100  # experiments side by side (the store's compare read takes as many)
MAX_PARAMS = 20  # hyperparameter filters per request
MAX_PARAM_LENGTH = 2000  # characters of one key=value filter
MAX_PARAM_DEPTH = 20  # nesting of a filter value read as JSON
MAX_FILTER = MAX_EXPRESSION  # characters of a search expression (filter=)
MAX_ORDER_BY = 20  # order_by clauses per request
MAX_COLUMNS = 50  # chosen columns per request
STATUS_HELP = "Pending, Running, Completed, Failed or Cancelled"
PARAM_HELP = "hyperparameter filter key=value (value read as JSON), repeatable"
FILTER_HELP = (
    "search expression, MLflow syntax: metrics.test.accuracy > 0.9 and params.optimizer = 'adam' "
    "and tags.baseline IS NOT NULL (docs/ui.md)"
)
ORDER_BY_HELP = "<key> [ASC|DESC], e.g. metrics.test.accuracy DESC; repeatable or comma-separated"
COLUMNS_HELP = (
    "keys whose values each row carries: metrics.<split>.<name>, params.<key>; repeatable or comma-separated"
)


def parse_sort(sort: str | None) -> tuple[str, str] | None:
    """``"<split>/<metric>"`` (e.g. ``test/accuracy``) -> (split, metric); empty -> None. The store
    checks the split and the name."""
    if not sort:
        return None
    split, sep, name = sort.partition("/")
    if not sep or not name:
        raise MLTrackError("sort", sort, "expected <evaluation_set>/<metric>, e.g. test/accuracy")
    return split, name


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["lr=0.1", "optimizer=adam"]`` -> ``{"lr": 0.1, "optimizer": "adam"}`` (values read as JSON if they can be).

    At most ``MAX_PARAMS`` filters of ``MAX_PARAM_LENGTH`` characters, nested at most ``MAX_PARAM_DEPTH``
    deep: a longer or deeper one is a 422 naming it, not minutes of parsing or a crash.
    """
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


def check_param_filters(params: dict[str, Any], redaction: RedactionPolicy) -> dict[str, Any]:
    """Refuse a hyperparameter filter on a value the pages hide (a secret key, a URL password): else a
    reader could test guesses of it against the experiment count."""
    for key, value in params.items():
        if redaction.reveals_hidden(value, key):
            raise MLTrackError("param", key, "hidden (secret) hyperparameter values cannot be filtered on")
    return params


def _bounded(field: str, text: str) -> str:
    if len(text) > MAX_FILTER:
        raise MLTrackError(field, text[:40] + "...", f"is {len(text)} characters long; at most {MAX_FILTER}")
    return text


def check_search(
    search: str | None, order_by: list[str] | None, columns: list[str] | None
) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """The search expression, order-by clauses and column keys within their bounds (``MAX_FILTER``
    characters each, ``MAX_ORDER_BY`` clauses, ``MAX_COLUMNS`` columns), empty ones dropped; a malformed
    clause or column is the store's :class:`~airflow_mltrack.store.search.SearchError` (token, position)."""
    text = _bounded("filter", search) if search and search.strip() else None
    clauses = tuple(_bounded("order_by", c) for c in order_by or () if c.strip())
    count = len(clauses) if len(clauses) > MAX_ORDER_BY else len(parse_order_by(list(clauses)))
    if count > MAX_ORDER_BY:
        raise MLTrackError("order_by", f"{count} clauses", f"at most {MAX_ORDER_BY} order_by clauses")
    keys = tuple(_bounded("columns", c) for c in columns or () if c.strip())
    count = len(keys) if len(keys) > MAX_COLUMNS else len(parse_columns(list(keys)))
    if count > MAX_COLUMNS:
        raise MLTrackError("columns", f"{count} columns", f"at most {MAX_COLUMNS} columns")
    return text, clauses, keys


def parse_ids(raw: list[str] | None) -> list[int]:
    """``ids=1&ids=2`` or ``ids=1,2`` -> [1, 2] (2 to ``MAX_COMPARE`` distinct ids, in the order given).

    Linear in the input; too few or too many ids is a 422 naming how many were given (never echoing them).
    """
    ids: dict[int, None] = {}
    for part in (p.strip() for chunk in raw or [] for p in chunk.split(",")):
        if not part:
            continue
        if len(part) > 10 or not part.isdigit():  # 10 digits hold every valid id
            raise MLTrackError("ids", part[:20], "experiment ids are positive integers")
        ids[int(part)] = None
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise MLTrackError(
            "ids",
            f"{len(ids)} ids",
            f"{len(ids)} given: choose between 2 and {MAX_COMPARE} experiments to compare",
        )
    return list(ids)


@dataclass
class ExperimentQuery:
    """The experiment list's filters as a URL gives them (empty means "any")."""

    project: Annotated[str | None, Query(description="project name")] = None
    status: Annotated[str | None, Query(description=STATUS_HELP)] = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: Annotated[int | None, Query(description="the task's map index (-1: not mapped)")] = None
    tag: str | None = None
    param: Annotated[list[str] | None, Query(description=PARAM_HELP)] = None
    sort: Annotated[
        str | None, Query(description="<evaluation_set>/<metric>: by the final value of that metric")
    ] = None
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc"
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0
    from_end: Annotated[
        bool, Query(description="offset counts back from the last match (the last pages past 1,000 matches)")
    ] = False
    filter: Annotated[str | None, Query(description=FILTER_HELP)] = None
    order_by: Annotated[list[str] | None, Query(description=ORDER_BY_HELP)] = None
    columns: Annotated[list[str] | None, Query(description=COLUMNS_HELP)] = None

    def to_filter(self, redaction: RedactionPolicy) -> ExperimentFilter:
        """The store's filter: hyperparameter filters parsed (never on values ``redaction`` hides), the
        sort split, the search expression, order-by clauses and columns within their bounds."""
        params = check_param_filters(parse_params(self.param), redaction)
        search, order_by, columns = check_search(self.filter, self.order_by, self.columns)
        return ExperimentFilter(
            project=self.project or None,
            status=self.status or None,
            dag_id=self.dag_id or None,
            run_id=self.run_id or None,
            task_id=self.task_id or None,
            map_index=self.map_index,
            tag=self.tag or None,
            hyperparameters=params,
            sort=parse_sort(self.sort),
            order=self.order,
            limit=self.limit,
            offset=self.offset,
            from_end=self.from_end,
            search=search,
            order_by=order_by,
            columns=columns,
        )


__all__ = [
    "MAX_COLUMNS",
    "MAX_COMPARE",
    "MAX_FILTER",
    "MAX_ORDER_BY",
    "ExperimentQuery",
    "check_param_filters",
    "check_search",
    "parse_ids",
    "parse_params",
    "parse_sort",
]
