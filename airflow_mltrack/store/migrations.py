"""Alembic, driven from code: upgrade, downgrade, current/head revision and drift against the models.

No ``alembic.ini`` is needed: :func:`alembic_config` builds the configuration in memory, pointing at the
``migrations`` directory shipped in the wheel (``airflow_mltrack/migrations``) or, in a source checkout, the
top-level ``migrations`` directory. Our version table is ``mltrack_alembic_version``, so the tracking store
can live in the same database as Airflow's metadata (whose version table is ``alembic_version``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.engine import make_url

from airflow_mltrack.store.engine import get_engine

VERSION_TABLE = "mltrack_alembic_version"

__all__ = [
    "VERSION_TABLE",
    "alembic_config",
    "check_drift",
    "current_revision",
    "downgrade",
    "ensure_head",
    "head_revision",
    "migration_lock",
    "migrations_dir",
    "upgrade",
]


def migrations_dir() -> Path:
    """The Alembic script directory: packaged copy if installed from a wheel, else ``<repo>/migrations``."""
    package_dir = Path(__file__).resolve().parent.parent / "migrations"
    if (package_dir / "env.py").is_file():
        return package_dir
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str | Engine | Connection | None = None) -> Config:
    """An in-memory Alembic config for our migrations.

    ``url`` may be a SQLAlchemy URL (env.py then uses the cached engine for it) or an Engine/Connection
    (handed to env.py through ``config.attributes["connection"]``).
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_table", VERSION_TABLE)
    if isinstance(url, Engine | Connection):
        cfg.attributes["connection"] = url
    elif url is not None:
        # ConfigParser interpolates '%': a URL-encoded password must survive it.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_PROCESS_LOCK = threading.RLock()


def _sqlite_file(target: str | Engine) -> str | None:
    """The database file of a SQLite ``target``; None for PostgreSQL and in-memory SQLite."""
    url = make_url(target) if isinstance(target, str) else target.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):  # a URI filename: its path part
        return url.database[5:].split("?", 1)[0] or None
    return url.database


#: Key of the PostgreSQL advisory lock held while our migrations run ("mltrack" in ASCII).
_PG_LOCK_KEY = 0x6D6C747261636B


@contextmanager
def migration_lock(target: str | Engine | Connection) -> Iterator[Connection | None]:
    """Held around "check the revision, upgrade": one migration of a store at a time, across processes
    and threads. SQLite: an exclusive ``flock`` on the sibling file ``<database>.migrate.lock``;
    PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``), taken first in a transaction
    that is yielded for the migration to run in, and released by its commit or rollback. No session-level
    lock outlives the transaction, so this also works behind PgBouncer's transaction pooling (where a
    session lock would stay with whichever server connection took it).

    Parallel tasks that use the embedded default first all find a fresh file: the first one migrates it
    and the others wait, then find it at head. So do parallel ``mltrack db upgrade`` runs on one database.
    A Connection handed in by the caller is used as it is (the caller serializes). Yields the locked
    Connection on PostgreSQL, else None.
    """
    with _PROCESS_LOCK:
        if isinstance(target, Connection):
            yield None
            return
        engine = get_engine(target) if isinstance(target, str) else target
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn, conn.begin():
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
                yield conn
            return
        path = _sqlite_file(target)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: one process at a time is the user's job
            path = None
        if path is None:
            yield None
            return
        lock_path = f"{os.path.abspath(path)}.migrate.lock"
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        with open(lock_path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield None
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def upgrade(url: str | Engine | Connection, revision: str = "head") -> None:
    """Upgrade the store at ``url`` to ``revision`` (default: the newest)."""
    with migration_lock(url) as locked:
        command.upgrade(alembic_config(locked or url), revision)


def ensure_head(url: str) -> None:
    """Upgrade the store at ``url`` to the newest revision unless it is there already (the embedded
    default's first use). Concurrent callers on one database wait for the first one's upgrade."""
    with migration_lock(url) as locked:
        target = locked or url
        if current_revision(target) != head_revision():
            command.upgrade(alembic_config(target), "head")


def downgrade(url: str | Engine | Connection, revision: str) -> None:
    """Downgrade the store at ``url`` to ``revision`` (``base`` drops everything; ``-1`` one step)."""
    with migration_lock(url) as locked:
        command.downgrade(alembic_config(locked or url), revision)


def _engine(url_or_engine: str | Engine) -> Engine:
    return get_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine


def current_revision(url_or_engine: str | Engine | Connection) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    if isinstance(url_or_engine, Connection):
        context = MigrationContext.configure(url_or_engine, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
    with _engine(url_or_engine).connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


@functools.cache
def head_revision() -> str:
    """The newest revision shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError(f"no Alembic revisions found in {migrations_dir()}")
    return head


# ---------------------------------------------------------------------------------------------- drift


def _include_object_for(dialect: str) -> Any:
    """Alembic's ``include_object``: skip our version table, and indexes the models keep for other dialects
    (``Index(..., info={"dialects": (...)})``)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:  # noqa: ARG001
        if type_ == "table" and name == VERSION_TABLE:
            return False
        if type_ == "index":
            model = compare_to if reflected else obj
            dialects = getattr(model, "info", {}).get("dialects") if model is not None else None
            if dialects and dialect not in dialects:
                return False
        return True

    return include


def _nullable_here(diff: Any, metadata: Any, dialect: str) -> bool:
    """A column the models keep NOT NULL but nullable on this dialect (``info={"nullable_on": (...)}``), found
    nullable in the database: not drift."""
    if not isinstance(diff, tuple) or diff[0] != "modify_nullable":
        return False
    _, _, table, column, _, db_nullable, _model_nullable = diff
    model = metadata.tables.get(table)
    info = model.c[column].info if model is not None and column in model.c else {}
    return bool(db_nullable) and dialect in info.get("nullable_on", ())


def _type_str(type_: Any, dialect: Any) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a reflected NullType or similar
        return repr(type_)


def _default_str(default: Any) -> str:
    if default is None:
        return "none"
    arg = getattr(default, "arg", default)
    if isinstance(arg, str) and default is not arg:  # a model's plain-string server_default
        return f"'{arg}'"
    return str(getattr(arg, "text", arg))


def _describe(diff: tuple, dialect: Any) -> str:
    kind = diff[0]
    if kind == "add_table":
        return f"missing table {diff[1].name}"
    if kind == "remove_table":
        return f"unexpected table {diff[1].name} (not in models)"
    if kind == "add_column":
        return f"missing column {diff[2]}.{diff[3].name}"
    if kind == "remove_column":
        return f"unexpected column {diff[2]}.{diff[3].name} (not in models)"
    if kind in ("add_index", "remove_index"):
        index = diff[1]
        what = "missing" if kind == "add_index" else "unexpected"
        cols = ", ".join(c.name for c in index.columns) or str(index.expressions)
        tail = "" if kind == "add_index" else " (not in models)"
        return f"{what} index {index.name} on {index.table.name} ({cols}){tail}"
    if kind in ("add_constraint", "remove_constraint"):
        cons = diff[1]
        what = "missing" if kind == "add_constraint" else "unexpected"
        cols = ", ".join(c.name for c in cons.columns)
        tail = "" if kind == "add_constraint" else " (not in models)"
        return f"{what} unique constraint {cons.name} on {cons.table.name} ({cols}){tail}"
    if kind in ("add_fk", "remove_fk"):
        fk = diff[1]
        what = "missing" if kind == "add_fk" else "unexpected"
        cols = ", ".join(fk.column_keys)
        target = fk.elements[0].target_fullname.rsplit(".", 1)[0] if fk.elements else "?"
        tail = "" if kind == "add_fk" else " (not in models)"
        ondelete = f" ON DELETE {fk.ondelete}" if fk.ondelete else ""
        return f"{what} foreign key {fk.name} on {fk.parent.name} ({cols}) -> {target}{ondelete}{tail}"
    if kind == "modify_type":
        _, _, table, column, _, db_type, model_type = diff
        return (
            f"type of {table}.{column}: {_type_str(model_type, dialect)} in models, "
            f"{_type_str(db_type, dialect)} in database"
        )
    if kind == "modify_nullable":
        _, _, table, column, _, db_nullable, model_nullable = diff
        word = {True: "NULL", False: "NOT NULL"}
        return f"nullability of {table}.{column}: {word[model_nullable]} in models, {word[db_nullable]} in database"
    if kind == "modify_default":
        _, _, table, column, _, db_default, model_default = diff
        return (
            f"server default of {table}.{column}: {_default_str(model_default)} in models, "
            f"{_default_str(db_default)} in database"
        )
    return f"{kind}: {diff[1:]}"


def _flatten(diffs: list) -> list[tuple]:
    out: list[tuple] = []
    for diff in diffs:
        if isinstance(diff, list):  # column modifications come grouped per column
            out.extend(diff)
        else:
            out.append(diff)
    return out


def _normalize_predicate(predicate: Any) -> str:
    text_ = str(getattr(predicate, "text", predicate))
    return re.sub(r"[\s()]+", " ", text_).strip().lower()


def _predicate_drift(conn: Connection, metadata: Any) -> list[str]:
    """Partial-index predicates (``WHERE ...``), which Alembic's comparison does not look at."""
    dialect = conn.dialect.name
    key = f"{dialect}_where"
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    lines: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        live = {ix["name"]: ix for ix in inspector.get_indexes(table.name)}
        for index in table.indexes:
            reflected = live.get(index.name)
            if reflected is None:
                continue  # reported by Alembic as a missing index
            model_where = (
                index.dialect_options[dialect].get("where") if dialect in ("postgresql", "sqlite") else None
            )
            db_where = reflected.get("dialect_options", {}).get(key)
            model_norm = _normalize_predicate(model_where) if model_where is not None else ""
            db_norm = _normalize_predicate(db_where) if db_where is not None else ""
            if model_norm != db_norm:
                lines.append(
                    f"predicate of index {index.name} on {table.name}: "
                    f"{'WHERE ' + model_norm if model_norm else 'none'} in models, "
                    f"{'WHERE ' + db_norm if db_norm else 'none'} in database"
                )
    return lines


def check_drift(url: str | Engine) -> list[str]:
    """One readable line per difference between the live database and the models; [] when in sync.

    Compared: tables, columns, types, nullability, server defaults, indexes (with partial-index
    predicates), unique constraints (with PostgreSQL's NULLS NOT DISTINCT) and foreign keys (with ON
    DELETE). Not compared: CHECK constraints and triggers (Alembic does not reflect them).
    """
    from airflow_mltrack.store.models import Base

    engine = _engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "compare_server_default": True,
                "include_object": _include_object_for(conn.dialect.name),
            },
        )
        # Alembic logs every difference it detects at INFO; the lines below are the report.
        quiet = logging.getLogger("alembic.autogenerate")
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            found = _flatten(compare_metadata(context, Base.metadata))
        finally:
            quiet.setLevel(level)
        diffs = [diff for diff in found if not _nullable_here(diff, Base.metadata, conn.dialect.name)]
        lines = [_describe(diff, conn.dialect) for diff in diffs]
        lines += _predicate_drift(conn, Base.metadata)
        return sorted(lines)
