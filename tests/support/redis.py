"""A real, throwaway Redis server for tests and benchmarks (the Celery broker of tests/celery).

``TempRedis`` runs the Debian ``redis-server`` package's ``/usr/bin/redis-server`` on 127.0.0.1 and a
free port, in a fresh temp dir, with no persistence (no RDB snapshots, no AOF: a crashed test broker is
thrown away anyway), and removes everything again in :meth:`TempRedis.stop` (also registered with
:mod:`atexit`; a small watchdog process stops the server and removes the dir if the starting process dies
without doing so, even by ``kill -9``). As root it runs as root (Redis allows it; it binds 127.0.0.1 only).

Set ``MLTRACK_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``) to use that existing server instead:
nothing is started or stopped.

No pytest imports here: ``benchmarks/`` uses this module too::

    with TempRedis() as broker:
        broker.url()   # redis://127.0.0.1:PORT/0
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.pgserver import free_port

BINARY = "/usr/bin/redis-server"
ENV_URL = "MLTRACK_TEST_REDIS_URL"

_WATCHDOG = """
import os, shutil, signal, sys
pid, base_dir = int(sys.argv[1]), sys.argv[2]
try:
    said = sys.stdin.buffer.read()
except BaseException:
    said = b""
if said != b"disarm":  # the owner died without stop(): clean up after it
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    shutil.rmtree(base_dir, ignore_errors=True)
"""


class RedisNotAvailable(RuntimeError):
    """No ``redis-server`` binary on this machine."""


def find_binary() -> str:
    """Path of ``redis-server`` (the Debian package's, else one on PATH)."""
    if os.access(BINARY, os.X_OK):
        return BINARY
    found = shutil.which("redis-server")
    if found:
        return found
    raise RedisNotAvailable(
        "No redis-server found (looked for /usr/bin/redis-server and PATH). Install it with "
        "`apt-get install -y redis-server` (Debian/Ubuntu; `bash scripts/test.sh` does this when run as "
        f"root), or point {ENV_URL} at an existing server, e.g. {ENV_URL}=redis://127.0.0.1:6379/0"
    )


def redis_command(host: str, port: int, *args: str, timeout: float = 5) -> bytes:
    """Send one command (a RESP array of bulk strings); the raw reply, stripped (``b"+PONG"``)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


class TempRedis:
    """A throwaway ``redis-server`` (or, with ``MLTRACK_TEST_REDIS_URL``, an existing one)."""

    def __init__(self, *, external_url: str | None = None) -> None:
        env_url = os.environ.get(ENV_URL, "").strip() if external_url is None else external_url
        self.external_url: str | None = env_url or None
        self.port: int | None = None
        self.base_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._owner_pid = os.getpid()

    def __enter__(self) -> TempRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def is_external(self) -> bool:
        return self.external_url is not None

    def start(self) -> TempRedis:
        """Start the server and wait until it answers ``PING`` (no-op if running or external)."""
        if self.is_external:
            self._wait_pong(self._address(), deadline=time.monotonic() + 3)  # it should be up already
            return self
        if self.process is not None:
            return self
        binary = find_binary()
        self._owner_pid = os.getpid()
        self.base_dir = Path(tempfile.mkdtemp(prefix="mltrack-redis-"))
        atexit.register(self._stop_at_exit)
        try:
            for _attempt in range(5):  # a free port can be taken between probing and binding
                self.port = free_port()
                self.process = self._spawn(binary)
                if self._wait_pong(("127.0.0.1", self.port), deadline=time.monotonic() + 20):
                    break
                self._terminate()
            else:
                raise RuntimeError(f"redis-server did not start:\n{self.log_tail()}")
            self._start_watchdog()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its dir. Idempotent."""
        if self.is_external or os.getpid() != self._owner_pid:
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

    def url(self, db: int = 0) -> str:
        """``redis://127.0.0.1:PORT/<db>`` (the external URL's host and port when one is set)."""
        host, port = self._address()
        return f"redis://{host}:{port}/{db}"

    def command(self, *args: str) -> bytes:
        """One Redis command, e.g. ``command("PING")`` -> ``b"+PONG"``."""
        return redis_command(*self._address(), *args)

    def log_tail(self, lines: int = 30) -> str:
        if self.base_dir is None:
            return ""
        try:
            return "\n".join((self.base_dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------------ internals

    def _address(self) -> tuple[str, int]:
        if self.is_external:
            parts = urlsplit(self.external_url)
            return parts.hostname or "127.0.0.1", parts.port or 6379
        if self.port is None:
            raise RuntimeError("TempRedis is not running: call start() first")
        return "127.0.0.1", self.port

    def _spawn(self, binary: str) -> subprocess.Popen:
        assert self.base_dir is not None and self.port is not None
        argv = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.base_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.base_dir / "redis.log"),
        ]  # fmt: skip
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _wait_pong(self, address: tuple[str, int], deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                if redis_command(*address, "PING", timeout=2) == b"+PONG":
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        if self.is_external:
            raise RuntimeError(f"{ENV_URL}={self.external_url}: no PONG from {address[0]}:{address[1]}")
        return False

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

    def _start_watchdog(self) -> None:
        assert self.process is not None and self.base_dir is not None
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(self.process.pid), str(self.base_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed by the terminal's Ctrl-C before it can clean up
        )

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._owner_pid:
            self.stop()

    def __repr__(self) -> str:
        where = self.url() if (self.is_external or self.port) else "not started"
        return f"<TempRedis {where} {'running' if self.process or self.is_external else 'stopped'}>"
