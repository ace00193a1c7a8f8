"""Experiments: creation (idempotent on the Airflow link), status moves, hyperparameters, reads."""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, DateTime, and_, bindparam, case, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB

from airflow_mltrack.errors import MLTrackError, NotFoundError
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import ProjectRef, StoreBase, rows, utcnow
from airflow_mltrack.store.membership import link_of, record_member
from airflow_mltrack.store.models import AIRFLOW_ID_LEN, EXPERIMENT_STATUSES, NAME_LEN
from airflow_mltrack.store.records import ExperimentRow
from airflow_mltrack.store.tables import datasets, experiments, models, projects, tag_assignments
from airflow_mltrack.store.tables import tags as tags_t
from airflow_mltrack.store.tags import KEEP, EditConflictError, Keep, as_utc, check_edit, drop_tags

# Allowed status moves (docs/status.md). Setting the current status again is a no-op (retries do it).
TRANSITIONS: dict[str, frozenset[str]] = {
    "Pending": frozenset({"Running", "Cancelled"}),
    "Running": frozenset({"Completed", "Failed", "Cancelled"}),
    "Failed": frozenset({"Running"}),
    "Completed": frozenset(),
    "Cancelled": frozenset(),
}
TERMINAL = frozenset({"Completed", "Failed", "Cancelled"})
# Statuses whose move keeps the reason given with it in ``error`` (Failed: the error; Cancelled: why).
WITH_REASON = frozenset({"Failed", "Cancelled"})
_LINK_FIELDS = ("dag_id", "run_id", "task_id", "map_index", "try_number")
_EXPERIMENT_FIELDS = {"description", "code_version", "notes", "status", "start_time", *_LINK_FIELDS}


def airflow_link(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validated Airflow link columns from ``fields`` (map_index -1 when a dag_id is given)."""
    link: dict[str, Any] = {}
    for key in ("dag_id", "run_id", "task_id"):
        link[key] = v.airflow_id(key, fields.get(key), AIRFLOW_ID_LEN)
    link["map_index"] = v.integer("map_index", fields.get("map_index"), minimum=-1, required=False)
    link["try_number"] = v.integer("try_number", fields.get("try_number"), minimum=0, required=False)
    if link["dag_id"] is not None:
        for key in ("run_id", "task_id"):
            if link[key] is None:
                raise MLTrackError(key, None, "is required when dag_id is given")
        if link["map_index"] is None:
            link["map_index"] = -1
    return link


class ExperimentStore(StoreBase):
    """Experiments and their lifecycle: creation, status moves, hyperparameters, reads."""

    def _now_column(self) -> Any:
        """A timestamp for ``start_time``/``end_time`` from the one clock both use: PostgreSQL's (its
        ``now()``, as the ``start_time`` default), or on SQLite (embedded: same machine) this process's
        with microseconds; never before the row's ``start_time``, so ``ck_experiments_times`` holds."""
        if self.is_postgres:
            return func.greatest(func.now(), experiments.c.start_time)
        now = bindparam("now_", utcnow(), type_=DateTime(timezone=True))
        return func.max(experiments.c.start_time, now)

    def create_experiment(
        self,
        project: ProjectRef,
        name: str,
        model_id: int,
        dataset_id: int,
        hyperparameters: Mapping[str, Any] | str | None = None,
        **fields: Any,
    ) -> int:
        """Create an experiment, or find the one the same Airflow task instance created before.

        Fields: description, code_version, notes, status (default Pending), tags, start_time (a datetime
        the client measured, MLflow's ``create_run(start_time=)``; default: the database clock), and the
        Airflow link dag_id, run_id, task_id, map_index, try_number. With a dag_id the call is idempotent:
        retries and cleared tasks return the same id (hyperparameters are merged, try_number updated; the
        first start_time is kept).
        """
        name_ = v.name("name", name, NAME_LEN)
        model_id = v.entity_id("model_id", model_id)
        dataset_id = v.entity_id("dataset_id", dataset_id)
        params = self._parameters("hyperparameters", hyperparameters)
        tag_list = v.tag_names("tags", fields.pop("tags", None))
        unknown = set(fields) - _EXPERIMENT_FIELDS
        if unknown:
            raise MLTrackError(
                "experiment field",
                sorted(unknown)[0],
                f"unknown; allowed: {', '.join(sorted(_EXPERIMENT_FIELDS))}",
            )
        link = airflow_link(fields)
        values: dict[str, Any] = {
            "name": name_,
            "model_id": model_id,
            "dataset_id": dataset_id,
            "hyperparameters": params,
            "description": v.optional_text("description", fields.get("description")),
            "code_version": v.optional_text("code_version", fields.get("code_version"), NAME_LEN),
            "notes": v.optional_text("notes", fields.get("notes")),
            "status": v.choice("status", fields.get("status", "Pending"), EXPERIMENT_STATUSES),
            **link,
        }
        if fields.get("start_time") is not None:
            values["start_time"] = as_utc("start_time", fields["start_time"])
        elif not self.is_postgres:  # PostgreSQL: the server default (its clock, as end_time's)
            values["start_time"] = utcnow()
        creator = link_of(link) or self.task_link
        with self.write() as conn:
            values["project_id"] = self._parents(conn, project, model_id, dataset_id)
            if link["dag_id"] is None:
                experiment_id = int(
                    conn.execute(
                        experiments.insert().values(values).returning(experiments.c.experiment_id)
                    ).scalar_one()
                )
            else:
                experiment_id = self._upsert_linked(conn, values)
            if creator is not None:
                record_member(conn, self._insert, experiment_id, creator, "creator")
            if self.task_link is not None and creator is not None and self.task_link.key != creator.key:
                self._note_writer(conn, experiment_id, start=False)
            if tag_list:
                self._tag(conn, "experiment", experiment_id, tag_list)
            return experiment_id

    def _upsert_linked(self, conn: Connection, values: dict[str, Any]) -> int:
        stmt = self._insert(experiments).values(values)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["dag_id", "run_id", "task_id", "map_index", "name"],
            index_where=experiments.c.dag_id.is_not(None),
            set_={
                "try_number": excluded.try_number,
                "model_id": excluded.model_id,
                "dataset_id": excluded.dataset_id,
                "hyperparameters": self._merged_params(
                    experiments.c.hyperparameters, excluded.hyperparameters
                ),
                "updated_at": utcnow(),
            },
        )
        return int(conn.execute(stmt.returning(experiments.c.experiment_id)).scalar_one())

    def _merged_params(self, current: Any, new: Any) -> Any:
        if self.is_postgres:
            # No hyperparameters are stored as JSON null, not SQL NULL: 'null'::jsonb || '{...}' would be
            # an array, so both sides count as {} unless they are objects.
            def as_object(value: Any) -> Any:
                empty = cast(literal("{}"), JSONB)
                return case((func.jsonb_typeof(value) == "object", value), else_=empty)

            return as_object(current).op("||")(as_object(new))
        return func.json_patch(func.coalesce(current, "{}"), func.coalesce(new, "{}"))

    def _parents(self, conn: Connection, project: ProjectRef, model_id: int, dataset_id: int) -> int:
        """The project id of a new experiment, after checking its model and dataset belong to it.

        One SELECT in the usual case (project, model and dataset exist); a project named for the
        first time is then created.
        """
        by_id = isinstance(project, int) and not isinstance(project, bool)
        project_key = projects.c.project_id if by_id else projects.c.name
        if not by_id:
            project = v.name("project", project, NAME_LEN) or ""
        found = conn.execute(
            select(
                select(projects.c.project_id).where(project_key == project).scalar_subquery(),
                select(models.c.project_id).where(models.c.model_id == model_id).scalar_subquery(),
                select(datasets.c.project_id).where(datasets.c.dataset_id == dataset_id).scalar_subquery(),
            )
        ).one()
        project_id, model_project, dataset_project = found
        if model_project is None:
            raise NotFoundError("model_id", model_id, "no model with this id")
        if dataset_project is None:
            raise NotFoundError("dataset_id", dataset_id, "no dataset with this id")
        if project_id is None:
            project_id = self._project_id(conn, project)  # a new name is created; a missing id refused
        if model_project != project_id:
            raise self._foreign(conn, "model_id", model_id, model_project, project_id)
        if dataset_project != project_id:
            raise self._foreign(conn, "dataset_id", dataset_id, dataset_project, project_id)
        return int(project_id)

    # -- status -------------------------------------------------------------------------------------
    def set_status(
        self,
        experiment_id: int,
        status: str,
        error: str | None = None,
        end_time: dt.datetime | None = None,
    ) -> str:
        """Move an experiment to ``status`` (the ``TRANSITIONS`` rules); returns the previous status.

        ``error`` is kept with a move to Failed (the error) or Cancelled (the reason). Setting the status
        it already has is a no-op that keeps the stored error (the error of the move that won), so retried
        tasks and listeners are safe. ``end_time`` comes from the clock ``start_time`` came from, unless
        given (a time the client measured, MLflow's ``set_terminated(end_time=)``): then it must not be
        before ``start_time`` and is also written when the status already is that final one.
        """
        experiment_id = v.entity_id("experiment_id", experiment_id)
        status = v.choice("status", status, EXPERIMENT_STATUSES)
        error = self._error_text(error)
        given_end = None if end_time is None else as_utc("end_time", end_time)
        if given_end is not None and status not in TERMINAL:
            raise MLTrackError("end_time", end_time, f"only a final status has an end time, not {status}")
        allowed_from = [s for s, targets in TRANSITIONS.items() if status in targets]
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if status in TERMINAL:
            values["end_time"] = self._now_column() if given_end is None else given_end
            values["error"] = error if status in WITH_REASON else None
        else:  # Running (first start, or a cleared task re-running after Failed)
            values["end_time"] = None
            values["error"] = None
        with self.write() as conn:
            if given_end is not None:
                self._check_end(conn, experiment_id, given_end)
            if self.is_postgres:  # (SQLite's RETURNING cannot name the FROM subquery; it has one writer)
                # The usual move in one statement: lock the row, check the rule, update, return the old status.
                old = (
                    select(experiments.c.experiment_id, experiments.c.status.label("previous"))
                    .where(experiments.c.experiment_id == experiment_id)
                    .with_for_update()
                    .subquery("old")
                )
                previous = conn.execute(
                    update(experiments)
                    .where(
                        experiments.c.experiment_id == old.c.experiment_id,
                        experiments.c.status.in_(allowed_from),
                    )
                    .values(values)
                    .returning(old.c.previous)
                ).scalar_one_or_none()
                if previous is not None:
                    self._note_writer(conn, experiment_id, start=False)
                    return str(previous)
            current = conn.execute(
                select(experiments.c.status).where(experiments.c.experiment_id == experiment_id)
            ).scalar_one_or_none()
            if current is None:
                raise NotFoundError("experiment_id", experiment_id, "no experiment with this id")
            if current == status:  # a no-op: the stored error stays the one of the move that won
                if given_end is not None:  # ... but a given end time is the client's word
                    conn.execute(
                        update(experiments)
                        .where(experiments.c.experiment_id == experiment_id)
                        .values(end_time=given_end, updated_at=utcnow())
                    )
                self._note_writer(conn, experiment_id, start=False)
                return current
            result = conn.execute(
                update(experiments)
                .where(experiments.c.experiment_id == experiment_id, experiments.c.status.in_(allowed_from))
                .values(values)
            )
            if result.rowcount != 1:
                raise MLTrackError(
                    "status",
                    status,
                    f"experiment {experiment_id} is {current}; allowed next: "
                    f"{', '.join(sorted(TRANSITIONS[current])) or 'none (final)'}",
                )
            self._note_writer(conn, experiment_id, start=False)
            return current

    @staticmethod
    def _check_end(conn: Connection, experiment_id: int, end_time: dt.datetime) -> None:
        """A given end time must not be before the experiment's start (``ck_experiments_times``)."""
        start = conn.execute(
            select(experiments.c.start_time).where(experiments.c.experiment_id == experiment_id)
        ).scalar_one_or_none()
        if start is None:
            raise NotFoundError("experiment_id", experiment_id, "no experiment with this id")
        if end_time < as_utc("start_time", start):
            raise MLTrackError(
                "end_time", end_time.isoformat(), f"is before the experiment's start_time {start.isoformat()}"
            )

    def log_hyperparameters(self, experiment_id: int, hyperparameters: Mapping[str, Any] | str) -> None:
        """Merge ``hyperparameters`` into the experiment's (new keys win)."""
        experiment_id = v.entity_id("experiment_id", experiment_id)
        params = self._parameters("hyperparameters", hyperparameters) or {}
        new = cast(literal(params, JSONB), JSONB) if self.is_postgres else func.json(_json_text(params))
        with self.write() as conn:
            result = conn.execute(
                update(experiments)
                .where(experiments.c.experiment_id == experiment_id)
                .values(
                    hyperparameters=self._merged_params(experiments.c.hyperparameters, new),
                    updated_at=utcnow(),
                )
            )
            if result.rowcount != 1:
                raise NotFoundError("experiment_id", experiment_id, "no experiment with this id")
            self._note_writer(conn, experiment_id)

    def edit_experiment(
        self,
        experiment_id: int,
        *,
        notes: str | None | Keep = KEEP,
        add_tags: list[str] | tuple[str, ...] | str = (),
        remove_tags: list[str] | tuple[str, ...] | str = (),
        expected_updated_at: dt.datetime | str | None = None,
    ) -> ExperimentRow:
        """Replace the notes (None clears them), add and remove tags, in ONE transaction that also moves
        ``updated_at``; returns the experiment as :meth:`get_experiment` does.

        Every input is checked before anything is written. ``expected_updated_at``: the ``updated_at`` the
        edit was based on; if the experiment now has another, nothing is written (EditConflictError).
        """
        experiment_id = v.entity_id("experiment_id", experiment_id)
        values, add, remove, expected = check_edit(notes, add_tags, remove_tags, expected_updated_at)
        where = experiments.c.experiment_id == experiment_id
        with self.write() as conn:
            if not self.is_postgres:  # SQLite: take the write lock before reading (no FOR UPDATE)
                conn.execute(update(experiments).where(where).values(updated_at=experiments.c.updated_at))
            found = conn.execute(select(experiments.c.updated_at).where(where).with_for_update()).first()
            if found is None:
                raise NotFoundError("experiment_id", experiment_id, "no experiment with this id")
            if expected is not None and as_utc("updated_at", found.updated_at) != expected:
                raise EditConflictError(
                    "expected_updated_at",
                    expected_updated_at,
                    f"the experiment changed since (updated at {found.updated_at}); reload it and edit again",
                )
            # PostgreSQL: its clock (the one of created_at), strictly later than the last update.
            values["updated_at"] = (
                func.greatest(func.now(), experiments.c.updated_at + dt.timedelta(microseconds=1))
                if self.is_postgres
                else utcnow()
            )
            conn.execute(update(experiments).where(where).values(values))
            self._tag(conn, "experiment", experiment_id, add)
            drop_tags(conn, "experiment", experiment_id, remove)
            self._note_writer(conn, experiment_id, start=False)
            result = typing.cast(
                ExperimentRow, dict(conn.execute(self.experiment_query().where(where)).one()._mapping)
            )
            result["tags"] = self._tags_of(conn, "experiment", experiment_id)
            return result

    # -- reads --------------------------------------------------------------------------------------
    def get_experiment(self, experiment_id: int) -> ExperimentRow:
        """One experiment with its project, model and dataset names and its tags."""
        experiment_id = v.entity_id("experiment_id", experiment_id)
        with self.read() as conn:
            row = conn.execute(
                self.experiment_query().where(experiments.c.experiment_id == experiment_id)
            ).first()
            if row is None:
                raise NotFoundError("experiment_id", experiment_id, "no experiment with this id")
            result = typing.cast(ExperimentRow, dict(row._mapping))
            result["tags"] = self._tags_of(conn, "experiment", experiment_id)
            return result

    def find_experiments(
        self, *, dag_id: str, run_id: str | None = None, task_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Experiments created by a DAG (run / task)."""
        query = select(experiments).where(experiments.c.dag_id == dag_id)
        if run_id is not None:
            query = query.where(experiments.c.run_id == run_id)
        if task_id is not None:
            query = query.where(experiments.c.task_id == task_id)
        with self.read() as conn:
            return rows(conn.execute(query.order_by(experiments.c.experiment_id)))

    def list_experiments(
        self,
        project: ProjectRef | None = None,
        *,
        status: str | Iterable[str] | None = None,
        tag: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExperimentRow]:
        """Experiments, newest first, filtered by project, status, tag, hyperparameter values, DAG."""
        if not isinstance(project, int) or isinstance(project, bool):
            project = v.lookup_name("project", project)
        tag = v.lookup_name("tag", tag)
        dag_id, run_id = (v.filter_text(f, x) for f, x in (("dag_id", dag_id), ("run_id", run_id)))
        query = self.experiment_query()
        if project is not None:
            if isinstance(project, int):
                query = query.where(experiments.c.project_id == project)
            else:
                query = query.where(projects.c.name == project)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            query = query.where(
                experiments.c.status.in_([v.choice("status", s, EXPERIMENT_STATUSES) for s in statuses])
            )
        if tag is not None:
            query = query.where(
                experiments.c.experiment_id.in_(
                    select(tag_assignments.c.entity_id)
                    .join(tags_t, tags_t.c.tag_id == tag_assignments.c.tag_id)
                    .where(tag_assignments.c.entity_type == "experiment", tags_t.c.name == tag)
                )
            )
        if hyperparameters:
            query = query.where(self.params_match(v.json_object("hyperparameters", hyperparameters) or {}))
        if dag_id is not None:
            query = query.where(experiments.c.dag_id == dag_id)
        if run_id is not None:
            query = query.where(experiments.c.run_id == run_id)
        limit = v.integer("limit", limit, minimum=1) or 100
        offset = v.integer("offset", offset, minimum=0) or 0
        query = query.order_by(experiments.c.experiment_id.desc()).limit(min(limit, 10_000)).offset(offset)
        with self.read() as conn:
            return typing.cast("list[ExperimentRow]", rows(conn.execute(query)))

    def params_match(self, params: dict[str, Any]) -> Any:
        """A WHERE condition: the hyperparameters hold every key of ``params`` with that value."""
        column = experiments.c.hyperparameters
        if self.is_postgres:  # JSONB containment (a GIN index on hyperparameters is issue 6's work)
            return cast(column, JSONB).op("@>")(cast(literal(params, JSONB), JSONB))
        conditions = []
        for key, value in params.items():
            path = '$."' + key.replace('"', '\\"') + '"'
            if isinstance(value, dict | list):
                conditions.append(func.json_extract(column, path) == func.json(_json_text(value)))
            elif isinstance(value, bool):
                conditions.append(func.json_type(column, path) == ("true" if value else "false"))
            elif value is None:
                conditions.append(func.json_type(column, path) == "null")
            else:
                conditions.append(func.json_extract(column, path) == value)
        return and_(*conditions)


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)
