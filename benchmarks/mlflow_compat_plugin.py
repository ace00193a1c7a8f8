"""pytest plugin of benchmarks/mlflow_compat.py: MLflow's own ``tests/tracking/test_rest_tracking.py``
against a server that is already running (ours or a real ``mlflow server``), the way mlflow-go runs it.

Loaded by the harness as ``-p mlflow_compat_plugin`` inside the MLflow venv (``--noconftest``: MLflow's
own conftest files need half of its test tree), it imports nothing of ours. Configured by environment:

- ``MLFLOW_COMPAT_URL``: the tracking URL the tests' ``mlflow_client`` gets (e.g.
  ``http://127.0.0.1:8080/mltrack/mlflow``); ``MLFLOW_TRACKING_TOKEN``: the bearer token the MLflow client
  sends, also added here to the tests' own ``requests`` calls to that URL;
- ``MLFLOW_COMPAT_RESET``: JSON ``{"kind": "truncate", "url": ..., "keep": [...]}`` (empty every table of
  that PostgreSQL or SQLite database but ``keep``) or ``{"kind": "mlflow", "url": ..., "artifact_root":
  ...}`` (the same, then MLflow's ``SqlAlchemyStore`` recreates its Default experiment): every test starts
  on an empty store, as with MLflow's fixture (a new server and database per test);
- ``MLFLOW_COMPAT_REPORT``: where the per-test outcomes go (JSON).

The override: the test module builds ``mlflow_client`` from ``initialize_backend_stores`` and
``ServerThread(app, port)`` (older tests from ``_init_server``); after collection those names in the
module are replaced by a no-op and by context managers that empty the store and yield the URL above.
The ``store_type`` parameter "file" is deselected (one backend: the server's). ``db_uri`` (MLflow's
conftest) is a fresh SQLite URL, used only by the few tests that start a store of their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

URL = os.environ.get("MLFLOW_COMPAT_URL", "")
TOKEN = os.environ.get("MLFLOW_TRACKING_TOKEN", "")
RESET: dict[str, Any] = json.loads(os.environ.get("MLFLOW_COMPAT_RESET", "{}"))
REPORT = os.environ.get("MLFLOW_COMPAT_REPORT", "")

_outcomes: dict[str, dict[str, Any]] = {}
_collected: dict[str, int] = {}


# ----------------------------------------------------------------------------------------- the store


def _truncate_postgres(url: str, keep: list[str]) -> None:
    import psycopg

    parts = urlsplit(url.replace("+psycopg", ""))
    with psycopg.connect(parts._replace(scheme="postgresql").geturl(), autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            if r[0] not in keep
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


def _truncate_sqlite(url: str, keep: list[str]) -> None:
    path = url.split(":///", 1)[1]
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] not in keep and not r[0].startswith("sqlite_")
        ]
        conn.execute("PRAGMA foreign_keys = OFF")
        for table in tables:
            conn.execute(f'DELETE FROM "{table}"')
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            conn.execute("DELETE FROM sqlite_sequence")
        conn.commit()


def reset_store() -> None:
    """Empty the server's store (see the module docstring)."""
    kind, url = RESET.get("kind"), RESET.get("url", "")
    if not kind:
        return
    keep = list(RESET.get("keep", []))
    if kind == "mlflow":
        keep.append("alembic_version")
    if url.startswith("sqlite"):
        _truncate_sqlite(url, keep)
    else:
        _truncate_postgres(url, keep)
    if kind == "mlflow":  # its store recreates the Default experiment (id 0) on an empty database
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(url, RESET["artifact_root"]).engine.dispose()


class ExternalServer:
    """Stands in for the test module's ``ServerThread(app, port)``: the store emptied, the URL yielded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.url = URL

    def __enter__(self) -> str:
        reset_store()
        return self.url

    def __exit__(self, *exc: object) -> None:
        return None


@contextlib.contextmanager
def external_init_server(*args: Any, **kwargs: Any) -> Iterator[str]:
    """Stands in for ``integration_test_utils._init_server`` (a server subprocess per test)."""
    with ExternalServer() as url:
        yield url


def _no_backend_stores(*args: Any, **kwargs: Any) -> None:
    """Stands in for ``mlflow.server.handlers.initialize_backend_stores``: the server has its own."""


# ----------------------------------------------------------------------------------------- the token


def _with_token() -> None:
    """Every ``requests`` call to ``URL`` carries the bearer token (the tests call the REST API directly
    with ``requests.get/post`` beside the client, which sends it already)."""
    if not TOKEN or not URL:
        return
    base = "{0.scheme}://{0.netloc}".format(urlsplit(URL))
    original = requests.Session.request

    def request(self: requests.Session, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        if str(url).startswith(base):
            headers = dict(kwargs.get("headers") or {})
            if not any(k.lower() == "authorization" for k in headers):
                headers["Authorization"] = f"Bearer {TOKEN}"
            kwargs["headers"] = headers
        return original(self, method, url, *args, **kwargs)

    requests.Session.request = request  # type: ignore[method-assign]


# ----------------------------------------------------------------------------------------- hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_infer_pip_requirements_fallback: MLflow's own marker")
    _with_token()


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    patched: set[int] = set()
    for item in items:
        module = getattr(item, "module", None)
        if module is None or id(module) in patched:
            continue
        patched.add(id(module))
        for name, value in (
            ("ServerThread", ExternalServer),
            ("_init_server", external_init_server),
            ("initialize_backend_stores", _no_backend_stores),
        ):
            if hasattr(module, name):
                setattr(module, name, value)
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (dropped if params.get("store_type") == "file" else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    _collected.update(collected=len(kept) + len(dropped), selected=len(kept), deselected=len(dropped))


@pytest.fixture
def db_uri(tmp_path: Path) -> str:
    """MLflow's conftest fixture: here a fresh SQLite URL (created only if a test opens it)."""
    return f"sqlite:///{tmp_path / 'mlflow-local.db'}"


@pytest.fixture(autouse=True)
def _fluent_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What MLflow's conftest does around each test: the fluent API on a local SQLite store unless the
    test points it elsewhere, and no active run, experiment (nor ``MLFLOW_EXPERIMENT_ID``) or tracking URI
    left behind."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'fluent.db'}")
    yield
    with contextlib.suppress(Exception):
        while mlflow.active_run():
            mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None
    os.environ.pop(
        "MLFLOW_EXPERIMENT_ID", None
    )  # set by some tests (mlflow.set_experiment); conftest pops it


def _reason(report: pytest.TestReport) -> str:
    """One line: the crash message of a failure, the reason of a skip."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[:3])[:400]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _outcomes.setdefault(report.nodeid, {"outcome": "passed", "reason": "", "seconds": 0.0})
    entry["seconds"] = round(entry["seconds"] + report.duration, 3)
    if hasattr(report, "wasxfail"):
        entry["outcome"] = "xpassed" if report.passed else "xfailed"
        entry["reason"] = str(report.wasxfail)
    elif report.failed:
        if entry["outcome"] == "passed":  # the first failure decides: setup/teardown ones are errors
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["reason"] = (
                f"{report.when}: {_reason(report)}" if report.when != "call" else _reason(report)
            )
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["reason"] = _reason(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REPORT:
        Path(REPORT).write_text(
            json.dumps({"collection": _collected, "tests": _outcomes, "finished": time.time()}, indent=1)
        )
