"""Metric values read back by step: the curves of the charts (downsampled on the server), the full series
a download streams, and the stored points of one experiment that a metric backfill compares against
(docs/backfill.md).

Downsampling (docs/ui.md, "Charts"): a series with more rows than ``points`` in the asked step range is cut
into ``points`` buckets of equal step width, ``bucket = (step - first) * points / (last - first + 1)``,
grouped in SQL; each bucket gives its finite min and max, its last value (the value at its highest step,
with that step and its ``recorded_at``) and the first step of a non-finite value in it, if any (a gap).
Zooming asks again with ``start``/``end``: the buckets then cover only that range, so the chart refines.

Functions take the :class:`~airflow_mltrack.store.TrackingStore` first and only read.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import BigInteger, and_, case, cast, func, literal, or_, select

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import as_float
from airflow_mltrack.store.models import EVALUATION_SETS

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

metrics = tables.metrics
experiments = tables.experiments

DEFAULT_POINTS = 1000  # points per series a chart gets when none are asked for
MAX_POINTS = 2000  # the most points per series a read returns
MAX_KEYS = 100  # (split, metric) keys per read
DOWNLOAD_BATCH = 10_000  # rows per query of a streamed full series (keyset pages on the unique index)

#: A metric key: (evaluation_set, name).
SeriesKey = tuple[str, str]


class Curve(TypedDict):
    """One metric of one experiment on one split: its values in step order."""

    experiment_id: int
    name: str
    evaluation_set: str
    steps: list[int]
    values: list[float]


class Series(Curve):
    """A :class:`Curve` as a chart gets it, downsampled when longer than the points asked for.

    ``steps``/``values``: every point, or per bucket the last step and its value (NaN/inf kept as floats).
    ``mins``/``maxs``: per bucket the finite min and max (None when not downsampled, or a bucket with no
    finite value). ``gaps``: steps holding a non-finite value (per bucket its first one). ``relative``:
    seconds from the experiment's ``start_time`` to each point's ``recorded_at`` (None if unknown).
    ``count``, ``first_step``, ``last_step``: the rows and step range of the series in ``start``..``end``.
    """

    mins: list[float | None] | None
    maxs: list[float | None] | None
    gaps: list[int]
    relative: list[float | None]
    start_time: dt.datetime | None
    count: int
    first_step: int
    last_step: int
    downsampled: bool


def check_keys(keys: Iterable[SeriesKey] | None) -> list[SeriesKey] | None:
    """``keys`` checked: a known split and a metric name each, at most ``MAX_KEYS``; None means all."""
    if keys is None:
        return None
    found: dict[SeriesKey, None] = {}
    for split, name in keys:
        split = v.choice("key", split, EVALUATION_SETS)
        metric = v.lookup_name("key", name)
        if not metric:
            raise MLTrackError("key", f"{split}/{name}", "a metric name is required after the split")
        found[(split, metric)] = None
        if len(found) > MAX_KEYS:
            raise MLTrackError("key", f"{split}/{name}", f"at most {MAX_KEYS} metric keys per request")
    return list(found)


def check_range(points: Any, start: Any, end: Any) -> tuple[int, int | None, int | None]:
    """``points`` (1..MAX_POINTS) and the optional step range ``start`` <= ``end``, checked."""
    checked = v.integer("points", points, minimum=1) or DEFAULT_POINTS
    if checked > MAX_POINTS:
        raise MLTrackError("points", points, f"must be from 1 to {MAX_POINTS}")
    first = v.integer("start", start, minimum=None, required=False)
    last = v.integer("end", end, minimum=None, required=False)
    if first is not None and last is not None and last < first:
        raise MLTrackError("end", end, f"must not be below start ({first})")
    return checked, first, last


def _key_filter(keys: list[SeriesKey] | None) -> Any:
    if keys is None:
        return None
    if not keys:
        return literal(False)
    return or_(*(and_(metrics.c.evaluation_set == s, metrics.c.name == n) for s, n in keys))


def _range_filter(column: Any, start: int | None, end: int | None) -> list[Any]:
    found = [column.is_not(None)]
    if start is not None:
        found.append(column >= start)
    if end is not None:
        found.append(column <= end)
    return found


def series(
    store: TrackingStore,
    experiment_ids: Iterable[int],
    keys: Iterable[SeriesKey] | None = None,
    points: int = DEFAULT_POINTS,
    start: int | None = None,
    end: int | None = None,
) -> list[Series]:
    """The curves of these experiments (only ``keys`` when given), each at most ``points`` points: one
    query that counts each series in the range and buckets those longer than ``points`` (module doc).
    Ordered by experiment, metric name, split."""
    ids = sorted({v.entity_id("experiment_id", i) for i in experiment_ids})
    wanted = check_keys(keys)
    points, start, end = check_range(points, start, end)
    if not ids:
        return []
    with store.read() as conn:
        found = conn.execute(_bucket_query(store, ids, wanted, points, start, end)).all()
        starts = dict(
            conn.execute(
                select(experiments.c.experiment_id, experiments.c.start_time).where(
                    experiments.c.experiment_id.in_(ids)
                )
            ).all()
        )
    return _assemble(found, points, starts)


def _bucket_query(
    store: TrackingStore,
    ids: list[int],
    wanted: list[SeriesKey] | None,
    points: int,
    start: int | None,
    end: int | None,
) -> Any:
    """The SELECT behind :func:`series`. Each series gets a small integer id (``sid``), so the sorts and
    groupings are on integers, not on collated metric names; a bucket's last value is a window's first
    value (highest step first), so no second lookup per bucket is needed."""
    m = metrics
    where = [m.c.experiment_id.in_(ids), *_range_filter(m.c.step, start, end)]
    if (by_key := _key_filter(wanted)) is not None:
        where.append(by_key)
    key_cols = (m.c.experiment_id, m.c.name, m.c.evaluation_set)
    stats = (
        select(
            *key_cols,
            func.count().label("n"),
            func.min(m.c.step).label("lo"),
            func.max(m.c.step).label("hi"),
            func.row_number().over(order_by=key_cols).label("sid"),
        )
        .where(*where)
        .group_by(*key_cols)
        .cte("stats")
    )
    span = cast(stats.c.hi, BigInteger) - stats.c.lo + 1
    finite = store.finite(m.c.value)
    rows_in = (
        select(
            stats.c.sid,
            m.c.step,
            m.c.value,
            m.c.recorded_at,
            case((finite, m.c.value)).label("finite_value"),
            case((finite, None), else_=m.c.step).label("gap_step"),
            case(
                (stats.c.n > points, (cast(m.c.step, BigInteger) - stats.c.lo) * points // span),
                else_=m.c.step,
            ).label("bucket"),
        )
        .select_from(m.join(stats, and_(*(c == stats.c[c.name] for c in key_cols))))
        .where(*where)
        .subquery("rows_in")
    )
    r = rows_in.c
    at_type = m.c.recorded_at.type  # SQLite: aggregates of a DATETIME column come back as text otherwise
    last_first = {"partition_by": (r.sid, r.bucket), "order_by": r.step.desc()}
    ranked = select(
        r.sid,
        r.bucket,
        r.step,
        r.finite_value,
        r.gap_step,
        func.first_value(r.value).over(**last_first).label("last_value"),
        func.first_value(r.recorded_at, type_=at_type).over(**last_first).label("last_at"),
    ).subquery("ranked")
    k = ranked.c
    buckets = (
        select(
            k.sid,
            func.min(k.finite_value).label("min_value"),
            func.max(k.finite_value).label("max_value"),
            func.max(k.step).label("last_step"),
            func.min(k.gap_step).label("gap_step"),
            func.max(k.last_value).label("value"),
            func.max(k.last_at, type_=at_type).label("recorded_at"),
        )
        .group_by(k.sid, k.bucket)
        .subquery("buckets")
    )
    b = buckets.c
    return (
        select(stats.c.experiment_id, stats.c.name, stats.c.evaluation_set, stats.c.n, stats.c.lo)
        .add_columns(stats.c.hi, b.min_value, b.max_value, b.last_step, b.gap_step, b.value, b.recorded_at)
        .select_from(buckets.join(stats, stats.c.sid == b.sid))
        .order_by(b.sid, b.last_step)
    )


def _seconds(at: dt.datetime | None, origin: dt.datetime | None) -> float | None:
    if at is None or origin is None:
        return None
    if at.tzinfo is None:  # SQLite hands back naive UTC datetimes
        at = at.replace(tzinfo=dt.UTC)
    if origin.tzinfo is None:
        origin = origin.replace(tzinfo=dt.UTC)
    return round((at - origin).total_seconds(), 3)


def _assemble(result: Iterable[Any], points: int, starts: dict[int, dt.datetime | None]) -> list[Series]:
    """Rows of the bucket query (in key, step order) folded into one :class:`Series` per key."""
    found: list[Series] = []
    key: tuple[int, str, str] | None = None
    for e, name, split, n, lo, hi, low, high, step, gap, value, recorded_at in result:
        if (e, name, split) != key:
            key = (e, name, split)
            started = starts.get(e)
            sampled = n > points
            new: Series = {
                "experiment_id": e,
                "name": name,
                "evaluation_set": split,
                "steps": [],
                "values": [],
                "mins": [] if sampled else None,
                "maxs": [] if sampled else None,
                "gaps": [],
                "relative": [],
                "start_time": started,
                "count": int(n),
                "first_step": lo,
                "last_step": hi,
                "downsampled": sampled,
            }
            found.append(new)
        current = found[-1]
        current["steps"].append(step)
        current["values"].append(value if value.__class__ is float else as_float(value, null_is_nan=True))
        if current["mins"] is not None and current["maxs"] is not None:
            current["mins"].append(as_float(low))
            current["maxs"].append(as_float(high))
        if gap is not None:
            current["gaps"].append(gap)
        current["relative"].append(_seconds(recorded_at, current["start_time"]))
    return found


def curves(store: TrackingStore, experiment_ids: Iterable[int]) -> list[Curve]:
    """Every point of these experiments' curves, one per (experiment, metric, split), in the order of the
    unique index (experiment, name, step, split); step-less values are left out (they are final values,
    not points of a curve). Each row is converted once, straight from the cursor."""
    ids = sorted({v.entity_id("experiment_id", i) for i in experiment_ids})
    m = metrics
    query = (
        select(m.c.experiment_id, m.c.name, m.c.evaluation_set, m.c.step, m.c.value)
        .where(m.c.experiment_id.in_(ids), m.c.step.is_not(None))
        .order_by(m.c.experiment_id, m.c.name, m.c.step, m.c.evaluation_set)
    )
    found: dict[tuple[int, str, str], Curve] = {}
    with store.read() as conn:
        for e, name, split, step, value in conn.execute(query):
            curve = found.get((e, name, split))
            if curve is None:
                curve = found[(e, name, split)] = {
                    "experiment_id": e,
                    "name": name,
                    "evaluation_set": split,
                    "steps": [],
                    "values": [],
                }
            curve["steps"].append(step)
            curve["values"].append(value if value.__class__ is float else as_float(value, null_is_nan=True))
    return sorted(found.values(), key=lambda c: (c["experiment_id"], c["name"], c["evaluation_set"]))


def series_keys(store: TrackingStore, experiment_id: int) -> list[SeriesKey]:
    """The (split, name) keys of an experiment that have points by step (from ``metric_latest``)."""
    return [
        (m["evaluation_set"], m["name"])
        for m in store.latest_metrics(experiment_id)
        if m["step"] is not None or m["points"] > 1
    ]


def full_series(
    store: TrackingStore, experiment_id: int, keys: Collection[SeriesKey] | None = None
) -> Iterator[tuple[SeriesKey, Iterator[tuple[int, float, dt.datetime | None]]]]:
    """Every point of each series of one experiment (all its keys when ``keys`` is None), for a download:
    ``(key, rows)`` per series, ``rows`` yielding ``(step, value, recorded_at)`` in step order, read in
    keyset pages of ``DOWNLOAD_BATCH`` rows (no connection is held between pages)."""
    experiment_id = v.entity_id("experiment_id", experiment_id)
    wanted = check_keys(keys) if keys is not None else series_keys(store, experiment_id)
    for key in wanted or []:
        yield key, _series_rows(store, experiment_id, key)


def _series_rows(
    store: TrackingStore, experiment_id: int, key: SeriesKey
) -> Iterator[tuple[int, float, dt.datetime | None]]:
    m = metrics
    split, name = key
    after: int | None = None
    while True:
        query = (
            select(m.c.step, m.c.value, m.c.recorded_at)
            .where(m.c.experiment_id == experiment_id, m.c.name == name, m.c.evaluation_set == split)
            .where(m.c.step.is_not(None) if after is None else m.c.step > after)
            .order_by(m.c.step)
            .limit(DOWNLOAD_BATCH)
        )
        with store.read() as conn:
            page = conn.execute(query).all()
        for step, value, recorded_at in page:
            yield step, as_float(value, null_is_nan=True), recorded_at
        if len(page) < DOWNLOAD_BATCH:
            return
        after = page[-1][0]


def stored_metric_values(
    store: TrackingStore, experiment_id: int, names: Iterable[str] | None = None
) -> dict[tuple[str, int | None, str], float]:
    """``{(name, step, evaluation_set): value}`` of an experiment's metrics (only ``names`` when given)."""
    query = select(metrics.c.name, metrics.c.step, metrics.c.evaluation_set, metrics.c.value).where(
        metrics.c.experiment_id == experiment_id
    )
    if names is not None:
        query = query.where(metrics.c.name.in_(sorted(set(names))))
    with store.read() as conn:
        return {
            (name, step, split): float(value) if value is not None else float("nan")
            for name, step, split, value in conn.execute(query)
        }


def metric_steps(store: TrackingStore, experiment_id: int, evaluation_set: str) -> dict[str, int]:
    """``{metric name: number of rows}`` of one experiment and split (a cheap shape check for monitoring)."""
    query = (
        select(metrics.c.name, func.count())
        .where(metrics.c.experiment_id == experiment_id, metrics.c.evaluation_set == evaluation_set)
        .group_by(metrics.c.name)
    )
    with store.read() as conn:
        return {name: int(n) for name, n in conn.execute(query)}


def finite_or_none(value: float | None) -> float | None:
    """A value a chart can draw: a finite float, else None (a gap)."""
    return value if value is not None and math.isfinite(value) else None


__all__ = [
    "DEFAULT_POINTS",
    "MAX_KEYS",
    "MAX_POINTS",
    "Curve",
    "Series",
    "SeriesKey",
    "check_keys",
    "check_range",
    "curves",
    "finite_or_none",
    "full_series",
    "metric_steps",
    "series",
    "series_keys",
    "stored_metric_values",
]
