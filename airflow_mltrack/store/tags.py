"""Tags on any entity (seed 002's suggested tags + tag_assignments)."""

from __future__ import annotations

from sqlalchemy import select

from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import StoreBase
from airflow_mltrack.store.models import TAGGABLE_ENTITIES, TAGGABLE_TABLES, Base
from airflow_mltrack.store.tables import tag_assignments
from airflow_mltrack.store.tables import tags as tags_t


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
        with self.write() as conn:
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
        with self.read() as conn:
            return self._tags_of(conn, entity_type, v.entity_id("entity_id", entity_id))
