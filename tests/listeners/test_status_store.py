"""The store side of experiment status, on both backends: membership rows, the stored error, the clock.

Here the store is called as a task's code calls it (``MLTrackHook().get_store()`` sets ``task_link`` inside
a task; these tests set it as the hook would).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.membership import TaskLink
from airflow_mltrack.store.tables import experiment_tasks

PROJECT = "status-store"


def _experiment(store: TrackingStore, **fields) -> int:
    model = store.register_model(PROJECT, "clf", "sklearn")
    dataset = store.register_dataset(PROJECT, "events", "Tabular")
    return store.create_experiment(PROJECT, "exp", model, dataset, **fields)


def _members(store: TrackingStore, experiment_id: int) -> list[tuple]:
    et = experiment_tasks
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(et.c.run_id, et.c.task_id, et.c.map_index, et.c.role)
            .where(et.c.experiment_id == experiment_id)
            .order_by(et.c.role, et.c.run_id, et.c.task_id)
        )
        return [tuple(r) for r in rows]


def _in_task(store: TrackingStore, run_id: str, task_id: str, map_index: int = -1) -> TrackingStore:
    inside = TrackingStore.from_engine(store.engine)
    inside.task_link = TaskLink("monitor", run_id, task_id, map_index, 1)
    return inside


def test_a_later_noop_failed_keeps_the_error_of_the_move_that_won(store):
    eid = _experiment(store)
    store.set_status(eid, "Running")
    assert store.set_status(eid, "Failed", error="task train (try 1) failed: CUDA out of memory") == "Running"
    assert store.set_status(eid, "Failed", error="DAG run ended (failed); failed: train") == "Failed"
    assert store.get_experiment(eid)["error"] == "task train (try 1) failed: CUDA out of memory"


def test_cancelled_keeps_its_reason(store):
    eid = _experiment(store)
    store.set_status(eid, "Running")
    store.set_status(eid, "Cancelled", error="task train (try 1) skipped: no new data")
    exp = store.get_experiment(eid)
    assert (exp["status"], exp["error"]) == ("Cancelled", "task train (try 1) skipped: no new data")


def test_a_worker_clock_behind_the_database_never_breaks_the_times_check(store, monkeypatch):
    """The worker's clock is an hour behind the database's (or was set back after the experiment started)."""
    from airflow_mltrack.store import experiments as experiments_module

    eid = _experiment(store)
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    monkeypatch.setattr(experiments_module, "utcnow", lambda: behind)
    store.set_status(eid, "Running")
    assert store.set_status(eid, "Completed") == "Running"
    exp = store.get_experiment(eid)
    assert exp["status"] == "Completed"
    assert exp["end_time"] >= exp["start_time"]


def test_start_and_end_time_read_back_with_the_same_resolution(store, monkeypatch):
    from airflow_mltrack.store import experiments as experiments_module

    clock = iter(
        [dt.datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)]
        + [dt.datetime(2030, 5, 6, 7, 8, 10, 654321, tzinfo=dt.UTC)] * 10
    )
    monkeypatch.setattr(experiments_module, "utcnow", lambda: next(clock))
    eid = _experiment(store)
    store.set_status(eid, "Running")
    store.set_status(eid, "Completed")
    exp = store.get_experiment(eid)
    start, end = exp["start_time"], exp["end_time"]
    assert (start.tzinfo is None) == (end.tzinfo is None)
    assert end >= start
    if store.is_postgres:  # both from the database's clock (the fake worker clock is in 2030)
        assert start.year != 2030 and end.year != 2030
    else:  # both from this process's clock, with microseconds
        assert (start.replace(tzinfo=None), end.replace(tzinfo=None)) == (
            dt.datetime(2030, 5, 6, 7, 8, 9, 123456),
            dt.datetime(2030, 5, 6, 7, 8, 10, 654321),
        )


def test_runs_logging_into_a_long_lived_experiment_start_it_and_are_recorded(store):
    """metric_backfill: one monitoring experiment, created once, that every daily run logs into."""
    eid = _experiment(store, dag_id="monitor", run_id="monitoring", task_id="evaluate")
    assert store.get_experiment(eid)["status"] == "Pending"
    day1 = _in_task(store, "scheduled__2026-01-01T00:00:00+00:00", "evaluate")
    day1.log_metrics(eid, {"accuracy": 0.9}, evaluation_set="inference", step=0)
    assert store.get_experiment(eid)["status"] == "Running"
    day2 = _in_task(store, "scheduled__2026-01-02T00:00:00+00:00", "evaluate")
    day2.log_metrics(eid, {"accuracy": 0.8}, evaluation_set="inference", step=1)
    day2.log_metrics(eid, {"f1": 0.7}, evaluation_set="inference", step=1)
    assert _members(store, eid) == [
        ("monitoring", "evaluate", -1, "creator"),
        ("scheduled__2026-01-01T00:00:00+00:00", "evaluate", -1, "writer"),
        ("scheduled__2026-01-02T00:00:00+00:00", "evaluate", -1, "writer"),
    ]


def test_every_kind_of_write_from_a_task_records_it(store):
    creator = _in_task(store, "run1", "create", 2)
    model = store.register_model(PROJECT, "clf", "sklearn")
    dataset = store.register_dataset(PROJECT, "events", "Tabular")
    eid = creator.create_experiment(PROJECT, "exp", model, dataset)  # no link given: the task's
    _in_task(store, "run1", "params").log_hyperparameters(eid, {"lr": 0.1})
    assert store.get_experiment(eid)["status"] == "Running"  # a task wrote into it
    _in_task(store, "run1", "tag").tag("experiment", eid, ["nightly"])
    with pytest.raises(MLTrackError, match="status='Pending'"):  # refused: not a write
        _in_task(store, "run1", "reopen").set_status(eid, "Pending")
    _in_task(store, "run1", "finish").set_status(eid, "Completed")
    assert _members(store, eid) == [
        ("run1", "create", 2, "creator"),
        ("run1", "finish", -1, "writer"),
        ("run1", "params", -1, "writer"),
        ("run1", "tag", -1, "writer"),
    ]


def test_a_write_to_a_missing_experiment_from_a_task_names_the_experiment(store):
    inside = _in_task(store, "run1", "evaluate")
    with pytest.raises(NotFoundError, match="experiment_id=4242"):
        inside.log_metrics(4242, {"accuracy": 0.5})
    with pytest.raises(NotFoundError, match="experiment_id=4242"):
        inside.set_status(4242, "Running")
    assert _members(store, 4242) == []


def test_preprocessing_jobs_keep_the_winning_error_and_one_clock(store, monkeypatch):
    """The same two rules for preprocessing jobs: a later no-op Failed keeps the first error, and a worker
    clock behind the database's never puts end_time before start_time."""
    from airflow_mltrack.store import preprocessing as preprocessing_module

    raw = store.register_dataset(PROJECT, "raw", "Tabular")
    job = store.record_preprocessing_job(PROJECT, "clean", raw, status="Running")
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    monkeypatch.setattr(preprocessing_module, "utcnow", lambda: behind)
    store.set_preprocessing_status(job, "Failed", error="schema mismatch in column age")
    store.set_preprocessing_status(job, "Failed", error="DAG run ended (failed)")
    row = store.get_preprocessing_job(job)
    assert (row["status"], row["error"]) == ("Failed", "schema mismatch in column age")
    assert row["end_time"] >= row["start_time"]


def test_failed_and_cancelled_experiments_do_not_rank(store):
    """A skipped task's experiment ends Cancelled; what it logged before the skip must not rank."""
    model = store.register_model(PROJECT, "clf", "sklearn")
    dataset = store.register_dataset(PROJECT, "events", "Tabular")
    ids = {}
    for name, status, accuracy in (
        ("done", "Completed", 0.8),
        ("skipped", "Cancelled", 0.99),
        ("crashed", "Failed", 0.95),
        ("training", "Running", 0.7),
    ):
        ids[name] = store.create_experiment(PROJECT, name, model, dataset)
        store.log_metrics(ids[name], {"accuracy": accuracy})
        if status != "Running":
            store.set_status(ids[name], "Running")
        store.set_status(ids[name], status)
    board = store.leaderboard(PROJECT, "accuracy")
    assert [row["name"] for row in board] == ["done", "training"]
    every = store.leaderboard(PROJECT, "accuracy", statuses=("Completed", "Cancelled", "Failed", "Running"))
    assert [row["name"] for row in every] == ["skipped", "crashed", "done", "training"]
    with pytest.raises(MLTrackError, match="statuses='Done'"):
        store.leaderboard(PROJECT, "accuracy", statuses=("Done",))
