"""MLTrackHook: an Airflow Connection -> a SQLAlchemy URL -> a process-wide engine -> a TrackingStore."""

from __future__ import annotations

import logging
import os
import sys
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, get_current_context
from airflow.sdk.exceptions import AirflowNotFoundException
from sqlalchemy.engine import URL, make_url

from airflow_mltrack.hooks.connection_urls import embedded_db_path, embedded_url, url_from_connection
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.engine import get_engine, normalize_url
from airflow_mltrack.store.membership import TaskLink
from airflow_mltrack.store.redaction import REDACTED, RedactionPolicy  # noqa: F401 - REDACTED re-exported
from airflow_mltrack.vocabulary import DEFAULT_CONN_ID, mask_password, mask_url

if TYPE_CHECKING:
    from airflow.sdk import Connection

log = logging.getLogger(__name__)

_logged_once: set[tuple[int, str, str]] = set()
_logged_once_lock = threading.Lock()


# -- secrets: the redaction policy the hook gives its stores ---------------------------------------------
try:  # Airflow 3.2+: the Task SDK's secrets masker (the one that filters task logs)
    from airflow.sdk._shared import secrets_masker as _masker
except ImportError:  # Airflow 3.1
    from airflow.sdk.execution_time import secrets_masker as _masker  # type: ignore[no-redef]

_policies: dict[str, RedactionPolicy] = {}


def redaction_policy() -> RedactionPolicy:
    """The :class:`~airflow_mltrack.store.redaction.RedactionPolicy` for Airflow: the store's sensitive names
    plus the admin's ``[core] sensitive_var_conn_names`` (read on each call), and Airflow's secrets masker
    (the secrets it was told about in this process: connection passwords a task fetched, masked
    Variables) for every string shown or written."""
    try:
        from airflow.sdk import conf
    except ImportError:  # pragma: no cover - older Task SDK
        from airflow.configuration import conf
    names = conf.get("core", "sensitive_var_conn_names", fallback="") or ""
    policy = _policies.get(names)
    if policy is None:
        policy = _policies[names] = RedactionPolicy.from_names(names, text_masker=_masker.redact)
    return policy


def redact_text(text: Any) -> Any:
    """Free text (an error message) with its secrets hidden by :func:`redaction_policy`."""
    return redaction_policy().redact_text(text)


def reveals_hidden(value: Any, name: str | None = None) -> bool:
    """True if a read filter on ``value`` (under key ``name``) would test a value the pages hide."""
    return redaction_policy().reveals_hidden(value, name)


def redact_secrets(value: Any, name: str | None = None) -> Any:
    """``value`` with everything under secret-looking keys replaced by ``***`` (strings, numbers,
    booleans; at any depth) and the secrets inside other strings masked (:func:`redaction_policy`)."""
    return redaction_policy().redact(value, name)


def _log_once(conn_id: str, message: str, *args: Any) -> None:
    """Log at INFO once per process for this connection id and message."""
    key = (os.getpid(), conn_id, message % args)
    with _logged_once_lock:
        if key in _logged_once:
            return
        _logged_once.add(key)
    log.info(message, *args)


def current_task_link() -> TaskLink | None:
    """The task instance running in this process (inside a task's execution), else None."""
    try:
        context = get_current_context()
    except RuntimeError:  # no task is executing here (a listener outside a task, the CLI, the UI)
        return None
    ti = context.get("ti")
    if ti is None or not getattr(ti, "dag_id", None):
        return None
    map_index = getattr(ti, "map_index", None)
    try_number = getattr(ti, "try_number", None)
    return TaskLink(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=-1 if map_index is None else int(map_index),
        try_number=try_number if isinstance(try_number, int) else None,
    )


def in_task_process() -> bool:
    """True in a process running an Airflow task: the Task SDK's task runner (a worker's child process,
    where the task and the status listener's task hooks run) or an in-process run (``dag.test()``). Airflow
    itself reads ``task_runner.SUPERVISOR_COMMS`` this way to know it runs in a task."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


class MLTrackHook(BaseHook):
    """The tracking store behind an Airflow connection.

    ``MLTrackHook(mltrack_conn_id="mltrack_default").get_store()`` returns a
    :class:`~airflow_mltrack.store.TrackingStore`; :attr:`sqlalchemy_url` is the URL it connects to. The
    connection may be of type ``mltrack``, ``postgres`` or ``sqlite`` (built by
    :mod:`airflow_mltrack.hooks.connection_urls`; see docs/architecture.md, "Connections").

    ``mltrack`` (this provider's type; its form is declared in ``provider_info.py``), read in this order:

    1. extra ``{"url": "<SQLAlchemy URL>"}``: used as given (``postgresql://`` is pointed at psycopg 3).
       For a PostgreSQL URL without credentials, the connection's Login and Password fields are added,
       so the password can stay in the masked Password field.
    2. extra ``{"backend": "sqlite", "path": "/data/mltrack.db"}``: a SQLite file (``path``, or else Host).
       A relative path is taken from ``$AIRFLOW_HOME``.
    3. otherwise (``backend`` absent or ``"postgresql"``): PostgreSQL, read exactly as a ``postgres``
       connection (below) from Host, Port, Login, Password and Database (the Schema field).

    ``postgres`` (the PostgreSQL provider's type): the URL is ``PostgresHook.sqlalchemy_url`` of the
    connection with the psycopg 3 driver, ``postgresql+psycopg://login:password@host:port/schema``.
    Its extras:

    - libpq parameters, passed to libpq as URL query arguments (as PostgresHook passes them to
      ``connect``): ``{"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "sslcert": "...",
      "sslkey": "..."}``, ``{"options": "-c search_path=mltrack"}``, ``{"connect_timeout": 10}``,
      ``{"application_name": "..."}``, ``{"keepalives": true}`` (booleans become ``1``/``0``). Only
      strings and numbers are accepted.
    - ``sqlalchemy_query``: a JSON object of more query arguments; it wins over a libpq extra of the
      same name.
    - ``sqlalchemy_scheme``: ``postgresql`` or ``postgresql+psycopg`` (both mean psycopg 3); any other
      driver is refused.
    - PostgresHook's own settings (``cursor``, ``aws_conn_id``, ``azure_conn_id``, ``redshift``,
      ``enable_log_db_messages``, ...) are ignored.
    - ``iam``: refused with a clear :class:`~airflow_mltrack.MLTrackError`. The token PostgresHook
      fetches expires after 15 minutes, while the store keeps one engine per process; use a password or
      a client certificate (``sslcert``/``sslkey``).

    ``sqlite``: Host is the database file path (as in Airflow's SQLite provider), relative to
    ``$AIRFLOW_HOME`` unless absolute.

    ``pool_mode`` (``mltrack`` connections to PostgreSQL, any of the three forms above): how the
    server's connections are pooled.

    - ``"session"`` (the default): a direct server, or PgBouncer in session pooling mode.
    - ``"transaction"``: PgBouncer in transaction pooling mode (``pool_mode = transaction``), where each
      transaction may run on another server connection. The store then opens a connection per transaction
      and closes it after (SQLAlchemy's ``NullPool``: PgBouncer is the pool), never prepares statements on
      the server (psycopg's ``prepare_threshold=None``), and relies on no session state (its advisory
      lock and temporary table live inside one transaction). ``mltrack db upgrade`` works through it too.
      In a URL (``url`` extra, ``mltrack db upgrade --url``) the same setting is the query argument
      ``?mltrack_pool_mode=transaction``. Not auto-detected: a pooler looks like a server to its clients.
    - anything else (PgBouncer's ``statement`` mode cannot run multi-statement transactions) is refused.

    Connections per process (``session`` mode): a task's process (a worker's task runner, ``dag.test()``)
    keeps at most one connection, from its first write until the task ends (the status listener's
    ``before_stopping`` closes it); other processes (scheduler, API server, CLI) keep a pool of 5 (+5).
    Every connection says ``application_name=mltrack`` unless the connection sets ``application_name``.

    Extras in the old form ``extra__<conn_type>__<key>`` are read as ``<key>``.

    No connection with that id configured (neither in the metadata database, nor a secrets backend, nor an
    ``AIRFLOW_CONN_<ID>`` environment variable): the embedded SQLite file ``$AIRFLOW_HOME/mltrack.db``,
    created and migrated to the newest schema on first use, and said once per process in the log.

    URLs are only ever logged with the password hidden.

    :param mltrack_conn_id: the Airflow connection id (default ``mltrack_default``).
    """

    conn_name_attr = "mltrack_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "mltrack"
    hook_name = "ML Tracking"

    def __init__(self, mltrack_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mltrack_conn_id = mltrack_conn_id

    @cached_property
    def connection(self) -> Connection | None:
        """The Airflow connection ``mltrack_conn_id``; None when none is configured (embedded default)."""
        try:
            return self.get_connection(self.mltrack_conn_id)
        except AirflowNotFoundException:
            return None

    @cached_property
    def sqlalchemy_url(self) -> URL:
        """The SQLAlchemy URL of the tracking store (password included: log only its ``mask_url``)."""
        conn_id = self.mltrack_conn_id
        conn = self.connection
        if conn is None:
            _log_once(conn_id, "no connection '%s': using embedded SQLite at %s", conn_id, embedded_db_path())
            return embedded_url()
        url = make_url(normalize_url(url_from_connection(conn).render_as_string(hide_password=False)))
        log.debug("connection '%s' (%s) -> %s", conn_id, conn.conn_type, mask_url(url))
        return url

    @property
    def is_embedded(self) -> bool:
        """True when no connection is configured and the embedded SQLite file is used."""
        return self.connection is None

    @classmethod
    def resolve(cls, conn_id: str = default_conn_name) -> tuple[str, bool]:
        """``(url, embedded)``: the SQLAlchemy URL for ``conn_id`` and whether it is the embedded default."""
        hook = cls(mltrack_conn_id=conn_id)
        return hook.get_uri(), hook.is_embedded

    @classmethod
    def resolve_url(cls, conn_id: str = default_conn_name) -> str:
        """The SQLAlchemy URL (password included: do not log it) for the connection ``conn_id``."""
        return cls(mltrack_conn_id=conn_id).get_uri()

    def get_uri(self) -> str:
        """The SQLAlchemy URL of this hook's tracking store (password included: do not log it)."""
        return self.sqlalchemy_url.render_as_string(hide_password=False)

    def get_conn(self) -> Any:
        """The process-wide SQLAlchemy engine of the tracking store (sized for a task in a task's process)."""
        return get_engine(self.get_uri(), task_process=in_task_process())

    def get_store(self) -> TrackingStore:
        """The :class:`~airflow_mltrack.store.TrackingStore` for this connection.

        The embedded SQLite default is migrated to the newest schema first; a configured database is not
        (run ``mltrack db upgrade``). Secrets in hyperparameters, job parameters and error texts are
        redacted by the store before they are written, with :func:`redaction_policy`.
        """
        url = self.get_uri()
        self.get_conn()  # the engine for this process (one connection in a task's), which from_url reuses
        store = TrackingStore.from_url(url, auto_migrate=self.is_embedded, redaction=redaction_policy())
        store.task_link = current_task_link()  # inside a task: its writes make it one of the experiment's
        return store

    def test_connection(self) -> tuple[bool, str]:
        """Connect, run ``SELECT 1`` and report the schema revision (the UI's Test button)."""
        from sqlalchemy import text

        url: str | None = None
        try:
            url = self.get_uri()
            engine = get_engine(url)
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            return False, f"cannot connect: {mask_password(str(exc), url)}"
        message = f"connected to {mask_url(url)}"
        try:
            from airflow_mltrack.store.migrations import current_revision
        except ImportError:
            return True, message
        try:
            revision = current_revision(engine)
        except Exception as exc:
            return True, f"{message}; schema revision unknown ({type(exc).__name__})"
        if revision is None:
            todo = "created on first use" if self.is_embedded else "run `mltrack db upgrade`"
            return True, f"{message}; schema not created yet ({todo})"
        return True, f"{message}; schema revision {revision}"
