"""Input checks shared by every store method: each failure is an MLTrackError naming field and value."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_mltrack.errors import MLTrackError

_MISSING = object()


def name(field: str, value: Any, max_len: int, *, required: bool = True) -> str | None:
    """A non-empty, stripped string of at most ``max_len`` characters."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise MLTrackError(field, value, f"must be a string, not {type(value).__name__}")
    stripped = value.strip()
    if not stripped:
        raise MLTrackError(field, value, "must not be empty")
    if len(stripped) > max_len:
        raise MLTrackError(field, value, f"is {len(stripped)} characters long; at most {max_len} allowed")
    if "\x00" in stripped:
        raise MLTrackError(field, value, "must not contain NUL characters")
    return stripped


def optional_text(field: str, value: Any, max_len: int | None = None) -> str | None:
    """None, or a string (not stripped to empty) of at most ``max_len`` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MLTrackError(field, value, f"must be a string, not {type(value).__name__}")
    if max_len is not None and len(value) > max_len:
        raise MLTrackError(field, value, f"is {len(value)} characters long; at most {max_len} allowed")
    if "\x00" in value:
        raise MLTrackError(field, value, "must not contain NUL characters")
    return value


def choice(field: str, value: Any, allowed: Iterable[str]) -> str:
    """One of ``allowed`` (case-insensitive match, returned in its canonical spelling)."""
    allowed = tuple(allowed)
    if isinstance(value, str):
        for option in allowed:
            if option.lower() == value.strip().lower():
                return option
    raise MLTrackError(field, value, f"must be one of {', '.join(allowed)}")


def integer(field: str, value: Any, *, minimum: int | None = 0, required: bool = True) -> int | None:
    """An int (or a string of digits, as templates render them), at least ``minimum``."""
    if value is None:
        if required:
            raise MLTrackError(field, value, "is required")
        return None
    if isinstance(value, bool):
        raise MLTrackError(field, value, "must be an integer, not a boolean")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise MLTrackError(field, value, "must be a whole, finite number")
        value = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise MLTrackError(field, value, "must be an integer")
        value = int(text)
    elif not isinstance(value, int):
        raise MLTrackError(field, value, f"must be an integer, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise MLTrackError(field, value, f"must be >= {minimum}")
    if value > 2**63 - 1:
        raise MLTrackError(field, value, "is too large")
    return value


def entity_id(field: str, value: Any) -> int:
    """A positive integer id; strings such as rendered XCom templates are coerced."""
    result = integer(field, value, minimum=1)
    assert result is not None
    if result > 2**31 - 1:
        raise MLTrackError(field, value, "is not a valid id")
    return result


def number(field: str, value: Any, *, finite: bool = False) -> float:
    """A real number (not bool, not str); NaN and inf only when ``finite`` is False."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np  # numpy scalars are common in ML code

            if isinstance(value, np.generic) and np.issubdtype(type(value), np.number):
                value = value.item()
            else:
                raise TypeError
        except (ImportError, TypeError):
            raise MLTrackError(field, value, f"must be a number, not {type(value).__name__}") from None
        if isinstance(value, bool | complex):
            raise MLTrackError(field, value, "must be a real number")
    try:
        value = float(value)
    except OverflowError:
        raise MLTrackError(field, value, "is too large for a double-precision number") from None
    if finite and not math.isfinite(value):
        raise MLTrackError(field, value, "must be a finite number")
    return value


def json_object(field: str, value: Any) -> dict[str, Any] | None:
    """None, a dict, or a JSON string of an object; values must be JSON-serializable."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise MLTrackError(field, value, f"is not valid JSON ({exc.msg})") from None
    if not isinstance(value, Mapping):
        raise MLTrackError(field, value, f"must be a JSON object (dict), not {type(value).__name__}")
    result: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip():
            raise MLTrackError(f"{field} key", key, "must be a non-empty string")
        result[key] = _json_value(f"{field}.{key}", item)
    return result


def _json_value(field: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise MLTrackError(field, value, "must be finite (JSON has no NaN or infinity)")
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_value(f"{field}.{k}", v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(f"{field}[{i}]", v) for i, v in enumerate(value)]
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return _json_value(field, value.item())
    except ImportError:
        pass
    raise MLTrackError(field, value, f"is not JSON-serializable ({type(value).__name__})")


def tag_names(field: str, value: Any) -> list[str]:
    """A list of tag names (a single string is one tag)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple | set):
        raise MLTrackError(field, value, "must be a list of strings")
    names = [name(field, item, 100) for item in value]
    return sorted({n for n in names if n})
