"""Airflow connection -> SQLAlchemy URL of the tracking store, per connection type.

``postgres`` connections (and ``mltrack`` ones with the PostgreSQL backend) get their URL from the
PostgreSQL provider's :class:`~airflow.providers.postgres.hooks.postgres.PostgresHook`, so the fields and
extras mean what they mean for every other Airflow task; the embedded SQLite default lives under
``$AIRFLOW_HOME``. :class:`~airflow_mltrack.hooks.mltrack.MLTrackHook` documents each type's extras
(see docs/architecture.md, "Connections").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk import Connection
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store.engine import POOL_MODE_ARG, POOL_MODES

if TYPE_CHECKING:
    from collections.abc import Set

EMBEDDED_DB_FILENAME = "mltrack.db"
POSTGRES_DRIVER = "postgresql+psycopg"

# Extras that configure the PostgresHook (not libpq parameters): the provider's own list, plus its
# ``__init__`` settings that a connection may carry and that libpq would refuse.
POSTGRES_HOOK_EXTRAS: frozenset[str] = frozenset(PostgresHook.ignored_extra_options) | {
    "enable_log_db_messages",
    "log_db_messages",
}
# Extras of an ``mltrack`` connection that choose the backend rather than being libpq parameters.
MLTRACK_EXTRAS = frozenset({"url", "backend", "path", "pool_mode"})


def airflow_home() -> str:
    """``$AIRFLOW_HOME`` as Airflow resolves it (default ``~/airflow``), read at call time."""
    try:
        from airflow.configuration import get_airflow_home
    except ImportError:  # a worker with only the task SDK installed
        home = os.environ.get("AIRFLOW_HOME", "~/airflow")
        while True:
            expanded = os.path.expanduser(os.path.expandvars(home))
            if expanded == home:
                return expanded
            home = expanded
    return get_airflow_home()


def embedded_db_path() -> str:
    """Path of the embedded SQLite tracking store: ``$AIRFLOW_HOME/mltrack.db``."""
    return os.path.join(airflow_home(), EMBEDDED_DB_FILENAME)


def embedded_url() -> URL:
    """SQLAlchemy URL of the embedded SQLite tracking store."""
    return URL.create("sqlite", database=embedded_db_path())


def connection_extras(conn: Connection) -> dict[str, Any]:
    """The connection's extra as a dict without empty values; ``extra__<conn_type>__<key>`` (the old form
    prefix) is read as ``key``."""
    extra = conn.extra_dejson or {}
    if not isinstance(extra, Mapping):
        raise MLTrackError("extra", conn.extra, f"connection {conn.conn_id!r}: extra must be a JSON object")
    prefix = f"extra__{conn.conn_type}__"
    out: dict[str, Any] = {}
    for key, value in extra.items():
        if key.startswith(prefix):
            out.setdefault(key[len(prefix) :], value)
        else:
            out[key] = value
    return {k: v for k, v in out.items() if v is not None and v != ""}


def _libpq_query(conn: Connection, extras: Mapping[str, Any], skip: Set[str]) -> dict[str, str]:
    """Extras that are libpq parameters (``sslmode``, ``options``, ``connect_timeout``, ...) merged with
    ``sqlalchemy_query`` (which wins), as URL query strings."""
    sqlalchemy_query = extras.get("sqlalchemy_query") or {}
    if not isinstance(sqlalchemy_query, Mapping):
        raise MLTrackError("extra.sqlalchemy_query", sqlalchemy_query, "must be a JSON object")
    query: dict[str, str] = {}
    for key, value in {**extras, **sqlalchemy_query}.items():
        if key in skip:
            continue
        if isinstance(value, bool):
            value = int(value)  # libpq flags (keepalives=1)
        if not isinstance(value, str | int | float):
            raise MLTrackError(
                f"extra.{key}",
                value,
                f"connection {conn.conn_id!r}: only string or number extras can be passed to PostgreSQL",
            )
        query[key] = str(value)
    return query


def _postgres_url(conn: Connection, extras: Mapping[str, Any], skip: Set[str]) -> URL:
    """The psycopg 3 URL that PostgresHook builds from the fields, with the libpq extras as query.

    PostgresHook passes the libpq extras to ``psycopg.connect`` rather than into its URL, so they go to
    it as ``sqlalchemy_query``: the tracking store connects through a SQLAlchemy engine.
    """
    if extras.get("iam"):
        # PostgresHook fetches a 15-minute token through the Amazon/Azure providers; the store keeps one
        # engine per URL for the life of the process, so the token would expire under it.
        raise MLTrackError(
            "extra.iam",
            extras["iam"],
            f"connection {conn.conn_id!r}: IAM token authentication is not supported by the tracking store; "
            "use a password or a client certificate (sslcert/sslkey extras)",
        )
    if not conn.host:
        raise MLTrackError("host", conn.host, f"connection {conn.conn_id!r}: a PostgreSQL host is required")
    fields = Connection(
        conn_id=conn.conn_id,
        conn_type="postgres",
        host=conn.host,
        login=conn.login or None,
        password=conn.password or None,
        schema=conn.schema or None,
        port=int(conn.port) if conn.port else None,
        extra=json.dumps({"sqlalchemy_query": _libpq_query(conn, extras, skip)}),
    )
    hook = PostgresHook(postgres_conn_id=conn.conn_id, connection=fields, sqlalchemy_scheme=POSTGRES_DRIVER)
    return hook.sqlalchemy_url


def _sqlite_url(conn: Connection, path: str | None) -> URL:
    if not path:
        raise MLTrackError("host", path, f"connection {conn.conn_id!r}: a SQLite file path is required")
    if path != ":memory:":
        path = os.path.expanduser(path)
        if not os.path.isabs(path):
            path = os.path.join(airflow_home(), path)
    return URL.create("sqlite", database=path)


def _url_from_extra(conn: Connection, raw: Any) -> URL:
    try:
        url = make_url(str(raw))
    except ArgumentError:
        # The message names the field, never the value: a URL may carry a password.
        raise MLTrackError(
            "extra.url", "<hidden>", f"connection {conn.conn_id!r}: not a SQLAlchemy URL"
        ) from None
    if url.get_backend_name() == "postgresql":
        # Credentials may live in the (masked) login/password fields rather than in the extra.
        if url.username is None and conn.login:
            url = url.set(username=conn.login)
        if url.password is None and conn.password:
            url = url.set(password=conn.password)
    return url


def _with_pool_mode(conn: Connection, url: URL, mode: Any) -> URL:
    """``url`` with the ``pool_mode`` extra as its ``mltrack_pool_mode`` query argument (PostgreSQL only)."""
    if mode is None:
        return url
    if mode not in POOL_MODES:
        raise MLTrackError(
            "extra.pool_mode",
            mode,
            f"connection {conn.conn_id!r}: expected {' or '.join(repr(m) for m in POOL_MODES)} "
            "(PgBouncer's statement mode cannot run the store's multi-statement transactions)",
        )
    if url.get_backend_name() != "postgresql":
        raise MLTrackError(
            "extra.pool_mode", mode, f"connection {conn.conn_id!r}: a pool mode applies to PostgreSQL only"
        )
    return url.update_query_dict({POOL_MODE_ARG: mode})


def url_from_connection(conn: Connection) -> URL:
    """The SQLAlchemy URL for a connection of type ``mltrack``, ``postgres`` or ``sqlite``.

    See :class:`~airflow_mltrack.hooks.mltrack.MLTrackHook` for how each type's fields are read.
    """
    conn_type = (conn.conn_type or "").lower()
    extras = connection_extras(conn)
    if conn_type == "mltrack":
        if extras.get("url"):
            url = _url_from_extra(conn, extras["url"])
        else:
            backend = str(extras.get("backend") or "postgresql").lower()
            if backend == "sqlite":
                url = _sqlite_url(conn, extras.get("path") or conn.host)
            elif backend in ("postgresql", "postgres"):
                url = _postgres_url(conn, extras, MLTRACK_EXTRAS | POSTGRES_HOOK_EXTRAS)
            else:
                raise MLTrackError(
                    "extra.backend",
                    backend,
                    f"connection {conn.conn_id!r}: expected 'postgresql' or 'sqlite'",
                )
        return _with_pool_mode(conn, url, extras.get("pool_mode"))
    if conn_type in ("postgres", "postgresql"):
        scheme = extras.get("sqlalchemy_scheme")
        if scheme and scheme not in ("postgresql", POSTGRES_DRIVER):
            raise MLTrackError(
                "extra.sqlalchemy_scheme",
                scheme,
                f"connection {conn.conn_id!r}: the tracking store uses {POSTGRES_DRIVER} (psycopg 3)",
            )
        return _postgres_url(conn, extras, POSTGRES_HOOK_EXTRAS)
    if conn_type == "sqlite":
        return _sqlite_url(conn, conn.host or conn.schema)
    raise MLTrackError(
        "conn_type",
        conn.conn_type,
        f"connection {conn.conn_id!r}: the tracking store needs a connection of type "
        "'mltrack', 'postgres' or 'sqlite'",
    )
