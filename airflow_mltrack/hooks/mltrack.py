"""MLTrackHook: an Airflow Connection -> a SQLAlchemy URL -> a process-wide engine -> a TrackingStore."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store import TrackingStore, redaction
from airflow_mltrack.store.engine import get_engine, normalize_url
from airflow_mltrack.store.membership import TaskLink
from airflow_mltrack.store.redaction import REDACTED

if TYPE_CHECKING:
    from airflow.sdk import Connection

log = logging.getLogger(__name__)

EMBEDDED_DB_FILENAME = "mltrack.db"
POSTGRES_DRIVER = "postgresql+psycopg"

# Extras of a ``postgres`` connection that are Airflow/PostgresHook settings, not libpq parameters.
_POSTGRES_NON_LIBPQ_EXTRAS = frozenset(
    {
        "iam",
        "redshift",
        "redshift-serverless",
        "cursor",
        "cluster-identifier",
        "workgroup-name",
        "aws_conn_id",
        "azure_conn_id",
        "sqlalchemy_scheme",
        "sqlalchemy_query",
        "enable_log_db_messages",
        "log_db_messages",
    }
)
# Extras of an ``mltrack`` connection that choose the backend rather than being libpq parameters.
_MLTRACK_EXTRAS = frozenset({"url", "backend", "path"})

_logged_once: set[tuple[int, str, str]] = set()
_logged_once_lock = threading.Lock()


def _airflow_home() -> str:
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
    return os.path.join(_airflow_home(), EMBEDDED_DB_FILENAME)


def embedded_url() -> str:
    """SQLAlchemy URL of the embedded SQLite tracking store."""
    return URL.create("sqlite", database=embedded_db_path()).render_as_string(hide_password=False)


def safe_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``: the only form in which a URL is ever logged."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable url>"


# -- secrets in hyperparameters ------------------------------------------------------------------------
try:  # Airflow 3.2+: the Task SDK's secrets masker (the one that filters task logs)
    from airflow.sdk._shared import secrets_masker as _masker
except ImportError:  # Airflow 3.1
    from airflow.sdk.execution_time import secrets_masker as _masker  # type: ignore[no-redef]

_configured_names: str | None = None


def _configure_redaction() -> None:
    """Hand Airflow's ``[core] sensitive_var_conn_names`` to the redaction policy (again if it changed)."""
    global _configured_names
    try:
        from airflow.sdk import conf
    except ImportError:  # pragma: no cover - older Task SDK
        from airflow.configuration import conf
    names = conf.get("core", "sensitive_var_conn_names", fallback="") or ""
    if names != _configured_names:
        redaction.configure(names)
        _configured_names = names


def is_secret_key(name: Any) -> bool:
    """True for a key whose value is hidden (the policy of :mod:`airflow_mltrack.store.redaction`, with
    the names an admin added in ``[core] sensitive_var_conn_names``)."""
    _configure_redaction()
    return redaction.is_secret_key(name)


def redact_text(text: Any) -> Any:
    """Free text (an error message) with its secrets hidden: the store policy's
    :func:`~airflow_mltrack.store.redaction.redact_text`, then Airflow's masker (the secrets it was told
    about in this process: connection passwords a task fetched, masked Variables)."""
    if not isinstance(text, str):
        return text
    _configure_redaction()
    return _masker.redact(redaction.redact_text(text))


def reveals_hidden(value: Any, name: str | None = None) -> bool:
    """True if a read filter on ``value`` (under key ``name``) would test a value the pages hide."""
    _configure_redaction()
    return redaction.reveals_hidden(value, name) or _masks_any(value)


def _masks_any(value: Any) -> bool:
    """True if Airflow's masker would change a string in ``value`` (only strings: NaN != NaN)."""
    if isinstance(value, Mapping):
        return any(_masks_any(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_masks_any(v) for v in value)
    return isinstance(value, str) and _masker.redact(value) != value


def _mask_strings(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _mask_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_strings(v) for v in value]
    if isinstance(value, str) and value != REDACTED:
        return _masker.redact(value)
    return value


def redact_secrets(value: Any, name: str | None = None) -> Any:
    """``value`` with everything under secret-looking keys replaced by ``***`` (strings, numbers,
    booleans; at any depth) and the secrets inside other strings (URL passwords, ``password=...``,
    tokens) masked; see :mod:`airflow_mltrack.store.redaction`. Other strings also go through Airflow's
    masker, which hides secrets it was told about in this process.
    """
    _configure_redaction()
    return _mask_strings(redaction.redact(value, name))


def redact_json_object(value: Any) -> Any:
    """Hyperparameters (a dict, or its JSON text) with secrets redacted; anything else as given, for the
    store's checks to refuse with a clear error."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return value
        return redact_secrets(parsed) if isinstance(parsed, Mapping) else value
    if isinstance(value, Mapping):
        return redact_secrets(value)
    return value


class RedactingTrackingStore(TrackingStore):
    """The TrackingStore the hook hands out: secret-looking hyperparameter and job parameter values, and
    the secrets in error texts (a failed experiment's or job's), are replaced by ``***`` before they are
    written (see :func:`redact_secrets` and :func:`redact_text`)."""

    def create_experiment(self, project: Any, name: str, model_id: int, dataset_id: int, hyperparameters: Any = None, **fields: Any) -> int:  # fmt: skip
        return super().create_experiment(
            project, name, model_id, dataset_id, redact_json_object(hyperparameters), **fields
        )

    def log_hyperparameters(self, experiment_id: int, hyperparameters: Any) -> None:
        super().log_hyperparameters(experiment_id, redact_json_object(hyperparameters))

    def record_preprocessing_job(self, *args: Any, **kwargs: Any) -> int:
        if len(args) > 4:
            args = (*args[:4], redact_json_object(args[4]), *args[5:])
        if "parameters" in kwargs:
            kwargs["parameters"] = redact_json_object(kwargs["parameters"])
        if kwargs.get("error"):
            kwargs["error"] = redact_text(kwargs["error"])
        return super().record_preprocessing_job(*args, **kwargs)

    def set_status(self, *args: Any, **kwargs: Any) -> Any:
        return super().set_status(*_redact_error(args, kwargs, 2), **kwargs)

    def set_preprocessing_status(self, *args: Any, **kwargs: Any) -> Any:
        return super().set_preprocessing_status(*_redact_error(args, kwargs, 2), **kwargs)


def _redact_error(args: tuple[Any, ...], kwargs: dict[str, Any], position: int) -> tuple[Any, ...]:
    """``args`` with the ``error`` argument (keyword, or positional at ``position``) redacted, in place
    for ``kwargs``."""
    if "error" in kwargs:
        kwargs["error"] = redact_text(kwargs["error"])
    elif len(args) > position:
        args = (*args[:position], redact_text(args[position]), *args[position + 1 :])
    return args


def _log_once(conn_id: str, message: str, *args: Any) -> None:
    """Log at INFO once per process for this connection id and message."""
    key = (os.getpid(), conn_id, message % args)
    with _logged_once_lock:
        if key in _logged_once:
            return
        _logged_once.add(key)
    log.info(message, *args)


def _extra(conn: Connection) -> dict[str, Any]:
    """The connection's extra as a dict; ``extra__<conn_type>__<key>`` (old form prefix) read as ``key``."""
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


def _query_args(conn: Connection, extras: Mapping[str, Any], skip: frozenset[str]) -> dict[str, str]:
    """Extras that are libpq parameters (``sslmode``, ``sslrootcert``, ``connect_timeout``, ...) as URL query."""
    query: dict[str, str] = {}
    sqlalchemy_query = extras.get("sqlalchemy_query") or {}
    if not isinstance(sqlalchemy_query, Mapping):
        raise MLTrackError("extra.sqlalchemy_query", sqlalchemy_query, "must be a JSON object")
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


def _postgres_url(conn: Connection, extras: Mapping[str, Any], skip: frozenset[str]) -> str:
    if extras.get("iam"):
        raise MLTrackError(
            "extra.iam",
            extras["iam"],
            f"connection {conn.conn_id!r}: IAM token authentication is not supported by the tracking store; "
            "use a password or a client certificate (sslcert/sslkey extras)",
        )
    if not conn.host:
        raise MLTrackError("host", conn.host, f"connection {conn.conn_id!r}: a PostgreSQL host is required")
    url = URL.create(
        POSTGRES_DRIVER,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host,
        port=int(conn.port) if conn.port else None,
        database=conn.schema or None,
        query=_query_args(conn, extras, skip),
    )
    return url.render_as_string(hide_password=False)


def _sqlite_url(conn: Connection, path: str | None) -> str:
    if not path:
        raise MLTrackError("host", path, f"connection {conn.conn_id!r}: a SQLite file path is required")
    if path != ":memory:":
        path = os.path.expanduser(path)
        if not os.path.isabs(path):
            path = os.path.join(_airflow_home(), path)
    return URL.create("sqlite", database=path).render_as_string(hide_password=False)


def _url_from_extra(conn: Connection, raw: Any) -> str:
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
    return url.render_as_string(hide_password=False)


def url_from_connection(conn: Connection) -> str:
    """The SQLAlchemy URL for a connection of type ``mltrack``, ``postgres`` or ``sqlite``.

    See :class:`MLTrackHook` for how each type's fields are read.
    """
    conn_type = (conn.conn_type or "").lower()
    extras = _extra(conn)
    if conn_type == "mltrack":
        if extras.get("url"):
            return _url_from_extra(conn, extras["url"])
        backend = str(extras.get("backend") or "postgresql").lower()
        if backend == "sqlite":
            return _sqlite_url(conn, extras.get("path") or conn.host)
        if backend in ("postgresql", "postgres"):
            return _postgres_url(conn, extras, _MLTRACK_EXTRAS | _POSTGRES_NON_LIBPQ_EXTRAS)
        raise MLTrackError(
            "extra.backend", backend, f"connection {conn.conn_id!r}: expected 'postgresql' or 'sqlite'"
        )
    if conn_type in ("postgres", "postgresql"):
        scheme = extras.get("sqlalchemy_scheme")
        if scheme and scheme not in ("postgresql", POSTGRES_DRIVER):
            raise MLTrackError(
                "extra.sqlalchemy_scheme",
                scheme,
                f"connection {conn.conn_id!r}: the tracking store uses {POSTGRES_DRIVER} (psycopg 3)",
            )
        return _postgres_url(conn, extras, _POSTGRES_NON_LIBPQ_EXTRAS)
    if conn_type == "sqlite":
        return _sqlite_url(conn, conn.host or conn.schema)
    raise MLTrackError(
        "conn_type",
        conn.conn_type,
        f"connection {conn.conn_id!r}: the tracking store needs a connection of type "
        "'mltrack', 'postgres' or 'sqlite'",
    )


def current_task_link() -> TaskLink | None:
    """The task instance running in this process (inside a task's execution), else None."""
    from airflow.sdk.definitions._internal.contextmanager import _CURRENT_CONTEXT

    if not _CURRENT_CONTEXT:
        return None
    ti = _CURRENT_CONTEXT[-1].get("ti")
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


class MLTrackHook(BaseHook):
    """The tracking store behind an Airflow connection.

    ``MLTrackHook(mltrack_conn_id="mltrack_default").get_store()`` returns a
    :class:`~airflow_mltrack.store.TrackingStore`. The connection may be of type:

    ``mltrack`` (this provider's type), read in this order:

    1. extra ``{"url": "<SQLAlchemy URL>"}``: used as given (``postgresql://`` is pointed at psycopg 3).
       For a PostgreSQL URL without credentials, the connection's Login and Password fields are added,
       so the password can stay in the masked Password field.
    2. extra ``{"backend": "sqlite", "path": "/data/mltrack.db"}``: a SQLite file (``path``, or else Host).
       A relative path is taken from ``$AIRFLOW_HOME``.
    3. otherwise (``backend`` absent or ``"postgresql"``) PostgreSQL from Host, Port, Login, Password and
       Schema (the database name); every other extra (``sslmode``, ``sslrootcert``, ``sslcert``,
       ``sslkey``, ``connect_timeout``, ``application_name``, ``options``, ...) is passed to libpq as a
       URL query argument.

    ``postgres`` (the PostgreSQL provider's type): ``postgresql+psycopg://login:password@host:port/schema``
    with the connection's libpq extras (``sslmode`` etc.) as query arguments; the PostgresHook-only extras
    (``cursor``, ``sqlalchemy_scheme``, ...) are ignored, ``sqlalchemy_query`` is merged in, and IAM
    authentication is refused (a clear :class:`~airflow_mltrack.MLTrackError`).

    ``sqlite``: Host is the database file path (as in Airflow's SQLite provider).

    No connection with that id configured (neither in the metadata database, nor a secrets backend, nor an
    ``AIRFLOW_CONN_<ID>`` environment variable): the embedded SQLite file ``$AIRFLOW_HOME/mltrack.db``,
    created and migrated to the newest schema on first use, and said once per process in the log.

    URLs are only ever logged with the password hidden.

    :param mltrack_conn_id: the Airflow connection id (default ``mltrack_default``).
    """

    conn_name_attr = "mltrack_conn_id"
    default_conn_name = "mltrack_default"
    conn_type = "mltrack"
    hook_name = "ML Tracking"

    def __init__(self, mltrack_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mltrack_conn_id = mltrack_conn_id
        self._url: str | None = None
        self._embedded = False

    @classmethod
    def resolve(cls, conn_id: str = default_conn_name) -> tuple[str, bool]:
        """``(url, embedded)``: the SQLAlchemy URL for ``conn_id`` and whether it is the embedded default."""
        try:
            conn = cls.get_connection(conn_id)
        except AirflowNotFoundException:
            path = embedded_db_path()
            _log_once(conn_id, "no connection '%s': using embedded SQLite at %s", conn_id, path)
            return embedded_url(), True
        url = normalize_url(url_from_connection(conn))
        log.debug("connection '%s' (%s) -> %s", conn_id, conn.conn_type, safe_url(url))
        return url, False

    @classmethod
    def resolve_url(cls, conn_id: str = default_conn_name) -> str:
        """The SQLAlchemy URL (password included: do not log it) for the connection ``conn_id``."""
        return cls.resolve(conn_id)[0]

    def _resolved(self) -> str:
        if self._url is None:
            self._url, self._embedded = self.resolve(self.mltrack_conn_id)
        return self._url

    def get_uri(self) -> str:
        """The SQLAlchemy URL of this hook's tracking store (password included: do not log it)."""
        return self._resolved()

    @property
    def is_embedded(self) -> bool:
        """True when no connection is configured and the embedded SQLite file is used."""
        self._resolved()
        return self._embedded

    def get_conn(self) -> Any:
        """The process-wide SQLAlchemy engine of the tracking store."""
        return get_engine(self.get_uri())

    def get_store(self) -> TrackingStore:
        """The :class:`~airflow_mltrack.store.TrackingStore` for this connection.

        The embedded SQLite default is migrated to the newest schema first; a configured database is not
        (run ``mltrack db upgrade``). Secret-looking hyperparameters are redacted before they are written
        (:class:`RedactingTrackingStore`).
        """
        url = self.get_uri()
        store = RedactingTrackingStore.from_url(url, auto_migrate=self._embedded)
        store.task_link = current_task_link()  # inside a task: its writes make it one of the experiment's
        return store

    def test_connection(self) -> tuple[bool, str]:
        """Connect, run ``SELECT 1`` and report the schema revision (the UI's Test button)."""
        from sqlalchemy import text

        try:
            url = self.get_uri()
            engine = get_engine(url)
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            return False, f"cannot connect: {_hide(str(exc), self._url)}"
        message = f"connected to {safe_url(url)}"
        try:
            from airflow_mltrack.store.migrations import current_revision
        except ImportError:
            return True, message
        try:
            revision = current_revision(engine)
        except Exception as exc:
            return True, f"{message}; schema revision unknown ({type(exc).__name__})"
        if revision is None:
            todo = "created on first use" if self._embedded else "run `mltrack db upgrade`"
            return True, f"{message}; schema not created yet ({todo})"
        return True, f"{message}; schema revision {revision}"


def _hide(text: str, url: str | None) -> str:
    """``text`` with the password of ``url`` (if any) masked."""
    if not url:
        return text
    try:
        password = make_url(url).password
    except ArgumentError:
        return text
    if password:
        text = text.replace(str(password), "***")
    return text
