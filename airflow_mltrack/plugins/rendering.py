"""How the ML Tracking pages are rendered: the Jinja2 environment (autoescaped), its filters, relative
links.

Every link between pages is relative (``root`` in the templates is ``./`` or ``../``...), so the pages work
at ``<airflow>/mltrack/...`` and inside the Airflow UI's plugin iframe alike; links into the Airflow UI
itself (DAG runs, task instances) are relative to the UI root and open in the top window.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from airflow_mltrack.sdk.links import NAV_ROUTE
from airflow_mltrack.vocabulary import version_label

TEMPLATES = Path(__file__).parent / "templates"
UPLOT_VERSION = "1.6.32"


def fmt_num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.6g}"
    return str(value)


def fmt_version(value: Any) -> str:
    """A version as shown (``vocabulary.version_label``): ``v1.2``, ``sgd-539ac701``; "—" for none."""
    return version_label(value) or "—"


def fmt_dt(value: Any) -> str:
    """A time in full (``2026-12-03 10:41:07 UTC``): hover titles, exports."""
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def fmt_dt_short(value: Any) -> str:
    """A time as lists and metadata show it (``2026-12-03 10:41 UTC``); :func:`fmt_dt` is the full one."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return value.strftime("%Y-%m-%d %H:%M")
    return fmt_dt(value)


def fmt_dt_iso(value: Any) -> str:
    """The ``datetime`` attribute of a ``<time>`` element (ISO 8601), empty when there is no time."""
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else ""


def fmt_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def fmt_bytes(value: Any) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def json_script(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    from markupsafe import Markup

    text = json.dumps(value, default=str, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # noqa: S704 - escaped above for the script-data context


def seg(value: Any) -> str:
    """One URL path segment."""
    return quote(str(value), safe="")


_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    num=fmt_num,
    dt=fmt_dt,
    dtshort=fmt_dt_short,
    dtiso=fmt_dt_iso,
    ver=fmt_version,
    jsontext=fmt_json,
    bytes=fmt_bytes,
    json_script=json_script,
    seg=seg,
)


def app_path(request: Request) -> str:
    """The request's path inside the app (without the ``/mltrack`` prefix Airflow mounts it at)."""
    path = request.scope.get("path", "")
    root_path = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path


def relative_root(request: Request) -> str:
    """The relative path from the current page to the app root (``./``, ``../``, ...)."""
    path = app_path(request)
    depth = max(path.lstrip("/").count("/"), 0)
    return "../" * depth if depth else "./"


def airflow_links(root: str, row: dict[str, Any]) -> dict[str, str]:
    """Links into the Airflow UI (relative to its root, which is one level above this app)."""
    if not row.get("dag_id"):
        return {}
    ui = root + "../"
    links = {"dag": f"{ui}dags/{seg(row['dag_id'])}"}
    if row.get("run_id"):
        links["run"] = f"{links['dag']}/runs/{seg(row['run_id'])}"
        if row.get("task_id"):
            task = f"{links['run']}/tasks/{seg(row['task_id'])}"
            if row.get("map_index") is not None and row["map_index"] >= 0:
                task += f"/mapped/{row['map_index']}"
            links["task"] = task
    return links


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    root = relative_root(request)
    context.setdefault("nav", "")
    html = _env.get_template(template).render(
        root=root,
        static=f"{root}static/",
        uplot=f"{root}static/vendor/uplot-{UPLOT_VERSION}/",
        airflow_links=lambda row: airflow_links(root, row),
        nav_route=NAV_ROUTE,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def render_error(request: Request, status_code: int, title: str, message: str, **extra: Any) -> HTMLResponse:
    return render(request, "error.html", status_code=status_code, title=title, message=message, **extra)


def query_string(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    pairs: list[tuple[str, Any]] = []
    for key, value in merged.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list):
            pairs.extend((key, v) for v in value if v)
        else:
            pairs.append((key, value))
    return "?" + urlencode(pairs) if pairs else "?"
