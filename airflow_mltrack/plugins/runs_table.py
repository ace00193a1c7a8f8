"""The runs table of the experiments page as shown: cells (human durations, metric and parameter values;
dates are ``rendering.fmt_dt_short``), sortable headers, the column chooser, filter-box suggestions and the inline error of a
search expression (docs/ui.md, "Runs table").

:func:`~airflow_mltrack.plugins.pages.experiments_page` renders with these, and the CSV export
(:mod:`.export`) writes the same cell text.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.plugins.rendering import fmt_dt, fmt_dt_short, fmt_json, fmt_num
from airflow_mltrack.store.search import Key, SearchError, parse_columns, parse_order_by

MAX_CELL = 60  # characters of a parameter cell before it is cut (the whole value is on hover)
MAX_TITLE = 2000  # characters of a hover text
NONE = "—"
#: Fields whose mistakes are shown under the filter box, not as an error page.
SEARCH_FIELDS = ("filter", "order_by", "columns")
#: The fixed sortable columns: label -> (order_by key, first click sorts descending?).
FIXED_SORTS = {
    "id": ("attributes.experiment_id", True),
    "name": ("attributes.name", False),
    "project": ("attributes.project", False),
    "status": ("attributes.status", False),
    "start": ("attributes.start_time", True),
    "duration": ("attributes.duration", True),
}


# -- cells -----------------------------------------------------------------------------------------------
def duration_seconds(row: dict[str, Any]) -> float | None:
    """Seconds from start to end; None while either is missing."""
    start, end = row.get("start_time"), row.get("end_time")
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return (end - start).total_seconds()


def human_duration(seconds: float | None) -> str:
    """``4m 12s``, ``2h 05m``, ``3d 4h``, ``12s``, ``0.4s``; ``—`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return NONE
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds < 10:
        return f"{seconds:.1f}".removesuffix(".0") + "s"
    days, rest = divmod(int(round(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def duration(row: dict[str, Any]) -> str:
    return human_duration(duration_seconds(row))


def metric_cell(cell: Any) -> tuple[str, str]:
    """(text, hover) of a metric column: the final value; its step, min, max and point count on hover."""
    if not isinstance(cell, dict):
        return NONE, "not logged"
    title = f"final {fmt_num(cell.get('value'))}"
    if cell.get("step") is not None:
        title += f" at step {cell['step']}"
    title += f" · min {fmt_num(cell.get('min'))} · max {fmt_num(cell.get('max'))}"
    if cell.get("points") is not None:
        title += f" · {cell['points']} points"
    return fmt_num(cell.get("value")), title


def param_cell(value: Any) -> tuple[str, str]:
    """(text, hover) of a parameter column: the value (JSON for lists and objects), cut at ``MAX_CELL``
    characters with the whole value on hover."""
    if value is None:
        return NONE, "not set"
    text = fmt_json(value)
    shown = text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
    return shown, text[:MAX_TITLE]


def column_cell(column: dict[str, str], value: Any) -> tuple[str, str]:
    """(text, hover) of a chosen column (a description of the page's ``columns``) holding ``value``."""
    if column["canonical"].startswith("metrics."):
        return metric_cell(value)
    if column["kind"] == "param":
        return param_cell(value)
    if column["kind"] == "duration":
        return human_duration(value), "" if value is None else f"{value} s"
    if isinstance(value, dt.datetime):
        return fmt_dt_short(value), fmt_dt(value)
    text = NONE if value is None else fmt_json(value)
    return text, text[:MAX_TITLE]


def column_label(column: dict[str, str]) -> tuple[str, str]:
    """(label, smaller note) of a column header: ``accuracy`` / ``test``, ``lr`` / ``param``."""
    try:
        key = parse_columns([column["canonical"]])[0]
    except MLTrackError:
        return column["canonical"], ""
    if key.entity == "metrics":
        return key.name, key.split or ""
    if key.entity == "params":
        return ".".join(key.path), "param"
    return key.name, ""


# -- sorting ---------------------------------------------------------------------------------------------
def sort_state(order_by: list[str], sort: str, order: str) -> tuple[str, bool] | None:
    """(canonical key, descending) of the first order-by clause (or of the older ``sort``), or None."""
    if order_by:
        try:
            first = parse_order_by(order_by)[0]
        except (MLTrackError, IndexError):
            return None
        return first.key.canonical(), first.descending
    split, _, name = sort.partition("/")
    if split and name:
        return Key("metrics", name, "", split=split).canonical(), order != "asc"
    return None


def sorter(state: tuple[str, bool] | None, qs: Callable[..., str]) -> Callable[[str, bool], dict[str, str]]:
    """``sort(key, first_desc)`` for the template: the header's link (click: order by this key; again: the
    other way), its arrow and ``aria-sort``."""

    def sort(key: str, first_desc: bool = True) -> dict[str, str]:
        canonical = _canonical(key)
        active = state is not None and state[0] == canonical
        descending = (not state[1]) if active and state else first_desc
        clause = f"{key} {'DESC' if descending else 'ASC'}"
        href = qs(order_by=[clause], sort=None, order=None, offset=None)
        if not active or state is None:
            return {"href": href, "arrow": "", "aria": "none"}
        return {
            "href": href,
            "arrow": "↓" if state[1] else "↑",
            "aria": "descending" if state[1] else "ascending",
        }

    return sort


def _canonical(key: str) -> str:
    try:
        return parse_columns([key])[0].canonical()
    except (MLTrackError, IndexError):
        return key


# -- the column chooser and the filter box ---------------------------------------------------------------
def chooser(choices: dict[str, list[str]], chosen: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The column chooser's groups: {"title", "keys": [{"key", "checked"}]}; a chosen key the choices do
    not list (typed in the URL) is offered too, checked."""
    picked = {c["canonical"] for c in chosen} | {c["key"] for c in chosen}
    offered = {k for keys in choices.values() for k in keys}
    extra = [c["canonical"] for c in chosen if c["canonical"] not in offered]
    groups = [
        ("Chosen", extra),
        ("Metrics", choices.get("metrics", [])),
        ("Parameters", choices.get("params", [])),
    ]
    return [
        {"title": title, "keys": [{"key": k, "checked": k in picked} for k in keys]}
        for title, keys in groups
        if keys
    ]


def suggestions(choices: dict[str, list[str]], tags: list[str]) -> list[str]:
    """Keys offered while typing in the filter box (a ``<datalist>``)."""
    found = [*choices.get("metrics", []), *choices.get("params", [])]
    found += [f"{Key('tags', t, '').canonical()} IS NOT NULL" for t in tags]
    found += [f"attributes.{a}" for a in ("status", "name", "start_time", "duration", "dag_id", "run_id")]
    return found


def inline_error(exc: MLTrackError, search: str) -> dict[str, Any]:
    """A search mistake shown under the filter box: the message, and the expression with a caret line
    under the token at its position (when known)."""
    expression = exc.expression if isinstance(exc, SearchError) else search if exc.field == "filter" else ""
    position = exc.position if isinstance(exc, SearchError) else None
    caret = ""
    if position is not None and expression and 0 <= position <= len(expression):
        width = max(1, min(len(str(exc.token)), len(expression) - position))
        caret = " " * position + "^" * width
    return {
        "message": str(exc),
        "field": exc.field,
        "expression": expression if caret else "",
        "position": position,
        "caret": caret,
    }


def empty_page(limit: int) -> dict[str, Any]:
    """The page shown with an inline error: no rows."""
    return {
        "total": 0,
        "total_exact": True,
        "limit": limit,
        "offset": 0,
        "from_end": False,
        "items": [],
        "columns": [],
        "sort": None,
    }


def pager(page: dict[str, Any]) -> dict[str, Any]:
    """The links of the pager (query-string changes: ``offset``, ``from_end``; None where there is none)
    and the count text. Past ``COUNT_CAP`` matches the total is a lower bound: "Last" reads the last page
    from the end and the pages near it count from the end too."""
    offset, limit, total, shown = page["offset"], page["limit"], page["total"], len(page["items"])
    start = {"offset": 0, "from_end": None}
    if page.get("from_end"):  # only with an unknown total: offsets count back from the last row
        return {
            "first": start,
            "prev": {"offset": offset + limit, "from_end": 1} if shown == limit else None,
            "next": {"offset": max(offset - limit, 0), "from_end": 1} if offset > 0 else None,
            "last": {"offset": 0, "from_end": 1} if offset > 0 else None,
            "text": f"{shown} of more than {total:,}, {offset + shown:,} from the end",
        }
    if not page.get("total_exact", True):
        return {
            "first": start if offset > 0 else None,
            "prev": {"offset": max(offset - limit, 0), "from_end": None} if offset > 0 else None,
            "next": {"offset": offset + limit, "from_end": None} if shown == limit else None,
            "last": {"offset": 0, "from_end": 1},
            "text": f"{offset + 1:,}–{offset + shown:,} of more than {total:,}",
        }
    last = max((total - 1) // limit * limit, 0)
    return {
        "first": start if offset > 0 else None,
        "prev": {"offset": max(offset - limit, 0), "from_end": None} if offset > 0 else None,
        "next": {"offset": offset + limit, "from_end": None} if offset + limit < total else None,
        "last": {"offset": last, "from_end": None} if offset < last else None,
        "text": f"{offset + 1:,}–{offset + shown:,} of {total:,}" if shown else f"0 of {total:,}",
    }


__all__ = [
    "FIXED_SORTS",
    "SEARCH_FIELDS",
    "chooser",
    "column_cell",
    "column_label",
    "duration",
    "duration_seconds",
    "empty_page",
    "human_duration",
    "inline_error",
    "metric_cell",
    "pager",
    "param_cell",
    "sort_state",
    "sorter",
    "suggestions",
]
