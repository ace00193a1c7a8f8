"""How ``mltrack`` commands print what they read: rich tables for a terminal, CSV and strict JSON for tools.

Every text that comes from the store is shown as data, never as markup or terminal control: rich markup
is not parsed in cells (:class:`rich.text.Text`), and control and bidirectional-override characters are
printed escaped (``\\x1b``, ``\\u202e``), so a name cannot recolour the terminal or reorder what is shown.
CSV cells that a spreadsheet would run as a formula get a leading ``'``; JSON is strict (NaN and
+-Infinity as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, as the JSON API writes them).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import click

from airflow_mltrack.vocabulary import version_label

FORMATS = ("table", "csv", "json")
NONE = "—"

# C0/C1 controls and DEL (a tab or newline is kept only where ``multiline``), and the bidirectional
# embedding, override and isolate characters (Trojan Source).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def format_option(default: str = "table") -> Any:
    """``--format table|csv|json`` (``-f``)."""
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="table: for a terminal; csv: a header and one line a row (cells a spreadsheet would run as a "
        'formula start with \'); json: strict JSON (NaN and +-Infinity as the strings "NaN", '
        '"Infinity", "-Infinity"; an absent value is null).',
    )


def safe_text(value: Any, *, multiline: bool = False) -> str:
    """``value`` as text a terminal shows as it is: control and bidi characters escaped."""
    text = value if isinstance(value, str) else str(value)
    pattern = _CONTROL if multiline else _CONTROL_ONE_LINE

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return pattern.sub(escape, text)


def fmt_number(value: Any) -> str:
    """A metric value: 6 significant digits, ``NaN``, ``inf``/``-inf``; None is ``—``."""
    if value is None:
        return NONE
    if isinstance(value, bool) or not isinstance(value, int | float):
        return safe_text(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    return str(value)


def as_utc(value: Any) -> dt.datetime | None:
    """A datetime in UTC (a naive one is UTC already: SQLite); anything else None."""
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def fmt_time(value: Any, *, compact: bool = True) -> str:
    """``2026-01-05 14:03`` (compact) or ``2026-01-05 14:03:07 UTC``; None is ``—``."""
    when = as_utc(value)
    if when is None:
        return NONE if value is None else safe_text(value)
    return when.strftime("%Y-%m-%d %H:%M") if compact else when.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_seconds(row: dict[str, Any]) -> float | None:
    """Seconds from ``start_time`` to ``end_time``; None while either is unknown."""
    start, end = as_utc(row.get("start_time")), as_utc(row.get("end_time"))
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def fmt_duration(seconds: float | None) -> str:
    """``850ms``, ``12.3s``, ``4m05s``, ``2h07m``, ``3d04h``; None is ``—``."""
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def fmt_version(value: Any) -> str:
    """A version as the pages show it (``vocabulary.version_label``), control characters escaped."""
    label = version_label(value)
    return NONE if label is None else safe_text(label)


def fmt_value(value: Any) -> str:
    """A hyperparameter value in a cell: strings as they are, anything else as compact JSON."""
    if value is None:
        return NONE
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float):
        return fmt_number(value)
    return safe_text(json.dumps(value, sort_keys=True, default=str, separators=(",", ":")))


def strict_json(value: Any) -> Any:
    """``value`` with NaN/+-Infinity as strings, datetimes as ISO 8601 (UTC), at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dt.datetime):
        return (as_utc(value) or value).isoformat()
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def echo_json(value: Any) -> None:
    """Print ``value`` as strict, indented JSON (non-ASCII and control characters escaped)."""
    click.echo(json.dumps(strict_json(value), indent=2, allow_nan=False, default=str))


def csv_cell(value: Any) -> str:
    """One CSV cell: numbers as Python writes them (``nan``/``inf`` as ``NaN``/``Infinity``), None empty,
    other values as text (JSON for lists and objects) with a ``'`` before a formula-looking start."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(strict_json(value))
    if isinstance(value, dt.datetime):
        text = (as_utc(value) or value).isoformat()
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(strict_json(value), sort_keys=True, default=str)
    return "'" + text if text.startswith(_FORMULA_START) else text


def echo_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a header line and one CSV line per row (cells through :func:`csv_cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    click.echo(buffer.getvalue(), nl=False)


def console() -> Any:
    """A rich console on stdout: the terminal's width, or 200 columns when the output is piped."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=200)


def cell(value: Any, style: str | None = None, *, multiline: bool = False) -> Any:
    """A table cell that rich prints as plain text (no markup), control characters escaped."""
    from rich.text import Text

    return Text(safe_text(value, multiline=multiline), style=style or "")


def params_tree(params: dict[str, Any] | None) -> Any:
    """Hyperparameters as a rich tree: objects and lists of objects as branches, other values as leaves."""
    from rich.tree import Tree

    tree = Tree(cell("Hyperparameters", "bold"))

    def grow(node: Any, value: Any) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            label = f"[{key}]" if isinstance(key, int) else safe_text(key)
            if isinstance(child, dict) and child or isinstance(child, list) and has_nested(child):
                grow(node.add(cell(label, "cyan")), child)
            else:
                node.add(cell(f"{label}: {fmt_value(child)}"))

    if params:
        grow(tree, params)
    else:
        tree.add(cell(NONE))
    return tree


def has_nested(values: list[Any]) -> bool:
    """True when a list holds an object or a list (shown as a branch of the tree)."""
    return any(isinstance(x, dict | list) for x in values)


__all__ = [
    "FORMATS",
    "NONE",
    "as_utc",
    "cell",
    "console",
    "csv_cell",
    "duration_seconds",
    "echo_csv",
    "echo_json",
    "fmt_duration",
    "fmt_number",
    "fmt_time",
    "fmt_value",
    "fmt_version",
    "format_option",
    "has_nested",
    "params_tree",
    "safe_text",
    "strict_json",
]
