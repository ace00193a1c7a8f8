"""The runs table as CSV: every experiment matching the current filter, order and columns, streamed in
pages of :data:`EXPORT_PAGE` (docs/ui.md, "Export").

Each page is read through :func:`~airflow_mltrack.plugins.loaders.load_experiments` (visibility and
redaction as on the page) and written with the cell text of :mod:`.runs_table`; the start time is written
in full and metric values at full precision. Cells a spreadsheet would run as a formula are defused.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_mltrack.plugins import loaders
from airflow_mltrack.plugins.rendering import fmt_dt, fmt_num
from airflow_mltrack.plugins.runs_table import column_cell, duration_seconds, human_duration

if TYPE_CHECKING:
    from airflow_mltrack.plugins.auth import DagAccess
    from airflow_mltrack.plugins.filters import ExperimentQuery
    from airflow_mltrack.store import TrackingStore

EXPORT_PAGE = 500  # rows read per query while streaming an export
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: The fixed columns, before the chosen ones (headed by their canonical keys).
BASE_COLUMNS = ("id", "name", "project", "status", "start", "duration", "dag_id", "run_id", "tags")


def safe_cell(text: str) -> str:
    """A cell a spreadsheet will not run: text starting with ``= + - @`` (or a tab / carriage return)
    gets a leading ``'``; a plain number (``-0.5``, ``+1e3``) stays as it is."""
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_header(columns: list[dict[str, str]]) -> list[str]:
    return [safe_cell(c) for c in (*BASE_COLUMNS, *(c["canonical"] for c in columns))]


def csv_row(row: dict[str, Any], columns: list[dict[str, str]]) -> list[str]:
    """One experiment as CSV cells."""
    seconds = duration_seconds(row)
    cells = [
        str(row["experiment_id"]),
        row.get("name") or "",
        row.get("project") or "",
        row.get("status") or "",
        fmt_dt(row["start_time"]) if row.get("start_time") else "",
        human_duration(seconds) if seconds is not None else "",
        row.get("dag_id") or "",
        row.get("run_id") or "",
        " ".join(row.get("tags") or []),
    ]
    values = row.get("columns") or {}
    for column in columns:
        value = values.get(column["key"])
        if value is None:
            cells.append("")
        elif column["canonical"].startswith("metrics.") and isinstance(value, dict):
            number = value.get("value")
            finite = isinstance(number, float) and math.isfinite(number)
            cells.append(repr(number) if finite else fmt_num(number))
        elif column["kind"] == "param":
            cells.append(column_cell({**column, "kind": "text"}, value)[0])  # the whole value, not cut
        else:
            cells.append(column_cell(column, value)[0])
    return [safe_cell(c) for c in cells]


def _lines(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def first_export_page(store: TrackingStore, access: DagAccess, query: ExperimentQuery) -> dict[str, Any]:
    """The first page of an export, read before the response starts (a bad filter is a 422, not a
    broken download)."""
    return loaders.load_experiments(
        store, access, replace(query, limit=EXPORT_PAGE, offset=0, from_end=False)
    )


def stream_csv(
    store: TrackingStore, access: DagAccess, query: ExperimentQuery, first: dict[str, Any]
) -> Iterator[str]:
    """Every experiment matching ``query`` (its limit and offset ignored) as CSV text, a page at a time:
    the header, then one line per row, in the query's order."""
    columns = list(first.get("columns") or [])
    yield _lines([csv_header(columns)])
    page, offset = first, 0
    while page["items"]:
        yield _lines([csv_row(row, columns) for row in page["items"]])
        offset += len(page["items"])
        if (page.get("total_exact") and offset >= page["total"]) or len(page["items"]) < EXPORT_PAGE:
            return
        page = loaders.load_experiments(
            store, access, replace(query, limit=EXPORT_PAGE, offset=offset, from_end=False)
        )


__all__ = [
    "BASE_COLUMNS",
    "EXPORT_PAGE",
    "csv_header",
    "csv_row",
    "first_export_page",
    "safe_cell",
    "stream_csv",
]
