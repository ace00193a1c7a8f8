"""What every entity mixin of the TrackingStore shares: the engine, ``read()``/``write()``, the revision gate,
the redaction policy, dialect-aware filters and upserts, and the lookups two or more mixins need
(docs/architecture.md)."""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    and_,
    any_,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, ProgrammingError

from airflow_mltrack.errors import MLTrackError, NotFoundError, SchemaOutOfDateError
from airflow_mltrack.store import tables
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.membership import TaskLink, record_member
from airflow_mltrack.store.models import NAME_LEN
from airflow_mltrack.store.redaction import DEFAULT_POLICY, RedactionPolicy
from airflow_mltrack.vocabulary import mask_url

if TYPE_CHECKING:
    from airflow_mltrack.store.catalog import DatasetInput

#: A project by name or id.
ProjectRef = str | int

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
    """Engine, dialect, transactions, redaction and shared lookups for the entity mixins of TrackingStore.

    ``redaction``: the :class:`~airflow_mltrack.store.redaction.RedactionPolicy` applied to every write of
    hyperparameters, job parameters and error texts (default: ``DEFAULT_POLICY``, so a plain store hides
    secrets too). ``task_link``: the Airflow task instance this store writes for (the hook sets it inside
    a task); every write to an experiment then records that task instance as one of its writers.
    """

    task_link: TaskLink | None = None

    def __init__(
        self, engine: Engine, *, check_revision: bool = True, redaction: RedactionPolicy | None = None
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._check_revision = check_revision
        self.redaction = DEFAULT_POLICY if redaction is None else redaction
        self._reading: dict[int, Connection] = {}  # thread id -> the read connection it holds open

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    # -- transactions -------------------------------------------------------------------------------
    @contextmanager
    def write(self, **known: Any) -> Iterator[Connection]:
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
    def read(self) -> Iterator[Connection]:
        """A connection for reads (autocommit, see :func:`read_connection`). Inside another ``read()`` of
        this store in the same thread: that one, so a caller can make a request's several reads cost one
        pool checkout (and its ping) by holding a read around them."""
        thread = threading.get_ident()
        held = self._reading.get(thread)
        if held is not None:
            yield held
            return
        with read_connection(self.engine) as conn:
            self._reading[thread] = conn
            try:
                yield conn
            finally:  # by the id taken on entry: a generator may be resumed, and closed, in another thread
                self._reading.pop(thread, None)

    # -- dialect-aware filters ----------------------------------------------------------------------
    def finite(self, column: Any) -> Any:
        """Finite values only: a final value of NaN or +-Infinity is not ranked (leaderboard, the metric
        sort of the experiments list). PostgreSQL sorts NaN above Infinity; SQLite stores NaN as NULL
        (which no comparison passes; the text 'NaN' in databases written before)."""
        if self.is_postgres:
            return and_(
                column > literal_column("'-Infinity'::float8"), column < literal_column("'Infinity'::float8")
            )
        return and_(
            func.typeof(column) != "text", column > literal_column("-9e999"), column < literal_column("9e999")
        )

    def id_in(self, column: Any, ids: Sequence[int]) -> Any:
        """``column IN ids`` for a page of integer ids. On PostgreSQL ``= ANY(array)``: one parameter, so
        the statement's text is the same for any number of ids and psycopg parses and prepares it once (an
        IN of 100 parameters is a new, uncached 3 KB statement: 3 ms of client work per query, 1 ms so)."""
        if self.is_postgres:
            return column == any_(literal(list(ids), type_=postgresql.ARRAY(Integer)))
        return column.in_(list(ids))

    def non_finite(self, column: Any) -> Any:
        """NaN or +-Infinity, as an equality the (name, split, value) index serves (not ``NOT finite``,
        which reads every row of the key). SQLite: NaN is NULL, the infinities are +-9e999 (or old text)."""
        if self.is_postgres:
            return column.in_([literal_column(f"'{v}'::float8") for v in ("NaN", "Infinity", "-Infinity")])
        return or_(
            column.is_(None),
            column.in_([literal_column("9e999"), literal_column("-9e999")]),
            func.typeof(column) == "text",
        )

    def experiment_query(self) -> Any:
        """SELECT of experiments with their project, model and dataset names (add WHERE / ORDER BY)."""
        experiments, projects, models, datasets = (
            tables.experiments,
            tables.projects,
            tables.models,
            tables.datasets,
        )
        return (
            select(
                experiments,
                projects.c.name.label("project"),
                models.c.name.label("model_name"),
                models.c.version.label("model_version"),
                datasets.c.name.label("dataset_name"),
                datasets.c.version.label("dataset_version"),
            )
            .join(projects, projects.c.project_id == experiments.c.project_id)
            .join(models, models.c.model_id == experiments.c.model_id)
            .join(datasets, datasets.c.dataset_id == experiments.c.dataset_id)
        )

    # -- redaction: the one place each secret-bearing field is validated before a write ----------------
    def _parameters(self, field: str, value: Any) -> dict[str, Any] | None:
        """Hyperparameters or job parameters, secrets hidden by the store's policy, then validated (JSON text
        is parsed first, so a key given twice is refused as :func:`validation.json_object` refuses it)."""
        if isinstance(value, str):
            value = v.parse_json(field, value)
        return v.json_object(field, self.redaction.redact_json(value))

    def _error_text(self, value: Any) -> str | None:
        """An error text (a failed experiment's or job's, a cancel reason), secrets hidden, validated."""
        return v.error_text("error", self.redaction.redact_text(value))

    def check_ready(self) -> None:
        """Connect and check the schema revision, raising as the first write would (an unreachable
        database, SchemaOutOfDateError): for callers that want to know before long work."""
        self._ensure_current_revision()
        with self.read() as conn:
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
                    f" (url {mask_url(self.engine.url)})",
                )
            _CHECKED_REVISIONS.add(key)

    # -- lookups and writes shared by the mixins (inside the caller's transaction) ----------------------
    def _note_writer(self, conn: Connection, experiment_id: int, *, start: bool = True) -> None:
        """Record the current task instance (if any) as a writer of the experiment, in ``conn``'s
        transaction; ``start``: its first write moves a Pending experiment to Running."""
        if self.task_link is not None:
            record_member(conn, self._insert, experiment_id, self.task_link, "writer", start=start)

    def _project_id(self, conn: Connection, project: ProjectRef, fields: dict[str, Any] | None = None) -> int:
        """Resolve a project name (get-or-create) or id (must exist) inside a transaction."""
        if isinstance(project, int) and not isinstance(project, bool):
            self._require(conn, tables.projects, "project_id", project, "project")
            return project
        name_ = v.name("project", project, NAME_LEN)
        return self._get_or_create(
            conn, tables.projects, {"name": name_}, fields or {}, "project_id", index_elements=["name"]
        )

    @staticmethod
    def _lookup_project_id(conn: Connection, project: ProjectRef) -> int:
        """The id of an existing project (by name or id); NotFoundError otherwise."""
        projects = tables.projects
        column = projects.c.project_id if isinstance(project, int) else projects.c.name
        if not isinstance(project, int):
            project = v.lookup_name("project", project) or ""
        project_id = conn.execute(select(projects.c.project_id).where(column == project)).scalar_one_or_none()
        if project_id is None:
            raise NotFoundError("project", project, "no such project")
        return int(project_id)

    def _upsert_dataset(self, conn: Connection, project_id: int, dataset: DatasetInput) -> int:
        """Get-or-create a validated dataset (with its tags) inside the caller's transaction."""
        dataset_id = self._get_or_create(
            conn,
            tables.datasets,
            {"project_id": project_id, "name": dataset.name, "version": dataset.version},
            dataset.values,
            "dataset_id",
            index_elements=["project_id", "name", "version"],
        )
        if dataset.tags:
            self._tag(conn, "dataset", dataset_id, dataset.tags)
        return dataset_id

    def _tag(self, conn: Connection, entity_type: str, entity_id: int, names: list[str]) -> None:
        for name in names:
            tag_id = self._get_or_create(
                conn, tables.tags, {"name": name}, {}, "tag_id", index_elements=["name"]
            )
            conn.execute(
                self._insert(tables.tag_assignments)
                .values(tag_id=tag_id, entity_type=entity_type, entity_id=entity_id)
                .on_conflict_do_nothing()
            )

    @staticmethod
    def _tags_of(conn: Connection, entity_type: str, entity_id: int) -> list[str]:
        tags, assignments = tables.tags, tables.tag_assignments
        query = (
            select(tags.c.name)
            .join(assignments, assignments.c.tag_id == tags.c.tag_id)
            .where(assignments.c.entity_type == entity_type, assignments.c.entity_id == entity_id)
            .order_by(tags.c.name)
        )
        return list(conn.execute(query).scalars())

    @staticmethod
    def _foreign(conn: Connection, field: str, value: Any, owner_id: int, project_id: int) -> MLTrackError:
        """The error for ``field`` (a model or dataset id) that belongs to project ``owner_id``, not to
        ``project_id``: both projects named, so the user sees which (issue 11, item 13)."""
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
        for k, value in key.items():
            query = query.where(table.c[k] == value)
        if index_where is not None:
            query = query.where(index_where)
        return int(conn.execute(query).scalar_one())

    @staticmethod
    def _require(
        conn: Connection, table: Table, id_column: str, value: int, field: str, *, whole: bool = True
    ) -> Any:
        """The row (``whole=False``: only its id) or NotFoundError naming ``field``."""
        chosen = select(table) if whole else select(table.c[id_column])
        row = conn.execute(chosen.where(table.c[id_column] == value)).first()
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


def as_float(value: Any, *, null_is_nan: bool = False) -> Any:
    """A metric value read back as a float: SQLite hands back untyped window results, NULL for NaN (and the
    text 'NaN' in databases written before NaN was stored as NULL)."""
    if isinstance(value, str):
        return float(value)
    if value is None and null_is_nan:
        return math.nan
    return value


def float_rows(
    found: list[dict[str, Any]],
    keys: tuple[str, ...] = ("value", "min_value", "max_value"),
    *,
    null_is_nan: bool = False,
) -> list[dict[str, Any]]:
    """Metric values of ``found`` as floats; ``null_is_nan`` for columns where NULL stands for NaN
    (``metrics.value`` and the values of ``metric_latest``: never NULL otherwise)."""
    for row in found:
        for key in keys:
            if key in row:
                row[key] = as_float(row[key], null_is_nan=null_is_nan)
    return found
