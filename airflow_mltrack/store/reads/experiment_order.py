"""Which experiment ids fill one page of the list, in order: by a metric (a walk of its index), by any
order-by keys, or newest first.

A page past the middle is read from the end in the opposite order (and turned around), so the last page
costs what the first does. Used by :func:`~airflow_mltrack.store.reads.experiment_list.experiment_page`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, null, select

from airflow_mltrack.store import tables
from airflow_mltrack.store.search import Compiler, OrderKey

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from airflow_mltrack.store import TrackingStore

experiments, metric_latest = tables.experiments, tables.metric_latest
Filtered = Callable[[Any], Any]


def page_window(total: int | None, offset: int, limit: int, from_end: bool = False) -> tuple[bool, int, int]:
    """(read from the end?, offset, limit) of the query that returns one page. ``offset`` counts from the
    start, or from the end with ``from_end``; ``total`` is None when only a lower bound is known. Past
    the middle of a known total, the same rows are read from the end."""
    if from_end:
        count = limit if total is None else max(min(limit, total - offset), 0)
        return True, offset, count
    if total is None:
        return False, offset, limit
    if offset * 2 <= total or offset >= total:
        return False, offset, max(min(limit, total - offset), 0)
    count = min(limit, total - offset)
    return True, max(total - offset - limit, 0), count


def page_ids(
    store: TrackingStore,
    conn: Connection,
    compiler: Compiler,
    filtered: Filtered,
    keys: list[OrderKey],
    window: tuple[int | None, int, int, bool],
) -> list[tuple[int, float | None]]:
    """(experiment_id, sort value) of one page, in the ``compiler``'s order (its tie-break included);
    ``window`` = (total or None, offset, limit, from_end) as :func:`page_window` takes it. The sort value is
    the metric's final value when the only key is a metric and the tie-break ours (a walk of its index),
    else None."""
    reverse, start, count = page_window(*window)
    if count <= 0:
        return []
    if keys and keys[0].key.entity == "metrics" and len(keys) == 1 and compiler.tiebreak == "newest":
        key = keys[0]
        found = _metric_walk(
            store,
            conn,
            filtered,
            (compiler.split_of(key.key), key.key.name),
            key.descending,
            start + count,
            reverse,
        )[start:]
    else:
        query = filtered(select(experiments.c.experiment_id, null().label("value"))).order_by(
            *compiler.order_by(keys, reverse=reverse)
        )
        found = [(int(i), None) for i, _ in conn.execute(query.limit(count).offset(start))]
    return found[::-1] if reverse else found


def _metric_walk(
    store: TrackingStore,
    conn: Connection,
    filtered: Filtered,
    sort_key: tuple[str, str],
    descending: bool,
    n: int,
    reverse: bool,
) -> list[tuple[int, float | None]]:
    """The first ``n`` (experiment_id, final value) of the filtered experiments sorted by a metric.

    Three tiers, each its own query and asked only while the page is not full: experiments with a number
    (by value, ties newest first), then those whose final value is not finite (NaN, +-Infinity: not ranked,
    as on the leaderboard), then those without the metric (newest first). The first is a walk of
    ``idx_metric_latest_key_value`` that stops after ``n`` rows instead of sorting every experiment.
    ``reverse``: the exact opposite order (tiers last to first).
    """
    split, name = sort_key
    latest = metric_latest.c
    of_key = and_(latest.name == name, latest.evaluation_set == split)
    valued = filtered(
        select(latest.experiment_id, latest.value).join(
            experiments, experiments.c.experiment_id == latest.experiment_id
        )
    ).where(of_key)
    newest = latest.experiment_id.asc() if reverse else latest.experiment_id.desc()
    by_value = latest.value.desc() if descending != reverse else latest.value.asc()
    tiers = [
        valued.where(store.finite(latest.value)).order_by(by_value, newest),
        valued.where(store.non_finite(latest.value)).order_by(newest),
        filtered(select(experiments.c.experiment_id, null().label("value")))
        .where(
            ~select(latest.experiment_id)
            .where(of_key, latest.experiment_id == experiments.c.experiment_id)
            .exists()
        )
        .order_by(experiments.c.experiment_id.asc() if reverse else experiments.c.experiment_id.desc()),
    ]
    if reverse and _every_experiment_has(conn, of_key):
        tiers.pop()  # read from the end, the tier without the metric comes first: skip its anti-join scan
    numbered = list(enumerate(tiers))
    found: list[tuple[int, float | None]] = []
    for number, tier in numbered[::-1] if reverse else numbered:
        if len(found) >= n:
            break
        for i, value in conn.execute(tier.limit(n - len(found))):
            # The non-finite tier's NULL is SQLite's NaN; the last tier's NULL means "no value".
            found.append((int(i), math.nan if value is None and number == 1 else value))
    return found


def _every_experiment_has(conn: Connection, of_key: Any) -> bool:
    """Whether every experiment has a row of the metric key: two index-only counts (one row per experiment
    and key, by ``pk_metric_latest``), instead of the anti-join of every filtered experiment."""
    with_key = select(func.count()).select_from(metric_latest).where(of_key).scalar_subquery()
    query = select(select(func.count()).select_from(experiments).scalar_subquery() == with_key)
    return bool(conn.execute(query).scalar())


__all__ = ["page_ids", "page_window"]
