"""Input checks shared by every store method: each failure is an MLTrackError naming field and value."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

from airflow_mltrack.errors import MLTrackError

_MISSING = object()

#: Largest JSON object (hyperparameters, job parameters, model schemas) one call may store, in bytes of
#: compact UTF-8 JSON. Hyperparameters are a few hundred bytes; a blob this large is a mistake (a dataset
#: or a model passed by accident) and would slow every list, compare and filter of the UI.
MAX_JSON_BYTES = 64 * 1024


@overload
def name(field: str, value: Any, max_len: int, *, required: Literal[True] = True) -> str: ...


@overload
def name(field: str, value: Any, max_len: int, *, required: bool) -> str | None: ...


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


def version(field: str, value: Any, max_len: int) -> str:
    """A version label: a non-empty string, or a finite int/float written as text (``2`` -> ``"2"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise MLTrackError(field, value, "must be a version label, not NaN or infinity")
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return name(field, value, max_len)


def filter_text(field: str, value: Any, max_len: int = 1000) -> str | None:
    """A read filter (project name, DAG id, tag...): None or a string without NUL characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MLTrackError(field, value, f"must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise MLTrackError(field, value, "must not contain NUL characters")
    if len(value) > max_len:
        raise MLTrackError(field, value, f"is {len(value)} characters long; at most {max_len} allowed")
    return value


def date(field: str, value: Any) -> dt.date | None:
    """None, a date (a datetime gives its date) or an ISO ``YYYY-MM-DD`` string."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise MLTrackError(field, value, "must be a date (YYYY-MM-DD)") from None
    raise MLTrackError(field, value, f"must be a date, not {type(value).__name__}")


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
    if result is None or result > 2**31 - 1:
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


def json_object(field: str, value: Any, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any] | None:
    """None, a dict, or a JSON string of an object; values must be JSON-serializable, strings free of NUL
    characters (PostgreSQL's JSONB refuses them), and the whole at most ``max_bytes`` of compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise MLTrackError(field, value, f"is not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise MLTrackError(field, value, "is nested too deeply") from None
    if not isinstance(value, Mapping):
        raise MLTrackError(field, value, f"must be a JSON object (dict), not {type(value).__name__}")
    result: dict[str, Any] = {}
    for key, item in value.items():
        result[_json_key(field, key)] = _json_value(f"{field}.{key}", item)
    size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise MLTrackError(field, value, f"is {size:,} bytes of JSON; at most {max_bytes:,} allowed")
    return result


def _json_key(field: str, key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise MLTrackError(f"{field} key", key, "must be a non-empty string")
    if "\x00" in key:
        raise MLTrackError(f"{field} key", key, "must not contain NUL characters")
    return key


def _json_value(field: str, value: Any, depth: int = 0) -> Any:
    if depth > 64:
        raise MLTrackError(field, value, "is nested too deeply (at most 64 levels)")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise MLTrackError(field, value, "must not contain NUL characters")
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise MLTrackError(field, value, "must be finite (JSON has no NaN or infinity)")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if "\x00" in key:
                raise MLTrackError(f"{field} key", key, "must not contain NUL characters")
            out[key] = _json_value(f"{field}.{k}", v, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_json_value(f"{field}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return _json_value(field, value.item(), depth)
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
    return sorted({name(field, item, 100) for item in value})
