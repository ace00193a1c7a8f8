"""Which task instances an experiment's status depends on, read from the DAG, and how their states are
judged: the rules of docs/status.md that need no store (the status listener applies them).

The recorded side (the task instances that did write, table ``experiment_tasks``) is
:mod:`airflow_mltrack.store.membership`; this module adds the tasks of the DAG that will write: those naming
an experiment id, or reading it from the XCom of the task that created it. No Airflow import.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_mltrack.vocabulary import DEFAULT_CONN_ID, XCOM_EXPERIMENT_ID, XCOM_RETURN_VALUE, experiment_ref

log = logging.getLogger(__name__)

_PACKAGE = "airflow_mltrack"
_ID_ATTRS = ("experiment_id", "experiment_ids", XCOM_EXPERIMENT_ID, "experiment")
_ARG_ATTRS = ("op_args", "op_kwargs", "templates_dict")
_XCOM_PULL = re.compile(r"xcom_pull\(([^)]*)\)")
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")
_KEY_ARG = re.compile(r"""key\s*=\s*['"]([^'"]+)['"]""")


def task_state(value: Any) -> str | None:
    """A TaskInstanceState/DagRunState (or string) as a lower-case string."""
    if value is None:
        return None
    return str(getattr(value, "value", value)).lower()


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
    for attr in _ID_ATTRS:
        value = getattr(task, attr, partial.get(attr))
        if attr == "experiment" and not _is_mltrack_task(task):
            continue
        values = value if isinstance(value, list | tuple | set) else [value]
        for item in values:
            ref = experiment_ref(item)
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


# -- which tasks will write to an experiment -----------------------------------------------------------
def _values(task: Any, attrs: Iterable[str]) -> Iterator[Any]:
    partial = getattr(task, "partial_kwargs", None) or {}
    expand = getattr(getattr(task, "expand_input", None), "value", None) or {}
    for attr in attrs:
        for value in (getattr(task, attr, None), partial.get(attr), expand.get(attr)):
            if value is not None:
                yield value
    if isinstance(expand, dict):  # a mapped @task: its arguments are expanded, not op_kwargs
        yield from (value for key, value in expand.items() if key not in attrs)


def _id_bearing(creator: Any, key: str | None) -> bool:
    """Does the XCom ``key`` of the creating task hold an experiment id? ``mltrack_experiment_id`` always;
    the return value unless the creator is ``@task.mltrack`` (whose return value is the function's)."""
    if key == XCOM_EXPERIMENT_ID:
        return True
    if key not in (None, XCOM_RETURN_VALUE):
        return False
    return creator is None or not _is_decorated_mltrack(creator)


def _is_decorated_mltrack(task: Any) -> bool:
    names = (getattr(task, "custom_operator_name", None), getattr(task, "operator_name", None))
    return "@task.mltrack" in names or type(task).__name__ == "_MLTrackDecoratedOperator"


def _creator_refs(value: Any, dag: Any, depth: int = 0) -> set[str]:
    """Task ids whose experiment-id XCom ``value`` reads: XComArgs (``experiment.output``), templates
    (``{{ ti.xcom_pull(task_ids='create') }}``), inside lists and dicts."""
    if depth > 4 or value is None:
        return set()
    tasks = getattr(dag, "task_dict", None) or {}
    found: set[str] = set()
    references = getattr(value, "iter_references", None)
    if callable(references):
        try:
            for operator, key in references():
                task_id = getattr(operator, "task_id", None)
                if task_id and _id_bearing(tasks.get(task_id), key):
                    found.add(task_id)
        except Exception as exc:  # an XComArg form this version does not know
            log.debug("mltrack: XCom references of %r not read: %s", value, exc)
        return found
    if isinstance(value, str):
        for call in _XCOM_PULL.findall(value):
            key_match = _KEY_ARG.search(call)
            key = key_match.group(1) if key_match else None
            names = {name for name in _QUOTED.findall(call) if name != key}
            for task_id in names & set(tasks):
                if _id_bearing(tasks.get(task_id), key):
                    found.add(task_id)
        return found
    if isinstance(value, dict):
        for item in value.values():
            found |= _creator_refs(item, dag, depth + 1)
    elif isinstance(value, list | tuple | set):
        for item in value:
            found |= _creator_refs(item, dag, depth + 1)
    return found


def creator_refs(task: Any, dag: Any) -> set[str]:
    """Task ids of ``dag`` whose experiment id ``task`` reads from XCom (as defined, before rendering)."""
    if task is None:
        return set()
    found: set[str] = set()
    for value in _values(task, (*_ID_ATTRS, *_ARG_ATTRS)):
        found |= _creator_refs(value, dag)
    found.discard(getattr(task, "task_id", None))
    return found


def writer_task_ids(dag: Any, experiment_id: int, creator_task_id: str | None) -> set[str]:
    """Tasks of ``dag`` that will write to the experiment: they name its id, or read it from the XCom of
    its creating task (``creator_task_id``, in the same run)."""
    found: set[str] = set()
    for task_id, task in (getattr(dag, "task_dict", None) or {}).items():
        if experiment_id in named_experiments(task):
            found.add(task_id)
        elif creator_task_id is not None and creator_task_id in creator_refs(task, dag):
            found.add(task_id)
    return found


class Verdict:
    """The state of an experiment's tasks in a run: done, failed, or waiting/interrupted (named)."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.unfinished: list[str] = []

    @property
    def all_done(self) -> bool:
        return not self.failed and not self.unfinished


def judge(
    members: tuple[set[tuple[str, int]], set[str]],
    states: dict[tuple[str, int], tuple[str | None, bool]],
    *,
    skip: tuple[str, int] | None = None,
) -> Verdict:
    """Judge the member task instances from ``states`` ``{(task_id, map_index): (state, started)}``.

    Recorded members are matched by map index; a writer task of the DAG by every map index it has (none
    at all: not run yet). ``skip``: the task instance that just succeeded. A task skipped after it started
    (a DAG-run timeout) is unfinished; one skipped before (a branch not taken) is done.
    """
    verdict = Verdict()
    recorded, writers = members
    checks: list[tuple[str, str | None, bool]] = []
    for task_id, map_index in sorted(recorded):
        if (task_id, map_index) == skip:
            continue
        state, started = states.get((task_id, map_index), (None, False))
        label = task_id if map_index < 0 else f"{task_id}[{map_index}]"
        checks.append((label, state, started))
    for task_id in sorted(writers - {t for t, _ in recorded}):
        found = [(m, s) for (t, m), s in states.items() if t == task_id and (t, m) != skip]
        if not found and (skip is None or skip[0] != task_id):
            checks.append((task_id, None, False))
        for map_index, (state, started) in sorted(found):
            checks.append((task_id if map_index < 0 else f"{task_id}[{map_index}]", state, started))
    for label, state, started in checks:
        if state in ("failed",):
            verdict.failed.append(label)
        elif state in ("success", "removed") or (state == "skipped" and not started):
            continue
        else:
            verdict.unfinished.append(f"{label} ({state or 'not run'})")
    return verdict


def keyed_states(
    states: dict[str, Any], task_ids: Iterable[str]
) -> dict[tuple[str, int], tuple[str | None, bool]]:
    """``get_task_states`` keys (``task_id`` or ``f"{task_id}_{map_index}"``) as ``(task_id, map_index)``;
    whether a skipped one had started is unknown there (counted as not started)."""
    ids = set(task_ids)
    return {_split_key(key, ids): (task_state(state), False) for key, state in states.items()}


def failed_for_good(ti: Any) -> bool:
    """A failure with no tries left: the task instance's state is FAILED, not UP_FOR_RETRY.

    Without a state (unusual), decide from the tries: ``try_number <= max_tries`` means it will retry.
    """
    state = task_state(getattr(ti, "state", None))
    if state == "up_for_retry":
        return False
    if state == "failed":
        return True
    max_tries = getattr(ti, "max_tries", None)
    try_number = getattr(ti, "try_number", None)
    if isinstance(max_tries, int) and isinstance(try_number, int):
        return try_number > max_tries
    return True


def _split_key(key: str, task_ids: Iterable[str]) -> tuple[str, int]:
    """``get_task_states`` keys are ``task_id`` or ``f"{task_id}_{map_index}"``."""
    if key in task_ids:
        return key, -1
    head, _, tail = key.rpartition("_")
    if tail.isdigit() and head in task_ids:
        return head, int(tail)
    return key, -1
