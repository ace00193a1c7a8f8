"""What every part of the TrackingStore shares: the engine, transactions, the revision gate, upserts."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, ProgrammingError

from airflow_mltrack.errors import MLTrackError, NotFoundError, SchemaOutOfDateError

_CHECKED_REVISIONS: set[str] = set()
_CHECK_LOCK = threading.Lock()

# Constraint names -> the field a user should fix when that constraint refuses a write.
_CONSTRAINT_FIELDS = {
    "fk_experiment_model": "model_id",
    "fk_experiment_dataset": "dataset_id",
    "fk_metric_experiment": "experiment_id",
    "fk_endpoint_model_model": "model_id",
    "fk_prepjob_input_dataset": "input_dataset_id",
    "fk_prepjob_output_dataset": "output_dataset_id",
}


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads, in autocommit: no BEGIN and ROLLBACK round trips around the SELECTs (each
    statement still sees one consistent snapshot)."""
    with engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StoreBase:
    """Engine, dialect and transaction plumbing for the entity mixins of TrackingStore."""

    def __init__(self, engine: Engine, *, check_revision: bool = True) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._check_revision = check_revision

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    # -- transactions -------------------------------------------------------------------------------
    @contextmanager
    def _write(self, **known: Any) -> Iterator[Connection]:
        """One transaction for one logical write; integrity errors become MLTrackError.

        ``known`` maps field names to the values the caller wrote, to name them in errors.
        """
        self._ensure_current_revision()
        try:
            with self.engine.begin() as conn:
                yield conn
        except (IntegrityError, psycopg.IntegrityError) as exc:  # the latter from raw COPY cursors
            error = _integrity_error(exc, known)
            # A row that does not exist is the caller's mistake: no database traceback before the message.
            raise error from (None if isinstance(error, NotFoundError) else exc)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with read_connection(self.engine) as conn:
            yield conn

    def check_ready(self) -> None:
        """Connect and check the schema revision, raising as the first write would (an unreachable
        database, SchemaOutOfDateError): for callers that want to know before long work."""
        self._ensure_current_revision()
        with self._read() as conn:
            conn.exec_driver_sql("SELECT 1")

    def _ensure_current_revision(self) -> None:
        if not self._check_revision:
            return
        key = self.engine.url.render_as_string(hide_password=False)
        if key in _CHECKED_REVISIONS:
            return
        with _CHECK_LOCK:
            if key in _CHECKED_REVISIONS:
                return
            from airflow_mltrack.store import migrations

            try:
                current = migrations.current_revision(self.engine)
            except ProgrammingError:  # a database that refuses the query; one that is down raises as it is
                current = None
            head = migrations.head_revision()
            if current != head:
                raise SchemaOutOfDateError(
                    "database revision",
                    current,
                    f"the tracking database is not at revision {head}: run `mltrack db upgrade`"
                    f" (url {self.engine.url.render_as_string(hide_password=True)})",
                )
            _CHECKED_REVISIONS.add(key)

    @staticmethod
    def _foreign(conn: Connection, field: str, value: Any, owner_id: int, project_id: int) -> MLTrackError:
        """The error for ``field`` (a model or dataset id) that belongs to project ``owner_id``, not to
        ``project_id``: both projects named, so the user sees which (issue 11, item 13)."""
        from airflow_mltrack.store import tables

        names = dict(
            conn.execute(
                select(tables.projects.c.project_id, tables.projects.c.name).where(
                    tables.projects.c.project_id.in_((owner_id, project_id))
                )
            ).all()
        )
        return MLTrackError(
            field,
            value,
            f"belongs to project {names.get(owner_id)!r}, not to {names.get(project_id)!r}",
        )

    # -- dialect-aware statements ---------------------------------------------------------------
    def _insert(self, table: Table):  # noqa: ANN202 - dialect-specific Insert
        module = postgresql if self.is_postgres else sqlite
        return module.insert(table)

    def _get_or_create(
        self,
        conn: Connection,
        table: Table,
        key: Mapping[str, Any],
        fields: Mapping[str, Any],
        id_column: str,
        *,
        index_elements: Sequence[str],
        index_where: Any = None,
        update_fields: bool = True,
    ) -> int:
        """Insert ``key`` + ``fields`` or find the row with ``key``; given fields update the row.

        One statement when the row is new; one more (a SELECT) when it exists and nothing changed.
        Safe under concurrency: the unique index decides, never a read-then-insert race.
        """
        values = {**key, **fields}
        stmt = self._insert(table).values(values)
        changed = {k: v for k, v in fields.items() if v is not None} if update_fields else {}
        if changed:
            col = table.c
            differs = None
            for k in changed:
                cond = col[k].is_distinct_from(stmt.excluded[k])
                differs = cond if differs is None else differs | cond
            stmt = stmt.on_conflict_do_update(
                index_elements=list(index_elements),
                index_where=index_where,
                set_={k: stmt.excluded[k] for k in changed} | _touch(table),
                where=differs,
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(index_elements), index_where=index_where)
        row = conn.execute(stmt.returning(table.c[id_column])).first()
        if row is not None:
            return int(row[0])
        query = select(table.c[id_column])
        for k, v in key.items():
            query = query.where(table.c[k] == v)
        if index_where is not None:
            query = query.where(index_where)
        return int(conn.execute(query).scalar_one())

    @staticmethod
    def _require(conn: Connection, table: Table, id_column: str, value: int, field: str) -> Any:
        row = conn.execute(select(table).where(table.c[id_column] == value)).first()
        if row is None:
            raise NotFoundError(field, value, f"no {table.name[:-1].replace('_', ' ')} with this id")
        return row


def _touch(table: Table) -> dict[str, Any]:
    return {"updated_at": utcnow()} if "updated_at" in table.c else {}


def _integrity_error(exc: IntegrityError | psycopg.IntegrityError, known: Mapping[str, Any]) -> MLTrackError:
    orig = exc.orig if isinstance(exc, IntegrityError) else exc
    text = str(orig)
    constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
    for name, field in _CONSTRAINT_FIELDS.items():
        if constraint == name or name in text:
            value = known.get(field, _param(exc, field))
            return NotFoundError(field, value, "refers to a row that does not exist")
    if "FOREIGN KEY" in text:  # SQLite does not name the constraint
        return MLTrackError("foreign key", None, f"refers to a row that does not exist ({text})")
    return MLTrackError(constraint or "row", None, f"refused by the database: {text.splitlines()[0]}")


def _param(exc: IntegrityError | psycopg.IntegrityError, field: str) -> Any:
    params = getattr(exc, "params", None)
    if isinstance(params, Mapping):
        return params.get(field)
    return None


def rows(result: Any) -> list[dict[str, Any]]:
    """Result rows as plain dicts."""
    return [dict(r._mapping) for r in result]
