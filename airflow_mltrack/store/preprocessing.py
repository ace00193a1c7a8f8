"""Preprocessing jobs (seed 000): one input dataset turned into a derived dataset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import DateTime, bindparam, func, select, update

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import ProjectRef, StoreBase, rows, utcnow
from airflow_mltrack.store.catalog import DatasetInput, dataset_input
from airflow_mltrack.store.experiments import TERMINAL, airflow_link
from airflow_mltrack.store.models import JOB_STATUSES, NAME_LEN
from airflow_mltrack.store.tables import datasets
from airflow_mltrack.store.tables import preprocessing_jobs as jobs


class PreprocessingStore(StoreBase):
    """Record preprocessing jobs and read the dataset lineage they form."""

    def record_preprocessing_job(
        self,
        project: ProjectRef,
        name: str,
        input_dataset_id: int,
        output_dataset_id: int | None = None,
        parameters: Mapping[str, Any] | str | None = None,
        status: str = "Completed",
        output_dataset: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> int:
        """Record a job (idempotent on its Airflow link: dag_id, run_id, task_id, map_index, try_number).

        ``output_dataset`` (``name``, ``data_type`` and any :meth:`register_dataset` field) registers the
        derived dataset in the same transaction, instead of ``output_dataset_id``: a job refused for any
        reason leaves no dataset behind.
        """
        name_ = v.name("name", name, NAME_LEN)
        input_id = v.entity_id("input_dataset_id", input_dataset_id)
        output_id = None if output_dataset_id is None else v.entity_id("output_dataset_id", output_dataset_id)
        derived = _output_dataset(output_dataset, output_id)
        if output_id == input_id:
            raise MLTrackError("output_dataset_id", output_id, "must differ from input_dataset_id")
        unknown = set(fields) - {"dag_id", "run_id", "task_id", "map_index", "try_number", "error"}
        if unknown:
            raise MLTrackError("preprocessing job field", sorted(unknown)[0], "unknown")
        status = v.choice("status", status, JOB_STATUSES)
        link = airflow_link(fields)
        now = utcnow()
        values = {
            "name": name_,
            "input_dataset_id": input_id,
            "output_dataset_id": output_id,
            "parameters": self._parameters("parameters", parameters),
            "status": status,
            "error": self._error_text(fields.get("error")),
            "end_time": self._job_clock() if status in TERMINAL else None,
            **link,
        }
        if not self.is_postgres:  # PostgreSQL: the server default (its clock, as end_time's)
            values["start_time"] = now
        with self.write() as conn:
            project_id = self._project_id(conn, project)
            if derived is not None:
                output_id = values["output_dataset_id"] = self._upsert_dataset(conn, project_id, derived)
                if output_id == input_id:
                    raise MLTrackError("output_dataset", derived.name, "is the input dataset itself")
            for field, dataset_id in (("input_dataset_id", input_id), ("output_dataset_id", output_id)):
                if dataset_id is None:
                    continue
                owner = conn.execute(
                    select(datasets.c.project_id).where(datasets.c.dataset_id == dataset_id)
                ).scalar_one_or_none()
                if owner is None:
                    raise NotFoundError(field, dataset_id, "no dataset with this id")
                if owner != project_id:
                    raise self._foreign(conn, field, dataset_id, owner, project_id)
            values["project_id"] = project_id
            if link["dag_id"] is None:
                return int(conn.execute(jobs.insert().values(values).returning(jobs.c.job_id)).scalar_one())
            stmt = self._insert(jobs).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["dag_id", "run_id", "task_id", "map_index", "name"],
                index_where=jobs.c.dag_id.is_not(None),
                set_={
                    k: stmt.excluded[k]
                    for k in ("output_dataset_id", "parameters", "status", "error", "end_time", "try_number")
                }
                | {"updated_at": now},
            )
            return int(conn.execute(stmt.returning(jobs.c.job_id)).scalar_one())

    def get_preprocessing_job(self, job_id: int) -> dict[str, Any]:
        job_id = v.entity_id("job_id", job_id)
        with self.read() as conn:
            return dict(self._require(conn, jobs, "job_id", job_id, "job_id")._mapping)

    def set_preprocessing_status(self, job_id: int, status: str, error: str | None = None) -> None:
        """Set a job's status. Setting the status it has is a no-op that keeps its error and end time (the
        move that won); ``end_time`` comes from the clock ``start_time`` came from, as for experiments."""
        job_id = v.entity_id("job_id", job_id)
        status = v.choice("status", status, JOB_STATUSES)
        error = self._error_text(error)
        with self.write() as conn:
            current = conn.execute(
                select(jobs.c.status).where(jobs.c.job_id == job_id).with_for_update()
            ).scalar_one_or_none()
            if current is None:
                raise NotFoundError("job_id", job_id, "no preprocessing job with this id")
            if current == status:
                return
            conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id)
                .values(
                    status=status,
                    error=error,
                    end_time=self._job_clock(jobs.c.start_time) if status in TERMINAL else None,
                    updated_at=utcnow(),
                )
            )

    def _job_clock(self, start_time: Any = None) -> Any:
        """``end_time`` from the clock ``start_time`` comes from: PostgreSQL's ``now()`` (its default), else
        this process's (SQLite is embedded); never before ``start_time`` when that column is given."""
        if self.is_postgres:
            return func.now() if start_time is None else func.greatest(func.now(), start_time)
        now = bindparam("job_now", utcnow(), type_=DateTime(timezone=True))
        return now if start_time is None else func.max(start_time, now)

    def list_preprocessing_jobs(self, project: ProjectRef | None = None) -> list[dict[str, Any]]:
        query = select(jobs).order_by(jobs.c.job_id)
        with self.read() as conn:
            if project is not None:
                query = query.where(jobs.c.project_id == self._lookup_project_id(conn, project))
            return rows(conn.execute(query))


def _output_dataset(spec: Mapping[str, Any] | None, output_id: int | None) -> DatasetInput | None:
    """The validated ``output_dataset`` of a job (None when not given)."""
    if spec is None:
        return None
    if output_id is not None:
        raise MLTrackError("output_dataset", spec, "give output_dataset or output_dataset_id, not both")
    if not isinstance(spec, Mapping):
        raise MLTrackError("output_dataset", spec, f"must be a dict, not {type(spec).__name__}")
    fields = dict(spec)
    for key in ("name", "data_type"):
        if fields.get(key) is None:
            raise MLTrackError(f"output_dataset.{key}", None, "is required")
    return dataset_input(
        fields.pop("name"), fields.pop("data_type"), fields.pop("version", "1.0"), fields, "output_dataset."
    )
