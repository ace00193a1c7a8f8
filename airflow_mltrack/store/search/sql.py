"""The search language as SQL over ``experiments``: WHERE conditions and ORDER BY terms.

Every value is a bound parameter (keys too: JSON paths and names are parameters, never SQL text).
Indexes serve the selective parts: a metric comparison is a range of ``idx_metric_latest_key_value``
(name, split, value); a param equality is JSONB containment (``@>``, the GIN index
``idx_experiments_hyperparameters``) on PostgreSQL; tags (present, or their value compared) go through
``uq_tags_name`` and ``tag_assignments``' key. Written once for the API, the pages, the CLI and the MLflow
adapter (docs/architecture.md, "Search").
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Float,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import tables
from airflow_mltrack.store.search import keys as k
from airflow_mltrack.store.search.grammar import BoolOp, Comparison, Node, OrderKey, SearchError
from airflow_mltrack.store.validation import canonical_name

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from airflow_mltrack.store import TrackingStore

experiments, metric_latest = tables.experiments, tables.metric_latest
RELATED_TABLES = {
    "datasets": (tables.datasets, "dataset_id", {"name": "name", "version": "version", "type": "data_type"}),
    "models": (tables.models, "model_id", {"name": "name", "version": "version", "framework": "framework"}),
}
#: How rows equal on every order-by key are ordered: ``newest`` (ours: experiment id descending) or
#: ``mlflow`` (MLflow's SQL store: start time newest first unless a key is the start time, then the run id
#: as text ascending, so run ``10`` comes before run ``2``).
TIEBREAKS = ("newest", "mlflow")


class Compiler:
    """Compiles nodes of one request; resolves ``metrics.<name>`` to a split once per name."""

    def __init__(
        self, store: TrackingStore, conn: Connection, field: str = "filter", tiebreak: str = "newest"
    ) -> None:
        if tiebreak not in TIEBREAKS:
            raise MLTrackError("tiebreak", tiebreak, f"must be one of {', '.join(TIEBREAKS)}")
        self.store, self.conn, self.field, self.tiebreak = store, conn, field, tiebreak
        self.postgres = store.is_postgres
        self._splits: dict[str, str] = {}

    # -- keys --------------------------------------------------------------------------------------
    def split_of(self, key: k.Key) -> str:
        """The split of a metric key: written, or the one the metric is logged on (test first)."""
        if key.split is not None:
            return key.split
        if key.name not in self._splits:
            latest = metric_latest.c
            probes = [
                exists().where(latest.name == key.name, latest.evaluation_set == split).label(split)
                for split in k.SPLIT_PRECEDENCE
            ]
            found = self.conn.execute(select(*probes)).one()
            logged = [split for split, hit in zip(k.SPLIT_PRECEDENCE, found, strict=True) if hit]
            self._splits[key.name] = logged[0] if logged else k.SPLIT_PRECEDENCE[0]
        return self._splits[key.name]

    def check_param(self, key: k.Key, value: Any = None, text: str | None = None) -> None:
        """Refuse a filter or sort on a hidden (secret) hyperparameter: it would reveal it by count or order."""
        policy = self.store.redaction
        if any(policy.is_secret_key(p) for p in key.path) or (
            isinstance(value, str) and policy.reveals_hidden(value)
        ):
            raise SearchError(
                self.field,
                text or key.text,
                None,
                key.text,
                "hidden (secret) hyperparameters cannot be searched",
            )

    # -- filter ------------------------------------------------------------------------------------
    def condition(self, node: Node) -> Any:
        if isinstance(node, BoolOp):
            parts = [self.condition(p) for p in node.parts]
            return and_(*parts) if node.op == "AND" else or_(*parts)
        return self.comparison(node)

    def comparison(self, c: Comparison) -> Any:
        key = c.key
        if key.entity == "metrics":
            return self.metric(key, c.op, c.value)
        if key.entity == "params":
            if c.op not in ("IS NULL", "IS NOT NULL"):  # whether a secret is set reveals nothing of it
                for value in c.value if isinstance(c.value, tuple) else (c.value,):
                    self.check_param(key, value)
            return self.param(key, c.op, c.value)
        if key.entity == "tags":
            return self.tag(key, c.op, c.value)
        if key.entity in RELATED_TABLES:
            table, fk, columns = RELATED_TABLES[key.entity]
            column = table.c[columns[key.name]]
            matching = select(table.c[fk]).where(self.compare(column, c.op, c.value, "text"))
            if c.op == "IS NULL":
                return experiments.c[fk].in_(select(table.c[fk]).where(column.is_(None)))
            return experiments.c[fk].in_(matching)
        return self.compare(self.attribute(key.name), c.op, c.value, key.kind)

    def metric(self, key: k.Key, op: str, value: Any) -> Any:
        latest = metric_latest.c
        of_key = and_(latest.name == key.name, latest.evaluation_set == self.split_of(key))
        ids = select(latest.experiment_id).where(of_key)
        if op == "IS NULL":
            return not_(experiments.c.experiment_id.in_(ids))
        if op == "IS NOT NULL":
            return experiments.c.experiment_id.in_(ids)
        return experiments.c.experiment_id.in_(
            ids.where(self.number(latest.value), self.compare(latest.value, op, value, "number"))
        )

    def tag(self, key: k.Key, op: str, value: Any) -> Any:
        """A tag present (label or value), absent, or its value compared as text. The tag's id comes from
        ``uq_tags_name``; the carriers from the key (tag_id, entity_type, entity_id) of ``tag_assignments``.
        A label's value is NULL: no value comparison matches it (``!=`` and ``NOT IN`` neither)."""
        assignments, tags = tables.tag_assignments.c, tables.tags.c
        tag_id = select(tags.tag_id).where(tags.name == canonical_name(key.name)).scalar_subquery()
        carriers = select(assignments.entity_id).where(
            assignments.tag_id == tag_id, assignments.entity_type == "experiment"
        )
        if op == "IS NULL":
            return not_(experiments.c.experiment_id.in_(carriers))
        if op == "IS NOT NULL":
            return experiments.c.experiment_id.in_(carriers)
        compared = self.compare(assignments.value, op, value, "text")
        return experiments.c.experiment_id.in_(carriers.where(assignments.value.is_not(None), compared))

    def number(self, column: Any) -> Any:
        """Not NaN (PostgreSQL's NaN compares above every number; SQLite's NaN is NULL, or old 'NaN' text)."""
        if self.postgres:
            return column != literal_column("'NaN'::float8")
        return func.typeof(column) != "text"

    # -- params ------------------------------------------------------------------------------------
    def _paths(self, key: k.Key) -> list[tuple[str, ...]]:
        """Where a param key may be: ``a.b`` as one key, and ``b`` inside ``a``."""
        joined = (".".join(key.path),)
        return [joined] if len(key.path) == 1 else [joined, key.path]

    def json_at(self, path: tuple[str, ...]) -> tuple[Any, Any, Any]:
        """(JSON type name, text form, SQL scalar) of the hyperparameter at ``path``; types are PostgreSQL's
        (string, number, boolean, null, object, array)."""
        column = experiments.c.hyperparameters
        if self.postgres:
            doc = cast(column, JSONB)
            value = func.jsonb_extract_path(doc, *[literal(p) for p in path])
            text = func.jsonb_extract_path_text(doc, *[literal(p) for p in path])
            return func.jsonb_typeof(value), text, text
        json_path = "$" + "".join('."' + p.replace('"', '""') + '"' for p in path)
        if any('"' in p or "\\" in p for p in path):
            raise SearchError(
                self.field,
                ".".join(path),
                None,
                ".".join(path),
                "a param key with a quote or backslash cannot be searched on SQLite",
            )
        kind = func.json_type(column, json_path)
        sqlite_kind = case(
            (kind == "text", "string"),
            (kind.in_(("integer", "real")), "number"),
            (kind.in_(("true", "false")), "boolean"),
            else_=kind,
        )
        scalar = func.json_extract(column, json_path)
        as_json = column.op("->")(json_path)
        text = type_coerce(
            case((kind == "text", scalar), (kind.in_(("true", "false")), kind), else_=as_json), Text
        )
        return sqlite_kind, text, scalar

    def param(self, key: k.Key, op: str, value: Any) -> Any:
        paths = self._paths(key)
        if op in ("IN", "NOT IN"):
            equal = or_(*[self.param_equal(paths, v) for v in value])
            return equal if op == "IN" else and_(self.param_present(paths), not_(equal))
        if op == "=":
            return self.param_equal(paths, value)
        if op == "!=":
            return and_(self.param_present(paths), not_(self.param_equal(paths, value)))
        if op == "IS NULL":
            return not_(self.param_present(paths))
        if op == "IS NOT NULL":
            return self.param_present(paths)
        parts = []
        number = _as_number(value)
        for path in paths:
            kind, text, _ = self.json_at(path)
            if "LIKE" in op or number is None:
                parts.append(
                    and_(
                        kind.in_(("string", "number", "boolean")), self.compare(text, op, str(value), "text")
                    )
                )
            else:
                as_number = case((kind == "number", cast(text, Float)), else_=None)
                parts.append(self.compare(as_number, op, number, "number"))
        return or_(*parts)

    def param_present(self, paths: list[tuple[str, ...]]) -> Any:
        return or_(*[func.coalesce(self.json_at(p)[0], "null") != "null" for p in paths])

    def param_equal(self, paths: list[tuple[str, ...]], value: Any) -> Any:
        """The param equals ``value`` or the number/boolean it spells (``'0.01'`` finds 0.01 and "0.01")."""
        candidates: list[Any] = [value if isinstance(value, str) else str(value)]
        number = _as_number(value)
        if number is not None:
            candidates.append(number)
        if str(value).lower() in ("true", "false"):
            candidates.append(str(value).lower() == "true")
        if self.postgres:
            docs = [_nest(path, c) for path in paths for c in candidates]
            column = cast(experiments.c.hyperparameters, JSONB)
            return or_(*[column.op("@>", is_comparison=True)(cast(literal(d, JSONB), JSONB)) for d in docs])
        parts = []
        for path in paths:
            kind, _, scalar = self.json_at(path)
            for candidate in candidates:
                if isinstance(candidate, bool):
                    parts.append(
                        func.json_type(experiments.c.hyperparameters, _sqlite_path(path))
                        == ("true" if candidate else "false")
                    )
                elif isinstance(candidate, str):
                    parts.append(and_(kind == "string", scalar == candidate))
                else:
                    parts.append(and_(kind == "number", scalar == candidate))
        return or_(*parts)

    # -- attributes --------------------------------------------------------------------------------
    def attribute(self, name: str) -> Any:
        """The SQL expression of an attribute."""
        if name == "project":
            return (
                select(tables.projects.c.name)
                .where(tables.projects.c.project_id == experiments.c.project_id)
                .correlate_except(tables.projects)
                .scalar_subquery()
            )
        if name == "duration":
            start, end = experiments.c.start_time, experiments.c.end_time
            if self.postgres:
                return func.extract("epoch", end - start)
            return (func.julianday(end) - func.julianday(start)) * 86400.0
        return experiments.c[name]

    def compare(self, column: Any, op: str, value: Any, kind: str) -> Any:
        """``column op value`` with bound values; LIKE is case-sensitive on both backends."""
        if kind == "time" and value is not None and not isinstance(value, tuple):
            value = self.time_value(value)
        if op == "IS NULL":
            return column.is_(None)
        if op == "IS NOT NULL":
            return column.is_not(None)
        if op in ("IN", "NOT IN"):
            values = [self.time_value(v) if kind == "time" else v for v in value]
            return column.in_(values) if op == "IN" else and_(column.is_not(None), column.not_in(values))
        if "LIKE" in op:
            like = self.like(column, str(value), case_sensitive="ILIKE" not in op)
            return not_(like) if op.startswith("NOT") else like
        return {
            "=": column == value,
            "!=": column != value,
            "<": column < value,
            "<=": column <= value,
            ">": column > value,
            ">=": column >= value,
        }[op]

    def like(self, column: Any, pattern: str, case_sensitive: bool) -> Any:
        if self.postgres:
            return column.like(pattern) if case_sensitive else column.ilike(pattern)
        if case_sensitive:  # SQLite's LIKE ignores ASCII case: GLOB is its case-sensitive match
            return column.op("GLOB", is_comparison=True)(_like_to_glob(pattern))
        return column.like(pattern, escape="\\")

    def time_value(self, value: Any) -> dt.datetime:
        """A time as compared: ms since the epoch (MLflow) or an ISO date/time (UTC when no zone)."""
        if isinstance(value, int | float):
            moment = dt.datetime.fromtimestamp(value / 1000.0, tz=dt.UTC)
        else:
            try:
                moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise SearchError(
                    self.field,
                    str(value),
                    None,
                    str(value),
                    "expected ms since the epoch or an ISO date such as '2026-12-01' or '2026-12-01T10:00:00+00:00'",
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
        return moment if self.postgres else moment.astimezone(dt.UTC).replace(tzinfo=None)

    # -- order by ----------------------------------------------------------------------------------
    def order_expression(self, key: k.Key) -> Any:
        """The value an order-by key sorts by (NULL: missing, sorted last)."""
        if key.entity == "metrics":
            latest = metric_latest.alias()
            value = (
                select(latest.c.value)
                .where(
                    latest.c.experiment_id == experiments.c.experiment_id,
                    latest.c.name == key.name,
                    latest.c.evaluation_set == self.split_of(key),
                )
                .correlate_except(latest)
                .scalar_subquery()
            )
            return case((self.store.finite(value), value), else_=None)
        if key.entity == "params":
            self.check_param(key)
            if self.postgres:
                doc = cast(experiments.c.hyperparameters, JSONB)
                found = [
                    func.jsonb_extract_path(doc, *[literal(p) for p in path]) for path in self._paths(key)
                ]
            else:
                column = experiments.c.hyperparameters
                found = [func.json_extract(column, _sqlite_path(path)) for path in self._paths(key)]
            # No NULL argument: a JSON-typed None would be JSON 'null', which sorts first.
            return found[0] if len(found) == 1 else func.coalesce(*found)
        if key.entity in RELATED_TABLES:
            table, fk, columns = RELATED_TABLES[key.entity]
            return (
                select(table.c[columns[key.name]])
                .where(table.c[fk] == experiments.c[fk])
                .correlate_except(table)
                .scalar_subquery()
            )
        return self.attribute(key.name)

    def order_by(self, keys: list[OrderKey], reverse: bool = False) -> list[Any]:
        """ORDER BY terms: each key (missing values last), then the tie-break (:data:`TIEBREAKS`).
        ``reverse``: the exact opposite order (a deep page read from the end)."""
        terms = []
        for order in keys:
            expression = self.order_expression(order.key)
            descending = order.descending != reverse
            term = expression.desc() if descending else expression.asc()
            terms.append(term.nulls_first() if reverse else term.nulls_last())
        if self.tiebreak == "mlflow":
            if not any(o.key.entity == "attributes" and o.key.name == "start_time" for o in keys):
                start = experiments.c.start_time
                terms.append(start.asc() if reverse else start.desc())
            run_id = cast(experiments.c.experiment_id, Text)
            terms.append(run_id.desc() if reverse else run_id.asc())
            return terms
        newest = experiments.c.experiment_id
        terms.append(newest.asc() if reverse else newest.desc())
        return terms


def _as_number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc: Any = value
    for part in reversed(path):
        doc = {part: doc}
    return doc


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join('."' + p + '"' for p in path)


def _like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, backslash escapes) as the equivalent GLOB pattern."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            char = pattern[i + 1]
            out.append(f"[{char}]" if char in "*?[" else char)
            i += 2
            continue
        out.append({"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}.get(char, char))
        i += 1
    return "".join(out)


__all__ = ["Compiler"]
