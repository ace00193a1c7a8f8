"""Tags on any entity (seed 002's suggested tags + tag_assignments), and the checks of an edit of an
experiment's tags and notes (``ExperimentStore.edit_experiment``).

A tag is a label (``tag()``: value NULL) or a name with a text value (``set_tag()``: MLflow's key=value
tags, revision 0006). An entity carries one value per tag name; setting it again replaces it."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import StoreBase
from airflow_mltrack.store.models import TAG_NAME_LEN, TAGGABLE_ENTITIES, TAGGABLE_TABLES, Base
from airflow_mltrack.store.tables import tag_assignments
from airflow_mltrack.store.tables import tags as tags_t

#: Longest notes an edit stores, in characters (prose: MAX_JSON_BYTES's size is plenty).
MAX_NOTES_LEN = 64 * 1024
#: Most tags one edit may add and remove together.
MAX_TAGS_PER_EDIT = 100
#: Longest tag value, in characters: MLflow's own limit (``MAX_TAG_VAL_LENGTH``), so every value its client
#: accepts is stored whole. The column is TEXT: the limit is ours, checked before any write.
MAX_TAG_VALUE_LEN = 8000
#: Most tags one ``set_tags`` call may set (MLflow's log-batch takes at most 1000 entities).
MAX_TAGS_PER_SET = 1000


class Keep(enum.Enum):
    """``edit_experiment(notes=KEEP)``: leave the notes as they are (None clears them)."""

    KEEP = "keep"


KEEP = Keep.KEEP


class EditConflictError(MLTrackError):
    """An edit based on an ``updated_at`` the experiment no longer has: someone changed it since."""


class TagStore(StoreBase):
    """Tag and untag projects, datasets, models, experiments, preprocessing jobs and endpoints."""

    def tag(self, entity_type: str, entity_id: int, tags: list[str] | str) -> list[str]:
        """Add the labels ``tags`` to an entity (idempotent: a tag it carries already keeps its value);
        returns the names of all its tags."""
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        names = v.tag_names("tags", tags)
        with self.write() as conn:
            self._require_entity(conn, entity_type, entity_id)
            self._tag(conn, entity_type, entity_id, names)
            if entity_type == "experiment":
                self._note_writer(conn, entity_id)  # the task tagging it writes to the experiment
            return self._tags_of(conn, entity_type, entity_id)

    def untag(self, entity_type: str, entity_id: int, tag: str) -> None:
        """Remove the tag ``tag`` (a label or a value) from an entity; nothing when absent."""
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        name = v.lookup_name("tag", tag)
        with self.write() as conn:
            if name is not None:
                drop_tags(conn, entity_type, entity_id, [name])

    def tags_of(self, entity_type: str, entity_id: int) -> list[str]:
        """The names of an entity's tags (labels and tags with a value), sorted."""
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        with self.read() as conn:
            return self._tags_of(conn, entity_type, v.entity_id("entity_id", entity_id))

    def set_tag(self, entity_type: str, entity_id: int, name: str, value: str | None) -> None:
        """Give an entity the tag ``name`` with ``value`` (text; None: a label), replacing the value it had
        (MLflow's ``set_tag``). One transaction; NotFoundError for a missing entity."""
        checked = {v.name("name", name, TAG_NAME_LEN): tag_value("value", value)}
        self._set_tags(entity_type, entity_id, checked)

    def set_tags(self, entity_type: str, entity_id: int, values: Mapping[str, str | None]) -> None:
        """``set_tag`` for several tags ``{name: value}`` in one transaction (all or none)."""
        if not isinstance(values, Mapping):
            raise MLTrackError("tags", values, "must be a mapping of tag name to value (text or None)")
        if len(values) > MAX_TAGS_PER_SET:
            raise MLTrackError("tags", len(values), f"at most {MAX_TAGS_PER_SET} tags per call")
        checked: dict[str, str | None] = {}
        for raw, value in values.items():
            name = v.name("tags", raw, TAG_NAME_LEN)
            if name in checked:
                raise MLTrackError("tags", raw, "is given twice (names compare in their canonical form)")
            checked[name] = tag_value(f"tags.{name}", value)
        self._set_tags(entity_type, entity_id, checked)

    def delete_tag(self, entity_type: str, entity_id: int, name: str) -> bool:
        """Remove the tag ``name`` (a label or a value) from an entity; False when it did not carry it.
        One transaction; NotFoundError for a missing entity (``untag`` ignores both)."""
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        name = v.name("name", name, TAG_NAME_LEN)
        with self.write() as conn:
            self._require_entity(conn, entity_type, entity_id)
            removed = drop_tags(conn, entity_type, entity_id, [name]) > 0
            if removed and entity_type == "experiment":
                self._note_writer(conn, entity_id)
            return removed

    def tag_values(self, entity_type: str, entity_id: int) -> dict[str, str | None]:
        """An entity's tags, ``{name: value}`` sorted by name; a label's value is None."""
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        query = (
            select(tags_t.c.name, tag_assignments.c.value)
            .join(tag_assignments, tag_assignments.c.tag_id == tags_t.c.tag_id)
            .where(tag_assignments.c.entity_type == entity_type, tag_assignments.c.entity_id == entity_id)
            .order_by(tags_t.c.name)
        )
        with self.read() as conn:
            return {name: value for name, value in conn.execute(query)}

    def _set_tags(self, entity_type: str, entity_id: int, values: dict[str, str | None]) -> None:
        """Upsert checked ``{name: value}`` on one entity, names in sorted order (concurrent writers take
        the same locks in the same order)."""
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        if not values:
            return
        with self.write() as conn:
            self._require_entity(conn, entity_type, entity_id)
            rows = [
                {
                    "tag_id": self._get_or_create(
                        conn, tags_t, {"name": name}, {}, "tag_id", index_elements=["name"]
                    ),
                    "entity_type": entity_type,
                    "entity_id": entity_id,
                    "value": values[name],
                }
                for name in sorted(values)
            ]
            stmt = self._insert(tag_assignments)
            stmt = stmt.on_conflict_do_update(
                index_elements=["tag_id", "entity_type", "entity_id"],
                set_={"value": stmt.excluded.value},
                where=tag_assignments.c.value.is_distinct_from(stmt.excluded.value),
            )
            conn.execute(stmt, rows)
            if entity_type == "experiment":
                self._note_writer(conn, entity_id)  # the task tagging it writes to the experiment

    def _require_entity(self, conn: Connection, entity_type: str, entity_id: int) -> None:
        table_name, id_column = TAGGABLE_TABLES[entity_type]
        self._require(conn, Base.metadata.tables[table_name], id_column, entity_id, "entity_id", whole=False)


def tag_value(field: str, value: Any) -> str | None:
    """A tag value: None (a label) or text of at most MAX_TAG_VALUE_LEN characters, kept as given (an
    empty string is a value, not a label); no NUL characters or lone surrogates."""
    return v.optional_text(field, value, MAX_TAG_VALUE_LEN)


def drop_tags(conn: Connection, entity_type: str, entity_id: int, names: Iterable[str]) -> int:
    """Remove the tags named ``names`` (labels or values) from one entity, in ``conn``'s transaction; the
    number removed (names it does not carry, or no entity carries, are ignored; the tag rows themselves
    stay: they are shared names)."""
    names = list(names)
    if not names:
        return 0
    return conn.execute(
        tag_assignments.delete().where(
            tag_assignments.c.entity_type == entity_type,
            tag_assignments.c.entity_id == entity_id,
            tag_assignments.c.tag_id.in_(select(tags_t.c.tag_id).where(tags_t.c.name.in_(names))),
        )
    ).rowcount


def check_edit(
    notes: Any, add_tags: Any, remove_tags: Any, expected_updated_at: Any
) -> tuple[dict[str, Any], list[str], list[str], dt.datetime | None]:
    """The checked inputs of an edit: (column values, tags to add, tags to remove, expected updated_at
    in UTC); an MLTrackError naming field and value for the first bad one."""
    values: dict[str, Any] = {}
    if notes is not KEEP:
        values["notes"] = v.optional_text("notes", notes, MAX_NOTES_LEN)
    add, remove = v.tag_names("add_tags", add_tags), v.tag_names("remove_tags", remove_tags)
    if len(add) + len(remove) > MAX_TAGS_PER_EDIT:
        raise MLTrackError("add_tags", add, f"with remove_tags: at most {MAX_TAGS_PER_EDIT} tags per edit")
    both = sorted(set(add) & set(remove))
    if both:
        raise MLTrackError("remove_tags", both[0], "is also in add_tags")
    if not values and not add and not remove:
        raise MLTrackError("edit", {}, "changes nothing: give notes, add_tags or remove_tags")
    expected = None if expected_updated_at is None else as_utc("expected_updated_at", expected_updated_at)
    return values, add, remove, expected


def as_utc(field: str, value: Any) -> dt.datetime:
    """A timestamp in UTC: a datetime (a naive one is UTC, as SQLite gives them back) or ISO 8601 text."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise MLTrackError(field, value, "must be an ISO 8601 timestamp") from None
    if not isinstance(value, dt.datetime):
        raise MLTrackError(field, value, f"must be a timestamp, not {type(value).__name__}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
