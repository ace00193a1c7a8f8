"""Reconcile metrics from XCom into the tracking store: the logic shared by the operator and the CLI.

XCom is the durable buffer: when the tracking database was down, when tracking was added after the fact,
or when a DAG never used our operators, the metrics a task returned are still in Airflow. A
:class:`Reconciler` walks the runs of a source task in a date range and imports each run's XCom payload
into the experiment linked to that run (dag_id, run_id, task_id, map_index), creating the experiment when
there is none.

Where the runs come from is a :class:`RunSource`, chosen by where the code runs:

- :class:`TaskSDKRunSource`: inside a task on a real worker (and under ``dag.test()``). Uses only the
  Task SDK's supervisor channel (the Execution API): ``GetPreviousDagRun`` walked backwards from the end
  of the range to list runs, ``XCom.get_one`` to read values. Needs no credentials and no metadata-DB
  access (which Airflow 3 workers do not have).
- :class:`RestApiRunSource`: the public REST API ``/api/v2`` through an Airflow HTTP connection (or a base
  URL and a token). Filters by logical date and also finds runs without a logical date by ``run_after``.
- :class:`MetadataDBRunSource`: the metadata-DB ORM, for the CLI outside any worker when the API server
  is not reachable. Never use it inside a task.

The XCom ``mltrack_unsaved`` that ``@task.mltrack`` pushes when the tracking store was down (a dict with
``experiment_id``, ``experiment``, ``hyperparameters`` and the unsaved ``metrics`` rows) is read as such:
see :func:`parse_unsaved` and :class:`Reconciler`.

Every write goes through the :class:`~airflow_mltrack.store.TrackingStore`; the reads that decide what is
already there are in :mod:`airflow_mltrack.store.backfill_queries`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import backfill_queries as q
from airflow_mltrack.store.models import EVALUATION_SETS
from airflow_mltrack.store.payloads import NON_FINITE, MetricRow, dedupe, parse_metrics

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

log = logging.getLogger(__name__)

PLACEHOLDER_DATA_TYPE = "Other"
PLACEHOLDER_FRAMEWORK = "unknown"
PLACEHOLDER_VERSION = "1.0"

IMPORTED = "imported"
PRESENT = "already present"
SKIPPED = "skipped"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What a :class:`RunSource` returns for an XCom that does not exist."""

UNSAVED_XCOM_KEY = "mltrack_unsaved"
"""Where ``@task.mltrack`` pushes what it could not write (``decorators.mltrack_task.XCOM_UNSAVED``)."""


@dataclass(frozen=True)
class Unsaved:
    """What one XCom gives to import: rows, and for an ``mltrack_unsaved`` XCom the hyperparameters and the
    experiment the task was logging into (``experiment_id`` None when the store was down from the start)."""

    rows: list[MetricRow]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    experiment_id: int | None = None
    experiment: str | None = None
    envelope: bool = False


def is_unsaved_envelope(payload: Any) -> bool:
    """Is ``payload`` the dict ``@task.mltrack`` pushes to ``mltrack_unsaved``? It has ``metrics`` and
    ``hyperparameters`` keys; no metric payload can (a nested dict must be keyed by an evaluation set)."""
    return isinstance(payload, Mapping) and "metrics" in payload and "hyperparameters" in payload


def parse_unsaved(payload: Mapping[str, Any], evaluation_set: str = "test", field: str = "xcom") -> Unsaved:
    """An ``mltrack_unsaved`` envelope as :class:`Unsaved` (its ``metrics`` may be empty)."""
    known = {"experiment_id", "project", "experiment", "evaluation_set", "hyperparameters", "metrics"}
    unknown = sorted((key for key in payload if key not in known), key=str)
    if unknown:
        raise MLTrackError(
            f"{field}.{unknown[0]}", payload[unknown[0]], f"unknown key; allowed: {', '.join(sorted(known))}"
        )
    params = payload.get("hyperparameters") or {}
    if not isinstance(params, Mapping):
        raise MLTrackError(f"{field}.hyperparameters", params, "must be a dict")
    experiment_id = payload.get("experiment_id")
    if experiment_id is not None and (
        isinstance(experiment_id, bool) or not isinstance(experiment_id, int) or experiment_id < 1
    ):
        raise MLTrackError(f"{field}.experiment_id", experiment_id, "must be a positive integer id or null")
    experiment = payload.get("experiment")
    metrics = payload.get("metrics")
    rows: list[MetricRow] = []
    if metrics:
        split = payload.get("evaluation_set") or evaluation_set
        rows = dedupe(parse_metrics(_non_finite_values(metrics), split, field=f"{field}.metrics"))
    elif metrics is not None and not isinstance(metrics, list | tuple):
        raise MLTrackError(f"{field}.metrics", metrics, "must be a list of rows")
    return Unsaved(
        rows,
        dict(params),
        experiment_id,
        experiment if isinstance(experiment, str) and experiment.strip() else None,
        envelope=True,
    )


def _non_finite_values(metrics: Any) -> Any:
    """Rows with the strict-JSON spellings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` as floats again."""
    if not isinstance(metrics, list | tuple):
        return metrics
    return [
        {**row, "value": NON_FINITE[row["value"]]}
        if isinstance(row, Mapping) and isinstance(row.get("value"), str) and row["value"] in NON_FINITE
        else row
        for row in metrics
    ]


# -- inputs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceSpec:
    """One source task whose XCom holds metrics (the ``sources=[{...}]`` items of the operator).

    ``model_id``/``dataset_id``: the model and dataset of experiments created for runs that have none.
    When not given, a placeholder per source is registered (idempotently): dataset and model named
    ``"{dag_id}.{task_id}"``, data type ``Other``, framework ``unknown``, version ``1.0``.
    """

    dag_id: str
    task_id: str
    project: str
    xcom_key: str = "return_value"
    evaluation_set: str = "test"
    map_index: int = -1
    model_id: int | None = None
    dataset_id: int | None = None
    experiment_name: str | None = None

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], default_project: str | None = None, index: int = 0
    ) -> SourceSpec:
        where = f"sources[{index}]"
        if not isinstance(raw, Mapping):
            raise MLTrackError(where, raw, "must be a dict with dag_id, task_id and project")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(raw) - allowed
        if unknown:
            raise MLTrackError(
                f"{where}.{sorted(unknown)[0]}",
                raw[sorted(unknown)[0]],
                f"unknown key; allowed: {', '.join(sorted(allowed))}",
            )
        values = dict(raw)
        if not values.get("project") and default_project:
            values["project"] = default_project
        for key in ("dag_id", "task_id", "project"):
            if not isinstance(values.get(key), str) or not values[key].strip():
                raise MLTrackError(f"{where}.{key}", values.get(key), "is required (a non-empty string)")
        if not values.get("xcom_key"):
            values["xcom_key"] = "return_value"
        split = values.get("evaluation_set") or "test"
        if split not in EVALUATION_SETS:
            raise MLTrackError(
                f"{where}.evaluation_set", split, f"must be one of {', '.join(EVALUATION_SETS)}"
            )
        values["evaluation_set"] = split
        for key in ("model_id", "dataset_id"):
            if values.get(key) is not None and (not isinstance(values[key], int) or values[key] < 1):
                raise MLTrackError(f"{where}.{key}", values[key], "must be a positive integer id")
        if (values.get("model_id") is None) != (values.get("dataset_id") is None):
            raise MLTrackError(
                f"{where}.model_id",
                values.get("model_id"),
                "give both model_id and dataset_id, or neither (placeholders are registered)",
            )
        map_index = values.get("map_index", -1)
        if not isinstance(map_index, int) or map_index < -1:
            raise MLTrackError(f"{where}.map_index", map_index, "must be an integer >= -1")
        return cls(**values)

    @property
    def placeholder_name(self) -> str:
        return f"{self.dag_id}.{self.task_id}"

    @property
    def name_for_experiment(self) -> str:
        return self.experiment_name or self.placeholder_name


@dataclass(frozen=True)
class SourceRun:
    """One DAG run of a source DAG, as a :class:`RunSource` lists it."""

    dag_id: str
    run_id: str
    logical_date: dt.datetime | None
    run_after: dt.datetime | None
    state: str | None = None

    @property
    def when(self) -> dt.datetime | None:
        """The date the run is filed under: its logical date, else its run_after."""
        return self.logical_date or self.run_after


class RunSource(Protocol):
    """Where runs and XComs come from (Task SDK, REST API or metadata DB)."""

    name: str

    def list_runs(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> list[SourceRun]:
        """Runs of ``dag_id`` whose logical date (or run_after, when it has none) is in [start, end)."""
        ...

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        """The XCom value, or :data:`MISSING`."""
        ...


def as_utc(value: dt.datetime | dt.date | str) -> dt.datetime:
    """A timezone-aware UTC datetime from a datetime, a date or an ISO string (naive means UTC)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise MLTrackError("date", value, "is empty")
        try:
            import pendulum

            parsed: Any = pendulum.parse(text)
        except Exception as exc:
            raise MLTrackError("date", value, f"not an ISO date or datetime ({exc})") from None
        value = parsed
    if isinstance(value, dt.datetime):
        aware = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        # A plain datetime (not pendulum's subclass, whose arithmetic can drop a foreign tzinfo).
        return dt.datetime(
            aware.year,
            aware.month,
            aware.day,
            aware.hour,
            aware.minute,
            aware.second,
            aware.microsecond,
            tzinfo=dt.UTC,
        )
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise MLTrackError(
        "date", value, f"must be a datetime, a date or an ISO string, not {type(value).__name__}"
    )


def _in_range(when: dt.datetime | None, start: dt.datetime, end: dt.datetime) -> bool:
    return when is not None and start <= as_utc(when) < end


# -- the range a run reconciles ---------------------------------------------------------------------
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


def as_utc_field(value: Any, field: str) -> dt.datetime:
    """:func:`as_utc`, with ``field`` named when ``value`` is refused."""
    try:
        return as_utc(value)
    except MLTrackError as exc:
        raise MLTrackError(field, value, exc.reason) from None


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


# -- checks when the DAG is parsed ------------------------------------------------------------------
# Stand-ins for templated source values, so the keys that are not templates are checked at parse time.
_TEMPLATE_STANDINS: dict[str, Any] = {
    "evaluation_set": "test",
    "map_index": -1,
    "model_id": 1,
    "dataset_id": 1,
}


def check_sources(sources: Any, default_project: Any, dynamic: Callable[[Any], bool]) -> None:
    """What :func:`parse_sources` would refuse, checked when the DAG is parsed: values that ``dynamic``
    says are known only at run time (templates, XComArgs) are left to the run; every other key is checked,
    naming ``sources[i].key``."""
    if not isinstance(sources, Mapping | list | tuple) and dynamic(sources):
        return  # "{{ params.sources }}", an XComArg
    if dynamic(default_project):
        default_project = "templated"
    items = [sources] if isinstance(sources, Mapping) else sources
    if not isinstance(items, list | tuple) or not items:
        parse_sources(sources, default_project)  # raises, naming "sources"
        return
    for index, raw in enumerate(items):
        if isinstance(raw, Mapping):
            raw = {k: _TEMPLATE_STANDINS.get(k, "templated") if dynamic(v) else v for k, v in raw.items()}
        elif dynamic(raw):
            continue
        SourceSpec.from_mapping(raw, default_project, index)


# -- run sources ------------------------------------------------------------------------------------
class TaskSDKRunSource:
    """Runs and XComs through the Task SDK (the supervisor's Execution API channel): for tasks.

    Lists runs by walking ``GetPreviousDagRun`` backwards from ``end`` (one round trip per run in the
    range, plus one), so the cost follows the range, not the DAG's history. Runs without a logical date
    (manual runs triggered with ``logical_date=None``) are not reachable this way: use the REST API source
    for those.
    """

    name = "task-sdk"

    def list_runs(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> list[SourceRun]:
        from airflow.sdk.execution_time.comms import GetPreviousDagRun, PreviousDagRunResult
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

        if SUPERVISOR_COMMS is None:
            raise MLTrackError(
                "run source", self.name, "no Task SDK supervisor: this only works inside a task"
            )
        start, end = as_utc(start), as_utc(end)
        found: list[SourceRun] = []
        cursor = end
        while True:
            response = SUPERVISOR_COMMS.send(GetPreviousDagRun(dag_id=dag_id, logical_date=cursor))
            if not isinstance(response, PreviousDagRunResult):
                raise MLTrackError(
                    "dag_id", dag_id, f"unexpected answer from the supervisor: {type(response).__name__}"
                )
            run = response.dag_run
            if run is None or run.logical_date is None or as_utc(run.logical_date) < start:
                break
            found.append(
                SourceRun(
                    dag_id, run.run_id, as_utc(run.logical_date), as_utc(run.run_after), str(run.state.value)
                )
            )
            cursor = run.logical_date
        found.reverse()
        return found

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        from airflow.sdk.execution_time.xcom import XCom  # the configured XCom backend

        value = XCom.get_one(key=key, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index)
        return MISSING if value is None else value


class RestApiRunSource:
    """Runs and XComs through Airflow's public REST API (``/api/v2``), e.g. from the CLI or a task.

    ``base_url`` is the API server's root (``http://airflow:8080``); authentication is a bearer token, given
    directly or obtained from ``/auth/token`` with a username and password (the simple and FAB auth
    managers answer there). ``client``: an ``httpx.Client`` to use instead (tests pass one on the app).
    """

    name = "rest-api"
    page_size = 100

    def __init__(
        self,
        base_url: str = "",
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        client: Any = None,
        timeout: float = 30.0,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self.client = client if client is not None else httpx.Client(base_url=self.base_url, timeout=timeout)
        if token is None and username:
            token = self._fetch_token(username, password or "")
        if token:
            self.client.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_connection(cls, conn_id: str, **kwargs: Any) -> RestApiRunSource:
        """From an Airflow connection (type ``http``): Host (with scheme), Port and Schema build the base URL;
        Password alone is a token; Login + Password are exchanged for one; extra ``{"token": ...}`` also works.
        """
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson or {}
        host = (conn.host or "").rstrip("/")
        if not host:
            raise MLTrackError(
                "host", conn.host, f"connection {conn_id!r}: the Airflow API base URL is required"
            )
        if "://" not in host:
            scheme = conn.conn_type if conn.conn_type in ("http", "https") else "http"
            host = f"{scheme}://{host}"
        if conn.port:
            host = f"{host}:{conn.port}"
        if conn.schema:
            host = f"{host}/{conn.schema.strip('/')}"
        token = extra.get("token")
        if token is None and conn.password and not conn.login:
            token = conn.password
        return cls(host, token=token, username=conn.login or None, password=conn.password, **kwargs)

    def _fetch_token(self, username: str, password: str) -> str:
        response = self.client.post("/auth/token", json={"username": username, "password": password})
        if response.status_code >= 400:
            raise MLTrackError(
                "login", username, f"the API server refused the credentials ({response.status_code})"
            )
        return str(response.json()["access_token"])

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self.client.get(path, params=params)
        if response.status_code == 404:
            return MISSING
        if response.status_code >= 400:
            raise MLTrackError("api", path, f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def _pages(self, dag_id: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from urllib.parse import quote

        offset = 0
        while True:
            page = self._get(
                f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns",
                {**params, "limit": self.page_size, "offset": offset, "order_by": "id"},
            )
            if page is MISSING:
                raise MLTrackError("dag_id", dag_id, "no such DAG on the API server")
            runs = page.get("dag_runs", [])
            yield from runs
            offset += len(runs)
            if not runs or offset >= int(page.get("total_entries", 0)):
                return

    def list_runs(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> list[SourceRun]:
        start, end = as_utc(start), as_utc(end)
        found: dict[str, SourceRun] = {}
        window = {"logical_date_gte": start.isoformat(), "logical_date_lt": end.isoformat()}
        by_run_after = {"run_after_gte": start.isoformat(), "run_after_lt": end.isoformat()}
        for params in (window, by_run_after):
            for raw in self._pages(dag_id, params):
                run = SourceRun(
                    dag_id,
                    raw["dag_run_id"],
                    _parse_dt(raw.get("logical_date")),
                    _parse_dt(raw.get("run_after")),
                    raw.get("state"),
                )
                if params is by_run_after and run.logical_date is not None:
                    continue  # filed under its logical date (first query)
                found.setdefault(run.run_id, run)
        return _sorted_runs(found.values())

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        from urllib.parse import quote

        path = (
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
            f"/taskInstances/{quote(task_id, safe='')}/xcomEntries/{quote(key, safe='')}"
        )
        body = self._get(path, {"map_index": map_index})
        if body is MISSING:
            return MISSING
        return decode_stored_xcom(body.get("value"))


class MetadataDBRunSource:
    """Runs and XComs read with the metadata-DB ORM: for the CLI outside any task only.

    Airflow 3 workers have no metadata-DB access; a task must use :class:`TaskSDKRunSource` or
    :class:`RestApiRunSource`.
    """

    name = "metadata-db"

    def list_runs(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> list[SourceRun]:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import and_, or_, select

        start, end = as_utc(start), as_utc(end)
        query = select(DagRun.run_id, DagRun.logical_date, DagRun.run_after, DagRun.state).where(
            DagRun.dag_id == dag_id,
            or_(
                and_(DagRun.logical_date >= start, DagRun.logical_date < end),
                and_(DagRun.logical_date.is_(None), DagRun.run_after >= start, DagRun.run_after < end),
            ),
        )
        with create_session() as session:
            rows = session.execute(query).all()
        return _sorted_runs(
            SourceRun(
                dag_id,
                r.run_id,
                _aware(r.logical_date),
                _aware(r.run_after),
                str(r.state) if r.state else None,
            )
            for r in rows
        )

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(
                XComModel.get_many(
                    run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id, map_indexes=map_index, limit=1
                )
            ).first()
            if row is None:
                return MISSING
            row = row[0] if isinstance(row, tuple) else row
            return XComModel.deserialize_value(row)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else as_utc(value)


def _parse_dt(value: str | None) -> dt.datetime | None:
    return None if not value else as_utc(value)


def _sorted_runs(runs: Iterable[SourceRun]) -> list[SourceRun]:
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(runs, key=lambda r: (r.when or far, r.run_id))


def decode_stored_xcom(value: Any) -> Any:
    """An XCom value as the REST API returns it (the stored, serialized form) turned back into Python."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict) and "__classname__" in value:
        from airflow.sdk.serde import deserialize

        return deserialize(value)
    return value


def source_from_env(api_conn_id: str | None = None) -> RunSource:
    """The right source where the code runs: the REST API when a connection is named, else the Task SDK."""
    if api_conn_id:
        return RestApiRunSource.from_connection(api_conn_id)
    return TaskSDKRunSource()


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


# -- the reconcile ----------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    """What happened to one run of one source."""

    dag_id: str
    task_id: str
    run_id: str
    when: dt.datetime | None
    outcome: str  # IMPORTED | PRESENT | SKIPPED
    rows: int = 0
    experiment_id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "when": self.when.isoformat() if self.when else None,
            "outcome": self.outcome,
            "rows": self.rows,
            "experiment_id": self.experiment_id,
            "reason": self.reason,
        }


@dataclass
class ReconcileReport:
    outcomes: list[RunOutcome] = field(default_factory=list)

    def of(self, outcome: str) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.outcome == outcome]

    @property
    def imported(self) -> int:
        return len(self.of(IMPORTED))

    @property
    def present(self) -> int:
        return len(self.of(PRESENT))

    @property
    def skipped(self) -> int:
        return len(self.of(SKIPPED))

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes)

    def summary(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "already_present": self.present,
            "skipped": self.skipped,
            "rows": self.rows,
            "experiment_ids": sorted({o.experiment_id for o in self.outcomes if o.experiment_id is not None}),
            "skipped_runs": [
                {"run_id": o.run_id, "task_id": o.task_id, "reason": o.reason} for o in self.of(SKIPPED)
            ],
        }


ProgressCallback = Callable[[str, Any], None]


class Reconciler:
    """Imports XCom metrics of source runs into the tracking store, idempotently.

    For each run of a source in [start, end):

    - an experiment linked to the run (dag_id, run_id, task_id, map_index) that already has metrics of the
      source's evaluation set: **already present**, skipped without reading the XCom (cheap: two queries
      per 500 runs), so an interrupted backfill resumes where it stopped. ``verify=True`` reads the XCom
      anyway and upserts, reporting "already present" only when every value was already stored;
    - no XCom, or a payload ``parse_metrics`` refuses: **skipped** with the reason (the others go on);
    - otherwise **imported**: the metrics are upserted (one transaction) into the linked experiment,
      created (status Completed, name ``"{dag_id}.{task_id}"``) when none exists.

    An ``mltrack_unsaved`` envelope (:func:`parse_unsaved`) also brings hyperparameters (merged) and the
    experiment name (for a created experiment) or id (when no experiment is linked to the run). With the
    ``mltrack_unsaved`` key the XCom is always read, since a linked experiment with metrics is exactly the
    case of a store lost mid-task; a run is **already present** when every unsaved value is stored, or
    when it has a linked experiment and no such XCom (the task wrote everything).
    """

    def __init__(self, runs: RunSource, store: TrackingStore, *, verify: bool = False) -> None:
        self.runs = runs
        self.store = store
        self.verify = verify

    def plan(self, source: SourceSpec, start: Any, end: Any) -> list[SourceRun]:
        """The runs of ``source`` in [start, end), oldest first."""
        start_, end_ = as_utc(start), as_utc(end)
        if end_ <= start_:
            raise MLTrackError("end", end, f"must be after start ({start_.isoformat()})")
        return [
            r for r in self.runs.list_runs(source.dag_id, start_, end_) if _in_range(r.when, start_, end_)
        ]

    def reconcile(
        self,
        sources: Sequence[SourceSpec],
        start: Any,
        end: Any,
        *,
        on_plan: Callable[[SourceSpec, int], None] | None = None,
        on_run: Callable[[RunOutcome], None] | None = None,
    ) -> ReconcileReport:
        report = ReconcileReport()
        for source in sources:
            runs = self.plan(source, start, end)
            if on_plan:
                on_plan(source, len(runs))
            for outcome in self.reconcile_runs(source, runs):
                report.outcomes.append(outcome)
                if on_run:
                    on_run(outcome)
        return report

    def reconcile_runs(self, source: SourceSpec, runs: Sequence[SourceRun]) -> Iterator[RunOutcome]:
        linked = q.linked_experiments(
            self.store,
            source.dag_id,
            source.task_id,
            [r.run_id for r in runs],
            map_index=source.map_index,
            evaluation_set=source.evaluation_set,
        )
        catalog: dict[str, int] = {}
        for run in runs:
            yield self._one(source, run, linked.get(run.run_id), catalog)

    def _one(
        self, source: SourceSpec, run: SourceRun, linked: dict[str, Any] | None, catalog: dict[str, int]
    ) -> RunOutcome:
        outcome = RunOutcome(source.dag_id, source.task_id, run.run_id, run.when, SKIPPED)
        # An mltrack_unsaved XCom holds exactly the rows the linked experiment lacks: always read it.
        unsaved_key = source.xcom_key == UNSAVED_XCOM_KEY
        if linked is not None:
            outcome.experiment_id = linked["experiment_id"]
            if linked["metric_count"] and not self.verify and not unsaved_key:
                outcome.outcome = PRESENT
                return outcome
        try:
            payload = self.runs.get_xcom(
                source.dag_id, run.run_id, source.task_id, source.xcom_key, source.map_index
            )
        except MLTrackError as exc:
            outcome.reason = f"cannot read XCom: {exc}"
            return outcome
        if payload is MISSING or payload is None:
            if unsaved_key and linked is not None:
                outcome.outcome = PRESENT  # the task wrote everything: nothing was left unsaved
                return outcome
            outcome.reason = f"no XCom {source.xcom_key!r} for task {source.task_id!r}"
            return outcome
        where = f"xcom[{source.xcom_key}]"
        try:
            if is_unsaved_envelope(payload):
                found = parse_unsaved(payload, source.evaluation_set, where)
            else:
                found = Unsaved(dedupe(parse_metrics(payload, source.evaluation_set, field=where)))
        except MLTrackError as exc:
            outcome.reason = f"malformed payload: {exc}"
            log.warning("run %s of %s.%s: %s", run.run_id, source.dag_id, source.task_id, outcome.reason)
            return outcome
        if not found.rows and not found.hyperparameters:
            outcome.reason = f"XCom {source.xcom_key!r} holds nothing to import"
            return outcome
        experiment_id = outcome.experiment_id if outcome.experiment_id is not None else found.experiment_id
        if (
            experiment_id is not None
            and (self.verify or found.envelope)
            and self._stored(experiment_id, found)
        ):
            outcome.experiment_id = experiment_id
            outcome.outcome = PRESENT
            return outcome
        if experiment_id is None:
            experiment_id = self._create_experiment(source, run, catalog, found)
        elif found.hyperparameters:
            self.store.log_hyperparameters(experiment_id, found.hyperparameters)
        outcome.rows = self.store.log_metric_rows(experiment_id, found.rows)
        outcome.experiment_id = experiment_id
        outcome.outcome = IMPORTED
        return outcome

    def _stored(self, experiment_id: int, found: Unsaved) -> bool:
        """Is every row (and hyperparameter) of ``found`` already stored with the same value?"""
        stored = q.stored_metric_values(self.store, experiment_id, {r.name for r in found.rows})
        if not all(_same(stored.get((r.name, r.step, r.evaluation_set)), r.value) for r in found.rows):
            return False
        if not found.hyperparameters:
            return True
        params = self.store.get_experiment(experiment_id).get("hyperparameters") or {}
        return all(key in params and params[key] == value for key, value in found.hyperparameters.items())

    def _create_experiment(
        self, source: SourceSpec, run: SourceRun, catalog: dict[str, int], found: Unsaved
    ) -> int:
        if "model_id" not in catalog:
            self.store.ensure_project(source.project)
            if source.model_id is not None and source.dataset_id is not None:
                catalog["model_id"], catalog["dataset_id"] = source.model_id, source.dataset_id
            else:
                catalog["dataset_id"] = self.store.register_dataset(
                    source.project,
                    source.placeholder_name,
                    PLACEHOLDER_DATA_TYPE,
                    PLACEHOLDER_VERSION,
                    description="placeholder registered by a metric backfill (the run's real dataset is unknown)",
                )
                catalog["model_id"] = self.store.register_model(
                    source.project,
                    source.placeholder_name,
                    PLACEHOLDER_FRAMEWORK,
                    PLACEHOLDER_VERSION,
                    description="placeholder registered by a metric backfill (the run's real model is unknown)",
                )
        return self.store.create_experiment(
            source.project,
            source.experiment_name or found.experiment or source.placeholder_name,
            catalog["model_id"],
            catalog["dataset_id"],
            hyperparameters=found.hyperparameters or None,
            description=f"metrics imported from XCom {source.xcom_key!r} of {source.dag_id}.{source.task_id}",
            status="Completed",
            dag_id=source.dag_id,
            run_id=run.run_id,
            task_id=source.task_id,
            map_index=source.map_index,
        )


def _same(stored: float | None, value: float) -> bool:
    if stored is None:
        return False
    if math.isnan(stored) and math.isnan(value):
        return True
    return stored == value


def parse_sources(sources: Any, default_project: str | None = None) -> list[SourceSpec]:
    """``sources`` (a dict or a list of dicts) as :class:`SourceSpec` items."""
    if isinstance(sources, Mapping):
        sources = [sources]
    if not isinstance(sources, list | tuple) or not sources:
        raise MLTrackError(
            "sources", sources, "must be a non-empty list of dicts (dag_id, task_id, project, ...)"
        )
    return [SourceSpec.from_mapping(s, default_project, i) for i, s in enumerate(sources)]
