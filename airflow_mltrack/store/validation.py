"""Input checks shared by every store method: each failure is an MLTrackError naming field and value."""

from __future__ import annotations

import datetime as dt
import json
import math
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store.models.common import TAG_NAME_LEN

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
    """A name in its canonical form (:func:`canonical_name`): stripped of whitespace and of invisible
    format characters at either end, NFC-normalised, non-empty, at most ``max_len`` characters.

    So the NFC and NFD spellings of "Café" are one project, and a name of only a zero-width space is refused.
    """
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise MLTrackError(field, value, f"must be a string, not {type(value).__name__}")
    _check_text(field, value)
    stripped = canonical_name(value)
    if not stripped:
        raise MLTrackError(field, value, "must not be empty (or only invisible characters)")
    if len(stripped) > max_len:
        raise MLTrackError(field, value, f"is {len(stripped)} characters long; at most {max_len} allowed")
    return stripped


def canonical_name(value: str) -> str:
    """The form every name is stored and looked up in: whitespace and invisible format characters (zero
    width space, joiners, BOM: Unicode category Cf) stripped from both ends, then NFC."""
    text = unicodedata.normalize("NFC", value)
    start, end = 0, len(text)
    while start < end and _blank(text[start]):
        start += 1
    while end > start and _blank(text[end - 1]):
        end -= 1
    return text[start:end]


def _blank(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Cf"


def lookup_name(field: str, value: Any) -> str | None:
    """A name to look a row up by (project, endpoint, metric, tag): None, or :func:`canonical_name` of a
    string, so a lookup finds what :func:`name` stored."""
    text = filter_text(field, value)
    return None if text is None else canonical_name(text)


def airflow_id(field: str, value: Any, max_len: int, *, required: bool = False) -> str | None:
    """A dag_id, run_id or task_id exactly as Airflow spells it (stripped, never normalised: lookups by
    Airflow's own value must find it)."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise MLTrackError(field, value, f"must be a string, not {type(value).__name__}")
    _check_text(field, value)
    stripped = value.strip()
    if not stripped:
        raise MLTrackError(field, value, "must not be empty")
    if len(stripped) > max_len:
        raise MLTrackError(field, value, f"is {len(stripped)} characters long; at most {max_len} allowed")
    return stripped


def _check_text(field: str, value: str) -> None:
    """Refuse what no database can store: NUL characters (PostgreSQL) and lone surrogates (not UTF-8)."""
    if "\x00" in value:
        raise MLTrackError(field, value, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MLTrackError(
            field, value, f"is not valid Unicode text (a lone surrogate {value[exc.start]!r} at {exc.start})"
        ) from None


def error_text(field: str, value: Any) -> str | None:  # noqa: ARG001 - the same signature as the others
    """A failure reason to store (an exception's text): never refused, since the failure must be
    recorded; NUL characters and lone surrogates are replaced by U+FFFD."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in text)


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
    _check_text(field, value)
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
    _check_text(field, value)
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
        try:
            import numpy as np  # numpy integers are common in ML code (a step from np.arange)

            if not isinstance(value, np.integer):
                raise TypeError
        except (ImportError, TypeError):
            raise MLTrackError(field, value, f"must be an integer, not {type(value).__name__}") from None
        value = int(value)
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
        value = parse_json(field, value)
    if not isinstance(value, Mapping):
        raise MLTrackError(field, value, f"must be a JSON object (dict), not {type(value).__name__}")
    result: dict[str, Any] = {}
    for key, item in value.items():
        text = _json_key(field, key, result, top=True)
        result[text] = _json_value(f"{field}.{text}", item)
    size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise MLTrackError(field, value, f"is {size:,} bytes of JSON; at most {max_bytes:,} allowed")
    return result


def parse_json(field: str, text: str) -> Any:
    """``json.loads`` of ``text``, refusing a key given twice in one object (instead of keeping the last)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs(field))
    except json.JSONDecodeError as exc:
        raise MLTrackError(field, text, f"is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise MLTrackError(field, text, "is nested too deeply") from None


def _unique_pairs(field: str) -> Any:
    """``json.loads``'s object_pairs_hook: a key given twice in one object is refused, not last-wins."""

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in pairs:
            if key in out:
                raise MLTrackError(f"{field} key", key, "appears twice in one JSON object")
            out[key] = item
        return out

    return build


def _json_key(field: str, key: Any, taken: Mapping[str, Any], *, top: bool = False) -> str:
    """A JSON object key: a string, or an int written as its decimal text (as ``json.dumps`` does:
    ``class_weight={0: 1.0, 1: 5.0}``), at every depth. Two keys giving the same text (``1`` and ``"1"``)
    are refused rather than one silently dropped; top-level keys (parameter names) must not be blank."""
    if type(key).__module__ == "numpy" and hasattr(key, "item"):  # np.int64 keys from np.unique(y)
        key = key.item()
    if isinstance(key, int) and not isinstance(key, bool):
        text = str(key)
    elif isinstance(key, str):
        text = key
    else:
        raise MLTrackError(f"{field} key", key, f"must be a string or an integer, not {type(key).__name__}")
    if top and not text.strip():
        raise MLTrackError(f"{field} key", key, "must be a non-empty string")
    _check_text(f"{field} key", text)
    if text in taken:
        raise MLTrackError(
            f"{field} key", key, f"collides with another key written as {text!r} (JSON keys are strings)"
        )
    return text


def _json_value(field: str, value: Any, depth: int = 0) -> Any:
    if depth > 64:
        raise MLTrackError(field, value, "is nested too deeply (at most 64 levels)")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_text(field, value)
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise MLTrackError(field, value, "must be finite (JSON has no NaN or infinity)")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = _json_key(field, k, out)
            out[key] = _json_value(f"{field}.{key}", v, depth + 1)
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
    return sorted({name(field, item, TAG_NAME_LEN) for item in value})
