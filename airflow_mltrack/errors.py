"""The one exception type of airflow-mltrack."""

from __future__ import annotations

from typing import Any

_MAX_VALUE_REPR = 80


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."


class MLTrackError(ValueError):
    """Every refusal of airflow-mltrack: the message names the field and the value.

    ``field`` and ``value`` are kept as attributes so callers (operators, the API) can report them.
    """

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={_short(value)}: {reason}")


class SchemaOutOfDateError(MLTrackError):
    """The tracking database's revision is behind the installed package."""


class NotFoundError(MLTrackError):
    """An id or name that does not exist in the tracking store."""
