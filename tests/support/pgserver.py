"""A real, throwaway PostgreSQL server for tests and benchmarks.

``TempPostgres`` runs the Debian ``postgresql`` package's server binaries
(``/usr/lib/postgresql/<version>/bin/initdb`` and ``pg_ctl``, the highest version >= 15) on
127.0.0.1 and a free port, in a fresh data directory under a temp dir, with settings tuned for
test speed (no fsync), and removes everything again in :meth:`TempPostgres.stop` (also registered
with :mod:`atexit`; and a small watchdog process stops the server and removes the directory if
the starting process dies without doing so, even by ``kill -9``).

``initdb`` refuses to run as root: as root, the binaries run as the ``postgres`` system user
(created by the Debian package; otherwise an unprivileged ``mltrack-pg`` user is created with
``useradd``) through ``runuser -u USER --``. As any other user they run directly.

The data directory goes under ``MLTRACK_TEST_PG_DIR`` if set, else under ``/dev/shm`` when that is
a writable tmpfs with at least 2 GiB free (about ten times faster database creation than a disk),
else under the system temp dir. Pass ``parent_dir=`` to choose (benchmarks that want a disk).

Set ``MLTRACK_TEST_PG_URL`` (a SQLAlchemy or libpq URL of a superuser, e.g.
``postgresql://postgres@db.example:5432/postgres``) to use that existing server instead of
starting one: nothing is started or stopped, and only the databases created through this object
are dropped by the callers that created them.

Fault tests stop and start a private server's postmaster without losing its data: :meth:`TempPostgres.halt`
(``pg_ctl stop``), :meth:`TempPostgres.resume` (``pg_ctl start`` on the same port) and
:meth:`TempPostgres.restart` (both; every open session is terminated). They refuse an external server.

No pytest imports here: ``benchmarks/`` uses this module too::

    with TempPostgres() as pg:
        pg.create_database("bench")
        url = pg.url("bench")   # postgresql+psycopg://postgres@127.0.0.1:PORT/bench
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def _system_tool(name: str) -> str:
    """``name`` from PATH, else from the sbin folders a login shell has (``runuser``, ``useradd`` live there
    and a minimal PATH such as ``/usr/bin:/bin`` lacks them)."""
    for folder in ("/usr/sbin", "/sbin"):
        if shutil.which(name) is None and os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    return name


RUNUSER = _system_tool("runuser")
USERADD = _system_tool("useradd")
ENV_URL = "MLTRACK_TEST_PG_URL"
ENV_DIR = "MLTRACK_TEST_PG_DIR"
MIN_VERSION = 15
SUPERUSER = "postgres"
FALLBACK_OS_USER = "mltrack-pg"

#: Appended to postgresql.conf. Durability is off: a crashed test server is thrown away anyway.
SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "checkpoint_timeout": "30min",
    "max_wal_size": "4GB",
    "shared_buffers": "128MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


# Run by the watchdog process: argv = pg_ctl, data dir, base dir, os user ("" = run directly).
_WATCHDOG = """
import os, shutil, subprocess, sys
pg_ctl, data_dir, base_dir, user = sys.argv[1:5]
try:
    sys.stdin.buffer.read()
except BaseException:
    pass
if os.path.exists(os.path.join(data_dir, "postmaster.pid")):
    argv = [pg_ctl, "-D", data_dir, "-m", "fast", "-w", "stop"]
    if user:
        argv = [RUNUSER, "-u", user, "--", *argv]
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
shutil.rmtree(base_dir, ignore_errors=True)
"""


class PostgresNotAvailable(RuntimeError):
    """No usable PostgreSQL server binaries on this machine."""


def find_bindir(min_version: int = MIN_VERSION) -> Path:
    """The ``bin`` directory of the highest installed PostgreSQL server >= ``min_version``."""
    found: list[tuple[int, Path]] = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        match = re.fullmatch(r"(\d+)(?:\.\d+)?", bindir.parent.name)
        if match and int(match.group(1)) >= min_version and (bindir / "pg_ctl").exists():
            found.append((int(match.group(1)), bindir))
    if not found:
        raise PostgresNotAvailable(
            f"No PostgreSQL server >= {min_version} found (looked for /usr/lib/postgresql/*/bin/initdb). "
            "Install it with `apt-get install -y postgresql` (Debian/Ubuntu; `bash scripts/test.sh` does "
            f"this when run as root), or point {ENV_URL} at an existing server, e.g. "
            f"{ENV_URL}=postgresql://postgres@localhost:5432/postgres"
        )
    return max(found)[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_parent_dir() -> str | None:
    """Where data directories go: $MLTRACK_TEST_PG_DIR, a roomy /dev/shm, or None (system temp dir)."""
    if os.environ.get(ENV_DIR):
        return os.environ[ENV_DIR]
    shm = "/dev/shm"
    try:
        stat = os.statvfs(shm)
    except OSError:
        return None
    if os.access(shm, os.W_OK | os.X_OK) and stat.f_bavail * stat.f_frsize >= 2 << 30:
        return shm
    return None


def _is_root() -> bool:
    return os.geteuid() == 0


def _os_user() -> str:
    """The unprivileged OS user that owns and runs the server when we are root."""
    for name in (SUPERUSER, FALLBACK_OS_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    subprocess.run(
        [USERADD, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER],
        check=True,
        capture_output=True,
    )
    return FALLBACK_OS_USER


class TempPostgres:
    """A throwaway PostgreSQL server (or, with ``MLTRACK_TEST_PG_URL``, an existing one)."""

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        external_url: str | None = None,
        parent_dir: str | os.PathLike[str] | None = None,
    ):
        env_url = os.environ.get(ENV_URL, "").strip() if external_url is None else external_url
        self.external_url: str | None = env_url or None
        self._bindir = Path(bindir) if bindir else None
        self.parent_dir = str(parent_dir) if parent_dir else default_parent_dir()
        self.base_dir: Path | None = None
        self.data_dir: Path | None = None
        self.port: int | None = None
        self.os_user: str | None = None
        self.started_in: float | None = None  # seconds start() took
        self._running = False
        self._halted = False  # postmaster stopped by halt(), data directory kept
        self._atexit_registered = False
        self._owner_pid = os.getpid()
        self._watchdog: subprocess.Popen | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def is_external(self) -> bool:
        return self.external_url is not None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> TempPostgres:
        """Start the server (no-op if running, or if an external server is configured)."""
        if self._running:
            return self
        t0 = time.perf_counter()
        if self.is_external:
            self._running = True
            self._check_connect()
            self.started_in = time.perf_counter() - t0
            return self
        bindir = self._bindir = self._bindir or find_bindir()
        self.os_user = _os_user() if _is_root() else None
        self._owner_pid = os.getpid()
        self.base_dir = self._make_base_dir()
        self.data_dir = self.base_dir / "data"
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True
        self._start_watchdog()
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ]
            )  # fmt: skip
            last_error: Exception | None = None
            for _attempt in range(5):  # a free port can be taken between probing and binding
                self.port = free_port()
                self._write_settings()
                try:
                    self._pg_ctl_start()
                    break
                except RuntimeError as exc:
                    last_error = exc
            else:
                raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{self.server_log()}")
            self._running = True
            self._check_connect()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.perf_counter() - t0
        return self

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``) and remove its directory. Idempotent."""
        if self.is_external:
            self._running = False
            return
        if self.data_dir is not None and (self.data_dir / "postmaster.pid").exists() and self._bindir:
            try:
                self._run(
                    [str(self._bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                    timeout=60,
                )
            except Exception:  # noqa: BLE001 - never leave a server behind
                try:
                    self._run(
                        [
                            str(self._bindir / "pg_ctl"),
                            "-D",
                            str(self.data_dir),
                            "-m",
                            "immediate",
                            "-w",
                            "stop",
                        ],
                        timeout=30,
                    )
                except Exception:  # noqa: BLE001
                    self._kill_postmaster()
        self._running = False
        self._halted = False
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
            self.data_dir = None
        self._stop_watchdog()

    # ------------------------------------------------------------------ faults (a private server only)

    @property
    def halted(self) -> bool:
        """True between :meth:`halt` and :meth:`resume`: the server is down, its data kept."""
        return self._halted

    def halt(self, mode: str = "fast") -> float:
        """Stop the postmaster (``pg_ctl stop -m MODE -w``) but keep the data directory and the port, so
        :meth:`resume` brings the same databases back. ``fast`` terminates every session (clients see
        ``terminating connection due to administrator command``). Returns the seconds it took."""
        self._require_private("halt")
        if self._halted:
            return 0.0
        started = time.perf_counter()
        assert self._bindir is not None and self.data_dir is not None
        self._run(
            [str(self._bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"], timeout=60
        )
        self._halted = True
        return time.perf_counter() - started

    def resume(self) -> float:
        """Start a halted server again (same data, same port) and wait until it accepts connections."""
        self._require_private("resume")
        if not self._halted:
            return 0.0
        started = time.perf_counter()
        self._pg_ctl_start()
        self._halted = False
        self._check_connect()
        return time.perf_counter() - started

    def restart(self, mode: str = "fast") -> float:
        """:meth:`halt` then :meth:`resume` (what ``pg_ctl restart`` does); returns the seconds it took."""
        return self.halt(mode) + self.resume()

    def _require_private(self, action: str) -> None:
        if self.is_external:
            raise RuntimeError(f"cannot {action} an external server ({ENV_URL}); use a private TempPostgres")
        if not self._running:
            raise RuntimeError(f"cannot {action}: TempPostgres is not running (call start() first)")

    def _pg_ctl_start(self) -> None:
        assert self._bindir is not None and self.data_dir is not None
        self._run(
            [
                str(self._bindir / "pg_ctl"),
                "-D", str(self.data_dir),
                "-l", str(self.data_dir / "server.log"),
                "-w", "-t", "60",
                "start",
            ]
        )  # fmt: skip

    def _stop_at_exit(self) -> None:
        # A forked child (Airflow forks task runners) inherits this handler: only the owner stops.
        if os.getpid() == self._owner_pid:
            self.stop()

    def _start_watchdog(self) -> None:
        """A process that cleans up after us if we die without stop() (it waits for EOF on its stdin)."""
        assert self.base_dir is not None and self.data_dir is not None and self._bindir is not None
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHDOG,
                str(self._bindir / "pg_ctl"),
                str(self.data_dir),
                str(self.base_dir),
                self.os_user or "",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed by the terminal's Ctrl-C before it can clean up
        )

    def _stop_watchdog(self) -> None:
        if self._watchdog is None or os.getpid() != self._owner_pid:
            return
        watchdog, self._watchdog = self._watchdog, None
        try:
            watchdog.stdin.close()  # type: ignore[union-attr]
            watchdog.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            watchdog.kill()

    # ------------------------------------------------------------------ URLs and databases

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` on this server, for psycopg 3."""
        if self.is_external:
            parsed = make_url(self.external_url)
            parsed = parsed.set(drivername="postgresql+psycopg", database=dbname)
            return parsed.render_as_string(hide_password=False)
        if not self._running:
            raise RuntimeError("TempPostgres is not running: call start() first")
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection:
        """A psycopg connection (autocommit unless told otherwise) to ``dbname``."""
        parsed = make_url(self.url(dbname))
        kwargs.setdefault("autocommit", True)
        params: dict[str, Any] = {
            "host": parsed.host or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": parsed.username or SUPERUSER,
            "dbname": dbname,
            "connect_timeout": 10,
        }
        if parsed.password:
            params["password"] = parsed.password
        params.update(parsed.query)
        return psycopg.connect(**params, **kwargs)

    def psql(self, query: str, dbname: str = "postgres", params: Sequence[Any] | None = None) -> list[tuple]:
        """Run one statement in autocommit mode; return its rows (empty if it returns none)."""
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description is not None else []

    def create_database(self, name: str, template: str | None = None, strategy: str | None = None) -> str:
        """Create database ``name`` (from ``template`` if given); return its URL.

        ``strategy`` is ``WAL_LOG`` (the server default) or ``FILE_COPY`` (faster for small templates).

        Sessions still connected to ``template`` are closed first, since PostgreSQL refuses to copy a
        database that someone is connected to.
        """
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        with self.connect() as conn:
            if template:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (template,),
                )
                statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
            if strategy:
                if strategy.upper() not in ("WAL_LOG", "FILE_COPY"):
                    raise ValueError(f"strategy must be WAL_LOG or FILE_COPY, not {strategy!r}")
                statement = sql.SQL("{} STRATEGY {}").format(statement, sql.SQL(strategy.upper()))
            conn.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, closing its sessions (``WITH (FORCE)``)."""
        with self.connect() as conn:
            # A template database cannot be dropped: clear the flag first.
            row = conn.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if row and row[0]:
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def server_version(self) -> int:
        """``server_version_num`` (e.g. 150014)."""
        return int(self.psql("SHOW server_version_num")[0][0])

    def server_log(self, tail: int = 40) -> str:
        if self.data_dir is None:
            return ""
        try:
            lines = (self.data_dir / "server.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    # ------------------------------------------------------------------ internals

    def _make_base_dir(self) -> Path:
        if self.parent_dir:
            os.makedirs(self.parent_dir, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="mltrack-pg-", dir=self.parent_dir))
        if self.os_user is None:
            return base
        if not self._user_can_enter(base):
            # $TMPDIR is somewhere the unprivileged user cannot reach (e.g. under /root): use /tmp.
            shutil.rmtree(base, ignore_errors=True)
            base = Path(tempfile.mkdtemp(prefix="mltrack-pg-", dir="/tmp"))
        entry = pwd.getpwnam(self.os_user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        return base

    def _user_can_enter(self, path: Path) -> bool:
        result = subprocess.run(
            [RUNUSER, "-u", str(self.os_user), "--", "test", "-x", str(path.parent)],
            capture_output=True,
        )
        return result.returncode == 0

    def _write_settings(self) -> None:
        assert self.data_dir is not None
        settings = dict(SERVER_SETTINGS, port=str(self.port), unix_socket_directories=f"'{self.data_dir}'")
        # postgresql.auto.conf is read last and rewritten on each retry, so the last port wins.
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        self._run(["tee", str(self.data_dir / "postgresql.auto.conf")], input_text=text)

    def _run(self, argv: list[str], timeout: float = 120, input_text: str | None = None) -> str:
        if self.os_user is not None:
            argv = [RUNUSER, "-u", self.os_user, "--", *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.setdefault("LC_ALL", "C")
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.base_dir or "/",
            input=input_text,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}".strip()
            )
        return result.stdout

    def _check_connect(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _kill_postmaster(self) -> None:
        assert self.data_dir is not None
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass

    def __repr__(self) -> str:
        if self.is_external:
            where = make_url(self.external_url).render_as_string(hide_password=True)
        else:
            where = f"127.0.0.1:{self.port}"
        return f"<TempPostgres {where} {'running' if self._running else 'stopped'}>"
