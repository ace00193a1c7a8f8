"""Projects, datasets and models: get-or-create on their unique keys, and reads."""

from __future__ import annotations

from collections.abc import Set
from typing import Any, NamedTuple

from sqlalchemy import select, update

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import ProjectRef, StoreBase, rows, utcnow
from airflow_mltrack.store.models import (
    DATA_TYPES,
    NAME_LEN,
    PROJECT_STATUSES,
    VERSION_LEN,
)
from airflow_mltrack.store.tables import datasets, experiments, models, projects

DATASET_FIELDS = frozenset({"description", "source_url", "size_bytes", "num_records"})


class DatasetInput(NamedTuple):
    """A dataset's validated key (name, version), other columns and tags."""

    name: str
    version: str
    values: dict[str, Any]
    tags: list[str]


def dataset_input(
    name: Any, data_type: Any, version: Any, fields: dict[str, Any], prefix: str = ""
) -> DatasetInput:
    """Validate a dataset's arguments (``prefix`` is put before each field name in errors)."""
    key_name = v.name(f"{prefix}name", name, NAME_LEN)
    key_version = v.version(f"{prefix}version", version, VERSION_LEN)
    fields = dict(fields)
    tag_list = v.tag_names(f"{prefix}tags", fields.pop("tags", None))
    _reject_unknown(prefix.rstrip(".") or "dataset", fields, DATASET_FIELDS)
    values: dict[str, Any] = {
        "data_type": v.choice(f"{prefix}data_type", data_type, DATA_TYPES),
        "description": v.optional_text(f"{prefix}description", fields.get("description")),
        "source_url": v.optional_text(f"{prefix}source_url", fields.get("source_url"), 512),
        "size_bytes": v.integer(f"{prefix}size_bytes", fields.get("size_bytes"), required=False),
        "num_records": v.integer(f"{prefix}num_records", fields.get("num_records"), required=False),
    }
    return DatasetInput(key_name, key_version, values, tag_list)


def _version(value: Any) -> str:
    return v.version("version", value, VERSION_LEN)


def _project_fields(fields: dict[str, Any]) -> dict[str, Any]:
    allowed = {"description", "status", "start_date", "end_date"}
    unknown = set(fields) - allowed
    if unknown:
        raise MLTrackError(
            "project field", sorted(unknown)[0], f"unknown; allowed: {', '.join(sorted(allowed))}"
        )
    out = {
        "description": v.optional_text("description", fields.get("description")),
        "start_date": v.date("start_date", fields.get("start_date")),
        "end_date": v.date("end_date", fields.get("end_date")),
    }
    if out["start_date"] and out["end_date"] and out["end_date"] < out["start_date"]:
        raise MLTrackError("end_date", fields.get("end_date"), "must not be before start_date")
    if fields.get("status") is not None:
        out["status"] = v.choice("status", fields["status"], PROJECT_STATUSES)
    return {k: val for k, val in out.items() if val is not None}


class CatalogStore(StoreBase):
    """Projects, datasets and models."""

    # -- projects ---------------------------------------------------------------------------------
    def ensure_project(self, name: str, **fields: Any) -> int:
        """The id of project ``name``, created if missing; given fields update it."""
        name_ = v.name("project", name, NAME_LEN)
        values = _project_fields(fields)
        with self.write() as conn:
            return self._project_id(conn, name_, values)

    def get_project(self, project: ProjectRef) -> dict[str, Any]:
        if not isinstance(project, int) or isinstance(project, bool):
            project = v.lookup_name("project", project)
        with self.read() as conn:
            query = select(projects)
            if isinstance(project, int):
                query = query.where(projects.c.project_id == project)
            else:
                query = query.where(projects.c.name == project)
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError("project", project, "no such project")
        return dict(row._mapping)

    def list_projects(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            return rows(conn.execute(select(projects).order_by(projects.c.name)))

    def rename_project(self, project_id: int, name: str) -> None:
        """Give a project another name (unique: a name another project has is refused)."""
        project_id = v.entity_id("project_id", project_id)
        new_name = v.name("name", name, NAME_LEN)
        with self.write() as conn:
            self._require(conn, projects, "project_id", project_id, "project_id")
            taken = conn.execute(
                select(projects.c.project_id).where(
                    projects.c.name == new_name, projects.c.project_id != project_id
                )
            ).first()
            if taken is not None:
                raise MLTrackError("name", new_name, f"project {taken.project_id} has this name")
            conn.execute(
                update(projects)
                .where(projects.c.project_id == project_id)
                .values(name=new_name, updated_at=utcnow())
            )

    def set_project_deleted(self, project_id: int, deleted: bool) -> None:
        """MLflow's delete_experiment: mark the project deleted (``deleted_at`` now) and, with the same
        time, those of its experiments not deleted yet; restore: clear the mark and restore the experiments
        deleted with it (those deleted on their own before stay deleted). The rows stay. Idempotent."""
        project_id = v.entity_id("project_id", project_id)
        with self.write() as conn:
            row = self._require(conn, projects, "project_id", project_id, "project_id")
            if (row.deleted_at is not None) == bool(deleted):
                return
            now = utcnow()
            owned = experiments.c.project_id == project_id
            if deleted:
                conn.execute(
                    update(experiments)
                    .where(owned, experiments.c.deleted_at.is_(None))
                    .values(deleted_at=now, updated_at=now)
                )
            else:
                conn.execute(
                    update(experiments)
                    .where(owned, experiments.c.deleted_at == row.deleted_at)
                    .values(deleted_at=None, updated_at=now)
                )
            conn.execute(
                update(projects)
                .where(projects.c.project_id == project_id)
                .values(deleted_at=now if deleted else None, updated_at=now)
            )

    # -- datasets ---------------------------------------------------------------------------------
    def register_dataset(
        self,
        project: ProjectRef,
        name: str,
        data_type: str,
        version: str = "1.0",
        **fields: Any,
    ) -> int:
        """Register (or find) dataset ``name``/``version`` of ``project``; returns its id.

        Fields: description, source_url, size_bytes, num_records. Re-registering returns the same id
        and updates the fields given.
        """
        dataset = dataset_input(name, data_type, version, fields)
        with self.write() as conn:
            return self._upsert_dataset(conn, self._project_id(conn, project), dataset)

    def get_dataset(self, dataset_id: int) -> dict[str, Any]:
        dataset_id = v.entity_id("dataset_id", dataset_id)
        with self.read() as conn:
            return dict(self._require(conn, datasets, "dataset_id", dataset_id, "dataset_id")._mapping)

    def list_datasets(self, project: ProjectRef | None = None) -> list[dict[str, Any]]:
        query = select(datasets, projects.c.name.label("project")).join(projects)
        query = _filter_project(query, project)
        with self.read() as conn:
            return rows(conn.execute(query.order_by(datasets.c.name, datasets.c.version)))

    # -- models -----------------------------------------------------------------------------------
    def register_model(
        self,
        project: ProjectRef,
        name: str,
        framework: str,
        version: str = "1.0",
        **fields: Any,
    ) -> int:
        """Register (or find) model ``name``/``version`` of ``project``; returns its id.

        Fields: architecture, description, model_path, model_type, input_schema, output_schema.
        """
        key_name = v.name("name", name, NAME_LEN)
        key_version = _version(version)
        tag_list = v.tag_names("tags", fields.pop("tags", None))
        allowed = {"architecture", "description", "model_path", "model_type", "input_schema", "output_schema"}
        _reject_unknown("model", fields, allowed)
        values: dict[str, Any] = {
            "framework": v.name("framework", framework, 100),
            "architecture": v.optional_text("architecture", fields.get("architecture"), NAME_LEN),
            "description": v.optional_text("description", fields.get("description")),
            "model_path": v.optional_text("model_path", fields.get("model_path"), 1024),
            "model_type": v.optional_text("model_type", fields.get("model_type"), 100),
            "input_schema": v.json_object("input_schema", fields.get("input_schema")),
            "output_schema": v.json_object("output_schema", fields.get("output_schema")),
        }
        with self.write() as conn:
            project_id = self._project_id(conn, project)
            model_id = self._get_or_create(
                conn,
                models,
                {"project_id": project_id, "name": key_name, "version": key_version},
                values,
                "model_id",
                index_elements=["project_id", "name", "version"],
            )
            if tag_list:
                self._tag(conn, "model", model_id, tag_list)
            return model_id

    def get_model(self, model_id: int) -> dict[str, Any]:
        model_id = v.entity_id("model_id", model_id)
        with self.read() as conn:
            return dict(self._require(conn, models, "model_id", model_id, "model_id")._mapping)

    def list_models(self, project: ProjectRef | None = None) -> list[dict[str, Any]]:
        query = select(models, projects.c.name.label("project")).join(projects)
        query = _filter_project(query, project)
        with self.read() as conn:
            return rows(conn.execute(query.order_by(models.c.name, models.c.version)))


def _filter_project(query: Any, project: ProjectRef | None) -> Any:
    if project is None:
        return query
    if isinstance(project, int):
        return query.where(projects.c.project_id == project)
    return query.where(projects.c.name == v.lookup_name("project", project))


def _reject_unknown(entity: str, fields: dict[str, Any], allowed: Set[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise MLTrackError(
            f"{entity} field", sorted(unknown)[0], f"unknown; allowed: {', '.join(sorted(allowed))}"
        )
