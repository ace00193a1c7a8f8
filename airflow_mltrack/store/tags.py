"""Tags on any entity (seed 002's suggested tags + tag_assignments)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import StoreBase
from airflow_mltrack.store.models import TAGGABLE_ENTITIES, TAGGABLE_TABLES, Base, Tag, TagAssignment

tags_t = Tag.__table__
tag_assignments = TagAssignment.__table__


class TagStore(StoreBase):
    """Tag and untag projects, datasets, models, experiments, preprocessing jobs and endpoints."""

    def tag(self, entity_type: str, entity_id: int, tags: list[str] | str) -> list[str]:
        """Add ``tags`` to an entity (idempotent); returns all its tags."""
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        names = v.tag_names("tags", tags)
        with self._write() as conn:
            table_name, id_column = TAGGABLE_TABLES[entity_type]
            table = Base.metadata.tables[table_name]
            self._require(conn, table, id_column, entity_id, "entity_id")
            self._tag(conn, entity_type, entity_id, names)
            note_writer = getattr(self, "_note_writer", None)  # ExperimentStore's: the task tagging it
            if entity_type == "experiment" and note_writer is not None:
                note_writer(conn, entity_id)
            return self._tags_of(conn, entity_type, entity_id)

    def untag(self, entity_type: str, entity_id: int, tag: str) -> None:
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        entity_id = v.entity_id("entity_id", entity_id)
        with self._write() as conn:
            name = v.lookup_name("tag", tag)
            tag_id = conn.execute(select(tags_t.c.tag_id).where(tags_t.c.name == name)).scalar_one_or_none()
            if tag_id is not None:
                conn.execute(
                    tag_assignments.delete().where(
                        tag_assignments.c.tag_id == tag_id,
                        tag_assignments.c.entity_type == entity_type,
                        tag_assignments.c.entity_id == entity_id,
                    )
                )

    def tags_of(self, entity_type: str, entity_id: int) -> list[str]:
        entity_type = v.choice("entity_type", entity_type, TAGGABLE_ENTITIES)
        with self._read() as conn:
            return self._tags_of(conn, entity_type, v.entity_id("entity_id", entity_id))

    def _tag(self, conn: Connection, entity_type: str, entity_id: int, names: list[str]) -> None:
        for name in names:
            tag_id = self._get_or_create(conn, tags_t, {"name": name}, {}, "tag_id", index_elements=["name"])
            conn.execute(
                self._insert(tag_assignments)
                .values(tag_id=tag_id, entity_type=entity_type, entity_id=entity_id)
                .on_conflict_do_nothing()
            )

    @staticmethod
    def _tags_of(conn: Connection, entity_type: str, entity_id: int) -> list[str]:
        query = (
            select(tags_t.c.name)
            .join(tag_assignments, tag_assignments.c.tag_id == tags_t.c.tag_id)
            .where(tag_assignments.c.entity_type == entity_type, tag_assignments.c.entity_id == entity_id)
            .order_by(tags_t.c.name)
        )
        return list(conn.execute(query).scalars())
