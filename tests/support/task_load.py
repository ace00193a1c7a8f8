"""Many tracked tasks at once, as worker-like processes: what one ``@task.mltrack`` task does to the
tracking database, through our hook, store and ``Tracker`` (the decorator's buffer), without a scheduler.

Each process resolves the Airflow connection through :class:`~airflow_mltrack.hooks.mltrack.MLTrackHook`
(so the ``pool_mode`` extra is read as in a task), sizes its engine as a task process does
(``get_engine(url, task_process=True)``, what the hook asks for in a task runner), registers the placeholder
model and dataset and creates its experiment (all tasks in one project, as mapped tasks do), moves it to
Running, tags it, logs ``points`` metric points through a ``Tracker`` (flushes of 1000 rows: binary COPY),
optionally rewrites steps already stored (the COPY staging path and the small-batch upsert), moves it to
Completed, and then closes its connection as the status listener's ``before_stopping`` does
(``release_task_engines``). The processes are forked from the caller (imports done once) and start their
writes together.

No pytest imports here: ``benchmarks/pgbouncer_bench.py`` uses this module too.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAMES = 10  # metric names per task: points / NAMES steps each
REWRITE_COPY = 600  # rows of stored steps rewritten through COPY + staging (>= COPY_THRESHOLD)
REWRITE_UPSERT = 100  # rows of stored steps rewritten through the small-batch upsert


@dataclass
class TaskResult:
    index: int
    pid: int
    experiment_id: int | None = None
    rows: int = 0
    seconds: float = 0.0
    error: str | None = None
    checkouts_max: int = 0  # most connections this process had checked out at once
    open_after: int = 0  # pooled connections left open after the task's end (checked in)
    began_at: float = 0.0  # time.time() at the common start line, and at the task's end
    ended_at: float = 0.0


@dataclass
class LoadResult:
    tasks: list[TaskResult] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def errors(self) -> list[str]:
        return [f"task {t.index}: {t.error}" for t in self.tasks if t.error]

    @property
    def span_seconds(self) -> float:
        """From the first task's start to the last task's end."""
        done = [t for t in self.tasks if t.ended_at]
        return max(t.ended_at for t in done) - min(t.began_at for t in done) if done else 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tasks)


def point_value(index: int, i: int, rewritten: bool = False) -> float:
    """The value task ``index`` logs as its ``i``-th point (``rewritten``: the second write of it)."""
    return index * 1_000_000 + i + (0.5 if rewritten else 0.0)


def _task(
    conn_id: str, project: str, index: int, points: int, rewrite: bool, ready: Any, start: Any
) -> TaskResult:
    from sqlalchemy import event
    from sqlalchemy.pool import QueuePool

    from airflow_mltrack.decorators.tracker import Tracker
    from airflow_mltrack.hooks.mltrack import MLTrackHook
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.engine import get_engine, release_task_engines
    from airflow_mltrack.store.payloads import MetricRow, dedupe

    result = TaskResult(index=index, pid=os.getpid())
    hook = MLTrackHook(mltrack_conn_id=conn_id)
    engine = get_engine(hook.get_uri(), task_process=True)
    out = [0]

    def checkout(*_: Any) -> None:
        out[0] += 1
        result.checkouts_max = max(result.checkouts_max, out[0])

    def checkin(*_: Any) -> None:
        out[0] -= 1

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    with ready.get_lock():
        ready.value += 1
    start.wait()
    result.began_at = time.time()
    started = time.perf_counter()
    try:
        store: TrackingStore = hook.get_store()
        dataset_id = store.register_dataset(project, "data", "Tabular")
        model_id = store.register_model(project, "model", "none")
        experiment_id = store.create_experiment(project, f"task-{index}", model_id, dataset_id)
        result.experiment_id = experiment_id
        store.set_status(experiment_id, "Running")
        store.set_tags("experiment", experiment_id, {"worker": str(index), "pool": "load"})
        tracker = Tracker(store, experiment_id, flush_every=1000, flush_seconds=None)
        for i in range(points):
            tracker.log_metric(
                f"m{i % NAMES}", point_value(index, i), step=i // NAMES, evaluation_set="train"
            )
        tracker.flush()
        result.rows = tracker.rows_written
        if rewrite:
            for lo, hi in ((0, REWRITE_COPY), (REWRITE_COPY, REWRITE_COPY + REWRITE_UPSERT)):
                batch = [
                    MetricRow(f"m{i % NAMES}", point_value(index, i, rewritten=True), i // NAMES, "train")
                    for i in range(lo, min(hi, points))
                ]
                store.log_metric_rows(experiment_id, dedupe(batch))  # key-sorted, as the Tracker sends
        store.set_status(experiment_id, "Completed")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails on any
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"[:3000]
    result.seconds = time.perf_counter() - started
    result.ended_at = time.time()
    release_task_engines()
    result.open_after = engine.pool.checkedin() if isinstance(engine.pool, QueuePool) else 0  # NullPool: none
    return result


def _child(args: tuple, ready: Any, start: Any, done: Any, queue: Any) -> None:
    conn_id, project, index, points, rewrite = args
    try:
        result = _task(conn_id, project, index, points, rewrite, ready, start)
    except BaseException as exc:  # noqa: BLE001 - the parent must always hear back
        result = TaskResult(index=index, pid=os.getpid(), error=f"{type(exc).__name__}: {exc}")
    queue.put(result)
    done.wait(timeout=300)  # alive (its task finished) until the parent has looked


def run_tasks(
    conn_id: str,
    tasks: int,
    points: int,
    *,
    project: str = "load",
    rewrite: bool = False,
    timeout: float = 900,
    after: Callable[[LoadResult], None] | None = None,
) -> LoadResult:
    """Fork ``tasks`` processes that each act as one tracked task (module docstring) on connection
    ``conn_id`` (an ``AIRFLOW_CONN_<ID>`` variable set before the call), start them together and wait.

    ``after(result)`` is called once every task has finished while their processes are still alive (to
    look for connections a finished task left open); then the processes exit."""
    from airflow_mltrack.decorators.tracker import Tracker  # noqa: F401 - imported once, before the forks
    from airflow_mltrack.hooks.mltrack import MLTrackHook

    MLTrackHook(mltrack_conn_id=conn_id).get_uri()  # the connection lookup's lazy imports, also once
    ctx = multiprocessing.get_context("fork")
    ready, start, done, queue = ctx.Value("i", 0), ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_child,
            args=((conn_id, project, i, points, rewrite), ready, start, done, queue),
            daemon=True,
        )
        for i in range(tasks)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + timeout
    while ready.value < tasks and time.monotonic() < deadline and all(p.is_alive() for p in procs):
        time.sleep(0.05)  # every child at the start line (its connection resolved) before any writes
    began = time.perf_counter()
    start.set()
    out = LoadResult()
    deadline = time.monotonic() + timeout
    try:
        while len(out.tasks) < tasks:
            out.tasks.append(queue.get(timeout=max(1.0, deadline - time.monotonic())))
        out.wall_seconds = time.perf_counter() - began
        out.tasks.sort(key=lambda t: t.index)
        if after is not None:
            after(out)
    finally:
        done.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return out
