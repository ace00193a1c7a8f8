"""Logged models (MLflow 3's ``LoggedModel``), an experiment's model and dataset links, and the soft delete of
experiments and models (revision 0008).

A logged model is a row of ``models`` with a ``status`` (Pending, Ready, Failed), the experiment that logged it
(``source_experiment_id``) and text ``params``; its version is ``m-<model_id>`` (:data:`LOGGED_VERSION_PREFIX`),
so models of one name never collide (MLflow names every autologged model ``model``). Deleting is soft
(``deleted_at``) for experiments and models alike: rows that others point at stay.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Connection, select, update

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import ProjectRef, StoreBase, rows, utcnow
from airflow_mltrack.store.models import MODEL_STATUSES, NAME_LEN, TAG_NAME_LEN
from airflow_mltrack.store.tables import datasets, experiments, models, tag_assignments, tags
from airflow_mltrack.store.tags import MAX_TAGS_PER_SET, tag_value
from airflow_mltrack.store.visibility import readable

#: The version of a logged model: this prefix and its model id (``m-17``), MLflow's logged model id too.
LOGGED_VERSION_PREFIX = "m-"
#: Longest value of a logged model's param (MLflow's ``MAX_PARAM_VAL_LENGTH``).
MAX_PARAM_VALUE_LEN = 6000
#: Most logged models one search page returns.
MAX_MODEL_PAGE = 1000


def model_params(field: str, params: Mapping[str, Any] | None) -> dict[str, str]:
    """Checked text params ``{name: value}`` of a logged model."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise MLTrackError(field, params, "must be a mapping of param name to text")
    out: dict[str, str] = {}
    for key, value in params.items():
        name = v.name(field, key, NAME_LEN)
        out[name] = v.optional_text(f"{field}.{name}", str(value), MAX_PARAM_VALUE_LEN) or ""
    return out


def _tag_values(tags: Mapping[str, Any] | None) -> dict[str, str | None]:
    if not tags:
        return {}
    if len(tags) > MAX_TAGS_PER_SET:
        raise MLTrackError("tags", len(tags), f"at most {MAX_TAGS_PER_SET} tags per call")
    return {v.name("tags", k, TAG_NAME_LEN): tag_value(f"tags.{k}", val) for k, val in tags.items()}


class LoggedModelStore(StoreBase):
    """Logged models, the links of an experiment to its model and dataset, and soft deletes."""

    # -- logged models ------------------------------------------------------------------------------
    def create_logged_model(
        self,
        project: ProjectRef,
        name: str,
        framework: str,
        *,
        source_experiment_id: int | None = None,
        model_type: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> int:
        """A new Pending model ``name`` (version ``m-<id>``) of ``project``, logged by experiment
        ``source_experiment_id`` (which must belong to the project); returns its id. One transaction."""
        values: dict[str, Any] = {
            "name": v.name("name", name, NAME_LEN),
            "framework": v.name("framework", framework, 100),
            "model_type": v.optional_text("model_type", model_type, 100),
            "params": model_params("params", params) or None,
            "status": "Pending",
            "version": uuid.uuid4().hex,  # replaced by m-<id> in the same transaction
        }
        checked_tags = _tag_values(tags)
        source = (
            None
            if source_experiment_id is None
            else v.entity_id("source_experiment_id", source_experiment_id)
        )
        with self.write() as conn:
            values["project_id"] = self._project_id(conn, project)
            if source is not None:
                owner = conn.execute(
                    select(experiments.c.project_id).where(experiments.c.experiment_id == source)
                ).scalar_one_or_none()
                if owner is None:
                    raise NotFoundError("source_experiment_id", source, "no experiment with this id")
                if owner != values["project_id"]:
                    raise self._foreign(conn, "source_experiment_id", source, owner, values["project_id"])
                values["source_experiment_id"] = source
            model_id = int(
                conn.execute(models.insert().values(values).returning(models.c.model_id)).scalar_one()
            )
            conn.execute(
                update(models)
                .where(models.c.model_id == model_id)
                .values(version=f"{LOGGED_VERSION_PREFIX}{model_id}")
            )
            if checked_tags:
                self._set_tags_in(conn, model_id, checked_tags)
            return model_id

    def set_model_status(self, model_id: int, status: str) -> None:
        """Move a (not deleted) model to ``status`` (Pending, Ready, Failed): MLflow's finalize."""
        model_id = v.entity_id("model_id", model_id)
        status = v.choice("status", status, MODEL_STATUSES)
        with self.write() as conn:
            self._live_model(conn, model_id)
            conn.execute(
                update(models).where(models.c.model_id == model_id).values(status=status, updated_at=utcnow())
            )

    def log_model_params(self, model_id: int, params: Mapping[str, Any]) -> None:
        """Add text params to a (not deleted) model; a name logged again gets the new value."""
        model_id = v.entity_id("model_id", model_id)
        checked = model_params("params", params)
        if not checked:
            return
        with self.write() as conn:
            row = self._live_model(conn, model_id)
            merged = {**(row["params"] or {}), **checked}
            conn.execute(
                update(models).where(models.c.model_id == model_id).values(params=merged, updated_at=utcnow())
            )

    def set_model_tags(self, model_id: int, tags: Mapping[str, Any]) -> None:
        """Set tags ``{name: value}`` on a (not deleted) model, replacing the values it had."""
        model_id = v.entity_id("model_id", model_id)
        checked = _tag_values(tags)
        with self.write() as conn:
            self._live_model(conn, model_id)
            self._set_tags_in(conn, model_id, checked)

    def delete_model(self, model_id: int) -> None:
        """Soft-delete a model (``deleted_at``): gone for logged-model reads, kept for the experiments
        and endpoints that point at it. Deleting a deleted model is NotFoundError."""
        model_id = v.entity_id("model_id", model_id)
        with self.write() as conn:
            self._live_model(conn, model_id)
            conn.execute(
                update(models)
                .where(models.c.model_id == model_id)
                .values(deleted_at=utcnow(), updated_at=utcnow())
            )

    def find_models(
        self,
        project_ids: Collection[int],
        *,
        names: Collection[str] = (),
        statuses: Collection[str] = (),
        source_experiment_id: int | None = None,
        exclude_framework: str | None = None,
        include_deleted: bool = False,
        visible_dag_ids: Collection[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Models of ``project_ids`` (newest first), optionally only these names / statuses / the ones one
        experiment logged, none of framework ``exclude_framework`` (the placeholders); deleted ones only with
        ``include_deleted``; with ``visible_dag_ids``, not those logged by an experiment of another DAG
        (docs/architecture.md, "Visibility")."""
        limit = v.integer("limit", limit, minimum=1) or 1
        if limit > MAX_MODEL_PAGE:
            raise MLTrackError("limit", limit, f"must be at most {MAX_MODEL_PAGE}")
        offset = v.integer("offset", offset, minimum=0) or 0
        query = select(models).where(
            models.c.project_id.in_([v.entity_id("project_id", p) for p in project_ids])
        )
        if names:
            query = query.where(models.c.name.in_([str(n) for n in names]))
        if statuses:
            query = query.where(
                models.c.status.in_([v.choice("status", s, MODEL_STATUSES) for s in statuses])
            )
        if source_experiment_id is not None:
            query = query.where(models.c.source_experiment_id == source_experiment_id)
        if exclude_framework is not None:
            query = query.where(models.c.framework != exclude_framework)
        if not include_deleted:
            query = query.where(models.c.deleted_at.is_(None))
        visible = readable(experiments.c.dag_id, visible_dag_ids)
        if visible is not None:
            source = models.c.source_experiment_id
            query = query.where(
                source.is_(None) | source.in_(select(experiments.c.experiment_id).where(visible))
            )
        query = query.order_by(models.c.model_id.desc()).limit(limit).offset(offset)
        with self.read() as conn:
            return rows(conn.execute(query))

    def _live_model(self, conn: Connection, model_id: int) -> dict[str, Any]:
        row = dict(self._require(conn, models, "model_id", model_id, "model_id")._mapping)
        if row["deleted_at"] is not None:
            raise NotFoundError("model_id", model_id, "the model was deleted")
        return row

    def _set_tags_in(self, conn: Connection, model_id: int, values: dict[str, str | None]) -> None:
        if not values:
            return
        batch = [
            {
                "tag_id": self._get_or_create(
                    conn, tags, {"name": name}, {}, "tag_id", index_elements=["name"]
                ),
                "entity_type": "model",
                "entity_id": model_id,
                "value": values[name],
            }
            for name in sorted(values)
        ]
        stmt = self._insert(tag_assignments)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tag_id", "entity_type", "entity_id"], set_={"value": stmt.excluded.value}
        )
        conn.execute(stmt, batch)

    # -- an experiment's model and dataset ----------------------------------------------------------
    def link_experiment(
        self, experiment_id: int, *, model_id: int | None = None, dataset_id: int | None = None
    ) -> None:
        """Point an experiment at another model and/or dataset of its project (MLflow's log-outputs and
        log-inputs replace the placeholders ``create_run`` gave it)."""
        experiment_id = v.entity_id("experiment_id", experiment_id)
        values: dict[str, Any] = {}
        if model_id is not None:
            values["model_id"] = v.entity_id("model_id", model_id)
        if dataset_id is not None:
            values["dataset_id"] = v.entity_id("dataset_id", dataset_id)
        if not values:
            return
        with self.write(**values) as conn:
            row = self._require(conn, experiments, "experiment_id", experiment_id, "experiment_id")
            for field, table in (("model_id", models), ("dataset_id", datasets)):
                if field not in values:
                    continue
                owner = conn.execute(
                    select(table.c.project_id).where(table.c[field] == values[field])
                ).scalar_one_or_none()
                if owner is None:
                    raise NotFoundError(field, values[field], f"no {table.name[:-1]} with this id")
                if owner != row.project_id:
                    raise self._foreign(conn, field, values[field], owner, row.project_id)
            conn.execute(
                update(experiments)
                .where(experiments.c.experiment_id == experiment_id)
                .values(**values, updated_at=utcnow())
            )
            self._note_writer(conn, experiment_id, start=False)

    # -- soft delete of experiments -----------------------------------------------------------------
    def set_experiment_deleted(self, experiment_id: int, deleted: bool) -> None:
        """Mark an experiment deleted (``deleted_at`` now) or restore it (NULL); the row and everything
        it owns stay. Idempotent: deleting a deleted experiment keeps its first ``deleted_at``."""
        experiment_id = v.entity_id("experiment_id", experiment_id)
        with self.write() as conn:
            row = self._require(conn, experiments, "experiment_id", experiment_id, "experiment_id")
            if (row.deleted_at is not None) == bool(deleted):
                return
            conn.execute(
                update(experiments)
                .where(experiments.c.experiment_id == experiment_id)
                .values(deleted_at=utcnow() if deleted else None, updated_at=utcnow())
            )
