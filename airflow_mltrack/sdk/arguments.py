"""What ``@task.mltrack`` and the operators both do with their arguments when the DAG is parsed and when
the task runs: tell templates and XComArgs from literals, check literals early, read rendered templates
back as Python literals, fill in experiment name formats.

A module below ``operators/`` and ``decorators/`` so that neither imports the other (docs/architecture.md).
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Callable, Collection, Mapping
from typing import Any

from airflow_mltrack.errors import MLTrackError


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
