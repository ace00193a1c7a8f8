"""The ``[start, end)`` of source runs one reconcile run covers: the pure rule (:func:`run_window`) and its
lookups through the Task SDK (:func:`window_from_context`). docs/backfill.md explains the rule.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.reconcile.spec import as_utc, as_utc_field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunWindow:
    """The ``[start, end)`` a reconcile run covers, and the rule that chose it (for the log)."""

    start: dt.datetime
    end: dt.datetime
    rule: str


def _no_date(_: dt.datetime) -> dt.datetime | None:
    return None


def _no_dates() -> Sequence[dt.datetime]:
    return ()


def _given(value: Any) -> bool:
    return value not in (None, "", "None")


def run_window(
    *,
    data_interval_start: dt.datetime | None = None,
    data_interval_end: dt.datetime | None = None,
    logical_date: dt.datetime | None = None,
    run_after: dt.datetime | None = None,
    start: Any = None,
    end: Any = None,
    triggering_dates: Callable[[], Sequence[dt.datetime]] = _no_dates,
    previous_fire: Callable[[dt.datetime], dt.datetime | None] = _no_date,
    previous_run_end: Callable[[dt.datetime], dt.datetime | None] = _no_date,
    first_start: dt.datetime | None = None,
) -> RunWindow:
    """The ``[start, end)`` of source runs a reconcile run covers (pure: lookups are passed in).

    ``start``/``end`` given (rendered, not empty) win. Otherwise, in this order:

    1. the run's data interval when it is not empty (``CronDataIntervalTimetable``, a ``timedelta``
       schedule, a ``CronTriggerTimetable`` with ``interval=``, manual runs of those);
    2. else the window ends at the run's logical date (``run_after`` when it has none) and starts at:

       a. for an asset-triggered run (no logical date, triggering events): the earliest date (logical
          date, else run_after) of the runs that emitted the triggering events (an event from no run:
          its timestamp), so the producers' runs are covered;
       b. the schedule's fire time before the end (``previous_fire``): ``"@daily"`` in Airflow 3 is a
          ``CronTriggerTimetable`` whose runs have ``data_interval_start == data_interval_end``; its run
          at D covers ``[D - 1 day, D)``, the period that just ended; a manual run at 14:00 covers
          ``[00:00, 14:00)`` of that day;
       c. the end of the previous successful run of this DAG (``previous_run_end``): schedules
          without fire times (``None``, ``"@once"``, assets) run by hand;
       d. the DAG's ``start_date`` (``first_start``): its first run.

    A lookup answering a date at or after the end is ignored (the next rule applies).
    """
    given_start = as_utc_field(start, "start") if _given(start) else None
    given_end = as_utc_field(end, "end") if _given(end) else None
    if given_start is not None and given_end is not None:
        win_start, win_end, rule = given_start, given_end, "given start and end"
    else:
        win_start, win_end, rule = _infer_window(
            data_interval_start,
            data_interval_end,
            logical_date,
            run_after,
            given_start=given_start,
            triggering_dates=triggering_dates,
            previous_fire=previous_fire,
            previous_run_end=previous_run_end,
            first_start=first_start,
        )
        win_end = given_end if given_end is not None else win_end
    if win_end <= win_start:
        raise MLTrackError(
            "end", end if given_end is not None else win_end, f"must be after start ({win_start.isoformat()})"
        )
    return RunWindow(win_start, win_end, rule)


def _infer_window(
    data_interval_start: dt.datetime | None,
    data_interval_end: dt.datetime | None,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None,
    *,
    given_start: dt.datetime | None,
    triggering_dates: Callable[[], Sequence[dt.datetime]],
    previous_fire: Callable[[dt.datetime], dt.datetime | None],
    previous_run_end: Callable[[dt.datetime], dt.datetime | None],
    first_start: dt.datetime | None,
) -> tuple[dt.datetime, dt.datetime, str]:
    if data_interval_start is not None and data_interval_end is not None:
        interval = as_utc(data_interval_start), as_utc(data_interval_end)
        if interval[0] < interval[1]:
            return given_start or interval[0], interval[1], "the run's data interval"
    anchor = data_interval_end or logical_date or run_after
    if anchor is None:
        raise MLTrackError("end", None, "the run has no logical date, data interval or run_after: give end")
    end = as_utc(anchor)
    if given_start is not None:
        return given_start, end, "given start, up to the run's logical date"
    if logical_date is None:
        dates = [as_utc(d) for d in triggering_dates()]
        if dates:
            # The emitting runs' dates precede their events, which precede this run's run_after.
            return min(dates), max(end, max(dates) + _TICK), "the runs behind the triggering asset events"
    candidates: list[tuple[str, Callable[[], dt.datetime | None]]] = [
        ("the schedule's previous fire time", lambda: previous_fire(end)),
        ("the previous successful run of this DAG", lambda: previous_run_end(end)),
        ("the DAG's start_date", lambda: first_start),
    ]
    for rule, lookup in candidates:
        found = lookup()
        if found is not None and as_utc(found) < end:
            return as_utc(found), end, rule
    raise MLTrackError(
        "start",
        None,
        f"cannot be inferred for a run ending {end.isoformat()}: its data interval is empty, the schedule "
        "has no earlier fire time, the DAG no earlier successful run and no start_date before it; give start",
    )


_TICK = dt.timedelta(microseconds=1)


def previous_fire_time(timetable: Any, before: dt.datetime) -> dt.datetime | None:
    """The last time ``timetable`` fires strictly before ``before`` (UTC), or None when it has no fire times.

    Knows cron schedules (``CronTriggerTimetable``, ``MultipleCronTriggerTimetable``, the cron of a
    ``CronDataIntervalTimetable``), ``timedelta`` schedules (``before - delta``) and ``EventsTimetable``;
    ``None``, ``"@once"``, ``"@continuous"`` and asset schedules have none.
    """
    before = as_utc(before)
    expression = getattr(timetable, "expression", None) or getattr(timetable, "_expression", None)
    if isinstance(expression, str):
        timezone = getattr(timetable, "timezone", None) or getattr(timetable, "_timezone", None) or "UTC"
        return _cron_prev(expression, timezone, before)
    parts = getattr(timetable, "timetables", None)
    if isinstance(parts, list | tuple):
        fires = [f for part in parts if (f := previous_fire_time(part, before)) is not None]
        return max(fires, default=None)
    delta = getattr(timetable, "delta", None) or getattr(timetable, "_delta", None)
    if delta is not None:
        return as_utc(before - delta)
    events = getattr(timetable, "event_dates", None)
    if isinstance(events, list | tuple):
        return max((d for d in map(as_utc, events) if d < before), default=None)
    return None


def _cron_prev(expression: str, timezone: Any, before: dt.datetime) -> dt.datetime:
    """The cron's fire time before ``before``, in the cron's timezone (DST as Airflow's cron timetables do:
    a cron that fires every hour steps back in absolute time across a fold)."""
    import pendulum
    from croniter import croniter

    tz = pendulum.timezone(timezone) if isinstance(timezone, str) else timezone
    local = pendulum.instance(before).in_timezone(tz)
    naive = local.naive()
    cron = croniter(expression, start_time=naive)
    fired = cron.get_prev(dt.datetime)
    if cron.expanded[1] == ["*"]:
        return as_utc(local - (naive - fired))
    return as_utc(tz.convert(fired) if hasattr(tz, "convert") else fired.replace(tzinfo=tz))


def window_from_context(context: Mapping[str, Any], start: Any = None, end: Any = None) -> RunWindow:
    """:func:`run_window` for the task instance of ``context``, with its lookups done through the Task SDK
    (the supervisor channel: no metadata-DB access, as on a real worker)."""
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    task = context.get("task")

    def field(name: str) -> Any:
        value = getattr(dag_run, name, None)
        return value if value is not None else context.get(name)

    return run_window(
        data_interval_start=field("data_interval_start"),
        data_interval_end=field("data_interval_end"),
        logical_date=field("logical_date"),
        run_after=field("run_after"),
        start=start,
        end=end,
        triggering_dates=lambda: _triggering_dates(dag_run),
        previous_fire=lambda before: previous_fire_time(getattr(dag, "timetable", None), before),
        previous_run_end=lambda before: _previous_success_end(getattr(dag_run, "dag_id", None), before),
        first_start=getattr(dag, "start_date", None) or getattr(task, "start_date", None),
    )


def _supervisor() -> Any:
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    return SUPERVISOR_COMMS


def _triggering_dates(dag_run: Any) -> list[dt.datetime]:
    """For each asset event that triggered ``dag_run``: the date of the run that emitted it (logical date,
    else run_after), or the event's timestamp when no run emitted it (or that run is gone)."""
    events = getattr(dag_run, "consumed_asset_events", None) or []
    if not events:
        return []
    from airflow.sdk.execution_time.comms import DagRunResult, GetDagRun

    comms = _supervisor()
    dates: list[dt.datetime] = []
    seen: dict[tuple[str, str], dt.datetime | None] = {}
    for event in events:
        when = None
        if event.source_dag_id and event.source_run_id and comms is not None:
            key = (event.source_dag_id, event.source_run_id)
            if key not in seen:
                try:
                    answer: Any = comms.send(GetDagRun(dag_id=key[0], run_id=key[1]))
                except Exception as exc:  # the emitting run was deleted: use the event's timestamp
                    log.warning("asset event source run %s/%s not found: %s", *key, exc)
                    answer = None
                seen[key] = (
                    (answer.logical_date or answer.run_after) if isinstance(answer, DagRunResult) else None
                )
            when = seen[key]
        dates.append(as_utc(when or event.timestamp))
    return dates


def _previous_success_end(dag_id: str | None, before: dt.datetime) -> dt.datetime | None:
    """Where the last successful run of ``dag_id`` with a logical date before ``before`` ended: its data
    interval end, else its logical date."""
    comms = _supervisor()
    if not dag_id or comms is None:
        return None
    from airflow.sdk.execution_time.comms import GetPreviousDagRun, PreviousDagRunResult

    answer = comms.send(GetPreviousDagRun(dag_id=dag_id, logical_date=before, state="success"))
    run = answer.dag_run if isinstance(answer, PreviousDagRunResult) else None
    if run is None:
        return None
    return run.data_interval_end or run.logical_date
