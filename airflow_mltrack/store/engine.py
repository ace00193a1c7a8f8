"""Engines for the tracking store: one per URL per process, with the settings each dialect needs.

How a PostgreSQL engine keeps its connections (docs/scaling.md, "Connections"):

* ``mltrack_pool_mode=transaction`` in the URL's query (the ``pool_mode`` extra of an ``mltrack``
  connection; ours, removed before connecting): the server sits behind PgBouncer in transaction pooling
  mode. ``NullPool`` (PgBouncer is the pool: a connection is opened per transaction and closed after it)
  and no server-side prepared statements (psycopg's ``prepare_threshold=None``). Our SQL keeps no session
  state across transactions (see ``metric_writes`` and ``migrations``).
* an Airflow task's process (``get_engine(url, task_process=True)``, which the hook asks for there): a
  pool of one connection, closed by :func:`release_task_engines` when the task ends (the status
  listener's ``before_stopping``).
* any other process (scheduler, API server, CLI): a pool of 5 (+5 overflow) with a liveness ping.

Every PostgreSQL connection says ``application_name=mltrack`` (unless the URL names one), so its
sessions can be counted in ``pg_stat_activity``.
"""

from __future__ import annotations

import os
import threading

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool, QueuePool

from airflow_mltrack.errors import MLTrackError

#: URL query argument naming how the server's connections are pooled (removed before connecting).
POOL_MODE_ARG = "mltrack_pool_mode"
#: ``session``: a direct server or PgBouncer's session mode (the default); ``transaction``: PgBouncer's
#: transaction pooling mode (or any pooler that hands each transaction to any server connection).
POOL_MODES = ("session", "transaction")
APPLICATION_NAME = "mltrack"

_ENGINES: dict[tuple[int, str], Engine] = {}
_TASK_ENGINES: set[tuple[int, str]] = set()  # engines sized for a task (release_task_engines closes them)
_LOCK = threading.Lock()


def normalize_url(url: str) -> str:
    """Return ``url`` with PostgreSQL pointed at psycopg 3 (``postgresql+psycopg``)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def pool_mode(url: str) -> str:
    """The ``mltrack_pool_mode`` of ``url`` (default ``session``); an unknown mode raises MLTrackError."""
    mode = make_url(url).query.get(POOL_MODE_ARG, "session")
    if isinstance(mode, tuple) or mode not in POOL_MODES:
        raise MLTrackError(
            POOL_MODE_ARG,
            mode,
            f"expected one of {', '.join(POOL_MODES)} (PgBouncer's statement mode cannot run "
            "multi-statement transactions)",
        )
    return mode


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def get_engine(url: str, *, task_process: bool = False) -> Engine:
    """The process-wide engine for ``url`` (created once per process; safe after fork).

    ``task_process``: this process runs one Airflow task, so a pooled PostgreSQL engine created now keeps
    at most one connection (the first call for a URL decides; :func:`release_task_engines` starts over).
    """
    url = normalize_url(url)
    key = (os.getpid(), url)
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _create(url, task_process)
            _ENGINES[key] = engine
            if task_process and isinstance(engine.pool, QueuePool):
                _TASK_ENGINES.add(key)
        return engine


def _create(url: str, task_process: bool) -> Engine:
    mode = pool_mode(url)
    parsed = make_url(url).difference_update_query([POOL_MODE_ARG])
    if parsed.get_backend_name() == "sqlite":
        if mode != "session":
            raise MLTrackError(POOL_MODE_ARG, mode, "a pool mode applies to PostgreSQL only, not SQLite")
        if parsed.database and parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A black-holed tracking host must not stall a task or the status listener for minutes; a URL's own
    # ?connect_timeout= (and ?application_name=) wins over these defaults.
    connect_args: dict[str, object] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = 10
    if "application_name" not in parsed.query:
        connect_args["application_name"] = APPLICATION_NAME
    if mode == "transaction":
        # Each transaction may run on another server connection: psycopg must not prepare statements on
        # one (after 5 runs of a query, by default) and execute them on another.
        connect_args["prepare_threshold"] = None
        return create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
    if task_process:
        return create_engine(
            parsed, pool_pre_ping=True, pool_size=1, max_overflow=0, connect_args=connect_args
        )
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args)


def release_task_engines() -> int:
    """Close the connections of this process's engines sized for a task, and forget those engines (the
    next task in this process, e.g. under ``dag.test()``, starts afresh). Returns how many were closed."""
    pid = os.getpid()
    with _LOCK:
        keys = [key for key in _TASK_ENGINES if key[0] == pid]
        engines = [_ENGINES.pop(key) for key in keys if key in _ENGINES]
        _TASK_ENGINES.difference_update(keys)
    for engine in engines:
        engine.dispose()
    return len(engines)


def dispose_engines() -> None:
    """Close every cached engine of this process and its pooled connections (a task's end, tests). Engines
    inherited through a fork are dropped without closing the parent's connections."""
    with _LOCK:
        engines = list(_ENGINES.items())
        _ENGINES.clear()
        _TASK_ENGINES.clear()
    for (pid, _url), engine in engines:
        engine.dispose(close=pid == os.getpid())
