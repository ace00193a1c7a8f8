"""The JSON API routes of metric curves, under ``/mltrack/api/...``: downsampled series for charts (refined
on zoom with ``start``/``end``) and the full series as a CSV or JSON download (docs/ui.md, "Charts").

Every route needs a signed-in Airflow user (the app's dependency) and answers a hidden experiment as an
unknown one (404). The data: :func:`.loaders.load_curves` and
:mod:`airflow_mltrack.store.reads.metric_curves`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.plugins import loaders
from airflow_mltrack.plugins.api_errors import JsonErrorRoute
from airflow_mltrack.plugins.auth import AccessDep, DagAccess, StoreDep
from airflow_mltrack.plugins.filters import parse_ids
from airflow_mltrack.plugins.schemas import CurveOut
from airflow_mltrack.store.reads import metric_curves
from airflow_mltrack.store.reads.metric_curves import DEFAULT_POINTS, MAX_POINTS, SeriesKey
from airflow_mltrack.store.visibility import visible_experiment_ids

router = APIRouter(tags=["ML Tracking"], route_class=JsonErrorRoute)

KEY_HELP = "metric key <evaluation_set>/<name>, e.g. validation/loss; repeatable (none: every metric)"
KeyQ = Annotated[list[str] | None, Query(description=KEY_HELP)]
PointsQ = Annotated[int, Query(ge=1, le=MAX_POINTS, description=f"most points per series (1..{MAX_POINTS})")]
StartQ = Annotated[int | None, Query(description="first step of the range (zoom)")]
EndQ = Annotated[int | None, Query(description="last step of the range (zoom)")]
IdsQ = Annotated[list[str], Query(description="experiment ids: ids=1&ids=2 or ids=1,2")]
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a cell starting so is a formula to a spreadsheet


def parse_keys(raw: list[str] | None) -> list[SeriesKey] | None:
    """``["validation/loss", ...]`` -> ``[("validation", "loss"), ...]``; none -> None (every metric).
    The store checks the split and the name (:func:`metric_curves.check_keys`)."""
    keys = [k for k in raw or [] if k.strip()]
    if not keys:
        return None
    found = []
    for key in keys:
        split, sep, name = key.partition("/")
        if not sep or not split.strip() or not name.strip():
            raise MLTrackError("key", key, "expected <evaluation_set>/<metric>, e.g. validation/loss")
        found.append((split.strip(), name))
    return metric_curves.check_keys(found)


def readable(store: Any, access: DagAccess, ids: list[int]) -> None:
    """404 naming every id that does not exist or that the user may not see (they look the same)."""
    found = visible_experiment_ids(store, ids, access.visible_dag_ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError("ids", missing, "no experiment with these ids")


@router.get(
    "/experiments/{experiment_id}/curves",
    response_model=list[CurveOut],
    summary="An experiment's metric curves, downsampled (zoom with start/end)",
)
def experiment_curves(
    experiment_id: int,
    store: StoreDep,
    access: AccessDep,
    key: KeyQ = None,
    points: PointsQ = DEFAULT_POINTS,
    start: StartQ = None,
    end: EndQ = None,
) -> Any:
    keys = parse_keys(key)
    loaders.load_experiment(store, access, experiment_id)
    return loaders.load_curves(store, [experiment_id], keys, points, start, end)


@router.get("/curves", response_model=list[CurveOut], summary="Curves of several experiments, downsampled")
@router.get("/compare/curves", response_model=list[CurveOut], summary="Curves of compared experiments")
def compare_curves(
    store: StoreDep,
    access: AccessDep,
    ids: IdsQ,
    key: KeyQ = None,
    points: PointsQ = DEFAULT_POINTS,
    start: StartQ = None,
    end: EndQ = None,
) -> Any:
    parsed = parse_ids(ids)
    keys = parse_keys(key)
    readable(store, access, parsed)
    return loaders.load_curves(store, parsed, keys, points, start, end)


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _download(
    store: Any, access: DagAccess, experiment_id: int, key: list[str] | None
) -> list[tuple[SeriesKey, Iterator[Any]]]:
    keys = parse_keys(key)
    loaders.load_experiment(store, access, experiment_id)
    return metric_curves.full_series(store, experiment_id, keys)


def _attachment(experiment_id: int, suffix: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="experiment-{experiment_id}-metrics.{suffix}"'}


def _cell(text: str) -> str:
    return "'" + text if text.startswith(CSV_FORMULA) else text


@router.get(
    "/experiments/{experiment_id}/curves.csv",
    summary="The full series (no downsampling) as CSV",
    response_class=StreamingResponse,
)
def experiment_curves_csv(
    experiment_id: int, store: StoreDep, access: AccessDep, key: KeyQ = None
) -> StreamingResponse:
    found = _download(store, access, experiment_id, key)

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["experiment_id", "evaluation_set", "name", "step", "value", "recorded_at"])
        for (split, name), rows in found:
            cell = _cell(name)
            for step, value, recorded_at in rows:
                at = recorded_at.isoformat() if recorded_at is not None else ""
                writer.writerow([experiment_id, split, cell, step, _number(value), at])
                if out.tell() > 64_000:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    return StreamingResponse(
        lines(), media_type="text/csv; charset=utf-8", headers=_attachment(experiment_id, "csv")
    )


@router.get(
    "/experiments/{experiment_id}/curves.json",
    summary="The full series (no downsampling) as JSON",
    response_class=StreamingResponse,
)
def experiment_curves_json(
    experiment_id: int, store: StoreDep, access: AccessDep, key: KeyQ = None
) -> StreamingResponse:
    """``[{experiment_id, name, evaluation_set, points: [[step, value, recorded_at], ...]}]``, written
    as it is read; NaN/inf as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` as everywhere in
    the API."""
    found = _download(store, access, experiment_id, key)

    def chunks() -> Iterator[str]:
        yield "["
        for index, ((split, name), rows) in enumerate(found):
            head = {"experiment_id": experiment_id, "name": name, "evaluation_set": split}
            yield ("," if index else "") + json.dumps(head)[:-1] + ', "points": ['
            batch: list[str] = []
            for n, (step, value, at) in enumerate(rows):
                cell = value if math.isfinite(value) else _number(value)
                point = json.dumps([step, cell, at.isoformat() if at is not None else None])
                batch.append(point if n == 0 else "," + point)
                if len(batch) >= 5000:
                    yield "".join(batch)
                    batch.clear()
            yield "".join(batch) + "]}"
        yield "]"

    return StreamingResponse(
        chunks(), media_type="application/json", headers=_attachment(experiment_id, "json")
    )
