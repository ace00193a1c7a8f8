"""What every airflow-mltrack operator shares: the connection, the store, the Airflow link, input coercion.

Operators are thin: they turn rendered template values into the types the store expects, call one
:class:`~airflow_mltrack.store.TrackingStore` method and return (XCom) the id it created or found. Every
refusal is an :class:`~airflow_mltrack.MLTrackError` naming the field and the value, raised before
anything is written.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import string
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mltrack.errors import MLTrackError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mltrack.hooks.mltrack import MLTrackHook
    from airflow_mltrack.store import TrackingStore

# What a template renders when the value it pulled does not exist (an XCom that was never pushed, ...).
_EMPTY_RENDERINGS = frozenset({"", "none", "null"})


class MLTrackBaseOperator(BaseOperator):
    """Base of the airflow-mltrack operators.

    :param mltrack_conn_id: the Airflow connection of the tracking store (see
        :class:`~airflow_mltrack.hooks.mltrack.MLTrackHook`); without one, the embedded SQLite file
        ``$AIRFLOW_HOME/mltrack.db`` is used.
    """

    ui_color = "#e8f0fe"
    ui_fgcolor = "#1a3a6b"
    #: dict/list arguments whose templated entries are read back as Python literals once rendered
    #: (``{"C": "{{ params.C }}"}`` gives ``{"C": 0.5}``, as ``render_template_as_native_obj=True`` does).
    literal_fields: Sequence[str] = ()

    def __init__(self, *, mltrack_conn_id: str = "mltrack_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mltrack_conn_id = mltrack_conn_id

    def remember_templates(self) -> None:
        """Note where the ``literal_fields`` hold templates (call at the end of ``__init__``)."""
        self._template_paths = {f: template_paths(getattr(self, f, None)) for f in self.literal_fields}

    def native(self, field: str) -> Any:
        """The rendered value of ``field`` with its templated entries read as Python literals."""
        paths = getattr(self, "_template_paths", {}).get(field)
        value = getattr(self, field)
        return read_literals(value, paths) if paths else value

    # -- store access -------------------------------------------------------------------------------
    @cached_property
    def hook(self) -> MLTrackHook:
        from airflow_mltrack.hooks.mltrack import MLTrackHook

        return MLTrackHook(mltrack_conn_id=self.mltrack_conn_id)

    @property
    def store(self) -> TrackingStore:
        return self.hook.get_store()

    # -- the task instance this runs as ---------------------------------------------------------------
    @staticmethod
    def airflow_link(context: Context) -> dict[str, Any]:
        """``dag_id, run_id, task_id, map_index, try_number`` of the running task instance.

        The store is idempotent on this link: a retried or cleared task instance finds the rows it wrote
        before instead of writing new ones.
        """
        ti = context["ti"]
        map_index = getattr(ti, "map_index", None)
        return {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": -1 if map_index is None else int(map_index),
            "try_number": getattr(ti, "try_number", None),
        }


# -- values known when the DAG is parsed -------------------------------------------------------------------
def is_template(value: Any) -> bool:
    """A string Jinja will render (it holds ``{{`` or ``{%``)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def is_dynamic(value: Any) -> bool:
    """True when ``value`` is known only at run time: a template, an XComArg (``task.output``, a mapped
    argument), or a dict/list/tuple holding one."""
    from airflow.sdk.definitions._internal.mixins import ResolveMixin

    if is_template(value) or isinstance(value, ResolveMixin):
        return True
    if isinstance(value, Mapping):
        return any(is_dynamic(k) or is_dynamic(item) for k, item in value.items())
    if isinstance(value, list | tuple | set):
        return any(is_dynamic(item) for item in value)
    return False


def check_static(field: str, value: Any, check: Callable[[str, Any], Any]) -> None:
    """Run ``check(field, value)`` now (when the DAG is parsed) unless ``value`` is None or dynamic: a bad
    literal argument is then an import error naming the field, not a task failure at run time."""
    if value is not None and not is_dynamic(value):
        check(field, value)


def template_paths(value: Any, path: tuple[Any, ...] = ()) -> frozenset[tuple[Any, ...]]:
    """Where, inside a dict or list, ``value`` holds template strings (the value itself excluded)."""
    if path and is_template(value):
        return frozenset({path})
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return frozenset()
    return frozenset().union(*(template_paths(item, (*path, key)) for key, item in items))


def read_literals(value: Any, paths: Collection[tuple[Any, ...]], path: tuple[Any, ...] = ()) -> Any:
    """``value`` with the strings at ``paths`` read as Python literals (``"0.5"`` -> 0.5, ``"[1, 2]"`` ->
    ``[1, 2]``); a string that is no literal (``"sgd"``) stays as it is."""
    if path in paths and isinstance(value, str):
        try:
            return ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return value
    if isinstance(value, Mapping):
        return {k: read_literals(item, paths, (*path, k)) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(read_literals(item, paths, (*path, i)) for i, item in enumerate(value))
    return value


def name_placeholders(field: str, name: str) -> list[str]:
    """The ``{placeholder}`` names of an experiment name format (``"sweep-{lr}"`` -> ``["lr"]``)."""
    try:
        parsed = list(string.Formatter().parse(name))
    except ValueError as exc:
        raise MLTrackError(field, name, f"is not a valid name format ({exc}); write {{ as {{{{") from None
    found = []
    for _, placeholder, _, _ in parsed:
        if placeholder is None:
            continue
        base = re.split(r"[.\[]", placeholder, maxsplit=1)[0]
        if not base.isidentifier():
            raise MLTrackError(field, name, "placeholders need a name, e.g. {map_index} or {lr}")
        found.append(base)
    return found


def check_name_format(field: str, name: Any, allowed: Collection[str]) -> None:
    """Every placeholder of ``name`` is one of ``allowed`` (checked when the DAG is parsed)."""
    if not isinstance(name, str):
        return
    for placeholder in name_placeholders(field, name):
        if placeholder not in allowed:
            raise MLTrackError(
                field, name, f"unknown placeholder {{{placeholder}}}; use {', '.join(sorted(allowed))}"
            )


def experiment_name(field: str, name: str, arguments: Mapping[str, Any], map_index: int | None) -> str:
    """``name`` with its placeholders filled from ``arguments`` and ``map_index`` (-1 when not mapped).

    A mapped task instance whose name has no placeholder gets ``-<map_index>`` appended, so the
    experiments of one mapped task are told apart (``sweep-lr-0``, ``sweep-lr-1``, ...).
    """
    index = -1 if map_index is None else int(map_index)
    if not name_placeholders(field, name):
        return f"{name}-{index}" if index >= 0 else name
    try:
        return name.format(**{**arguments, "map_index": index})
    except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
        raise MLTrackError(field, name, f"cannot be filled in ({type(exc).__name__}: {exc})") from None


# -- coercion of rendered template values ---------------------------------------------------------------
def coerce_id(field: str, value: Any, *, required: bool = True) -> int | None:
    """An id from an int or a rendered template such as ``"{{ ti.xcom_pull(task_ids='register') }}"``.

    ``"None"``/``""`` (what a template renders for an XCom that is missing) is refused with a hint.
    """
    if value is None:
        if required:
            raise MLTrackError(field, value, "is required")
        return None
    if isinstance(value, bool):
        raise MLTrackError(field, value, "must be an integer id, not a boolean")
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if type(value).__module__ == "numpy" and not isinstance(value, int):
        try:
            value = operator.index(value)  # numpy integers (not numpy bool: refused below)
        except TypeError:
            pass
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _EMPTY_RENDERINGS:
            if not required:
                return None
            raise MLTrackError(
                field, value, "rendered empty: did the upstream task return an id (check its XCom)?"
            )
        if not text.isdigit():
            raise MLTrackError(field, value, "must be an integer id")
        value = int(text)
    if not isinstance(value, int):
        raise MLTrackError(field, value, f"must be an integer id, not {type(value).__name__}")
    if value < 1:
        raise MLTrackError(field, value, "must be a positive integer id")
    return value


def coerce_number(field: str, value: Any) -> Any:
    """A number from a number or a rendered numeric string (``"10"``, ``"12.5"``); other values pass
    through unchanged for the store to judge."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise MLTrackError(field, value, "must be a number") from None
    return value


def coerce_structure(field: str, value: Any, *, kinds: tuple[type, ...] = (dict,)) -> Any:
    """A dict (or list) from itself, a JSON string, or a Python literal string.

    A template such as ``"{{ ti.xcom_pull(task_ids='t') }}"`` renders a dict as its Python ``repr``
    (single quotes) unless the DAG sets ``render_template_as_native_obj=True``; both forms are read here.
    ``None`` stays ``None``.
    """
    if value is None or isinstance(value, kinds):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _EMPTY_RENDERINGS:
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise MLTrackError(field, value, "is neither JSON nor a Python literal") from None
        if isinstance(parsed, kinds):
            return parsed
        value = parsed
    wanted = " or ".join(k.__name__ for k in kinds)
    raise MLTrackError(field, value, f"must be a {wanted}, not {type(value).__name__}")


def coerce_tags(field: str, value: Any) -> Any:
    """Tags as given, or a list parsed from a rendered ``"['a', 'b']"`` / JSON array string."""
    if isinstance(value, str) and value.strip().startswith("["):
        return coerce_structure(field, value, kinds=(list,))
    return value


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
