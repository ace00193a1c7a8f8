"""Shared fixtures: a real PostgreSQL server per session, fresh databases per test, migrated stores.

PostgreSQL: a throwaway server is started on first use (see ``tests/support/pgserver.py``); set
``MLTRACK_TEST_PG_URL`` to use an existing server instead. Tests that need PostgreSQL fail (not skip)
when no server can be had, so a green run always includes them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid

# Before anything imports airflow: a private AIRFLOW_HOME, so tests never touch a real installation.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="mltrack-test-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)

import pytest  # noqa: E402

from tests.support.pgserver import TempPostgres  # noqa: E402

TEMPLATE_DB = "mltrack_template"


def pytest_collection_modifyitems(config, items):
    """Tests that use the PostgreSQL server directly carry the ``postgres`` marker (``-m "not postgres"``)."""
    for item in items:
        if {"pg_server", "pg_database", "pg_template"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def _dispose_engines() -> None:
    try:
        from airflow_mltrack.store.engine import dispose_engines
    except ImportError:  # pragma: no cover - the store package is being written
        return
    dispose_engines()


def _db_name(request: pytest.FixtureRequest, prefix: str = "t") -> str:
    """A database name unique per test, readable in ``pg_stat_activity`` (<= 63 bytes)."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"{prefix}_{slug}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _dispose_engines_after_test():
    """Close every cached tracking-store engine after each test (so its database can be dropped)."""
    yield
    _dispose_engines()


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server (a ``TempPostgres``), started on first use."""
    server = TempPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_database(pg_server: TempPostgres, request: pytest.FixtureRequest):
    """URL of a fresh, empty database (from template0), dropped after the test."""
    name = _db_name(request)
    url = pg_server.create_database(name, template="template0")
    yield url
    _dispose_engines()
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def pg_template(pg_server: TempPostgres):
    """Name of a database migrated to head once per session; tests copy it with CREATE DATABASE TEMPLATE."""
    from airflow_mltrack.store.migrations import upgrade

    # Unique on a shared external server, where several sessions may run at once.
    name = f"{TEMPLATE_DB}_{uuid.uuid4().hex[:8]}" if pg_server.is_external else TEMPLATE_DB
    pg_server.drop_database(name)
    url = pg_server.create_database(name, template="template0")
    try:
        upgrade(url)
    except BaseException:
        _dispose_engines()
        pg_server.drop_database(name)
        raise
    _dispose_engines()
    # Nobody may connect to the template any more (a connection would block every copy).
    pg_server.psql(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    yield name
    pg_server.drop_database(name)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def tracking_url(request: pytest.FixtureRequest, tmp_path):
    """URL of a fresh tracking database migrated to head, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        from airflow_mltrack.store.migrations import upgrade

        url = f"sqlite:///{tmp_path / 'mltrack.db'}"
        upgrade(url)
        _dispose_engines()
        yield url
        _dispose_engines()
        return

    pg_server: TempPostgres = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template")
    name = _db_name(request)
    url = pg_server.create_database(name, template=template, strategy="FILE_COPY")
    yield url
    _dispose_engines()
    pg_server.drop_database(name)


@pytest.fixture
def tracking_pg(pg_server: TempPostgres, pg_template: str, request: pytest.FixtureRequest, monkeypatch):
    """URL of a fresh PostgreSQL tracking store at head, registered as Airflow connection ``mltrack_default``
    (``AIRFLOW_CONN_MLTRACK_DEFAULT``), so DAGs under test write to it."""
    import json

    name = _db_name(request, prefix="af")
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLTRACK_DEFAULT", json.dumps({"conn_type": "mltrack", "extra": {"url": url}})
    )
    yield url
    _dispose_engines()
    pg_server.drop_database(name)


@pytest.fixture
def store(tracking_url: str):
    """A ``TrackingStore`` on ``tracking_url`` (both backends)."""
    from airflow_mltrack.store import TrackingStore

    yield TrackingStore.from_url(tracking_url)
    _dispose_engines()
