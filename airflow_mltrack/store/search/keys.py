"""What a search key may name, and what each kind of key accepts.

Entities (MLflow's spellings accepted, singular or plural):

- ``metrics.<split>.<name>``: the final value (``metric_latest``) of a metric on a split (train,
  validation, test, inference); ``metrics.<name>`` means the split the metric is logged on (test first,
  then validation, train, inference when it is logged on several). Numbers only; NaN never matches.
- ``params.<key>`` (``params.a.b``: the key ``a.b``, or ``b`` inside the object ``a``): hyperparameters.
  MLflow compares them as strings; here ``=`` also matches the number or boolean a string spells
  (``params.lr = '0.01'`` finds ``{"lr": 0.01}``) and ``< > <= >=`` with a number compare numbers.
- ``tags.<name>``: tags, labels or with a value (revision 0006). ``IS NOT NULL`` / ``IS NULL``: the tag is
  present (label or value) or absent. ``= != LIKE ILIKE NOT LIKE NOT ILIKE IN NOT IN`` compare its value as
  text (an unquoted number is its text: ``tags.a = 1`` is ``tags.a = '1'``); a label has no value, so no
  value comparison matches it (not even ``!=`` or ``NOT IN``). Tags do not order (``< >`` are refused).
- ``attributes.<name>`` (also ``attribute``, ``attr``, ``run``), or the bare ``<name>`` as in MLflow
  (``start_time DESC``, ``status = 'FINISHED'``): the experiment's own columns, see :data:`ATTRIBUTES`;
  MLflow's ``run_name`` is ``name``, its ``created`` is ``start_time`` and its statuses (FINISHED,
  KILLED...) are ours.
- ``datasets.<name|version|type>``, ``models.<name|version|framework>``: the experiment's dataset and model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from airflow_mltrack.store.models import EVALUATION_SETS, EXPERIMENT_STATUSES

ENTITIES = {
    "metrics": "metrics",
    "metric": "metrics",
    "params": "params",
    "param": "params",
    "parameters": "params",
    "parameter": "params",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attributes",
    "attribute": "attributes",
    "attr": "attributes",
    "run": "attributes",
    "datasets": "datasets",
    "dataset": "datasets",
    "models": "models",
    "model": "models",
}

#: attribute name -> kind: "text", "number", "time" (ms since the epoch or an ISO date), "duration"
#: (seconds), "status".
ATTRIBUTES = {
    "experiment_id": "number",
    "name": "text",
    "status": "status",
    "project": "text",
    "dag_id": "text",
    "run_id": "text",
    "task_id": "text",
    "map_index": "number",
    "start_time": "time",
    "end_time": "time",
    "created_at": "time",
    "updated_at": "time",
    "duration": "duration",
    "description": "text",
    "notes": "text",
    "code_version": "text",
}
ATTRIBUTE_ALIASES = {
    "id": "experiment_id",
    "run_name": "name",
    "experiment_name": "name",
    "project_name": "project",
    "created": "start_time",  # MLflow's alias of start_time
    "run name": "name",  # MLflow's attributes.`run name`
}
RELATED = {"datasets": ("name", "version", "type"), "models": ("name", "version", "framework")}

#: MLflow's run statuses, read as ours (case-insensitive either way).
MLFLOW_STATUSES = {
    "FINISHED": "Completed",
    "RUNNING": "Running",
    "FAILED": "Failed",
    "KILLED": "Cancelled",
    "SCHEDULED": "Pending",
}
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
TEXT_OPS = (*NUMERIC_OPS, "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN")
NULL_OPS = ("IS NULL", "IS NOT NULL")
TAG_OPS = ("=", "!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN")
#: Precedence of splits for ``metrics.<name>`` logged on several.
SPLIT_PRECEDENCE = ("test", "validation", "train", "inference")


class KeyProblem(ValueError):
    """Why a key or a comparison is not accepted (the parser adds the token and its position)."""


@dataclass(frozen=True)
class Key:
    """A search key. ``entity``: metrics, params, tags, attributes, datasets or models; ``name``: the metric
    name, param key, tag, attribute or column; ``split``: a metric's split (None: resolved from the data);
    ``path``: a param key's segments; ``text``: as written."""

    entity: str
    name: str
    text: str
    split: str | None = None
    path: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """What its values are: number, text, time, duration, status, param or tag."""
        if self.entity == "metrics":
            return "number"
        if self.entity == "params":
            return "param"
        if self.entity == "tags":
            return "tag"
        if self.entity == "attributes":
            return ATTRIBUTES[self.name]
        return "text"

    def canonical(self, split: str | None = None) -> str:
        """The key in one spelling (``metrics.test.accuracy``, ``params.lr``, ``attributes.status``):
        column keys of result rows."""
        if self.entity == "metrics":
            return f"metrics.{split or self.split or 'test'}.{_segment(self.name)}"
        if self.entity == "params":
            return "params." + ".".join(_segment(p) for p in self.path)
        return f"{self.entity}.{_segment(self.name)}"


def _segment(name: str) -> str:
    """A name as a key segment: backtick-quoted unless a plain word."""
    plain = name.replace("_", "a").replace("-", "a").isalnum() and not name[:1].isdigit()
    return name if plain else "`" + name.replace("`", "``") + "`"


def make_key(entity: str, segments: list[str], text: str) -> Key:
    """The key ``entity.segment.segment...``, or the attribute ``entity`` when there are no segments (a
    name without a prefix is an attribute, as in MLflow: ``start_time``, ``status``, ``run_name``);
    :class:`KeyProblem` for an unknown entity or name."""
    known = ENTITIES.get(entity.lower())
    if known is None and not segments:
        name = ATTRIBUTE_ALIASES.get(entity.lower(), entity.lower())
        if name not in ATTRIBUTES:
            raise KeyProblem(
                f"unknown attribute {entity!r} (a name without a prefix is an attribute: one of "
                f"{', '.join(sorted(ATTRIBUTES))}); other keys are metrics.<name>, params.<name>, tags.<name>"
            )
        return Key("attributes", name, text)
    if known is None:
        raise KeyProblem(f"unknown key type {entity!r}: use metrics, params, tags or attributes")
    if not segments:
        raise KeyProblem(f"expected {entity}.<name>")
    if known == "metrics":
        if len(segments) > 1 and segments[0] in EVALUATION_SETS:
            return Key("metrics", ".".join(segments[1:]), text, split=segments[0])
        return Key("metrics", ".".join(segments), text)
    if known == "params":
        return Key("params", ".".join(segments), text, path=tuple(segments))
    name = ".".join(segments)
    if known == "tags":
        return Key("tags", name, text)
    if known == "attributes":
        name = ATTRIBUTE_ALIASES.get(name.lower(), name.lower())
        if name not in ATTRIBUTES:
            raise KeyProblem(f"unknown attribute {name!r}: one of {', '.join(sorted(ATTRIBUTES))}")
        return Key("attributes", name, text)
    if name.lower() not in RELATED[known]:
        raise KeyProblem(f"unknown {known} field {name!r}: one of {', '.join(RELATED[known])}")
    return Key(known, name.lower(), text)


def check_comparison(key: Key, op: str, value: Any) -> Any:
    """``value`` as the comparison uses it (statuses normalized, numbers checked), or :class:`KeyProblem`."""
    kind = key.kind
    if op in NULL_OPS:
        if kind == "status" or (
            key.entity == "attributes" and key.name in ("experiment_id", "name", "start_time")
        ):
            raise KeyProblem(f"{key.text} is never NULL")
        return None
    values = value if isinstance(value, tuple) else (value,)
    if kind == "tag":
        if op not in TAG_OPS:
            raise KeyProblem(
                f"{op} does not compare tag values (text); use = != LIKE ILIKE IN or IS [NOT] NULL"
            )
        checked = tuple(v if isinstance(v, str) else str(v) for v in values)
        return checked if isinstance(value, tuple) else checked[0]
    if kind in ("number", "duration"):
        if op not in NUMERIC_OPS and op not in ("IN", "NOT IN"):
            raise KeyProblem(f"{op} compares text; {key.text} is a number")
        checked = tuple(_number(key, v) for v in values)
    elif kind == "status":
        if op not in TEXT_OPS:
            raise KeyProblem(f"{op} is not a comparison for {key.text}")
        checked = tuple(v if "LIKE" in op else status_value(v) for v in values)
    elif kind == "time":
        if op not in NUMERIC_OPS:
            raise KeyProblem(f"{op} does not compare times; use = != < <= > >=")
        checked = values
    else:  # text, param
        if op not in TEXT_OPS:
            raise KeyProblem(f"{op} is not a comparison")
        checked = tuple(str(v) if not isinstance(v, int | float) else v for v in values)
    return checked if isinstance(value, tuple) else checked[0]


def check_sortable(key: Key) -> None:
    if key.entity == "tags":
        raise KeyProblem("tags cannot order experiments; filter on them instead")


def status_value(value: Any) -> str:
    """One of our statuses for ``value`` (ours or MLflow's, any case); :class:`KeyProblem` otherwise."""
    text = str(value)
    ours = {s.lower(): s for s in EXPERIMENT_STATUSES}
    found = ours.get(text.lower()) or MLFLOW_STATUSES.get(text.upper())
    if found is None:
        raise KeyProblem(f"unknown status {text!r}: one of {', '.join(EXPERIMENT_STATUSES)} (or MLflow's)")
    return found


def _number(key: Key, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise KeyProblem(f"{key.text} is a number; {value!r} is not") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise KeyProblem(f"{key.text} is compared with finite numbers only")
    return float(value)


__all__ = [
    "ATTRIBUTES",
    "ENTITIES",
    "MLFLOW_STATUSES",
    "SPLIT_PRECEDENCE",
    "Key",
    "KeyProblem",
    "check_comparison",
    "check_sortable",
    "make_key",
    "status_value",
]
