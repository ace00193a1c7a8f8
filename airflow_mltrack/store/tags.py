"""Tags on any entity (seed 002's suggested tags + tag_assignments), and the checks of an edit of an
experiment's tags and notes (``ExperimentStore.edit_experiment``)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import StoreBase
from airflow_mltrack.store.models import TAGGABLE_ENTITIES, TAGGABLE_TABLES, Base
from airflow_mltrack.store.tables import tag_assignments
from airflow_mltrack.store.tables import tags as tags_t

#: Longest notes an edit stores, in characters (prose: MAX_JSON_BYTES's size is plenty).
MAX_NOTES_LEN = 64 * 1024
#: Most tags one edit may add and remove together.
MAX_TAGS_PER_EDIT = 100


class Keep(enum.Enum):
    """``edit_experiment(notes=KEEP)``: leave the notes as they are (None clears them)."""

    KEEP = "keep"


KEEP = Keep.KEEP


class EditConflictError(MLTrackError):
    """An edit based on an ``updated_at`` the experiment no longer has: someone changed it since."""


class TagStore(StoreBase):
    """Tag and untag projects, datasets, models, experiments, preprocessing jobs and endpoints."""

    def tag(self, entity_type: str, entity_id: int, tags: list[str] | str) -> list[str]:
        """Add ``tags`` to an entity (idempotent); returns all its tags."""
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        names = v.tag_names("tags", tags)
        with self.write() as conn:
            table_name, id_column = TAGGABLE_TABLES[entity_type]
            table = Base.metadata.tables[table_name]
            self._require(conn, table, id_column, entity_id, "entity_id")
            self._tag(conn, entity_type, entity_id, names)
            if entity_type == "experiment":
                self._note_writer(conn, entity_id)  # the task tagging it writes to the experiment
            return self._tags_of(conn, entity_type, entity_id)

    def untag(self, entity_type: str, entity_id: int, tag: str) -> None:
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        name = v.lookup_name("tag", tag)
        with self.write() as conn:
            if name is not None:
                drop_tags(conn, entity_type, entity_id, [name])

    def tags_of(self, entity_type: str, entity_id: int) -> list[str]:
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        with self.read() as conn:
            return self._tags_of(conn, entity_type, v.entity_id("entity_id", entity_id))


def drop_tags(conn: Connection, entity_type: str, entity_id: int, names: Iterable[str]) -> None:
    """Remove the tags named ``names`` from one entity, in ``conn``'s transaction (names it does not carry,
    or no entity carries, are ignored; the tag rows themselves stay: they are shared label names)."""
    names = list(names)
    if not names:
        return
    conn.execute(
        tag_assignments.delete().where(
            tag_assignments.c.entity_type == entity_type,
            tag_assignments.c.entity_id == entity_id,
            tag_assignments.c.tag_id.in_(select(tags_t.c.tag_id).where(tags_t.c.name.in_(names))),
        )
    )


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
