"""A real, throwaway PgBouncer in front of a ``TempPostgres``, for tests and benchmarks.

``PgBouncerServer`` runs the Debian ``pgbouncer`` package's ``/usr/sbin/pgbouncer`` on 127.0.0.1 and a
free port, with its ini file, log and auth file in a fresh temp dir, in ``pool_mode = transaction`` by
default, forwarding every database name (``* =``) to the server. PgBouncer refuses to run as root: as
root it runs as the same unprivileged user as the PostgreSQL server (``postgres``, see
``tests/support/pgserver.py``). :meth:`PgBouncerServer.stop` ends it and removes the dir (also at exit,
and a small watchdog does it if the starting process dies without doing so).

Auth: ``auth_type = any`` (a client's user name is not checked, as the test server trusts local TCP);
PgBouncer logs in to the server as the server URL's user, with its password if it has one (so
``MLTRACK_TEST_PG_URL`` servers work too).

No pytest imports here: ``benchmarks/`` uses this module too::

    with TempPostgres() as pg, PgBouncerServer(pg, default_pool_size=10) as bouncer:
        url = bouncer.url("bench")   # postgresql+psycopg://postgres@127.0.0.1:PORT/bench
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.support.pgserver import SUPERUSER, TempPostgres, _os_user, free_port

BINARY = "/usr/sbin/pgbouncer"

_WATCHDOG = """
import os, shutil, signal, sys
pid, base_dir = int(sys.argv[1]), sys.argv[2]
try:
    said = sys.stdin.buffer.read()
except BaseException:
    said = b""
if said != b"disarm":  # the owner died without stop(): clean up after it
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
    shutil.rmtree(base_dir, ignore_errors=True)
"""


class PgBouncerNotAvailable(RuntimeError):
    """No PgBouncer binary on this machine."""


def find_binary() -> str:
    """Path of the ``pgbouncer`` binary (the Debian package's, else one on PATH)."""
    if os.access(BINARY, os.X_OK):
        return BINARY
    found = shutil.which("pgbouncer")
    if found:
        return found
    raise PgBouncerNotAvailable(
        "No PgBouncer found (looked for /usr/sbin/pgbouncer and PATH). Install it with "
        "`apt-get install -y pgbouncer` (Debian/Ubuntu; `bash scripts/test.sh` does this when run as root)."
    )


class PgBouncerServer:
    """A PgBouncer in front of ``server`` (see the module docstring).

    :param server: the running PostgreSQL server to forward to.
    :param pool_mode: PgBouncer's ``pool_mode`` (``transaction``, ``session`` or ``statement``).
    :param default_pool_size: server connections per (database, user) pair.
    :param max_client_conn: client connections PgBouncer accepts.
    :param settings: more ``[pgbouncer]`` settings.
    """

    def __init__(
        self,
        server: TempPostgres,
        *,
        pool_mode: str = "transaction",
        default_pool_size: int = 10,
        max_client_conn: int = 500,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.server = server
        self.pool_mode = pool_mode
        self.default_pool_size = default_pool_size
        self.max_client_conn = max_client_conn
        self.settings = dict(settings or {})
        self.port: int | None = None
        self.base_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._owner_pid = os.getpid()

    def __enter__(self) -> PgBouncerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PgBouncerServer:
        """Start PgBouncer and wait until it answers a query through to the server."""
        if self.process is not None:
            return self
        binary = find_binary()
        user = _os_user() if os.geteuid() == 0 else None
        self.base_dir = Path(tempfile.mkdtemp(prefix="mltrack-pgbouncer-", dir="/tmp"))
        self._owner_pid = os.getpid()
        atexit.register(self._stop_at_exit)
        try:
            last = ""
            for _attempt in range(5):  # a free port can be taken between probing and binding
                self.port = free_port()
                ini = self._write_config(user)
                self.process = self._spawn(binary, ini, user)
                if self._wait_listening():
                    break
                last = self.log_tail()
                self._terminate()
            else:
                raise RuntimeError(f"PgBouncer did not start:\n{last}")
            self._start_watchdog()
            self._check_query()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop PgBouncer (SIGTERM, then SIGKILL) and remove its dir. Idempotent."""
        if os.getpid() != self._owner_pid:
            return
        self._terminate()
        if self._watchdog is not None:
            watchdog, self._watchdog = self._watchdog, None
            try:
                watchdog.stdin.write(b"disarm")  # type: ignore[union-attr]
                watchdog.stdin.close()  # type: ignore[union-attr]
                watchdog.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                watchdog.kill()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._owner_pid:
            self.stop()

    # ------------------------------------------------------------------ URLs

    def url(self, dbname: str = "postgres", *, pool_mode_arg: bool = True) -> str:
        """SQLAlchemy URL of ``dbname`` through PgBouncer; with ``pool_mode_arg`` it carries
        ``mltrack_pool_mode=<pool_mode>`` (how the store is told, see ``store/engine.py``)."""
        if self.port is None:
            raise RuntimeError("PgBouncerServer is not running: call start() first")
        url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"
        if pool_mode_arg and self.pool_mode in ("session", "transaction"):
            url += f"?mltrack_pool_mode={self.pool_mode}"
        return url

    def connect(self, dbname: str = "postgres", **kwargs: object) -> psycopg.Connection:
        """A raw psycopg connection to ``dbname`` through PgBouncer (autocommit unless told otherwise)."""
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=dbname, connect_timeout=10, **kwargs
        )

    def admin(self, command: str) -> list[dict[str, object]]:
        """Rows of an admin console command (``SHOW STATS``, ``SHOW POOLS``; simple query protocol)."""
        with self.connect("pgbouncer", cursor_factory=psycopg.ClientCursor) as conn:
            cursor = conn.execute(command)
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def log_tail(self, lines: int = 30) -> str:
        if self.base_dir is None:
            return ""
        try:
            return "\n".join(
                (self.base_dir / "pgbouncer.log").read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return ""

    # ------------------------------------------------------------------ internals

    def _server_target(self) -> str:
        """The ``[databases]`` connection string of the PostgreSQL server (host, port, user, password)."""
        parsed = make_url(self.server.url())
        parts = [
            f"host={parsed.host or '127.0.0.1'}",
            f"port={parsed.port or 5432}",
            f"user={parsed.username or SUPERUSER}",
        ]
        if parsed.password:
            parts.append(f"password={parsed.password}")
        return " ".join(parts)

    def _write_config(self, user: str | None) -> Path:
        assert self.base_dir is not None
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "any",
            "pool_mode": self.pool_mode,
            "default_pool_size": str(self.default_pool_size),
            "max_client_conn": str(self.max_client_conn),
            "logfile": str(self.base_dir / "pgbouncer.log"),
            "admin_users": SUPERUSER,
            "stats_users": SUPERUSER,
            "ignore_startup_parameters": "extra_float_digits",
            "log_connections": "0",
            "log_disconnections": "0",
            **self.settings,
        }
        text = "[databases]\n* = " + self._server_target() + "\n\n[pgbouncer]\n"
        text += "".join(f"{key} = {value}\n" for key, value in settings.items())
        ini = self.base_dir / "pgbouncer.ini"
        ini.write_text(text)
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (self.base_dir, ini):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        return ini

    def _spawn(self, binary: str, ini: Path, user: str | None) -> subprocess.Popen:
        assert self.base_dir is not None
        kwargs: dict[str, object] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        out = open(self.base_dir / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            return subprocess.Popen(
                [binary, str(ini)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.base_dir),
                **kwargs,  # type: ignore[arg-type]
            )
        finally:
            out.close()

    def _wait_listening(self, timeout: float = 20) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def _check_query(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _start_watchdog(self) -> None:
        assert self.process is not None and self.base_dir is not None
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(self.process.pid), str(self.base_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def __repr__(self) -> str:
        state = "running" if self.process is not None else "stopped"
        return f"<PgBouncerServer 127.0.0.1:{self.port} {self.pool_mode} {state}>"


class ConnectionSampler:
    """Counts a database's server connections in ``pg_stat_activity`` every ``interval`` seconds, on a
    thread with its own direct connection to the server (``with ConnectionSampler(pg, "db") as s: ...``).

    ``total``: client backends connected to ``dbname``; ``ours``: those whose ``application_name`` is
    ``application_name`` (the store's ``mltrack``; PgBouncer passes a client's on to its server
    connection). :attr:`max_total` / :attr:`max_ours` are the highest counts seen.
    """

    def __init__(
        self, server: TempPostgres, dbname: str, *, interval: float = 0.1, application_name: str = "mltrack"
    ) -> None:
        self.server = server
        self.dbname = dbname
        self.interval = interval
        self.application_name = application_name
        self.samples: list[tuple[float, int, int]] = []  # (seconds since start, total, ours)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> ConnectionSampler:
        self._thread = threading.Thread(target=self._run, name="pg_stat_activity sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._error is not None and exc[0] is None:
            raise RuntimeError(f"pg_stat_activity sampling failed: {self._error}") from self._error

    def count(self) -> tuple[int, int]:
        """``(total, ours)`` right now (a fresh connection)."""
        with self.server.connect(application_name="mltrack-sampler") as conn:
            return self._query(conn)

    def _query(self, conn: psycopg.Connection) -> tuple[int, int]:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE application_name = %s) FROM pg_stat_activity "
            "WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            (self.application_name, self.dbname),
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def _run(self) -> None:
        started = time.monotonic()
        try:
            with self.server.connect(application_name="mltrack-sampler", prepare_threshold=None) as conn:
                while not self._stop.is_set():
                    total, ours = self._query(conn)
                    self.samples.append((time.monotonic() - started, total, ours))
                    self._stop.wait(self.interval)
        except BaseException as exc:  # noqa: BLE001 - reported by __exit__
            self._error = exc

    @property
    def max_total(self) -> int:
        return max((s[1] for s in self.samples), default=0)

    @property
    def max_ours(self) -> int:
        return max((s[2] for s in self.samples), default=0)
