"""Experiment status follows the tasks: an Airflow listener (registered by the MLTrack plugin).

Rules (``docs/status.md`` explains them):

* Tracked tasks of an experiment created in a DAG run: its creating task instance (the experiment row's
  dag_id/run_id/task_id/map_index), every task downstream of the creating task in that run, and any task
  that names the experiment (an ``experiment_id`` attribute, or ``@task.mltrack(experiment=<id>)``).
* Running when a tracked task starts (Pending -> Running; Failed -> Running only for a re-run, try > 1).
* Failed, with the error text, when a tracked task fails with no tries left (a try that will be retried
  leaves it Running; ``on_task_instance_failed`` fires for UP_FOR_RETRY too).
* Completed when a tracked task succeeds and every tracked task of the experiment in the run is success or
  skipped, read from the Execution API (``RuntimeTaskInstance.get_task_states``, never the ORM);
  ``on_dag_run_success`` completes what is still open (e.g. two last tasks finishing at the same moment).
* Cancelled when the DAG run ends failed (or is stopped) while the experiment is Pending or Running.

Every hook logs a warning and returns when the tracking store is unreachable; nothing here ever raises.
Importing this module is cheap (plugin load in every Airflow process): the store, the hook and SQLAlchemy
are imported on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

log = logging.getLogger(__name__)

hookimpl = HookimplMarker("airflow")  # the marker airflow.listeners.hookimpl is, without importing core

DEFAULT_CONN_ID = "mltrack_default"
OPEN = frozenset({"Pending", "Running"})
DONE_OK = frozenset({"success", "skipped", "removed"})
MAX_ERROR_LEN = 4000
_PACKAGE = "airflow_mltrack"


# ------------------------------------------------------------------------------------------- helpers
def _state(value: Any) -> str | None:
    """A TaskInstanceState/DagRunState (or string) as a lower-case string."""
    if value is None:
        return None
    return str(getattr(value, "value", value)).lower()


def _ref(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def named_experiments(task: Any) -> set[int]:
    """Experiment ids a task names: ``experiment_id`` / ``mltrack_experiment_id`` (int, digit string or a
    list of them) or the ``experiment`` of ``@task.mltrack`` when it is an id. Unrendered templates name
    nothing."""
    if task is None:
        return set()
    found: set[int] = set()
    partial = getattr(task, "partial_kwargs", None) or {}
    # experiment_id: operators' argument (rendered in the worker); mltrack_experiment_id: what the
    # operators and @task.mltrack set while executing (for the extra link).
    for attr in ("experiment_id", "experiment_ids", "mltrack_experiment_id", "experiment"):
        value = getattr(task, attr, partial.get(attr))
        if attr == "experiment" and not _is_mltrack_task(task):
            continue
        values = value if isinstance(value, list | tuple | set) else [value]
        for item in values:
            ref = _ref(item)
            if ref is not None:
                found.add(ref)
    return found


def _is_mltrack_task(task: Any) -> bool:
    module = getattr(task, "_task_module", None) or type(task).__module__
    return bool(module) and str(module).startswith(_PACKAGE)


def dag_uses_mltrack(dag: Any) -> bool:
    """True when a DAG has a task of this package or one that names an experiment (or when unknown)."""
    if dag is None:
        return True
    tasks = getattr(dag, "task_dict", None)
    if not tasks:
        return True
    return any(
        _is_mltrack_task(t) or hasattr(t, "experiment_id") or hasattr(t, "mltrack_conn_id")
        for t in tasks.values()
    )


def conn_ids(dag: Any, task: Any = None) -> list[str]:
    """Tracking connections used by a DAG's tasks (the task's own first); ``mltrack_default`` if none."""
    found: list[str] = []
    tasks = [task] if task is not None else []
    tasks += list((getattr(dag, "task_dict", None) or {}).values())
    for t in tasks:
        partial = getattr(t, "partial_kwargs", None) or {}
        conn_id = getattr(t, "mltrack_conn_id", None) or partial.get("mltrack_conn_id")
        if isinstance(conn_id, str) and conn_id and conn_id not in found:
            found.append(conn_id)
    return found or [DEFAULT_CONN_ID]


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

    def downstream_of(self, task_id: str) -> set[str]:
        """Task ids downstream of ``task_id`` (transitively) in this task's DAG; empty when unknown."""
        if self.dag is None:
            return set()
        try:
            return set(self.dag.get_task(task_id).get_flat_relative_ids(upstream=False))
        except Exception:  # the creating task is gone from the DAG
            return set()

    def tracked_task_ids(self, row: dict[str, Any]) -> set[str]:
        """Task ids that are tracked tasks of the experiment ``row`` in this run (as far as the DAG says)."""
        ids: set[str] = set()
        if row["dag_id"] == self.dag_id and row["run_id"] == self.run_id and row["task_id"]:
            ids.add(row["task_id"])
            ids |= self.downstream_of(row["task_id"])
        tasks = getattr(self.dag, "task_dict", None) or {}
        ids |= {tid for tid, t in tasks.items() if row["experiment_id"] in named_experiments(t)}
        ids.add(self.task_id)
        return ids

    def tracks(self, row: dict[str, Any], named: set[int]) -> bool:
        """Is this task instance a tracked task of the experiment ``row``?"""
        if row["experiment_id"] in named:
            return True
        if row["dag_id"] != self.dag_id or row["run_id"] != self.run_id:
            return False
        if row["task_id"] == self.task_id:
            creator_index = -1 if row["map_index"] is None else int(row["map_index"])
            return creator_index == self.map_index
        return self.task_id in self.downstream_of(row["task_id"])


def _tracked(store: TrackingStore, ti: _TI) -> list[dict[str, Any]]:
    from airflow_mltrack.store.status_queries import experiments_for_task_run

    named = named_experiments(ti.task)
    rows = experiments_for_task_run(store.engine, ti.dag_id, ti.run_id, named)
    return [row for row in rows if ti.tracks(row, named)]


def _all_tracked_done(ti: _TI, row: dict[str, Any]) -> bool:
    """Are all tracked tasks of ``row`` success/skipped in this run? Asked through the Execution API."""
    get_task_states = getattr(ti.ti, "get_task_states", None)
    if get_task_states is None or ti.dag is None:
        return False  # API server (a state set by hand): leave it to on_dag_run_success
    task_ids = ti.tracked_task_ids(row)
    states = get_task_states(dag_id=ti.dag_id, task_ids=sorted(task_ids), run_ids=[ti.run_id])
    run_states = (states or {}).get(ti.run_id, {})
    creator = row["task_id"] if row["dag_id"] == ti.dag_id and row["run_id"] == ti.run_id else None
    creator_index = -1 if row["map_index"] is None else int(row["map_index"])
    for key, state in run_states.items():
        task_id, map_index = _split_key(key, task_ids)
        if task_id == creator and creator_index >= 0 and map_index != creator_index:
            continue  # another map index of the creator: another experiment
        if task_id == ti.task_id and map_index == ti.map_index:
            continue  # this task instance: it just succeeded
        if _state(state) not in DONE_OK:
            log.debug("mltrack: experiment %s waits for %s (%s)", row["experiment_id"], key, state)
            return False
    return True


def _split_key(key: str, task_ids: Iterable[str]) -> tuple[str, int]:
    """``get_task_states`` keys are ``task_id`` or ``f"{task_id}_{map_index}"``."""
    if key in task_ids:
        return key, -1
    head, _, tail = key.rpartition("_")
    if tail.isdigit() and head in task_ids:
        return head, int(tail)
    return key, -1


def _error_text(ti: _TI, error: Any) -> str:
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}"
    else:
        text = str(error) if error else "failed"
    return f"task {ti.key} (try {ti.try_number}) failed: {text}"[:MAX_ERROR_LEN]


def failed_for_good(ti: Any) -> bool:
    """A failure with no tries left: the task instance's state is FAILED, not UP_FOR_RETRY.

    Without a state (unusual), decide from the tries: ``try_number <= max_tries`` means it will retry.
    """
    state = _state(getattr(ti, "state", None))
    if state == "up_for_retry":
        return False
    if state == "failed":
        return True
    max_tries = getattr(ti, "max_tries", None)
    try_number = getattr(ti, "try_number", None)
    if isinstance(max_tries, int) and isinstance(try_number, int):
        return try_number > max_tries
    return True


# ------------------------------------------------------------------------- the logic (also callbacks)
def task_started(task_instance: Any) -> None:
    """A task instance started: its Pending experiments go Running (Failed ones too on a re-run)."""
    try:
        ti = _TI(task_instance)
        if not dag_uses_mltrack(ti.dag):
            return
        for _conn_id, store in _stores(ti.dag, ti.task):
            for row in _tracked(store, ti):
                if row["status"] == "Pending" or (row["status"] == "Failed" and ti.try_number > 1):
                    _move(store, row["experiment_id"], "Running")
    except Exception as exc:
        _warn("task start not tracked", exc)


def task_succeeded(task_instance: Any) -> None:
    """A task instance succeeded: complete each of its experiments whose tracked tasks are all done."""
    try:
        ti = _TI(task_instance)
        if not dag_uses_mltrack(ti.dag):
            return
        for _conn_id, store in _stores(ti.dag, ti.task):
            for row in _tracked(store, ti):
                status = row["status"]
                if status not in OPEN:
                    continue
                if status == "Pending" and not _move(store, row["experiment_id"], "Running"):
                    continue
                if _all_tracked_done(ti, row):
                    _move(store, row["experiment_id"], "Completed")
    except Exception as exc:
        _warn("task success not tracked", exc)


def task_failed(task_instance: Any, error: Any = None, *, final: bool | None = None) -> None:
    """A task instance failed: with no tries left its open experiments go Failed with the error text."""
    try:
        ti = _TI(task_instance)
        if final is None:
            final = failed_for_good(task_instance)
        if not final:
            log.info("mltrack: %s will be retried; its experiments stay Running", ti.key)
            return
        if not dag_uses_mltrack(ti.dag):
            return
        text = _error_text(ti, error)
        for _conn_id, store in _stores(ti.dag, ti.task):
            for row in _tracked(store, ti):
                if row["status"] == "Pending":
                    _move(store, row["experiment_id"], "Running")
                if row["status"] in OPEN:
                    _move(store, row["experiment_id"], "Failed", error=text)
    except Exception as exc:
        _warn("task failure not tracked", exc)


def dag_run_finished(dag_id: str, run_id: str, success: bool, dag: Any = None) -> None:
    """A DAG run ended: its still-open experiments go Completed (success) or Cancelled (failed/stopped)."""
    try:
        if not dag_uses_mltrack(dag):
            return
        from airflow_mltrack.store.status_queries import open_experiments_of_run

        for _conn_id, store in _stores(dag):
            for row in open_experiments_of_run(store.engine, dag_id, run_id):
                if success:
                    if row["status"] == "Pending" and not _move(store, row["experiment_id"], "Running"):
                        continue
                    _move(store, row["experiment_id"], "Completed")
                else:
                    _move(store, row["experiment_id"], "Cancelled")
    except Exception as exc:
        _warn(f"end of DAG run {dag_id}/{run_id} not tracked", exc)


def _dag_of_run(dag_run: Any) -> Any:
    dag = getattr(dag_run, "dag", None)
    return dag


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
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    dag_run_finished(dag_run.dag_id, dag_run.run_id, success=True, dag=_dag_of_run(dag_run))


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    dag_run_finished(dag_run.dag_id, dag_run.run_id, success=False, dag=_dag_of_run(dag_run))
