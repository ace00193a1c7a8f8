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
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.sdk.arguments import read_literals, template_paths
from airflow_mltrack.vocabulary import DEFAULT_CONN_ID

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
    #: The operators set ``mltrack_experiment_id`` themselves: the extra link never pulls it from XCom.
    mltrack_link_from_xcom = False

    def __init__(self, *, mltrack_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
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
