"""Experiment status follows the tasks: an Airflow listener (registered by the MLTrack plugin).

Rules (``docs/status.md`` explains them):

* An experiment's tasks are task instances: the one that created it and every one that wrote to it
  (recorded by the store in ``experiment_tasks``), plus the tasks of the DAG that will write to it: those
  naming its id, or reading it from its creating task's XCom (``experiment.output``, a template pulling it).
  Nothing else: an unrelated task of the same run (downstream or not) never moves it.
* An experiment belongs to the DAG run of its creating task instance; only that run ends it. A run that
  writes into an experiment created elsewhere moves it Pending -> Running and leaves it Running.
* Running when one of its tasks starts (Pending -> Running; Failed -> Running only for a re-run, try > 1).
* Failed, with the error text, when one of its tasks fails with no tries left (a try that will be retried
  leaves it Running; ``on_task_instance_failed`` fires for UP_FOR_RETRY too).
* Cancelled, with the reason, when one of its tasks skips itself (``AirflowSkipException``).
* Completed when one of its tasks succeeds and all of its tasks in the run are success or skipped, read
  from the Execution API (``RuntimeTaskInstance.get_task_states``, never the ORM in a worker).
* At the end of the DAG run, each experiment of the run still open is decided from its tasks only: all
  done -> Completed; one failed -> Failed; otherwise (not run, upstream failed, stopped by a timeout)
  Cancelled with a reason naming them.

Which task instances count, and how their states are judged, is :mod:`airflow_mltrack.listeners.membership`
(no store there); this module reads and moves experiments. Every hook logs a warning and returns when the
tracking store is unreachable; nothing here ever raises.
Importing this module is cheap (plugin load in every Airflow process): the store, the hook and SQLAlchemy
are imported on first use.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker

from airflow_mltrack.listeners.membership import (
    Verdict,
    conn_ids,
    creator_refs,
    dag_uses_mltrack,
    failed_for_good,
    judge,
    keyed_states,
    named_experiments,
    task_state,
    writer_task_ids,
)

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

log = logging.getLogger(__name__)

hookimpl = HookimplMarker("airflow")  # the marker airflow.listeners.hookimpl is, without importing core

OPEN = frozenset({"Pending", "Running"})
MAX_ERROR_LEN = 4000


# -- the stores --------------------------------------------------------------------------------------
def _store(conn_id: str) -> TrackingStore | None:
    """The store behind ``conn_id``; None when it is the embedded default and was never created."""
    from airflow_mltrack.hooks.mltrack import MLTrackHook, embedded_db_path

    hook = MLTrackHook(mltrack_conn_id=conn_id)
    if hook.is_embedded and not os.path.exists(embedded_db_path()):
        return None  # nothing was ever tracked here: do not create a database from a listener
    return hook.get_store()


def _stores(dag: Any, task: Any = None) -> Iterator[tuple[str, TrackingStore]]:
    for conn_id in conn_ids(dag, task):
        try:
            store = _store(conn_id)
        except Exception as exc:
            _warn(f"cannot open the tracking store of connection {conn_id!r}", exc)
            continue
        if store is not None:
            yield conn_id, store


def _warn(what: str, exc: BaseException) -> None:
    text = str(exc).strip().splitlines()
    log.warning(
        "mltrack: %s (%s: %s); experiment status not updated",
        what,
        type(exc).__name__,
        text[0][:300] if text else "",
    )


def _move(store: TrackingStore, experiment_id: int, status: str, error: str | None = None) -> bool:
    """set_status that logs instead of raising (a refused move, e.g. Completed -> Failed, is info)."""
    from airflow_mltrack.errors import MLTrackError, SchemaOutOfDateError

    try:
        previous = store.set_status(experiment_id, status, error=error)
    except SchemaOutOfDateError as exc:
        _warn(f"cannot set experiment {experiment_id} {status}", exc)
        return False
    except MLTrackError as exc:
        log.info("mltrack: experiment %s not moved to %s: %s", experiment_id, status, exc)
        return False
    except Exception as exc:
        _warn(f"cannot set experiment {experiment_id} {status}", exc)
        return False
    if previous != status:
        log.info("mltrack: experiment %s %s -> %s", experiment_id, previous, status)
    return True


class _TI:
    """The fields the rules need, from a RuntimeTaskInstance (worker) or a TaskInstance (API server)."""

    def __init__(self, ti: Any) -> None:
        self.ti = ti
        self.dag_id: str = ti.dag_id
        self.run_id: str = ti.run_id
        self.task_id: str = ti.task_id
        map_index = getattr(ti, "map_index", -1)
        self.map_index: int = -1 if map_index is None else int(map_index)
        self.try_number: int = int(getattr(ti, "try_number", 0) or 0)
        self.task = getattr(ti, "task", None)
        self.dag = getattr(self.task, "dag", None) if self.task is not None else None

    @property
    def key(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"

    def definitions(self) -> list[Any]:
        """This task as rendered (the worker's copy) and as the DAG defines it (XComArgs, templates)."""
        tasks = [self.task] if self.task is not None else []
        defined = (getattr(self.dag, "task_dict", None) or {}).get(self.task_id)
        if defined is not None and defined is not self.task:
            tasks.append(defined)
        return tasks


# ------------------------------------------------------------------------------------ membership reads
def _belongs(store: TrackingStore, ti: _TI) -> list[dict[str, Any]]:
    """The experiments this task instance belongs to (see the module docstring)."""
    from airflow_mltrack.store.reads.status import experiments_of_task

    named: set[int] = set()
    creators: set[str] = set()
    for task in ti.definitions():
        named |= named_experiments(task)
        creators |= creator_refs(task, ti.dag)
    return experiments_of_task(store, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, named, creators)


def _owned(row: dict[str, Any]) -> bool:
    """Was the experiment created in this DAG run (so this run ends it)?"""
    return row.get("creator_task_id") is not None


def _members(store: TrackingStore, dag: Any, dag_id: str, run_id: str, rows: list[dict[str, Any]]) -> dict[int, tuple[set[tuple[str, int]], set[str]]]:  # fmt: skip
    """``{experiment_id: (recorded task instances, writer task ids of the DAG)}`` in this run."""
    from airflow_mltrack.store.reads.status import members_in_run

    recorded = members_in_run(store, [r["experiment_id"] for r in rows], dag_id, run_id)
    return {
        r["experiment_id"]: (
            recorded.get(r["experiment_id"], set()),
            writer_task_ids(dag, r["experiment_id"], r["creator_task_id"]) if dag is not None else set(),
        )
        for r in rows
    }


def _worker_states(ti: _TI, task_ids: set[str]) -> dict[tuple[str, int], tuple[str | None, bool]] | None:
    """States of ``task_ids`` in this run through the Execution API; None where it is not available."""
    get_task_states = getattr(ti.ti, "get_task_states", None)
    if get_task_states is None or not task_ids:
        return None if get_task_states is None else {}
    states = get_task_states(dag_id=ti.dag_id, task_ids=sorted(task_ids), run_ids=[ti.run_id])
    return keyed_states((states or {}).get(ti.run_id, {}), task_ids)


def _error_text(ti: _TI, error: Any) -> str:
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}"
    else:
        text = str(error) if error else "failed"
    return f"task {ti.key} (try {ti.try_number}) failed: {text}"[:MAX_ERROR_LEN]


# ------------------------------------------------------------------------- the logic (also callbacks)
def task_started(task_instance: Any) -> None:
    """A task instance started: its Pending experiments go Running (Failed ones of this run too on a
    re-run)."""
    try:
        ti = _TI(task_instance)
        if not dag_uses_mltrack(ti.dag):
            return
        for _conn_id, store in _stores(ti.dag, ti.task):
            for row in _belongs(store, ti):
                rerun = row["status"] == "Failed" and ti.try_number > 1 and _owned(row)
                if row["status"] == "Pending" or rerun:
                    _move(store, row["experiment_id"], "Running")
    except Exception as exc:
        _warn("task start not tracked", exc)


def task_succeeded(task_instance: Any) -> None:
    """A task instance succeeded: complete each experiment of this run it belongs to whose tasks in the
    run are all done."""
    try:
        ti = _TI(task_instance)
        if not dag_uses_mltrack(ti.dag):
            return
        for _conn_id, store in _stores(ti.dag, ti.task):
            rows = [r for r in _belongs(store, ti) if r["status"] in OPEN]
            for row in rows:
                if row["status"] == "Pending":
                    _move(store, row["experiment_id"], "Running")
            rows = [r for r in rows if _owned(r)]
            if not rows:
                continue
            members = _members(store, ti.dag, ti.dag_id, ti.run_id, rows)
            task_ids = {
                t for recorded, writers in members.values() for t in writers | {t for t, _ in recorded}
            }
            states = _worker_states(ti, task_ids)
            if states is None:
                continue  # API server (a state set by hand): the DAG run's end decides
            for row in rows:
                verdict = judge(members[row["experiment_id"]], states, skip=(ti.task_id, ti.map_index))
                if verdict.all_done:
                    _move(store, row["experiment_id"], "Completed")
                else:
                    log.debug("mltrack: experiment %s waits for %s", row["experiment_id"], verdict.unfinished)
    except Exception as exc:
        _warn("task success not tracked", exc)


def task_failed(task_instance: Any, error: Any = None, *, final: bool | None = None) -> None:
    """A task instance failed: with no tries left, the open experiments of this run it belongs to go
    Failed with the error text."""
    try:
        ti = _TI(task_instance)
        if final is None:
            final = failed_for_good(task_instance)
        if not final:
            log.info("mltrack: %s will be retried; its experiments stay Running", ti.key)
            return
        if not dag_uses_mltrack(ti.dag):
            return
        _end_owned(ti, "Failed", _error_text(ti, error))
    except Exception as exc:
        _warn("task failure not tracked", exc)


def task_skipped(task_instance: Any, reason: Any = None) -> None:
    """A task instance skipped itself (``AirflowSkipException``): the open experiments of this run it
    belongs to go Cancelled, the reason naming the task (and the skip's message when the task left it in
    ``mltrack_skip_reason``, as ``@task.mltrack`` does)."""
    try:
        ti = _TI(task_instance)
        if not dag_uses_mltrack(ti.dag):
            return
        if reason is None:
            reason = getattr(ti.task, "mltrack_skip_reason", None)
        text = f"task {ti.key} (try {ti.try_number}) skipped"
        _end_owned(ti, "Cancelled", f"{text}: {reason}"[:MAX_ERROR_LEN] if reason else text)
    except Exception as exc:
        _warn("task skip not tracked", exc)


def _end_owned(ti: _TI, status: str, text: str) -> None:
    for _conn_id, store in _stores(ti.dag, ti.task):
        for row in _belongs(store, ti):
            if row["status"] not in OPEN or not _owned(row):
                continue
            if row["status"] == "Pending":
                _move(store, row["experiment_id"], "Running")
            _move(store, row["experiment_id"], status, error=text)


def dag_run_finished(
    dag_id: str,
    run_id: str,
    success: bool,
    dag: Any = None,
    *,
    dag_run: Any = None,
    msg: str | None = None,
) -> None:
    """A DAG run ended: each experiment of the run still open is decided from its own tasks (all done:
    Completed; one failed: Failed; else Cancelled naming the tasks that did not finish). Without the
    task states (unusual), the run's outcome decides: Completed on success, Cancelled on failure."""
    try:
        if not dag_uses_mltrack(dag):
            return
        from airflow_mltrack.store.reads.status import open_experiments_of_run

        for _conn_id, store in _stores(dag):
            rows = open_experiments_of_run(store, dag_id, run_id)
            if not rows:
                continue
            members = _members(store, dag, dag_id, run_id, rows)
            states = _run_states(dag_id, run_id, dag_run, dag)
            outcome = msg or ("succeeded" if success else "failed")
            for row in rows:
                experiment_id = row["experiment_id"]
                if states is None:
                    verdict = Verdict()
                    if not success:
                        verdict.unfinished.append("(task states unknown)")
                else:
                    verdict = judge(members[experiment_id], states)
                if row["status"] == "Pending" and not _move(store, experiment_id, "Running"):
                    continue
                if verdict.all_done:
                    _move(store, experiment_id, "Completed")
                elif verdict.failed:
                    text = f"DAG run {run_id} ended ({outcome}); failed: {', '.join(verdict.failed)}"
                    _move(store, experiment_id, "Failed", error=text[:MAX_ERROR_LEN])
                else:
                    text = (
                        f"DAG run {run_id} ended ({outcome}) before {', '.join(verdict.unfinished)} finished"
                    )
                    _move(store, experiment_id, "Cancelled", error=text[:MAX_ERROR_LEN])
    except Exception as exc:
        _warn(f"end of DAG run {dag_id}/{run_id} not tracked", exc)


def _run_states(
    dag_id: str, run_id: str, dag_run: Any, dag: Any
) -> dict[tuple[str, int], tuple[str | None, bool]] | None:
    """Task states of the run: from the DagRun (scheduler / API server, where the ORM is allowed), else
    through the Execution API (a DAG callback in the DAG processor); None when neither answers."""
    get_task_instances = getattr(dag_run, "get_task_instances", None)
    session = _session_of(dag_run)
    if callable(get_task_instances) and session is not None:
        try:  # in the caller's session: a session of our own would detach the scheduler's objects
            return {
                (t.task_id, -1 if t.map_index is None else int(t.map_index)): (
                    task_state(t.state),
                    t.start_date is not None,
                )
                for t in get_task_instances(session=session)
            }
        except Exception as exc:
            log.debug("mltrack: task states of %s/%s not read from the DagRun: %s", dag_id, run_id, exc)
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id])
    except Exception as exc:
        log.debug("mltrack: task states of %s/%s not available: %s", dag_id, run_id, exc)
        return None
    run_states = (states or {}).get(run_id, {})
    return keyed_states(run_states, set(getattr(dag, "task_dict", None) or {}))


def _session_of(dag_run: Any) -> Any:
    """The ORM session holding ``dag_run`` (scheduler, API server, ``dag.test()``), else None."""
    if dag_run is None:
        return None
    try:
        from sqlalchemy.orm import object_session

        return object_session(dag_run)
    except Exception:  # not an ORM object (a Task SDK DagRun)
        return None


def _dag_of_run(dag_run: Any) -> Any:
    return getattr(dag_run, "dag", None)


# ---------------------------------------------------------------------------------- listener hooks
@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    task_started(task_instance)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    task_succeeded(task_instance)


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    task_failed(task_instance, error)


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    task_skipped(task_instance)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    dag_run_finished(
        dag_run.dag_id, dag_run.run_id, success=True, dag=_dag_of_run(dag_run), dag_run=dag_run, msg=msg
    )


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    dag_run_finished(
        dag_run.dag_id, dag_run.run_id, success=False, dag=_dag_of_run(dag_run), dag_run=dag_run, msg=msg
    )


@hookimpl
def before_stopping(component: Any) -> None:
    """A task runner is done (after the task and the hooks above): close the tracking-store connection its
    task kept (``store.engine.release_task_engines``), so a finished task leaves none open."""
    engine = sys.modules.get("airflow_mltrack.store.engine")  # never imported: nothing to close
    if engine is None or type(component).__name__ != "TaskRunnerMarker":
        return
    try:
        engine.release_task_engines()
    except Exception as exc:
        log.warning(
            "mltrack: cannot close the tracking store's connections (%s: %s)", type(exc).__name__, exc
        )
