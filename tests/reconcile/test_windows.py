"""The range a BackfillMetricsOperator run reconciles, under the schedules users write in Airflow 3.

``schedule="@daily"`` is a ``CronTriggerTimetable`` (empty data intervals), a ``timedelta`` a
``DeltaTriggerTimetable`` (empty too), manual runs may have no logical date and asset-triggered runs never
have one. The rule is :func:`airflow_mltrack.reconcile.window.run_window`; the operator runs under ``dag.test()``
here and on a real scheduler in ``test_scheduler.py``. Parse-time checks of the arguments are at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.reconcile import previous_fire_time, run_window
from tests.reconcile.conftest import load_dag, run_summary
from tests.reconcile.dags.mltrack_bf_source import START

D = dt.timedelta(days=1)
H = dt.timedelta(hours=1)


# -- the rule (pure) --------------------------------------------------------------------------------
def _fire(schedule):
    from airflow.sdk import DAG

    timetable = DAG(dag_id="x", schedule=schedule, start_date=START).timetable
    return lambda before: previous_fire_time(timetable, before)


def test_cron_trigger_run_covers_the_period_that_ended_at_it():
    day = START + 10 * D
    window = run_window(
        data_interval_start=day, data_interval_end=day, logical_date=day, previous_fire=_fire("@daily")
    )
    assert (window.start, window.end) == (day - D, day)
    assert window.rule == "the schedule's previous fire time"
    # catchup: consecutive runs tile the time line, no gap, no overlap
    nxt = run_window(
        data_interval_start=day + D,
        data_interval_end=day + D,
        logical_date=day + D,
        previous_fire=_fire("@daily"),
    )
    assert nxt.start == window.end


def test_manual_run_without_logical_date_covers_the_current_period_so_far():
    now = START + 10 * D + 14 * H
    window = run_window(run_after=now, previous_fire=_fire("0 */6 * * *"))
    assert (window.start, window.end) == (START + 10 * D + 12 * H, now)


def test_a_non_empty_data_interval_is_used_as_is():
    window = run_window(
        data_interval_start=START,
        data_interval_end=START + D,
        logical_date=START,
        previous_fire=lambda _: pytest.fail("not needed"),
    )
    assert (window.start, window.end, window.rule) == (START, START + D, "the run's data interval")


def test_timedelta_schedule_steps_back_one_delta():
    day = START + 3 * D + 5 * H
    window = run_window(
        data_interval_start=day,
        data_interval_end=day,
        logical_date=day,
        previous_fire=_fire(dt.timedelta(hours=6)),
    )
    assert (window.start, window.end) == (day - 6 * H, day)


def test_asset_triggered_run_covers_the_runs_behind_its_events():
    run_after = START + 5 * D + 3 * H
    window = run_window(
        run_after=run_after,
        triggering_dates=lambda: [START + 4 * D, START + 2 * D],
        previous_fire=lambda _: pytest.fail("an asset run has no schedule fire time"),
    )
    assert (window.start, window.end) == (START + 2 * D, run_after)
    assert window.rule == "the runs behind the triggering asset events"


def test_unscheduled_dag_from_previous_success_then_start_date_then_refused():
    at = START + 5 * D
    window = run_window(logical_date=at, previous_run_end=lambda before: START + 2 * D, first_start=START)
    assert (window.start, window.end) == (START + 2 * D, at)
    first = run_window(logical_date=at, first_start=START)
    assert (first.start, first.rule) == (START, "the DAG's start_date")
    with pytest.raises(MLTrackError, match=r"^start=None: cannot be inferred"):
        run_window(logical_date=at, first_start=at)


def test_given_bounds_win_and_are_checked():
    day = START + 10 * D
    window = run_window(
        data_interval_start=day, data_interval_end=day, logical_date=day, start="2026-01-02", end=None
    )
    assert (window.start, window.end) == (START + D, day)
    with pytest.raises(MLTrackError, match=r"^end='2026-01-01': must be after start"):
        run_window(start="2026-01-02", end="2026-01-01")
    with pytest.raises(MLTrackError, match=r"^start='yesterday': not an ISO date"):
        run_window(start="yesterday", end="2026-01-01")


def test_previous_fire_time_follows_the_schedule_timezone_and_dst():
    # 02:30 Europe/Zurich every day: on 2026-03-29 (spring forward) it is 01:30 UTC, after it 00:30 UTC.
    from airflow.sdk import CronTriggerTimetable, EventsTimetable, MultipleCronTriggerTimetable

    zurich = CronTriggerTimetable("30 2 * * *", timezone="Europe/Zurich")
    assert previous_fire_time(zurich, dt.datetime(2026, 3, 31, 1, tzinfo=dt.UTC)) == dt.datetime(
        2026, 3, 31, 0, 30, tzinfo=dt.UTC
    )
    assert previous_fire_time(zurich, dt.datetime(2026, 3, 28, 3, tzinfo=dt.UTC)) == dt.datetime(
        2026, 3, 28, 1, 30, tzinfo=dt.UTC
    )
    # hourly across the autumn fold (2026-10-25 03:00 CEST -> 02:00 CET): one hour back in absolute time
    hourly = CronTriggerTimetable("0 * * * *", timezone="Europe/Zurich")
    after_fold = dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.UTC)  # 02:00 CET
    assert previous_fire_time(hourly, after_fold) == after_fold - H
    both = MultipleCronTriggerTimetable("0 3 * * *", "0 9 * * *", timezone="UTC")
    assert previous_fire_time(both, START + 10 * H) == START + 9 * H
    events = EventsTimetable([START, START + 3 * D])
    assert previous_fire_time(events, START + 3 * D) == START
    assert previous_fire_time(events, START) is None
    assert previous_fire_time(load_timetable(None), START) is None


def load_timetable(schedule):
    from airflow.sdk import DAG

    return DAG(dag_id="x", schedule=schedule, start_date=START).timetable


# -- the operator under dag.test ---------------------------------------------------------------------
@pytest.fixture
def tracking_any(tracking_url, monkeypatch):
    """A fresh tracking store on SQLite and on PostgreSQL, reached by the DAGs as ``mltrack_default``."""
    from airflow_mltrack.store import TrackingStore

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLTRACK_DEFAULT", json.dumps({"conn_type": "mltrack", "extra": {"url": tracking_url}})
    )
    return TrackingStore.from_url(tracking_url)


def _imported_days(store, source_runs):
    return sorted(
        source_runs[e["run_id"]]
        for e in store.find_experiments(dag_id="mltrack_bf_source", task_id="evaluate")
    )


@pytest.mark.airflow
@pytest.mark.parametrize(
    ("dag_id", "logical_date", "run_after", "window", "days"),
    [
        # schedule="@daily": the run at 01-03 covers 01-02
        ("mltrack_bf_cron_trigger", START + 2 * D, None, (START + D, START + 2 * D), [1]),
        # a manual run without a logical date at 01-03 14:00: 01-03 so far
        (
            "mltrack_bf_cron_trigger",
            None,
            START + 2 * D + 14 * H,
            (START + 2 * D, START + 2 * D + 14 * H),
            [2],
        ),
        # CronDataIntervalTimetable: dag.test's manual interval is the day before
        ("mltrack_bf_cron_interval", START + 2 * D, None, (START + D, START + 2 * D), [1]),
        # schedule=timedelta(days=1): one delta back
        ("mltrack_bf_timedelta", START + 2 * D, None, (START + D, START + 2 * D), [1]),
    ],
    ids=["cron-trigger", "cron-trigger-manual-no-logical-date", "cron-data-interval", "timedelta"],
)
def test_operator_defaults_under_each_schedule(
    airflow_db, source_runs, tracking_any, dag_id, logical_date, run_after, window, days
):
    dag = load_dag(airflow_db, dag_id)
    dr = dag.test(logical_date=logical_date, run_after=run_after)
    assert dr.state == "success"
    summary = run_summary(dr)
    assert (summary["start"], summary["end"]) == tuple(w.isoformat() for w in window)
    assert summary["imported"] == len(days)
    assert _imported_days(tracking_any, source_runs) == days


@pytest.mark.airflow
def test_unscheduled_dag_resumes_from_its_previous_successful_run(airflow_db, source_runs, tracking_any):
    dag = load_dag(airflow_db, "mltrack_bf_unscheduled")
    first = dag.test(logical_date=START + 2 * D)
    assert first.state == "success"
    assert run_summary(first)["rule"] == "the DAG's start_date"
    assert _imported_days(tracking_any, source_runs) == [0, 1]

    second = dag.test(logical_date=START + 5 * D)
    assert second.state == "success"
    summary = run_summary(second)
    assert (summary["start"], summary["rule"]) == (
        (START + 2 * D).isoformat(),
        "the previous successful run of this DAG",
    )
    # days 2..4 only (3 is malformed): nothing of the first run's range is read again
    assert (summary["imported"], summary["already_present"], summary["skipped"]) == (2, 0, 1)
    assert _imported_days(tracking_any, source_runs) == [0, 1, 2, 4]


# -- arguments checked when the DAG is parsed ---------------------------------------------------------
def _import_errors(tmp_path, operator_call: str) -> str:
    """Parse a one-task DAG file calling the operator; the import errors as text ('' when none)."""
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "user_dag.py").write_text(
        textwrap.dedent(
            """
            import datetime as dt

            from airflow.sdk import dag

            from airflow_mltrack.operators import BackfillMetricsOperator


            @dag(schedule="@daily", start_date=dt.datetime(2026, 1, 1), catchup=False)
            def user_reconcile():
                BackfillMetricsOperator(task_id="reconcile", {call})


            user_reconcile()
            """
        ).replace("{call}", operator_call)
    )
    bag = DagBag(dag_folder=str(tmp_path))
    return "\n".join(bag.import_errors.values())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('sources={"dag_id": "x"}', "sources[0].task_id=None: is required"),
        ('sources=[{"dag_id": "x", "task_id": "t", "project": "p", "xcom": "k"}]', "sources[0].xcom='k'"),
        ('sources=[{"dag_id": "{{ params.d }}", "task_id": "t"}]', "sources[0].project=None"),
        ("sources=[]", "sources=[]: must be a non-empty list"),
        ('sources={"dag_id": "x", "task_id": "t", "project": "p"}, start="last week"', "start='last week'"),
        (
            'sources={"dag_id": "x", "task_id": "t", "project": "p"}, start="2026-02-01", end="2026-01-01"',
            "end='2026-01-01': must be after start",
        ),
        ('sources={"dag_id": "x", "task_id": "t", "project": "p"}, verify="yes"', "verify='yes'"),
    ],
    ids=[
        "task-id-missing",
        "unknown-key",
        "templated-but-project-missing",
        "empty",
        "start",
        "end",
        "verify",
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(tmp_path, call, message):
    assert message in _import_errors(tmp_path, call)


def test_templated_arguments_are_left_to_the_run(tmp_path):
    call = (
        'sources=[{"dag_id": "{{ params.source_dag }}", "task_id": "evaluate", "project": "p",'
        ' "map_index": "{{ params.index }}"}], start="{{ params.start }}", project="{{ params.project }}"'
    )
    assert _import_errors(tmp_path, call) == ""
    assert _import_errors(tmp_path, 'sources="{{ params.sources }}"') == ""


def test_cli_to_equal_to_from_as_datetimes_says_to_is_exclusive():
    from click.testing import CliRunner

    from airflow_mltrack.cli import cli

    args = ["backfill", "--dag-id", "d", "--task-id", "t", "--project", "p", "--from", "2026-01-02T00:00"]
    result = CliRunner().invoke(cli, [*args, "--to", "2026-01-02T00:00"])
    assert result.exit_code == 2
    assert "must be after --from (a datetime --to is exclusive)" in result.output
