"""Alembic environment for the airflow-mltrack tracking store.

The connection comes from ``config.attributes["connection"]`` when a caller (``store.migrations`` or a
test) hands one over; otherwise from ``sqlalchemy.url`` in the config. Offline (``--sql``) mode renders
the DDL for the configured URL. The version table is ``mltrack_alembic_version`` so the tracking store can
share a database with Airflow's own ``alembic_version``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from airflow_mltrack.store.models import Base

VERSION_TABLE = "mltrack_alembic_version"

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs) -> None:  # noqa: ANN003
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    _configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url is not None and url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    # SQLite batch mode rebuilds a table (copy, DROP, rename): with foreign_keys=ON (our engines turn it on)
    # the DROP would fire ON DELETE CASCADE on the children. The pragma only takes effect outside a
    # transaction, so it is switched off before the migration transaction and back on after it.
    toggle_fks = sqlite and not connection.in_transaction()
    if toggle_fks:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        _configure(connection=connection, render_as_batch=sqlite)
        with context.begin_transaction():
            context.run_migrations()
        if toggle_fks and connection.in_transaction():
            connection.commit()
    finally:
        if toggle_fks:
            if connection.in_transaction():
                connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        if isinstance(connection, Connection):
            _run_with(connection)
        else:  # an Engine
            with connection.connect() as conn:
                _run_with(conn)
                conn.commit()
        return

    from airflow_mltrack.store.engine import get_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: nothing to migrate")
    with get_engine(url).connect() as conn:
        _run_with(conn)
        conn.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
